//! The benchmark origin: HTTPS (HTTP/1.1) on loopback that answers 401 unless the injected
//! credential arrived, so a proxy that skips injection cannot win.
//! Usage: bench-origin <listen addr> <out dir>   (writes origin-ca.pem, prints "ready")

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::Frame;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

const SECRET: &str = "bench-secret";
type Body = BoxBody<Bytes, Infallible>;

fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).boxed()
}

fn authorized(req: &Request<hyper::body::Incoming>) -> bool {
    let header = req.headers().get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("");
    header == format!("Bearer {SECRET}")
        || header.starts_with("AWS4-HMAC-SHA256 Credential=AKIDBENCH/")
        || req.uri().query().is_some_and(|q| q.split('&').any(|p| p == format!("key={SECRET}")))
}

fn stream(chunks: usize, chunk: Bytes, gap: Duration) -> Body {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(8);
    tokio::spawn(async move {
        for _ in 0..chunks {
            if tx.send(Ok(Frame::data(chunk.clone()))).await.is_err() {
                return;
            }
            if !gap.is_zero() {
                tokio::time::sleep(gap).await;
            }
        }
    });
    StreamBody::new(Rx(rx)).boxed()
}

struct Rx(tokio::sync::mpsc::Receiver<Result<Frame<Bytes>, Infallible>>);

impl futures_core::Stream for Rx {
    type Item = Result<Frame<Bytes>, Infallible>;
    fn poll_next(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}

async fn handle(req: Request<hyper::body::Incoming>) -> Result<Response<Body>, Infallible> {
    if !authorized(&req) {
        let mut r = Response::new(full("missing credential\n"));
        *r.status_mut() = StatusCode::UNAUTHORIZED;
        return Ok(r);
    }
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    if let Some(n) = path.strip_prefix("/bytes/") {
        let total: usize = n.parse().unwrap_or(0);
        let chunk = 64 * 1024;
        let mut r = Response::new(stream(total / chunk, Bytes::from(vec![b'x'; chunk]), Duration::ZERO));
        r.headers_mut().insert("content-length", (total / chunk * chunk).into());
        return Ok(r);
    }
    if path == "/upload" {
        let mut body = req.into_body();
        let mut n = 0usize;
        while let Some(Ok(frame)) = body.frame().await {
            if let Some(d) = frame.data_ref() {
                n += d.len();
            }
        }
        return Ok(Response::new(full(format!("{n}\n"))));
    }
    if path == "/sse" {
        let events = query.split('&').find_map(|p| p.strip_prefix("n=")).and_then(|v| v.parse().ok()).unwrap_or(10);
        let gap = query.split('&').find_map(|p| p.strip_prefix("gap_ms=")).and_then(|v| v.parse().ok()).unwrap_or(10);
        let mut r = Response::new(stream(events, Bytes::from_static(b"data: tick\n\n"), Duration::from_millis(gap)));
        r.headers_mut().insert("content-type", "text/event-stream".parse().unwrap_or_else(|_| unreachable!()));
        return Ok(r);
    }
    if path == "/echo" {
        // Quotes the credential it received, as a debug endpoint would: the proxy must mask it.
        let auth = req.headers().get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        return Ok(Response::new(full(format!("you sent: {auth}\n"))));
    }
    Ok(Response::new(full("hello world")))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (listen, out) = (args.get(1).cloned().unwrap_or("127.0.0.1:443".into()), args.get(2).cloned().unwrap_or(".".into()));
    let ca_key = rcgen::KeyPair::generate()?;
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, "bench origin CA");
    let ca = ca_params.self_signed(&ca_key)?;
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate()?;
    let leaf = rcgen::CertificateParams::new(vec!["*.bench.test".to_owned(), "bench.test".to_owned()])?.signed_by(&key, &issuer)?;
    std::fs::write(format!("{out}/origin-ca.pem"), ca.pem())?;
    let mut tls = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(vec![CertificateDer::from(leaf.der().to_vec())], PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())))?;
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    println!("ready");
    loop {
        let (tcp, _) = listener.accept().await?;
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else { return };
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), hyper::service::service_fn(handle))
                .await;
        });
    }
}
