//! A stand-in API for trying aivault with no account anywhere: an HTTPS server on loopback that
//! prints each request it receives (method, path, headers) and answers with the same as JSON.
//!
//!     cargo run --release --example echo_upstream -- --listen 127.0.0.1:8443 --cert-out echo-ca.pem
//!
//! It mints its own CA for `api.example.com`, `api.openai.com`, `localhost` and any `--name` given,
//! and writes the CA certificate to `--cert-out` once it accepts connections; point aivault at it
//! with `--resolve api.example.com:443:127.0.0.1:8443 --upstream-ca echo-ca.pem`. What it prints is
//! what an upstream really receives: the injected key, never the agent's placeholder.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

struct Args {
    listen: SocketAddr,
    cert_out: std::path::PathBuf,
    names: Vec<String>,
}

fn args() -> Result<Args, String> {
    let usage = "usage: echo_upstream [--listen ADDR:PORT] --cert-out FILE [--name HOST]...";
    let mut listen: SocketAddr = ([127, 0, 0, 1], 8443).into();
    let mut cert_out = None;
    let mut names = vec!["api.example.com".to_owned(), "api.openai.com".to_owned(), "localhost".to_owned()];
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value; {usage}"));
        match flag.as_str() {
            "--listen" => listen = value()?.parse().map_err(|e| format!("--listen: {e}"))?,
            "--cert-out" => cert_out = Some(value()?.into()),
            "--name" => names.push(value()?),
            "-h" | "--help" => return Err(usage.to_owned()),
            other => return Err(format!("unknown argument {other}; {usage}")),
        }
    }
    Ok(Args { listen, cert_out: cert_out.ok_or(usage)?, names })
}

/// A CA and one leaf for `names`: (CA PEM, leaf DER, leaf key DER).
fn mint(names: Vec<String>) -> Result<(String, Vec<u8>, Vec<u8>), rcgen::Error> {
    let ca_key = rcgen::KeyPair::generate()?;
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, "aivault echo_upstream CA");
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let leaf_key = rcgen::KeyPair::generate()?;
    let leaf = rcgen::CertificateParams::new(names)?.signed_by(&leaf_key, &issuer)?;
    Ok((ca_cert.pem(), leaf.der().to_vec(), leaf_key.serialize_der()))
}

async fn echo(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let target = req.uri().path_and_query().map_or("/", |p| p.as_str()).to_owned();
    let mut headers = serde_json::Map::new();
    println!("echo_upstream received {} {target}", req.method());
    for (name, value) in req.headers() {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        println!("  {name}: {value}");
        headers.insert(name.as_str().to_owned(), value.into());
    }
    let doc = serde_json::json!({ "method": req.method().as_str(), "path": target, "headers": headers });
    let mut body = doc.to_string();
    body.push('\n');
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    resp.headers_mut().insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("application/json"));
    Ok(resp)
}

#[tokio::main]
async fn main() {
    if let Err(e) = serve().await {
        eprintln!("echo_upstream: {e}");
        std::process::exit(2);
    }
}

async fn serve() -> Result<(), String> {
    let args = args()?;
    let (ca_pem, leaf, key) = mint(args.names).map_err(|e| format!("cannot mint a certificate: {e}"))?;
    let mut tls = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .and_then(|b| {
            b.with_no_client_auth()
                .with_single_cert(vec![CertificateDer::from(leaf)], PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key)))
        })
        .map_err(|e| format!("TLS configuration: {e}"))?;
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    // Written only once connections are accepted, so a script can wait for the file.
    std::fs::write(&args.cert_out, ca_pem).map_err(|e| format!("cannot write {}: {e}", args.cert_out.display()))?;
    println!("echo_upstream listening on https://{} (CA in {})", args.listen, args.cert_out.display());
    loop {
        let Ok((tcp, _)) = listener.accept().await else { continue };
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else { return };
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tls), hyper::service::service_fn(echo))
                .await;
        });
    }
}
