//! `t0 serve` end to end: the binary on loopback (`--port 0`) answers exactly what
//! `t0 generate --json` and `t0 score --json` print for the same request.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

use serde_json::json;
use t0_serve::client::{get, post_json};

const MODEL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/models/t0-tiny");

/// A `t0 serve` child process, killed when dropped.
struct Served(Child, SocketAddr);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(extra: &[&str]) -> Served {
    let mut child = Command::new(env!("CARGO_BIN_EXE_t0"))
        .args(["serve", "--model", MODEL, "--port", "0"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let addr = line.trim().strip_prefix("listening on http://").unwrap_or_else(|| panic!("first line {line:?}"));
    let addr = addr.parse().unwrap();
    Served(child, addr)
}

fn t0_stdout(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_t0")).args(args).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn serve_answers_what_generate_and_score_print() {
    let s = serve(&["--max-batch", "4"]);
    assert_eq!(get(s.1, "/health").unwrap().status, 200);
    let prompt = "Is this review positive or negative? Review: best skillet ever";
    let cases: [(&[&str], serde_json::Value); 4] = [
        (&["--max-new-tokens", "10"], json!({"max_new_tokens": 10})),
        (
            &["--max-new-tokens", "8", "--seed", "5", "--top-k", "10"],
            json!({"max_new_tokens": 8, "seed": 5, "top_k": 10}),
        ),
        (&["--max-new-tokens", "6", "--num-beams", "3"], json!({"max_new_tokens": 6, "num_beams": 3})),
        (&["--no-repeat-ngram-size", "2", "--no-eos"], json!({"no_repeat_ngram_size": 2, "no_eos": true})),
    ];
    // All requests in flight at once, so they share decode steps.
    let handles: Vec<_> = cases
        .iter()
        .map(|(_, body)| {
            let mut body = body.clone();
            body["prompt"] = prompt.into();
            let addr = s.1;
            std::thread::spawn(move || post_json(addr, "/generate", &body).unwrap())
        })
        .collect();
    for ((flags, body), h) in cases.iter().zip(handles) {
        let r = h.join().unwrap();
        assert_eq!(r.status, 200, "{body}: {}", r.text());
        let mut args = vec!["generate", "--model", MODEL, "--json"];
        args.extend_from_slice(flags);
        args.push(prompt);
        assert_eq!(r.text(), t0_stdout(&args).trim(), "{body}");
    }

    let body = json!({"prompt": prompt, "choices": ["Positive", "Negative"], "length_normalize": true});
    let r = post_json(s.1, "/score", &body).unwrap();
    let cli = t0_stdout(&[
        "score",
        "--model",
        MODEL,
        "--json",
        "--choice",
        "Positive",
        "--choice",
        "Negative",
        "--length-normalize",
        prompt,
    ]);
    assert_eq!(r.text(), cli.trim());
}

#[test]
fn serve_rejects_bad_flags_cleanly() {
    let out = Command::new(env!("CARGO_BIN_EXE_t0"))
        .args(["serve", "--model", "/nonexistent/model", "--port", "0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("does not exist") && !err.contains("panicked"), "{err}");
    let out = Command::new(env!("CARGO_BIN_EXE_t0"))
        .args(["serve", "--model", MODEL, "--port", "0", "--max-batch", "0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--max-batch"));
}
