//! [`ApiError`]: an HTTP status with a JSON body `{"error": "..."}`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// An error answered to the client: the status and a one-line message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{status}: {message}")]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// What went wrong, for the client.
    pub message: String,
    /// Seconds to wait before retrying (sent as `Retry-After`, with 429).
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// A 400: the request is malformed or an option is invalid.
    pub fn bad_request(message: String) -> Self {
        Self { status: StatusCode::BAD_REQUEST, message, retry_after: None }
    }

    /// A 429: the queue is full; retry after `secs` seconds.
    pub fn busy(queue: usize, secs: u64) -> Self {
        Self {
            status: StatusCode::TOO_MANY_REQUESTS,
            message: format!("the server is busy: {queue} requests are already waiting; retry later"),
            retry_after: Some(secs),
        }
    }

    /// A 500: the model failed.
    pub fn internal(message: String) -> Self {
        Self { status: StatusCode::INTERNAL_SERVER_ERROR, message, retry_after: None }
    }

    /// A 503: the server is shutting down (or dropped the request after an internal error).
    pub fn unavailable() -> Self {
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: "the server could not finish the request: it is shutting down (or failed; see its log)".into(),
            retry_after: None,
        }
    }

    /// 400 for errors in what the client sent (bad ids, empty inputs), 500 for anything else.
    pub fn from_model(e: t0_model::ModelError) -> Self {
        match e {
            t0_model::ModelError::InvalidArgument(_) | t0_model::ModelError::TokenOutOfRange { .. } => {
                Self::bad_request(e.to_string())
            }
            other => Self::internal(other.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.message }).to_string();
        let mut r = (self.status, [(header::CONTENT_TYPE, "application/json")], body).into_response();
        if let Some(s) = self.retry_after {
            r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        r
    }
}
