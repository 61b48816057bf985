//! The `hub-download` feature against a local stand-in for the hub (the project's machines
//! cannot reach the real one): a thread serves `/api/models/<id>/revision/<rev>` and
//! `/<id>/resolve/<rev>/<file>` (with `Range` and the `X-Repo-Commit` / `ETag` headers the hub
//! sends) for the tiny fixture model; the download must land in the cache in `huggingface_hub`'s
//! layout and load. `cargo test --workspace` runs it (the root package turns the feature on for
//! tests), as does `cargo test -p t0-model --features hub-download`.
#![cfg(feature = "hub-download")]

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};

use t0_model::hub::{download_from, HubCache};
use t0_model::{GenerationConfig, T5Model};

const COMMIT: &str = "5d1f0c3b2a4e6f708192a3b4c5d6e7f8091a2b3c";
const FILES: [&str; 6] = [
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "special_tokens_map.json",
    "spiece.model",
    "tokenizer_config.json",
];

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/models/t0-tiny")
}

/// A stable fake content hash (the hub's ETag is the blob's sha256; any unique name will do).
fn etag(name: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
    }
    format!("{h:016x}").repeat(4)
}

/// Status, headers and body for one request path.
fn route(path: &str) -> (&'static str, Vec<String>, Vec<u8>) {
    if path == "/api/models/acme/t0-tiny/revision/main" {
        let siblings: Vec<String> = FILES.iter().map(|f| format!(r#"{{"rfilename":"{f}"}}"#)).collect();
        let json = format!(r#"{{"id":"acme/t0-tiny","sha":"{COMMIT}","siblings":[{}]}}"#, siblings.join(","));
        return ("200 OK", vec!["Content-Type: application/json".into()], json.into_bytes());
    }
    match path.strip_prefix("/acme/t0-tiny/resolve/main/").filter(|f| FILES.contains(f)) {
        Some(file) => {
            let data = std::fs::read(fixture().join(file)).unwrap();
            ("200 OK", vec![format!("X-Repo-Commit: {COMMIT}"), format!("ETag: \"{}\"", etag(file))], data)
        }
        None => ("404 Not Found", vec![], b"not found".to_vec()),
    }
}

fn respond(mut stream: TcpStream) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request = String::new();
    if reader.read_line(&mut request).is_err() {
        return;
    }
    let mut range = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some(r) = line.to_ascii_lowercase().strip_prefix("range: bytes=") {
            let (a, b) = r.trim().split_once('-').unwrap_or(("0", ""));
            range = Some((a.parse::<usize>().unwrap_or(0), b.parse::<usize>().ok()));
        }
    }
    let mut words = request.split_whitespace();
    let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let (mut status, mut headers, mut body) = route(path);
    if let (Some((a, b)), "200 OK") = (range, status) {
        let end = b.unwrap_or(usize::MAX).min(body.len() - 1);
        headers.push(format!("Content-Range: bytes {a}-{end}/{}", body.len()));
        body = body[a..=end].to_vec();
        status = "206 Partial Content";
    }
    let mut head = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n", body.len());
    for h in headers {
        head.push_str(&h);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    let _ = stream.write_all(head.as_bytes());
    if method != "HEAD" {
        let _ = stream.write_all(&body);
    }
}

/// Start the stand-in; returns its endpoint URL.
fn serve() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || respond(stream));
        }
    });
    format!("http://{addr}")
}

#[test]
fn downloads_into_the_cache_layout_and_loads() {
    let endpoint = serve();
    let tmp = std::env::temp_dir().join(format!("t0-hub-download-{}", std::process::id()));
    let cache = HubCache::new(&tmp);
    let snap = download_from(&cache, Some(&endpoint), "acme/t0-tiny", "main").unwrap();
    assert_eq!(snap, tmp.join("models--acme--t0-tiny/snapshots").join(COMMIT));
    assert_eq!(std::fs::read_to_string(tmp.join("models--acme--t0-tiny/refs/main")).unwrap().trim(), COMMIT);
    for f in FILES {
        let link = std::fs::read_link(snap.join(f)).unwrap();
        assert!(link.starts_with("../../blobs"), "{f} -> {}", link.display());
    }
    // The cache lookup finds what was downloaded, and the model runs from it as from the fixture.
    assert_eq!(cache.snapshot("acme/t0-tiny", "main").unwrap(), snap);
    let cfg = GenerationConfig::greedy(8);
    let got = T5Model::from_dir(&snap).unwrap().generate(&[vec![2163, 1]], &cfg).unwrap();
    let want = T5Model::from_dir(&fixture()).unwrap().generate(&[vec![2163, 1]], &cfg).unwrap();
    assert_eq!(got, want);

    let err = download_from(&cache, Some(&endpoint), "acme/absent", "main").unwrap_err().to_string();
    assert!(err.contains("acme/absent") && err.contains("404"), "{err}");
    std::fs::remove_dir_all(&tmp).unwrap();
}
