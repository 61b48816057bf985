//! The HTTP layer: routes, handlers, body limits, and starting / stopping a server.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::stream::{self, Stream};
use serde_json::json;
use t0_model::T0;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::api::{self, GenerateRequest, ScoreRequest};
use crate::error::ApiError;
use crate::metrics::{Metrics, Outcome};
use crate::scheduler::{GenEvent, Scheduler};

/// Limits and sizes of a server (the `t0 serve` flags).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServeOptions {
    /// Most sequences decoded together in one step.
    pub max_batch: usize,
    /// Most requests waiting for a place; more are answered 429.
    pub max_queue: usize,
    /// Largest request body in bytes; larger ones are answered 413.
    pub max_body_bytes: usize,
    /// Largest `max_new_tokens` a request may ask for.
    pub max_new_tokens: usize,
    /// Longest prompt in tokens; for scoring, also the most choice tokens (number of choices ×
    /// longest choice, the rows of its teacher-forced pass).
    pub max_input_tokens: usize,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self { max_batch: 32, max_queue: 256, max_body_bytes: 1 << 20, max_new_tokens: 1024, max_input_tokens: 2048 }
    }
}

/// What the handlers share.
#[derive(Clone, Debug)]
struct App {
    t0: Arc<T0>,
    scheduler: Arc<Scheduler>,
    metrics: Arc<Metrics>,
    options: ServeOptions,
}

/// The router of a server for `t0`, with the scheduler it feeds (its threads stop when the
/// router and every clone of it are dropped).
pub fn router(t0: Arc<T0>, options: ServeOptions, metrics: Arc<Metrics>) -> std::io::Result<Router> {
    let scheduler = Arc::new(Scheduler::start(t0.clone(), options.max_batch, options.max_queue, metrics.clone())?);
    let app = App { t0, scheduler, metrics, options };
    Ok(Router::new()
        .route("/generate", post(generate))
        .route("/score", post(score))
        .route("/health", get(health))
        .route("/metrics", get(metrics_text))
        .layer(DefaultBodyLimit::max(options.max_body_bytes))
        .with_state(app))
}

/// Serve `t0` on `listener` until `shutdown` completes (then finish the requests in flight).
pub async fn serve(
    listener: TcpListener,
    t0: Arc<T0>,
    options: ServeOptions,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(t0, options, metrics)?;
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await
}

/// A server running on its own thread (and tokio runtime); stopped when dropped.
#[derive(Debug)]
pub struct RunningServer {
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<std::io::Result<()>>>,
}

impl RunningServer {
    /// Bind `addr` (port 0: any free port) and serve `t0` there on a new thread.
    pub fn start(t0: Arc<T0>, options: ServeOptions, addr: SocketAddr) -> std::io::Result<Self> {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
        let listener = rt.block_on(TcpListener::bind(addr))?;
        let addr = listener.local_addr()?;
        let metrics = Arc::new(Metrics::new(options.max_queue, options.max_batch));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let m = metrics.clone();
        let thread = std::thread::Builder::new().name("t0-serve".into()).spawn(move || {
            rt.block_on(serve(listener, t0, options, m, async move {
                let _ = stopped.await;
            }))
        })?;
        Ok(Self { addr, metrics, stop: Some(stop), thread: Some(thread) })
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The server's metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl App {
    /// Count a refused request and pass its error on.
    fn refused(&self, endpoint: &'static str, e: ApiError) -> Response {
        let outcome = match e.status {
            StatusCode::TOO_MANY_REQUESTS => Outcome::Rejected,
            s if s.is_client_error() => Outcome::Invalid,
            _ => Outcome::Error,
        };
        self.metrics.request_done(endpoint, outcome, None);
        e.into_response()
    }
}

/// The body, or a 413 (too large) / 400 (unreadable) error.
fn body_bytes(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|r| {
        let status = r.status();
        let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "the request body is too large (see --max-body-bytes)".to_string()
        } else {
            format!("could not read the request body: {}", r.body_text())
        };
        ApiError { status, message, retry_after: None }
    })
}

async fn generate(State(app): State<App>, body: Result<Bytes, BytesRejection>) -> Response {
    let arrived = Instant::now();
    let prepared = body_bytes(body).and_then(|b| {
        let req: GenerateRequest = api::parse_body(&b)?;
        let cfg = req.config(app.t0.model().generation_config(), app.options.max_new_tokens, app.options.max_batch)?;
        let tok = app.t0.tokenizer().ok();
        let input = api::prompt_ids(req.prompt.as_deref(), req.input_ids.as_deref(), req.no_eos, tok)?;
        api::check_len("the prompt", input.len(), app.options.max_input_tokens)?;
        app.t0.model().check_ids(&input).map_err(ApiError::from_model)?;
        let rx = app.scheduler.submit_generate(input, cfg, arrived)?;
        Ok((req.stream, rx))
    });
    let (stream, mut rx) = match prepared {
        Ok(x) => x,
        Err(e) => return app.refused("generate", e),
    };
    if stream {
        return Sse::new(event_stream(app.t0.clone(), rx)).keep_alive(KeepAlive::default()).into_response();
    }
    loop {
        match rx.recv().await {
            Some(GenEvent::Token { .. }) => {}
            Some(GenEvent::Done(seqs)) => {
                return Json(api::generate_json(&seqs, app.t0.tokenizer().ok())).into_response()
            }
            Some(GenEvent::Failed(e)) => return e.into_response(),
            None => return ApiError::unavailable().into_response(),
        }
    }
}

/// Server-sent events for a streaming request: `token` events, then `done` (or `error`).
fn event_stream(
    t0: Arc<T0>,
    rx: mpsc::UnboundedReceiver<GenEvent>,
) -> impl Stream<Item = Result<Event, Infallible>> + Send {
    struct S {
        t0: Arc<T0>,
        rx: mpsc::UnboundedReceiver<GenEvent>,
        ids: Vec<u32>,
        shown: usize,
        over: bool,
    }
    let init = S { t0, rx, ids: Vec::new(), shown: 0, over: false };
    stream::unfold(init, |mut s| async move {
        if s.over {
            return None;
        }
        let tok = s.t0.tokenizer().ok();
        let event = match s.rx.recv().await {
            Some(GenEvent::Token { id, logprob }) => {
                // The new text, as `t0 generate` prints it: once it is whole UTF-8.
                s.ids.push(id);
                let mut v = json!({ "index": s.ids.len() - 1, "token_id": id, "token_logprob": logprob });
                if let Some(tk) = tok {
                    let text = tk.decode(&s.ids, true);
                    let delta = if text.len() > s.shown && text.is_char_boundary(s.shown) {
                        let d = text[s.shown..].to_string();
                        s.shown = text.len();
                        d
                    } else {
                        String::new()
                    };
                    v["text"] = delta.into();
                }
                Event::default().event("token").data(v.to_string())
            }
            Some(GenEvent::Done(seqs)) => {
                s.over = true;
                Event::default().event("done").data(api::generate_json(&seqs, tok).to_string())
            }
            Some(GenEvent::Failed(e)) => {
                s.over = true;
                Event::default().event("error").data(json!({ "error": e.message }).to_string())
            }
            None => {
                s.over = true;
                Event::default().event("error").data(json!({ "error": ApiError::unavailable().message }).to_string())
            }
        };
        Some((Ok(event), s))
    })
}

async fn score(State(app): State<App>, body: Result<Bytes, BytesRejection>) -> Response {
    let arrived = Instant::now();
    let prepared = body_bytes(body).and_then(|b| {
        let req: ScoreRequest = api::parse_body(&b)?;
        let tok = app.t0.tokenizer().ok();
        let prompt = api::prompt_ids(req.prompt.as_deref(), req.input_ids.as_deref(), req.no_eos, tok)?;
        let choices = api::choice_ids(&req, tok)?;
        let limit = app.options.max_input_tokens;
        api::check_len("the prompt", prompt.len(), limit)?;
        let longest = choices.iter().map(Vec::len).max().unwrap_or(0);
        api::check_len("the answer choices (count × longest)", choices.len() * longest, limit)?;
        let model = app.t0.model();
        model.check_ids(&prompt).map_err(ApiError::from_model)?;
        for c in &choices {
            model.check_ids(c).map_err(ApiError::from_model)?;
        }
        let rx = app.scheduler.submit_score(prompt, choices, req.length_normalize, arrived)?;
        Ok((req.length_normalize, rx))
    });
    let (norm, rx) = match prepared {
        Ok(x) => x,
        Err(e) => return app.refused("score", e),
    };
    match rx.await {
        Ok(Ok(r)) => Json(api::score_json(&r, norm)).into_response(),
        Ok(Err(e)) => e.into_response(),
        Err(_) => ApiError::unavailable().into_response(),
    }
}

async fn health(State(app): State<App>) -> Response {
    Json(json!({
        "status": "ok",
        "model": app.t0.model().dir().display().to_string(),
        "queue_depth": app.metrics.queue_depth(),
        "batch_size": app.metrics.batch_size(),
    }))
    .into_response()
}

async fn metrics_text(State(app): State<App>) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], app.metrics.render()).into_response()
}
