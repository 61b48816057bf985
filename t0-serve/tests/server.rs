//! The server on loopback with the tiny fixture model: answers equal the library's (and so
//! `t0 generate` / `t0 score`'s) for each request alone, whatever else runs in the batch;
//! streaming, cancellation, back-pressure and bad requests.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use t0_model::{GenerationConfig, T0};
use t0_serve::api;
use t0_serve::client::{get, open, post_json, request};
use t0_serve::metrics::Outcome;
use t0_serve::{RunningServer, ServeOptions};

fn tiny() -> Arc<T0> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/models/t0-tiny");
    Arc::new(T0::from_dir(dir.as_ref()).unwrap())
}

fn start(options: ServeOptions) -> (Arc<T0>, RunningServer) {
    let t0 = tiny();
    let server = RunningServer::start(t0.clone(), options, "127.0.0.1:0".parse().unwrap()).unwrap();
    (t0, server)
}

const PROMPTS: [&str; 6] = [
    "Is this review positive or negative? Review: best skillet ever",
    "Translate to French: the cat sat on the mat.",
    "Hi",
    "Question: what is the capital of France? Answer:",
    "A much longer prompt, so that the inputs of the batch have quite different lengths: it goes on and on \
     about nothing in particular for a good while before it stops.",
    "Summarize: the meeting was moved to Tuesday.",
];

/// The library's answer for one request alone, as the server's JSON.
fn expected(t0: &T0, prompt: &str, cfg: &GenerationConfig) -> Value {
    let ids = t0.tokenizer().unwrap().encode_with(prompt, true);
    let out = t0.model().generate(&[ids], cfg).unwrap();
    api::generate_json(&out[0], t0.tokenizer().ok())
}

/// The request options of each case and the config `t0 generate` builds from the same flags.
fn cases() -> Vec<(Value, GenerationConfig)> {
    let d = GenerationConfig::default();
    vec![
        (json!({"max_new_tokens": 12}), GenerationConfig::greedy(12)),
        (
            json!({"max_new_tokens": 9, "min_new_tokens": 9}),
            GenerationConfig { min_new_tokens: 9, ..GenerationConfig::greedy(9) },
        ),
        (
            json!({"max_new_tokens": 10, "seed": 7, "temperature": 0.8, "top_k": 20}),
            GenerationConfig { do_sample: true, seed: 7, temperature: 0.8, top_k: 20, ..GenerationConfig::greedy(10) },
        ),
        (
            json!({"max_new_tokens": 10, "top_p": 0.9, "seed": 3}),
            GenerationConfig { do_sample: true, seed: 3, top_p: 0.9, ..GenerationConfig::greedy(10) },
        ),
        (
            json!({"max_new_tokens": 11, "repetition_penalty": 1.3, "no_repeat_ngram_size": 2}),
            GenerationConfig { repetition_penalty: 1.3, no_repeat_ngram_size: 2, ..GenerationConfig::greedy(11) },
        ),
        (
            json!({"max_new_tokens": 8, "num_beams": 3, "num_return_sequences": 2}),
            GenerationConfig { num_beams: 3, num_return_sequences: 2, ..GenerationConfig::greedy(8) },
        ),
        (json!({}), d),
    ]
}

fn with_prompt(opts: &Value, prompt: &str) -> Value {
    let mut v = opts.clone();
    v["prompt"] = prompt.into();
    v
}

#[test]
fn concurrent_generate_equals_each_request_alone() {
    let (t0, server) = start(ServeOptions { max_batch: 5, ..ServeOptions::default() });
    let addr = server.addr();
    let mut jobs = Vec::new();
    for (i, (opts, cfg)) in cases().into_iter().enumerate() {
        for (j, p) in PROMPTS.iter().enumerate() {
            if (i + j) % 2 == 0 {
                jobs.push((with_prompt(&opts, p), expected(&t0, p, &cfg)));
            }
        }
    }
    // Everything at once: the batch fills, requests wait in the queue and join between steps.
    let handles: Vec<_> = jobs
        .into_iter()
        .map(|(body, want)| {
            std::thread::spawn(move || {
                let r = post_json(addr, "/generate", &body).unwrap();
                assert_eq!(r.status, 200, "{body}: {}", r.text());
                // Byte for byte what `t0 generate --json` prints for this request alone.
                assert_eq!(r.text(), want.to_string(), "{body}");
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let m = server.metrics();
    assert_eq!(m.requests("generate", Outcome::Ok), 21);
    assert!(m.tokens_total() > 0);
}

#[test]
fn input_ids_and_no_eos() {
    let (t0, server) = start(ServeOptions::default());
    let r = post_json(server.addr(), "/generate", &json!({"input_ids": [27, 7, 48, 1], "max_new_tokens": 6})).unwrap();
    let out = t0.model().generate(&[vec![27, 7, 48, 1]], &GenerationConfig::greedy(6)).unwrap();
    assert_eq!(r.text(), api::generate_json(&out[0], t0.tokenizer().ok()).to_string());

    let r = post_json(server.addr(), "/generate", &json!({"prompt": PROMPTS[0], "no_eos": true})).unwrap();
    let ids = t0.tokenizer().unwrap().encode_with(PROMPTS[0], false);
    let out = t0.model().generate(&[ids], &GenerationConfig::default()).unwrap();
    assert_eq!(r.text(), api::generate_json(&out[0], t0.tokenizer().ok()).to_string());
}

#[test]
fn score_equals_library() {
    let (t0, server) = start(ServeOptions::default());
    for norm in [false, true] {
        let body =
            json!({"prompt": PROMPTS[0], "choices": ["Positive", "Negative", "Not sure"], "length_normalize": norm});
        let r = post_json(server.addr(), "/score", &body).unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        let want = t0.classify_text(PROMPTS[0], &["Positive", "Negative", "Not sure"], norm).unwrap();
        assert_eq!(r.text(), api::score_json(&want, norm).to_string());
    }
    let body = json!({"input_ids": [27, 7, 48, 1], "choice_ids": [[1465, 1], [2841, 1]]});
    let r = post_json(server.addr(), "/score", &body).unwrap();
    let want = t0.model().classify(&[27, 7, 48, 1], &[vec![1465, 1], vec![2841, 1]], false).unwrap();
    assert_eq!(r.text(), api::score_json(&want, false).to_string());
    let v = r.json().unwrap();
    assert_eq!(v["scores"].as_array().unwrap().len(), 2);
    assert!(v["best"].as_u64().unwrap() < 2);
}

#[test]
fn streaming_sends_each_token_then_the_answer() {
    let (t0, server) = start(ServeOptions::default());
    let opts = json!({"max_new_tokens": 12, "min_new_tokens": 12, "stream": true});
    let mut r =
        open(server.addr(), "POST", "/generate", with_prompt(&opts, PROMPTS[1]).to_string().as_bytes()).unwrap();
    assert_eq!(r.status, 200);
    assert!(r.headers.iter().any(|(k, v)| k == "content-type" && v.starts_with("text/event-stream")));
    let (mut ids, mut text, mut done) = (Vec::new(), String::new(), None);
    while let Some(e) = r.next_event().unwrap() {
        let v: Value = serde_json::from_str(&e.data).unwrap();
        match e.event.as_str() {
            "token" => {
                assert_eq!(v["index"].as_u64().unwrap() as usize, ids.len());
                ids.push(v["token_id"].as_u64().unwrap());
                text.push_str(v["text"].as_str().unwrap());
            }
            "done" => done = Some((v, e.data)),
            other => panic!("unexpected event {other}: {}", e.data),
        }
    }
    let (done, done_text) = done.expect("a done event");
    assert_eq!(ids.len(), 12);
    let cfg = GenerationConfig { min_new_tokens: 12, ..GenerationConfig::greedy(12) };
    assert_eq!(done_text, expected(&t0, PROMPTS[1], &cfg).to_string());
    assert_eq!(json!(ids), done["token_ids"]);
    assert_eq!(text, done["text"].as_str().unwrap());

    // Beam search streams its final answer only.
    let opts = json!({"max_new_tokens": 5, "num_beams": 2, "stream": true});
    let mut r =
        open(server.addr(), "POST", "/generate", with_prompt(&opts, PROMPTS[2]).to_string().as_bytes()).unwrap();
    let e = r.next_event().unwrap().unwrap();
    assert_eq!(e.event, "done");
    assert!(r.next_event().unwrap().is_none());
}

/// Wait (bounded) until `f` holds.
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < Duration::from_secs(30), "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_client_that_goes_away_is_dropped_from_the_batch() {
    let (_t0, server) = start(ServeOptions { max_new_tokens: 100_000, ..ServeOptions::default() });
    let long = json!({"prompt": "Hi", "max_new_tokens": 100_000, "min_new_tokens": 100_000});
    let m = server.metrics().clone();

    // Streaming: read two tokens, hang up.
    let mut body = long.clone();
    body["stream"] = true.into();
    let mut r = open(server.addr(), "POST", "/generate", body.to_string().as_bytes()).unwrap();
    r.next_event().unwrap().unwrap();
    r.next_event().unwrap().unwrap();
    assert_eq!(m.batch_size(), 1);
    drop(r);
    eventually("the streaming request to be cancelled", || m.requests("generate", Outcome::Cancelled) == 1);
    eventually("an empty batch", || m.batch_size() == 0);

    // Not streaming: hang up while it runs.
    let r = std::thread::spawn({
        let addr = server.addr();
        move || {
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            let b = long.to_string();
            let head = format!("POST /generate HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{b}", b.len());
            std::io::Write::write_all(&mut s, head.as_bytes()).unwrap();
            s
        }
    });
    let s = r.join().unwrap();
    eventually("the request to run", || m.batch_size() == 1);
    drop(s);
    eventually("the plain request to be cancelled", || m.requests("generate", Outcome::Cancelled) == 2);
    eventually("an empty batch", || m.batch_size() == 0);
    assert_eq!(m.requests("generate", Outcome::Ok), 0);
    assert!(m.tokens_total() < 100_000);
}

#[test]
fn a_full_queue_answers_429_with_retry_after() {
    let (_t0, server) =
        start(ServeOptions { max_batch: 1, max_queue: 1, max_new_tokens: 100_000, ..Default::default() });
    let m = server.metrics().clone();
    let long = json!({"prompt": "Hi", "max_new_tokens": 100_000, "min_new_tokens": 100_000, "stream": true});
    let body = long.to_string();
    let mut running = open(server.addr(), "POST", "/generate", body.as_bytes()).unwrap();
    running.next_event().unwrap().unwrap(); // in the batch
    let waiting = open(server.addr(), "POST", "/generate", body.as_bytes()).unwrap();
    eventually("one request in the queue", || m.queue_depth() == 1);
    let r = post_json(server.addr(), "/generate", &json!({"prompt": "Hi"})).unwrap();
    assert_eq!(r.status, 429, "{}", r.text());
    assert_eq!(r.header("retry-after"), Some("1"));
    assert!(r.json().unwrap()["error"].as_str().unwrap().contains("busy"));
    let r = post_json(server.addr(), "/score", &json!({"prompt": "Hi", "choices": ["a"]})).unwrap();
    assert_eq!(r.status, 429);
    assert_eq!(m.requests("generate", Outcome::Rejected), 1);
    drop((running, waiting));
    eventually("the batch and queue to empty", || m.batch_size() == 0 && m.queue_depth() == 0);
    let r = post_json(server.addr(), "/generate", &json!({"prompt": "Hi", "max_new_tokens": 3})).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
}

fn assert_400(addr: SocketAddr, path: &str, body: &str, needle: &str) {
    let r = request(addr, "POST", path, body.as_bytes()).unwrap();
    assert_eq!(r.status, 400, "{body}: {}", r.text());
    let msg = r.json().unwrap()["error"].as_str().unwrap().to_string();
    assert!(msg.contains(needle), "{body}: {msg:?} does not mention {needle:?}");
}

#[test]
fn bad_requests_get_400_with_a_message() {
    let options = ServeOptions { max_new_tokens: 64, max_batch: 4, max_input_tokens: 10, ..ServeOptions::default() };
    let (_t0, server) = start(options);
    let a = server.addr();
    assert_400(a, "/generate", "{\"prompt\": ", "invalid JSON");
    assert_400(a, "/generate", "", "empty");
    assert_400(a, "/generate", "[1, 2]", "invalid JSON");
    assert_400(a, "/generate", r#"{"promt": "x"}"#, "unknown field `promt`");
    assert_400(a, "/generate", r#"{"prompt": "x", "max_new_tokens": "ten"}"#, "invalid type");
    assert_400(a, "/generate", r#"{"prompt": "x", "top_p": 1.5}"#, "top_p");
    assert_400(a, "/generate", r#"{"prompt": "x", "max_new_tokens": 0}"#, "max_new_tokens");
    assert_400(a, "/generate", r#"{"prompt": "x", "max_new_tokens": 65}"#, "limit of 64");
    assert_400(a, "/generate", r#"{"prompt": "x", "num_beams": 2, "num_return_sequences": 3}"#, "num_return_sequences");
    assert_400(a, "/generate", r#"{"prompt": "x", "num_beams": 5}"#, "limit of 4");
    assert_400(a, "/generate", r#"{"input_ids": [5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 1]}"#, "11 tokens");
    assert_400(a, "/generate", r#"{"prompt": "x", "input_ids": [1]}"#, "not both");
    assert_400(a, "/generate", r#"{"max_new_tokens": 3}"#, "no prompt");
    assert_400(a, "/generate", r#"{"input_ids": []}"#, "no tokens");
    assert_400(a, "/generate", r#"{"input_ids": [5, 99999]}"#, "99999");
    assert_400(a, "/generate", r#"{"input_ids": [5, -1]}"#, "invalid value");
    assert_400(a, "/score", r#"{"prompt": "x"}"#, "no answer choices");
    assert_400(a, "/score", r#"{"prompt": "x", "choice_ids": [[]]}"#, "no tokens");
    assert_400(a, "/score", r#"{"prompt": "x", "choice_ids": [[5, 40000]]}"#, "40000");
    assert_400(a, "/score", r#"{"prompt": "x", "choice_ids": [[5, 1], [5, 5, 5, 5, 5, 1]]}"#, "12 tokens");
    assert_400(a, "/score", r#"{"prompt": "x", "choices": ["a"], "normalize": true}"#, "unknown field");
    assert_eq!(server.metrics().requests("generate", Outcome::Invalid), 16);
    // The server still works.
    let r = post_json(a, "/generate", &json!({"prompt": "x", "max_new_tokens": 2})).unwrap();
    assert_eq!(r.status, 200);
}

#[test]
fn an_oversized_body_gets_413() {
    let (_t0, server) = start(ServeOptions { max_body_bytes: 1024, ..ServeOptions::default() });
    let big = json!({ "prompt": "word ".repeat(800) }).to_string();
    let r = request(server.addr(), "POST", "/generate", big.as_bytes()).unwrap();
    assert_eq!(r.status, 413, "{}", r.text());
    assert!(r.json().unwrap()["error"].as_str().unwrap().contains("too large"));
    let r = request(server.addr(), "POST", "/score", big.as_bytes()).unwrap();
    assert_eq!(r.status, 413);
    let small = json!({ "prompt": "word ".repeat(100), "max_new_tokens": 2 }).to_string();
    assert_eq!(request(server.addr(), "POST", "/generate", small.as_bytes()).unwrap().status, 200);
}

#[test]
fn health_and_metrics() {
    let (_t0, server) = start(ServeOptions::default());
    let h = get(server.addr(), "/health").unwrap();
    assert_eq!(h.status, 200);
    assert_eq!(h.json().unwrap()["status"], "ok");
    post_json(server.addr(), "/generate", &json!({"prompt": "Hi", "max_new_tokens": 4, "min_new_tokens": 4})).unwrap();
    let m = get(server.addr(), "/metrics").unwrap();
    assert_eq!(m.status, 200);
    assert!(m.header("content-type").unwrap().starts_with("text/plain"));
    let text = m.text();
    for name in [
        "t0_queue_depth 0",
        "t0_batch_size 0",
        "t0_tokens_generated_total 4",
        "t0_tokens_per_second ",
        "t0_decode_steps_total 4",
        "t0_requests_total{endpoint=\"generate\",outcome=\"ok\"} 1",
        "t0_request_duration_seconds_count{endpoint=\"generate\"} 1",
        "t0_time_to_first_token_seconds_count 1",
        "# TYPE t0_request_duration_seconds histogram",
    ] {
        assert!(text.contains(name), "no {name:?} in\n{text}");
    }
    assert_eq!(get(server.addr(), "/nope").unwrap().status, 404);
}
