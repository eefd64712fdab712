//! Synthetic responses: the proxy's own errors, as JSON with `x-aivault-error`.
//!
//! Architecture invariant: messages here are built from codes, ids and host names only; no
//! secret value reaches a response the proxy writes itself.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use http_body_util::{BodyExt as _, Full};

use super::upstream::Body;

pub const ERROR_HEADER: &str = "x-aivault-error";

/// A JSON error response.
pub fn error(status: u16, code: &str, message: &str) -> Response<Body> {
    let body = serde_json::json!({ "error": code, "message": message });
    let mut resp = Response::new(full(body.to_string()));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    let headers = resp.headers_mut();
    headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Ok(v) = HeaderValue::from_str(code) {
        headers.insert(ERROR_HEADER, v);
    }
    if status == 407 {
        headers.insert(http::header::PROXY_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"aivault\""));
    }
    resp
}

pub fn from_error(e: &crate::Error) -> Response<Body> {
    let (status, code) = e.proxy_status();
    error(status, code, &e.to_string())
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
        let r = error(407, "proxy_auth_required", "missing token");
        assert_eq!(r.status(), 407);
        assert_eq!(r.headers()[ERROR_HEADER], "proxy_auth_required");
        assert!(r.headers().contains_key("proxy-authenticate"));
    }
}
