//! The SigV4 stage of the pipeline: re-sign the request exactly as it leaves the proxy.
//!
//! The body is buffered and hashed only when the signature must cover it; S3 requests that
//! declare `UNSIGNED-PAYLOAD`, `STREAMING-UNSIGNED-PAYLOAD-TRAILER` or a hex hash stream through
//! untouched. Signed-chunk uploads are refused with a clear error: their chunk signatures chain
//! to the agent's (placeholder) signature and would all need re-signing.

use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use http_body_util::BodyExt as _;

use super::pipeline::Destination;
use super::respond;
use super::upstream::Body;
use crate::auth::inject::Target;
use crate::auth::sigv4::{self, Credentials, Settings};
use crate::refusal::{ErrorCode, Refusal};
use crate::secret::SecretString;

/// Everything needed to sign one request; the key material is zeroized on drop.
pub struct SigV4Job {
    pub access_key_id: SecretString,
    pub secret_access_key: SecretString,
    pub session_token: Option<SecretString>,
    pub region: String,
    pub service: String,
    /// The header names the agent's own signature covered (kept signed if still present).
    pub agent_signed: Vec<String>,
}

impl std::fmt::Debug for SigV4Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigV4Job").field("region", &self.region).field("service", &self.service).finish_non_exhaustive()
    }
}

/// `SignedHeaders=a;b;c` from an agent's `Authorization` header.
pub fn agent_signed_headers(headers: &http::HeaderMap) -> Vec<String> {
    headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split("SignedHeaders=").nth(1))
        .map(|rest| rest.split([',', ' ']).next().unwrap_or_default().split(';').map(str::to_ascii_lowercase).collect())
        .unwrap_or_default()
}

/// Never signed: hop-by-hop, proxy and client-bookkeeping headers (botocore's exclusions).
const NEVER_SIGN: &[&str] = &[
    "authorization",
    "connection",
    "expect",
    "keep-alive",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "x-amzn-trace-id",
];

/// Signs `target` in place and returns the body to send (buffered when it had to be hashed).
pub async fn sign(
    job: SigV4Job,
    dest: &Destination,
    method: &http::Method,
    target: &mut Target,
    body: Body,
    max_body: usize,
) -> Result<Body, Refusal> {
    let declared = target.headers.get("x-amz-content-sha256").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let s3 = job.service.starts_with("s3");
    let (payload_hash, body) = match declared.as_deref() {
        Some(v) if v.starts_with("STREAMING-AWS4-") => {
            // Read (a bounded amount of) the upload first: some HTTP/2 clients discard a response
            // that arrives while the stream's body is still unread and gets reset.
            super::body::drain(body, 1024 * 1024).await;
            return Err(Refusal::new(
                ErrorCode::UnsupportedPayloadSigning,
                "signed-chunk uploads (STREAMING-AWS4-HMAC-SHA256-PAYLOAD) cannot be re-signed by the proxy; \
                 configure the client for unsigned payloads (boto3/botocore do this by default over HTTPS)",
            ));
        }
        Some(v @ ("UNSIGNED-PAYLOAD" | "STREAMING-UNSIGNED-PAYLOAD-TRAILER")) if s3 => (v.to_owned(), body),
        Some(v) if s3 && v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()) => (v.to_ascii_lowercase(), body),
        _ => {
            let bytes = collect_limited(body, max_body).await?;
            let hash = sigv4::sha256_hex(&bytes);
            if s3 {
                set(target, "x-amz-content-sha256", &hash);
            }
            (hash, respond::full(bytes))
        }
    };
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let date_time = sigv4::amz_date(now);
    set(target, "x-amz-date", &date_time);
    if let Some(token) = &job.session_token {
        set(target, "x-amz-security-token", token.expose());
    }
    let authority = if dest.port == if dest.https { 443 } else { 80 } {
        dest.host.clone()
    } else {
        format!("{}:{}", dest.host, dest.port)
    };
    let mut to_sign: Vec<(String, String)> = vec![("host".to_owned(), authority)];
    for (name, value) in &target.headers {
        let n = name.as_str();
        let wanted = n.starts_with("x-amz-")
            || matches!(n, "content-type" | "content-md5")
            || job.agent_signed.iter().any(|s| s == n);
        if wanted && !NEVER_SIGN.contains(&n) && n != "host" {
            if let Ok(v) = value.to_str() {
                to_sign.push((n.to_owned(), v.to_owned()));
            }
        }
    }
    let request = sigv4::Request {
        method: method.as_str(),
        path: &target.path,
        query: target.query.as_deref(),
        headers: &to_sign,
    };
    let creds = Credentials {
        access_key_id: job.access_key_id.expose(),
        secret_access_key: job.secret_access_key.expose(),
        session_token: job.session_token.as_ref().map(SecretString::expose),
    };
    let signed = sigv4::sign(
        &request,
        Settings::for_service(&job.service),
        &payload_hash,
        &date_time,
        &job.region,
        &job.service,
        &creds,
    );
    drop(job);
    let Ok(mut value) = HeaderValue::from_str(&signed.authorization) else {
        return Err(Refusal::new(ErrorCode::CredentialUnavailable, "the signature is not a valid header value"));
    };
    value.set_sensitive(true);
    target.headers.insert(http::header::AUTHORIZATION, value);
    Ok(body)
}

/// Reads the whole body, refusing more than `max` bytes with 413.
async fn collect_limited(mut body: Body, max: usize) -> Result<Bytes, Refusal> {
    let mut buf = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = match frame {
            Ok(f) => f,
            Err(e) => return Err(Refusal::new(ErrorCode::BadRequest, format!("reading the request body failed: {e}"))),
        };
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > max {
                return Err(Refusal::new(
                    ErrorCode::RequestTooLarge,
                    format!(
                        "the body must be hashed for SigV4 and is larger than {max} bytes (--sigv4-max-body-bytes)"
                    ),
                ));
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf.freeze())
}

fn set(target: &mut Target, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        target.headers.insert(HeaderName::from_static(name), v);
    }
}
