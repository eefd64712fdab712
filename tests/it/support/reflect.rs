//! The fake upstream's hostile echo: `/v1/users/reflect?enc=E&ce=C&at=body|trailer` sends back the
//! credential it received (the `Authorization` value after the scheme) encoded as `E`, compressed
//! with `C` whatever the request's `Accept-Encoding` said, in the body or in an HTTP/2 trailer.

use std::io::Write as _;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, StreamBody, combinators::BoxBody};
use hyper::Response;
use hyper::body::Frame;

/// Every encoding the reflect endpoint knows.
pub const ENCODINGS: &[&str] = &["raw", "upper", "lower", "base64", "base64url", "hex", "HEX", "json", "percent"];

/// Every content coding the reflect endpoint can force (`compress` is one no proxy can read).
pub const CODINGS: &[&str] = &["identity", "gzip", "deflate", "br", "zstd"];

pub fn encode(enc: &str, value: &str) -> String {
    match enc {
        "upper" => value.to_ascii_uppercase(),
        "lower" => value.to_ascii_lowercase(),
        "base64" => base64::engine::general_purpose::STANDARD.encode(value),
        "base64url" => base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value),
        "hex" => value.bytes().map(|b| format!("{b:02x}")).collect(),
        "HEX" => value.bytes().map(|b| format!("{b:02X}")).collect(),
        "json" => {
            let j = serde_json::to_string(value).unwrap_or_default();
            j[1..j.len() - 1].replace('/', "\\/")
        }
        "percent" => value.bytes().map(|b| format!("%{b:02X}")).collect(),
        _ => value.to_owned(),
    }
}

fn compress(coding: &str, data: &[u8]) -> Vec<u8> {
    match coding {
        "gzip" => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            let _ = e.write_all(data);
            e.finish().unwrap_or_default()
        }
        "deflate" => {
            let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
            let _ = e.write_all(data);
            e.finish().unwrap_or_default()
        }
        "br" => {
            let mut out = Vec::new();
            let _ = brotli::BrotliCompress(&mut &data[..], &mut out, &Default::default());
            out
        }
        "zstd" => zstd::stream::encode_all(data, 3).unwrap_or_default(),
        _ => data.to_vec(),
    }
}

pub fn respond(query: &str, authorization: &str) -> Response<BoxBody<Bytes, std::convert::Infallible>> {
    let q: std::collections::HashMap<&str, &str> = query.split('&').filter_map(|p| p.split_once('=')).collect();
    let secret = authorization.split_once(' ').map_or(authorization, |(_, c)| c);
    let echoed = encode(q.get("enc").copied().unwrap_or("raw"), secret);
    let coding = q.get("ce").copied().unwrap_or("identity");
    let in_trailer = q.get("at") == Some(&"trailer");
    let text = if in_trailer { "the echo is in the trailer\n".to_owned() } else { format!("you sent: <{echoed}>\n") };
    let mut frames = vec![Ok(Frame::data(Bytes::from(compress(coding, text.as_bytes()))))];
    if in_trailer {
        let mut trailers = http::HeaderMap::new();
        if let Ok(v) = echoed.parse() {
            trailers.insert("x-echo", v);
        }
        frames.push(Ok(Frame::trailers(trailers)));
    }
    let body = StreamBody::new(Iter(frames.into_iter())).boxed();
    let mut resp = Response::new(body);
    if coding != "identity" {
        resp.headers_mut().insert("content-encoding", coding.parse().expect("coding"));
    }
    if let Ok(v) = echoed.parse() {
        resp.headers_mut().insert("x-echo", v);
    }
    resp
}

type FrameResult = Result<Frame<Bytes>, std::convert::Infallible>;

struct Iter(std::vec::IntoIter<FrameResult>);

impl futures_core::Stream for Iter {
    type Item = FrameResult;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<FrameResult>> {
        std::task::Poll::Ready(self.0.next())
    }
}
