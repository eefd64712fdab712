//! Synthetic responses: refusals rendered once, as JSON with `x-aivault-error`.
//!
//! Architecture invariant: messages here are built from codes, ids and host names only; no
//! secret value reaches a response the proxy writes itself.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use http_body_util::{BodyExt as _, Full};

use super::upstream::Body;
use crate::refusal::{ErrorCode, Refusal};

/// The one place `x-aivault-error` is written.
const ERROR_HEADER: &str = "x-aivault-error";

/// Renders a refusal: JSON `{"error", "message", "hint", ...}` and `x-aivault-error: CODE`.
pub fn refusal(r: &Refusal) -> Response<Body> {
    let mut body = serde_json::json!({ "error": r.code.as_str(), "message": r.message, "hint": r.code.hint() });
    if let Some((k, v)) = &r.extra {
        body[*k] = serde_json::Value::String(v.clone());
    }
    let mut resp = Response::new(full(body.to_string()));
    *resp.status_mut() = StatusCode::from_u16(r.status()).unwrap_or(StatusCode::BAD_GATEWAY);
    let headers = resp.headers_mut();
    headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(ERROR_HEADER, HeaderValue::from_static(r.code.as_str()));
    if r.code == ErrorCode::ProxyAuthRequired {
        headers.insert(http::header::PROXY_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"aivault\""));
    }
    match r.retry_after {
        Some(secs) => {
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                headers.insert(http::header::RETRY_AFTER, v);
            }
        }
        None if r.code == ErrorCode::TooManyConnections => {
            headers.insert(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        None => {}
    }
    resp
}

/// Shorthand for `refusal(&Refusal::new(code, message))`.
pub fn error(code: ErrorCode, message: &str) -> Response<Body> {
    refusal(&Refusal::new(code, message))
}

/// A JSON answer the proxy gives itself (`aivault.internal`, `aivault.local`), never cached.
pub fn json(status: StatusCode, body: &serde_json::Value) -> Response<Body> {
    let mut r = Response::new(full(body.to_string()));
    *r.status_mut() = status;
    r.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r.headers_mut().insert(http::header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

pub fn full(text: impl Into<Bytes>) -> Body {
    Full::new(text.into()).map_err(|never| match never {}).boxed()
}

pub fn empty() -> Body {
    full(Bytes::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_shape() {
        let r = error(ErrorCode::ProxyAuthRequired, "missing token");
        assert_eq!(r.status(), 407);
        assert_eq!(r.headers()[ERROR_HEADER], "proxy_auth_required");
        assert!(r.headers().contains_key("proxy-authenticate"));
    }
}
