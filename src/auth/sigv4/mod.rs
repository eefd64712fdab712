//! AWS Signature Version 4, from the specification, with ring's HMAC-SHA256. Pure: the caller
//! supplies the time, the request parts and the payload hash.
//!
//! Canonicalisation choices are explicit settings because AWS applies two regimes: every service
//! but S3 normalises the path and percent-encodes it again (a `%` becomes `%25`); S3 does neither.

#[cfg(test)]
mod tests;

use ring::hmac;

use crate::crypto::hex;
use crate::percent;

/// The payload hash of an empty body.
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// How the canonical path is formed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Remove `.`/`..` and empty segments (not for S3).
    pub normalize_path: bool,
    /// Percent-encode the already-encoded path again (not for S3).
    pub double_encode: bool,
}

impl Settings {
    /// The regime AWS applies for `service` (signing name).
    pub fn for_service(service: &str) -> Settings {
        let s3 = service == "s3" || service == "s3-outposts" || service == "s3express";
        Settings { normalize_path: !s3, double_encode: !s3 }
    }
}

/// Credentials in memory only for the signing call.
pub struct Credentials<'a> {
    pub access_key_id: &'a str,
    pub secret_access_key: &'a str,
    pub session_token: Option<&'a str>,
}

impl std::fmt::Debug for Credentials<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials").field("access_key_id", &self.access_key_id).finish_non_exhaustive()
    }
}

/// A request to sign. Header names are lowercase; values as they will be sent.
pub struct Request<'a> {
    pub method: &'a str,
    /// The path as sent on the wire (percent-encoded once by the client).
    pub path: &'a str,
    /// The query as sent, without `?`.
    pub query: Option<&'a str>,
    /// Exactly the headers to sign (the caller chooses), including `host` and `x-amz-date`.
    pub headers: &'a [(String, String)],
}

/// What a signature is computed over.
pub struct Signed {
    pub canonical_request: String,
    pub string_to_sign: String,
    pub signed_headers: String,
    pub signature: String,
    /// The full `Authorization` header value.
    pub authorization: String,
}

/// Signs `req` at `date_time` (`YYYYMMDDTHHMMSSZ`) for `region`/`service`.
pub fn sign(
    req: &Request<'_>,
    settings: Settings,
    payload_hash: &str,
    date_time: &str,
    region: &str,
    service: &str,
    creds: &Credentials<'_>,
) -> Signed {
    let (canonical_request, signed_headers) = canonical_request(req, settings, payload_hash);
    let date = &date_time[..date_time.len().min(8)];
    let scope = format!("{date}/{region}/{service}/aws4_request");
    let string_to_sign =
        format!("AWS4-HMAC-SHA256\n{date_time}\n{scope}\n{}", sha256_hex(canonical_request.as_bytes()));
    let key = signing_key(creds.secret_access_key, date, region, service);
    let signature = hex(hmac::sign(&key, string_to_sign.as_bytes()).as_ref());
    let authorization = format!(
        "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
        creds.access_key_id
    );
    Signed { canonical_request, string_to_sign, signed_headers, signature, authorization }
}

fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> hmac::Key {
    let k_secret = zeroize::Zeroizing::new(format!("AWS4{secret}"));
    let k_date = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, k_secret.as_bytes()), date.as_bytes());
    let k_region = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, k_date.as_ref()), region.as_bytes());
    let k_service = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, k_region.as_ref()), service.as_bytes());
    let k_signing = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, k_service.as_ref()), b"aws4_request");
    hmac::Key::new(hmac::HMAC_SHA256, k_signing.as_ref())
}

/// The canonical request and the `SignedHeaders` list.
pub fn canonical_request(req: &Request<'_>, settings: Settings, payload_hash: &str) -> (String, String) {
    let (headers, signed) = canonical_headers(req.headers);
    let creq = format!(
        "{}\n{}\n{}\n{headers}\n{signed}\n{payload_hash}",
        req.method,
        canonical_uri(req.path, settings),
        canonical_query(req.query)
    );
    (creq, signed)
}

/// The canonical URI for a wire path.
pub fn canonical_uri(path: &str, settings: Settings) -> String {
    let path = if path.is_empty() { "/" } else { path };
    let normalized = if settings.normalize_path { normalize(path) } else { path.to_owned() };
    let mut out = String::with_capacity(normalized.len() + 8);
    for b in normalized.bytes() {
        if percent::is_unreserved(b) || b == b'/' || (b == b'%' && !settings.double_encode) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// RFC 3986 §5.2.4 dot-segment removal, dropping empty segments, keeping a trailing slash.
fn normalize(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut out = format!("/{}", segments.join("/"));
    let trailing = ["/", "/.", "/..", "/./", "/../"].iter().any(|t| path.ends_with(t));
    if trailing && !out.ends_with('/') {
        out.push('/');
    }
    out
}

/// The canonical query: each name and value decoded and re-encoded, sorted by name then value.
pub fn canonical_query(query: Option<&str>) -> String {
    let Some(q) = query else { return String::new() };
    let mut pairs: Vec<(String, String)> = q
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent::encode(percent::decode(k)), percent::encode(percent::decode(v)))
        })
        .collect();
    pairs.sort();
    pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&")
}

/// Canonical headers (sorted, lowercase, values trimmed with inner whitespace runs collapsed,
/// repeated headers joined with `,`) and the `SignedHeaders` list.
pub fn canonical_headers(headers: &[(String, String)]) -> (String, String) {
    let mut merged: Vec<(String, Vec<String>)> = Vec::new();
    for (name, value) in headers {
        let name = name.to_ascii_lowercase();
        let value = value.split_whitespace().collect::<Vec<_>>().join(" ");
        match merged.iter_mut().find(|(n, _)| *n == name) {
            Some((_, values)) => values.push(value),
            None => merged.push((name, vec![value])),
        }
    }
    merged.sort_by(|a, b| a.0.cmp(&b.0));
    let canonical = merged.iter().map(|(n, v)| format!("{n}:{}\n", v.join(","))).collect::<String>();
    let signed = merged.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(";");
    (canonical, signed)
}

/// Lowercase hex SHA-256.
pub fn sha256_hex(data: &[u8]) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, data).as_ref())
}

/// Query parameters of a presigned URL; the proxy removes the agent's before re-signing.
pub const PRESIGN_PARAMS: &[&str] = &[
    "x-amz-algorithm",
    "x-amz-credential",
    "x-amz-date",
    "x-amz-expires",
    "x-amz-signedheaders",
    "x-amz-signature",
    "x-amz-security-token",
];

/// The query without presigning parameters (names compared case-insensitively).
pub fn strip_presign(query: Option<&str>) -> Option<String> {
    let q = query?;
    let kept: Vec<&str> = q
        .split('&')
        .filter(|p| {
            let name = p.split('=').next().unwrap_or_default().to_ascii_lowercase();
            !p.is_empty() && !PRESIGN_PARAMS.contains(&name.as_str())
        })
        .collect();
    if kept.is_empty() { None } else { Some(kept.join("&")) }
}

/// The region in an AWS host name (`bedrock-runtime.us-west-2.amazonaws.com` → `us-west-2`).
pub fn region_from_host(host: &str) -> Option<&str> {
    let labels: Vec<&str> = host.split('.').collect();
    let at = labels.iter().position(|l| *l == "amazonaws")?;
    let candidate = *labels.get(at.checked_sub(1)?)?;
    let parts: Vec<&str> = candidate.split('-').collect();
    let looks_like_region = parts.len() >= 3
        && parts[0].len() == 2
        && parts[0].bytes().all(|b| b.is_ascii_lowercase())
        && parts.last().is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()));
    looks_like_region.then_some(candidate)
}

/// `YYYYMMDDTHHMMSSZ` for a Unix time in seconds.
pub fn amz_date(unix_secs: u64) -> String {
    let iso = crate::time::rfc3339(unix_secs * 1000);
    // 2026-11-23T18:11:43.000Z → 20261123T181143Z
    format!("{}{}{}T{}{}{}Z", &iso[0..4], &iso[5..7], &iso[8..10], &iso[11..13], &iso[14..16], &iso[17..19])
}
