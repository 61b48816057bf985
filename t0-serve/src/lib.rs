#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
//! `t0 serve`: an HTTP inference server for T0 / T5 models with continuous batching.
//!
//! - [`api`]: the JSON request and answer shapes (those of `t0 generate --json` / `t0 score --json`);
//! - [`scheduler`]: the decode thread that runs every request in flight as one batch, admitting
//!   new ones between decode steps;
//! - [`server`]: the axum routes (`POST /generate`, `POST /score`, `GET /health`, `GET /metrics`);
//! - [`metrics`]: the Prometheus metrics;
//! - [`client`]: a minimal loopback HTTP client for tests and the load test.
//!
//! ```no_run
//! use std::sync::Arc;
//! use t0_serve::{RunningServer, ServeOptions};
//! let t0 = Arc::new(t0_model::T0::from_dir("tests/fixtures/models/t0-tiny".as_ref())?);
//! let server = RunningServer::start(t0, ServeOptions::default(), "127.0.0.1:0".parse()?)?;
//! let r = t0_serve::client::post_json(server.addr(), "/generate", &serde_json::json!({"prompt": "Hi"}))?;
//! println!("{}", r.text());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![warn(missing_docs)]

pub mod api;
pub mod client;
mod error;
pub mod metrics;
pub mod scheduler;
pub mod server;

pub use error::ApiError;
pub use metrics::Metrics;
pub use server::{router, serve, RunningServer, ServeOptions};
