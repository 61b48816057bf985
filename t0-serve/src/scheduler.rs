//! The continuous-batching scheduler.
//!
//! One **decode thread** owns the running batch: a single [`DecoderState`] whose rows are the
//! greedy and sampling requests in flight, each with its own input, position and options.
//! Between two decode steps it
//!
//! 1. takes waiting requests from the queue, in arrival order, while the batch has room;
//! 2. answers score requests (one encoder pass, all choices teacher-forced; [`T5Model::classify`]);
//! 3. encodes each new generation request (alone, so that its encoder output is bit for bit
//!    `t0 generate`'s), gives it a fresh state and [`DecoderState::append`]s it to the batch;
//! 4. drops the rows whose client went away (the answer channel is closed);
//! 5. runs **one** `decode` for all rows, then per row the same logits processing, sampling and
//!    log-softmax as [`T5Model::generate`] (so each answer equals `t0 generate`'s for that input
//!    alone), sends the token to the request's channel, and drops finished rows with
//!    [`DecoderState::select_rows`].
//!
//! Beam-search requests do not join the batch: a second **beam thread** runs them one at a
//! time with the library's own [`T5Model::generate`] (beams of one request already decode as
//! one batch there). They share the CPU with the batch and wait in the same queue.

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Instant;

use t0_model::logits_process::{process, warp};
use t0_model::sampling::Rng;
use t0_model::{Classification, DecoderState, Generated, GenerationConfig, T5Model, T0};
use tokio::sync::{mpsc, oneshot};

use crate::error::ApiError;
use crate::metrics::{Metrics, Outcome};

/// What a generation request's channel receives.
#[derive(Debug)]
pub enum GenEvent {
    /// A token was chosen (greedy and sampling only), with its log-probability.
    Token {
        /// The token id.
        id: u32,
        /// Its log-probability under the processed distribution.
        logprob: f32,
    },
    /// The request is complete: its sequences (one, or `num_return_sequences` for beams).
    Done(Vec<Generated>),
    /// The request failed.
    Failed(ApiError),
}

/// A generation request waiting or running.
#[derive(Debug)]
struct GenJob {
    input: Vec<u32>,
    cfg: GenerationConfig,
    tx: mpsc::UnboundedSender<GenEvent>,
    arrived: Instant,
}

/// A score request waiting.
#[derive(Debug)]
struct ScoreJob {
    prompt: Vec<u32>,
    choices: Vec<Vec<u32>>,
    length_normalize: bool,
    tx: oneshot::Sender<Result<Classification, ApiError>>,
    arrived: Instant,
}

#[derive(Debug)]
enum Job {
    Generate(GenJob),
    Score(ScoreJob),
}

#[derive(Debug, Default)]
struct Queue {
    /// Greedy / sampling / score requests for the decode thread.
    jobs: VecDeque<Job>,
    /// Beam-search requests for the beam thread.
    beams: VecDeque<GenJob>,
    shutdown: bool,
}

impl Queue {
    fn depth(&self) -> usize {
        self.jobs.len() + self.beams.len()
    }
}

#[derive(Debug)]
struct Shared {
    queue: Mutex<Queue>,
    decode_wake: Condvar,
    beam_wake: Condvar,
    metrics: Arc<Metrics>,
    max_batch: usize,
    max_queue: usize,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // A panic while holding the lock cannot leave the queue inconsistent (push/pop only).
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The scheduler: a queue and the threads that serve it. Dropping it stops the threads; requests
/// still waiting then see their channel close.
#[derive(Debug)]
pub struct Scheduler {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl Scheduler {
    /// Start the decode and beam threads for `t0`. At most `max_batch` sequences decode
    /// together; at most `max_queue` requests wait (more are refused with 429).
    pub fn start(t0: Arc<T0>, max_batch: usize, max_queue: usize, metrics: Arc<Metrics>) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            decode_wake: Condvar::new(),
            beam_wake: Condvar::new(),
            metrics,
            max_batch: max_batch.max(1),
            max_queue,
        });
        let (s1, m1) = (shared.clone(), t0.clone());
        let decode =
            std::thread::Builder::new().name("t0-decode".into()).spawn(move || decode_loop(&s1, m1.model()))?;
        let (s2, m2) = (shared.clone(), t0);
        let beam = std::thread::Builder::new().name("t0-beam".into()).spawn(move || beam_loop(&s2, m2.model()))?;
        Ok(Self { shared, threads: vec![decode, beam] })
    }

    fn push(&self, job: Job) -> Result<(), ApiError> {
        let mut q = self.shared.lock();
        if q.shutdown {
            return Err(ApiError::unavailable());
        }
        if q.depth() >= self.shared.max_queue {
            return Err(ApiError::busy(q.depth(), 1));
        }
        match job {
            Job::Generate(g) if g.cfg.num_beams > 1 => {
                q.beams.push_back(g);
                self.shared.beam_wake.notify_one();
            }
            job => {
                q.jobs.push_back(job);
                self.shared.decode_wake.notify_one();
            }
        }
        self.shared.metrics.set_queue_depth(q.depth());
        Ok(())
    }

    /// Queue a generation request (ids and config already checked). Its tokens and final answer
    /// arrive on the returned channel; dropping the receiver cancels it.
    pub fn submit_generate(
        &self,
        input: Vec<u32>,
        cfg: GenerationConfig,
        arrived: Instant,
    ) -> Result<mpsc::UnboundedReceiver<GenEvent>, ApiError> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.push(Job::Generate(GenJob { input, cfg, tx, arrived }))?;
        Ok(rx)
    }

    /// Queue a score request; the answer arrives on the returned channel.
    pub fn submit_score(
        &self,
        prompt: Vec<u32>,
        choices: Vec<Vec<u32>>,
        length_normalize: bool,
        arrived: Instant,
    ) -> Result<oneshot::Receiver<Result<Classification, ApiError>>, ApiError> {
        let (tx, rx) = oneshot::channel();
        self.push(Job::Score(ScoreJob { prompt, choices, length_normalize, tx, arrived }))?;
        Ok(rx)
    }

    /// Stop taking requests and stop the threads (after their current step).
    pub fn shutdown(&self) {
        let mut q = self.shared.lock();
        q.shutdown = true;
        q.jobs.clear();
        q.beams.clear();
        self.shared.metrics.set_queue_depth(0);
        self.shared.decode_wake.notify_all();
        self.shared.beam_wake.notify_all();
    }
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        self.shutdown();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// One running sequence of the batch.
#[derive(Debug)]
struct Row {
    job: GenJob,
    /// Decoder input so far: start token + generated tokens.
    seq: Vec<u32>,
    out: Generated,
    rng: Rng,
}

/// The running batch: rows in the same order as the state's rows.
struct Batch<'m> {
    model: &'m T5Model,
    metrics: &'m Metrics,
    state: Option<DecoderState>,
    rows: Vec<Row>,
}

impl Batch<'_> {
    /// Encode each of `jobs` and add them to the batch.
    ///
    /// Each input is encoded alone: a padded batch of inputs of different lengths changes the
    /// last bits of the encoder output, and the answers must equal `t0 generate`'s exactly.
    fn admit(&mut self, jobs: Vec<GenJob>) {
        let m = self.model;
        let start = m.config().decoder_start_token_id;
        for job in jobs {
            if self.cancelled(&job) {
                continue;
            }
            let fresh = m.encode(&[job.input.as_slice()]).and_then(|enc| m.decoder_state(m.cross_cache(&enc), vec![0]));
            // `append` checks before it changes anything: on error the batch is as it was.
            let joined = fresh.and_then(|fresh| match &mut self.state {
                Some(s) => s.append(fresh),
                None => {
                    self.state = Some(fresh);
                    Ok(())
                }
            });
            if let Err(e) = joined {
                self.fail(&job, ApiError::from_model(e));
                continue;
            }
            self.rows.push(Row {
                rng: Rng::new(job.cfg.seed),
                seq: vec![start],
                out: Generated { token_ids: Vec::new(), token_logprobs: Vec::new(), score: None },
                job,
            });
        }
    }

    fn cancelled(&self, j: &GenJob) -> bool {
        if j.tx.is_closed() {
            self.metrics.request_done("generate", Outcome::Cancelled, None);
            return true;
        }
        false
    }

    fn fail(&self, j: &GenJob, e: ApiError) {
        self.metrics.request_done("generate", Outcome::Error, None);
        let _ = j.tx.send(GenEvent::Failed(e));
    }

    /// Keep the rows `keep` (indices, in order).
    fn retain(&mut self, keep: Vec<usize>) {
        if keep.len() == self.rows.len() {
            return;
        }
        if keep.is_empty() {
            self.rows.clear();
            self.state = None;
            return;
        }
        let mut old: Vec<Option<Row>> = self.rows.drain(..).map(Some).collect();
        self.rows = keep.iter().filter_map(|&r| old[r].take()).collect();
        if let Some(s) = &mut self.state {
            if let Err(e) = s.select_rows(&keep) {
                self.abort(e);
            }
        }
    }

    /// Fail every row (the state can no longer be trusted).
    fn abort(&mut self, e: t0_model::ModelError) {
        for r in std::mem::take(&mut self.rows) {
            self.fail(&r.job, ApiError::internal(format!("decode failed: {e}")));
        }
        self.state = None;
    }

    /// After a panic inside `admit` or `step`: fail every row, start again from an empty batch.
    fn abort_panicked(&mut self) {
        for r in std::mem::take(&mut self.rows) {
            self.fail(&r.job, ApiError::internal("internal error: the decode step failed (see the server log)".into()));
        }
        self.state = None;
    }

    /// One decode step for every row.
    fn step(&mut self) {
        let live: Vec<usize> = (0..self.rows.len()).filter(|&r| !self.cancelled(&self.rows[r].job)).collect();
        self.retain(live);
        let Some(state) = &mut self.state else { return };
        let t = Instant::now();
        let next: Vec<u32> = self.rows.iter().map(|r| *r.seq.last().unwrap_or(&0)).collect();
        let mut logits = match self.model.decode(state, &next, 1) {
            Ok(l) => l,
            Err(e) => return self.abort(e),
        };
        self.metrics.step(self.rows.len() as u64, t.elapsed());
        let c = self.model.config();
        let (vocab, eos) = (c.vocab_size, c.eos_token_id as usize);
        let mut keep = Vec::with_capacity(self.rows.len());
        // What each row sends, sent once the batch size is counted (below).
        let mut sends: Vec<(usize, GenEvent, Option<Generated>)> = Vec::with_capacity(self.rows.len());
        for (i, row) in self.rows.iter_mut().enumerate() {
            // Exactly the per-row work of `T5Model::generate_streaming`.
            let l = &mut logits[i * vocab..(i + 1) * vocab];
            let cfg = &row.job.cfg;
            process(l, &row.seq, cfg, eos);
            let tok = if cfg.do_sample {
                warp(l, cfg);
                row.rng.sample(l)
            } else {
                argmax(l)
            };
            self.model.kernels().log_softmax(l);
            row.out.token_ids.push(tok as u32);
            row.out.token_logprobs.push(l[tok]);
            row.seq.push(tok as u32);
            if row.out.token_ids.len() == 1 {
                self.metrics.first_token(row.job.arrived.elapsed());
            }
            let finished = tok == eos || row.out.token_ids.len() >= cfg.max_new_tokens;
            let token = GenEvent::Token { id: tok as u32, logprob: l[tok] };
            if row.job.tx.is_closed() {
                self.metrics.request_done("generate", Outcome::Cancelled, None);
            } else if finished {
                // Counted before the answer leaves, so a client that has it sees it counted.
                self.metrics.request_done("generate", Outcome::Ok, Some(row.job.arrived.elapsed()));
                let out = std::mem::replace(
                    &mut row.out,
                    Generated { token_ids: vec![], token_logprobs: vec![], score: None },
                );
                sends.push((i, token, Some(out)));
            } else {
                // A failed send means the client just left: the next step drops the row.
                sends.push((i, token, None));
                keep.push(i);
            }
        }
        // The batch size too is counted before any answer leaves.
        self.metrics.set_batch_size(keep.len());
        for (i, token, done) in sends {
            let tx = &self.rows[i].job.tx;
            let _ = tx.send(token);
            if let Some(out) = done {
                let _ = tx.send(GenEvent::Done(vec![out]));
            }
        }
        self.retain(keep);
    }
}

/// Index of the first maximum (as `torch.argmax` and [`T5Model::generate`]).
fn argmax(xs: &[f32]) -> usize {
    let mut best = 0;
    for (i, &x) in xs.iter().enumerate() {
        if x > xs[best] {
            best = i;
        }
    }
    best
}

fn decode_loop(shared: &Shared, model: &T5Model) {
    let metrics = &*shared.metrics;
    let mut batch = Batch { model, metrics, state: None, rows: Vec::new() };
    loop {
        let mut admitted = Vec::new();
        let mut scores = Vec::new();
        {
            let mut q = shared.lock();
            while !q.shutdown && q.jobs.is_empty() && batch.rows.is_empty() {
                q = shared.decode_wake.wait(q).unwrap_or_else(|p| p.into_inner());
            }
            if q.shutdown {
                return;
            }
            // Arrival order: a generation request that does not fit waits, and so does
            // everything behind it.
            let room = shared.max_batch.saturating_sub(batch.rows.len());
            while let Some(job) = q.jobs.front() {
                match job {
                    Job::Generate(_) if admitted.len() >= room => break,
                    _ => {}
                }
                match q.jobs.pop_front() {
                    Some(Job::Generate(g)) => admitted.push(g),
                    Some(Job::Score(s)) => scores.push(s),
                    None => break,
                }
            }
            metrics.set_queue_depth(q.depth());
        }
        for s in scores {
            run_score(model, metrics, s);
        }
        // A panic in the model is a bug, but it must not take the server down: fail the
        // requests of the batch (500) and go on with an empty one.
        let stepped = catch_unwind(AssertUnwindSafe(|| {
            batch.admit(admitted);
            batch.step();
        }));
        if stepped.is_err() {
            batch.abort_panicked();
        }
        metrics.set_batch_size(batch.rows.len());
    }
}

fn run_score(model: &T5Model, metrics: &Metrics, s: ScoreJob) {
    if s.tx.is_closed() {
        metrics.request_done("score", Outcome::Cancelled, None);
        return;
    }
    let r = match catch_unwind(AssertUnwindSafe(|| model.classify(&s.prompt, &s.choices, s.length_normalize))) {
        Ok(r) => r.map_err(ApiError::from_model),
        Err(_) => Err(ApiError::internal("internal error: scoring failed (see the server log)".into())),
    };
    let outcome = match &r {
        Ok(_) => Outcome::Ok,
        Err(e) if e.status.is_client_error() => Outcome::Invalid,
        Err(_) => Outcome::Error,
    };
    if s.tx.is_closed() {
        metrics.request_done("score", Outcome::Cancelled, None);
    } else {
        // Counted before the answer leaves, so a client that has it sees it counted.
        metrics.request_done("score", outcome, Some(s.arrived.elapsed()));
        let _ = s.tx.send(r);
    }
}

fn beam_loop(shared: &Shared, model: &T5Model) {
    let metrics = &*shared.metrics;
    loop {
        let job = {
            let mut q = shared.lock();
            while !q.shutdown && q.beams.is_empty() {
                q = shared.beam_wake.wait(q).unwrap_or_else(|p| p.into_inner());
            }
            if q.shutdown {
                return;
            }
            let job = q.beams.pop_front();
            metrics.set_queue_depth(q.depth());
            job
        };
        let Some(job) = job else { continue };
        if job.tx.is_closed() {
            metrics.request_done("generate", Outcome::Cancelled, None);
            continue;
        }
        metrics.set_beam_active(1);
        let r = match catch_unwind(AssertUnwindSafe(|| model.generate(std::slice::from_ref(&job.input), &job.cfg))) {
            Ok(r) => r.map_err(ApiError::from_model),
            Err(_) => Err(ApiError::internal("internal error: beam search failed (see the server log)".into())),
        };
        metrics.set_beam_active(0);
        match r {
            Ok(mut out) => {
                let seqs = out.pop().unwrap_or_default();
                metrics.add_tokens(seqs.first().map_or(0, |g| g.token_ids.len()) as u64);
                if job.tx.is_closed() {
                    metrics.request_done("generate", Outcome::Cancelled, None);
                } else {
                    metrics.request_done("generate", Outcome::Ok, Some(job.arrived.elapsed()));
                    let _ = job.tx.send(GenEvent::Done(seqs));
                }
            }
            Err(e) => {
                metrics.request_done("generate", Outcome::Error, None);
                let _ = job.tx.send(GenEvent::Failed(e));
            }
        }
    }
}
