//! Server metrics, rendered as Prometheus text by `GET /metrics`.
//!
//! Gauges and counters are atomics; histograms and the per-outcome request counters sit behind
//! small mutexes (touched once per request or decode step, never per token).

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Upper bounds (seconds) of the latency histograms' buckets.
const LATENCY_BUCKETS: [f64; 14] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0];

/// Window over which `t0_tokens_per_second` is measured.
const RATE_WINDOW: Duration = Duration::from_secs(10);

/// A cumulative histogram with fixed buckets.
#[derive(Clone, Debug)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn new() -> Self {
        Self { counts: vec![0; LATENCY_BUCKETS.len()], sum: 0.0, count: 0 }
    }

    fn observe(&mut self, secs: f64) {
        for (c, &b) in self.counts.iter_mut().zip(&LATENCY_BUCKETS) {
            if secs <= b {
                *c += 1;
            }
        }
        self.sum += secs;
        self.count += 1;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (c, b) in self.counts.iter().zip(&LATENCY_BUCKETS) {
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {c}");
        }
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}", self.count);
        let braces = if labels.is_empty() { String::new() } else { format!("{{{labels}}}") };
        let _ = writeln!(out, "{name}_sum{braces} {}", self.sum);
        let _ = writeln!(out, "{name}_count{braces} {}", self.count);
    }
}

/// What became of a request, as counted by `t0_requests_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    /// Answered.
    Ok,
    /// The client went away before the answer was complete.
    Cancelled,
    /// Refused with 429: the queue was full.
    Rejected,
    /// Refused with 400 or 413: bad JSON, bad options or an oversized body.
    Invalid,
    /// Failed inside the model (500).
    Error,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Cancelled => "cancelled",
            Outcome::Rejected => "rejected",
            Outcome::Invalid => "invalid",
            Outcome::Error => "error",
        }
    }
}

/// All the server's metrics.
#[derive(Debug)]
pub struct Metrics {
    started: Instant,
    queue_depth: AtomicUsize,
    queue_capacity: AtomicUsize,
    batch_size: AtomicUsize,
    batch_capacity: AtomicUsize,
    beam_active: AtomicUsize,
    tokens_total: AtomicU64,
    steps_total: AtomicU64,
    requests: Mutex<BTreeMap<(&'static str, Outcome), u64>>,
    latency: Mutex<BTreeMap<&'static str, Histogram>>,
    first_token: Mutex<Histogram>,
    step_time: Mutex<Histogram>,
    recent: Mutex<VecDeque<(Instant, u64)>>,
}

impl Metrics {
    /// Fresh metrics for a server with this queue capacity and batch size limit.
    pub fn new(queue_capacity: usize, batch_capacity: usize) -> Self {
        Self {
            started: Instant::now(),
            queue_depth: AtomicUsize::new(0),
            queue_capacity: AtomicUsize::new(queue_capacity),
            batch_size: AtomicUsize::new(0),
            batch_capacity: AtomicUsize::new(batch_capacity),
            beam_active: AtomicUsize::new(0),
            tokens_total: AtomicU64::new(0),
            steps_total: AtomicU64::new(0),
            requests: Mutex::new(BTreeMap::new()),
            latency: Mutex::new(BTreeMap::new()),
            first_token: Mutex::new(Histogram::new()),
            step_time: Mutex::new(Histogram::new()),
            recent: Mutex::new(VecDeque::new()),
        }
    }

    /// Set the number of requests waiting in the queue.
    pub fn set_queue_depth(&self, n: usize) {
        self.queue_depth.store(n, Ordering::Relaxed);
    }

    /// Requests waiting in the queue.
    pub fn queue_depth(&self) -> usize {
        self.queue_depth.load(Ordering::Relaxed)
    }

    /// Set the number of decoder rows in the running batch.
    pub fn set_batch_size(&self, n: usize) {
        self.batch_size.store(n, Ordering::Relaxed);
    }

    /// Decoder rows in the running batch.
    pub fn batch_size(&self) -> usize {
        self.batch_size.load(Ordering::Relaxed)
    }

    /// Set the number of beam-search requests running.
    pub fn set_beam_active(&self, n: usize) {
        self.beam_active.store(n, Ordering::Relaxed);
    }

    /// Count one request of `endpoint` ending with `outcome`, and its latency when it ran.
    pub fn request_done(&self, endpoint: &'static str, outcome: Outcome, latency: Option<Duration>) {
        if let Ok(mut m) = self.requests.lock() {
            *m.entry((endpoint, outcome)).or_insert(0) += 1;
        }
        if let Some(d) = latency {
            if let Ok(mut m) = self.latency.lock() {
                m.entry(endpoint).or_insert_with(Histogram::new).observe(d.as_secs_f64());
            }
        }
    }

    /// Requests of `endpoint` that ended with `outcome` so far.
    pub fn requests(&self, endpoint: &str, outcome: Outcome) -> u64 {
        self.requests
            .lock()
            .map(|m| m.iter().filter(|((e, o), _)| *e == endpoint && *o == outcome).map(|(_, n)| *n).sum())
            .unwrap_or(0)
    }

    /// Record the time from a request's arrival to its first generated token.
    pub fn first_token(&self, d: Duration) {
        if let Ok(mut h) = self.first_token.lock() {
            h.observe(d.as_secs_f64());
        }
    }

    /// Record one decode step that produced `tokens` tokens in `d`.
    pub fn step(&self, tokens: u64, d: Duration) {
        self.steps_total.fetch_add(1, Ordering::Relaxed);
        self.add_tokens(tokens);
        if let Ok(mut h) = self.step_time.lock() {
            h.observe(d.as_secs_f64());
        }
    }

    /// Count `tokens` generated tokens (decode steps and beam search alike).
    pub fn add_tokens(&self, tokens: u64) {
        self.tokens_total.fetch_add(tokens, Ordering::Relaxed);
        let now = Instant::now();
        if let Ok(mut r) = self.recent.lock() {
            r.push_back((now, tokens));
            while r.front().is_some_and(|(t, _)| now.duration_since(*t) > RATE_WINDOW) {
                r.pop_front();
            }
        }
    }

    /// Tokens generated so far.
    pub fn tokens_total(&self) -> u64 {
        self.tokens_total.load(Ordering::Relaxed)
    }

    /// Tokens per second over the last 10 seconds (or since start, if shorter).
    pub fn tokens_per_second(&self) -> f64 {
        let now = Instant::now();
        let window = now.duration_since(self.started).min(RATE_WINDOW).as_secs_f64().max(1e-3);
        let n: u64 = self
            .recent
            .lock()
            .map(|r| r.iter().filter(|(t, _)| now.duration_since(*t) <= RATE_WINDOW).map(|(_, n)| n).sum())
            .unwrap_or(0);
        n as f64 / window
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut o = String::new();
        let gauge = |o: &mut String, name: &str, help: &str, kind: &str, v: String| {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}");
        };
        gauge(
            &mut o,
            "t0_queue_depth",
            "Requests waiting for a place in the batch.",
            "gauge",
            self.queue_depth().to_string(),
        );
        let cap = self.queue_capacity.load(Ordering::Relaxed).to_string();
        gauge(&mut o, "t0_queue_capacity", "Most requests that may wait (--max-queue); more get 429.", "gauge", cap);
        gauge(
            &mut o,
            "t0_batch_size",
            "Sequences in the running decode batch.",
            "gauge",
            self.batch_size().to_string(),
        );
        let cap = self.batch_capacity.load(Ordering::Relaxed).to_string();
        gauge(&mut o, "t0_batch_capacity", "Most sequences decoded together (--max-batch).", "gauge", cap);
        let beams = self.beam_active.load(Ordering::Relaxed).to_string();
        gauge(&mut o, "t0_beam_requests_active", "Beam-search requests running (outside the batch).", "gauge", beams);
        gauge(&mut o, "t0_tokens_generated_total", "Tokens generated.", "counter", self.tokens_total().to_string());
        let rate = format!("{:.3}", self.tokens_per_second());
        gauge(&mut o, "t0_tokens_per_second", "Tokens generated per second over the last 10 s.", "gauge", rate);
        let steps = self.steps_total.load(Ordering::Relaxed).to_string();
        gauge(&mut o, "t0_decode_steps_total", "Batched decode steps run.", "counter", steps);
        let up = format!("{:.3}", self.started.elapsed().as_secs_f64());
        gauge(&mut o, "t0_uptime_seconds", "Seconds since the server started.", "gauge", up);

        let _ =
            writeln!(o, "# HELP t0_requests_total Requests by endpoint and outcome.\n# TYPE t0_requests_total counter");
        if let Ok(m) = self.requests.lock() {
            for ((e, out), n) in m.iter() {
                let _ = writeln!(o, "t0_requests_total{{endpoint=\"{e}\",outcome=\"{}\"}} {n}", out.label());
            }
        }
        let name = "t0_request_duration_seconds";
        let _ = writeln!(
            o,
            "# HELP {name} Time from arrival to the answer (the last token, or the scores).\n# TYPE {name} histogram"
        );
        if let Ok(m) = self.latency.lock() {
            for (e, h) in m.iter() {
                h.render(&mut o, name, &format!("endpoint=\"{e}\""));
            }
        }
        let name = "t0_time_to_first_token_seconds";
        let _ = writeln!(o, "# HELP {name} Time from arrival to the first generated token.\n# TYPE {name} histogram");
        if let Ok(h) = self.first_token.lock() {
            h.render(&mut o, name, "");
        }
        let name = "t0_decode_step_seconds";
        let _ = writeln!(o, "# HELP {name} Time of one batched decode step.\n# TYPE {name} histogram");
        if let Ok(h) = self.step_time.lock() {
            h.render(&mut o, name, "");
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histograms() {
        let m = Metrics::new(8, 4);
        m.request_done("generate", Outcome::Ok, Some(Duration::from_millis(30)));
        m.request_done("generate", Outcome::Rejected, None);
        m.step(3, Duration::from_millis(2));
        let text = m.render();
        assert!(text.contains("t0_requests_total{endpoint=\"generate\",outcome=\"ok\"} 1"), "{text}");
        assert!(text.contains("t0_requests_total{endpoint=\"generate\",outcome=\"rejected\"} 1"));
        assert!(text.contains("t0_request_duration_seconds_bucket{endpoint=\"generate\",le=\"0.05\"} 1"));
        assert!(text.contains("t0_request_duration_seconds_bucket{endpoint=\"generate\",le=\"0.025\"} 0"));
        assert!(text.contains("t0_tokens_generated_total 3"));
        assert!(text.contains("t0_decode_step_seconds_count 1"));
        assert!(text.contains("t0_queue_capacity 8"));
        assert_eq!(m.requests("generate", Outcome::Ok), 1);
    }
}
