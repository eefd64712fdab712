//! The hudsucker peer: the published hudsucker crate with a P-256 CA and a handler that injects
//! one header, so it does the same job as aivault on the same stack minus policy and vault.
//! Usage: hudsucker-peer <listen addr> <origin CA pem>   (prints "ready")

use std::net::SocketAddr;
use std::sync::Arc;

use hudsucker::certificate_authority::RcgenAuthority;
use hudsucker::hyper::{Request, header::HeaderValue};
use hudsucker::rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, PKCS_ECDSA_P256_SHA256};
use hudsucker::{Body, HttpContext, HttpHandler, Proxy, RequestOrResponse};
use rustls::pki_types::{CertificateDer, pem::PemObject as _};

#[derive(Clone)]
struct Inject;

impl HttpHandler for Inject {
    async fn handle_request(&mut self, _ctx: &HttpContext, mut req: Request<Body>) -> RequestOrResponse {
        req.headers_mut().insert("authorization", HeaderValue::from_static("Bearer bench-secret"));
        req.into()
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let listen: SocketAddr = args.get(1).map(String::as_str).unwrap_or("127.0.0.1:18082").parse()?;
    let origin_ca = args.get(2).cloned().unwrap_or_else(|| "origin-ca.pem".into());
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, "hudsucker bench CA");
    // Its CA beside the origin's, for clients that verify (the latency probe).
    let cert = params.self_signed(&key)?;
    std::fs::write(std::path::Path::new(&origin_ca).with_file_name("hudsucker-ca.pem"), cert.pem())?;
    let issuer = Issuer::new(params, key);
    let provider = rustls::crypto::ring::default_provider();
    let ca = RcgenAuthority::new(issuer, 10_000, provider.clone());
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(&origin_ca)? {
        roots.add(cert?)?;
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let https = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls).https_or_http().enable_http1().build();
    let proxy = Proxy::builder()
        .with_addr(listen)
        .with_ca(ca)
        .with_http_connector(https)
        .with_http_handler(Inject)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .build()?;
    println!("ready");
    proxy.start().await?;
    Ok(())
}
