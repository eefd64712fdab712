//! The agent's side of the proxy, for commands an agent runs itself (`aivault proposal create`
//! under `aivault run`): one HTTPS request through `HTTPS_PROXY` (CONNECT with the token in the
//! proxy URL), trusting the CA bundle `run` points `SSL_CERT_FILE` at.
//!
//! It uses only what the agent's environment holds; it never opens the vault.

use std::sync::Arc;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::error::{Error, Result};

/// Sends `method url` with `body` through the agent's proxy; returns status and body.
pub fn request(method: &str, url: &str, body: &[u8]) -> Result<(u16, Vec<u8>)> {
    let (proxy, bundle) = crate::config::agent_proxy_env();
    let proxy = proxy.ok_or_else(|| Error::invalid("HTTPS_PROXY is not set: run this under `aivault run -- ...`"))?;
    let bundle =
        bundle.ok_or_else(|| Error::invalid("SSL_CERT_FILE is not set: run this under `aivault run -- ...`"))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::io("cannot start the async runtime"))?;
    runtime.block_on(send(&proxy, &bundle, method, url, body))
}

async fn send(proxy: &str, bundle: &str, method: &str, url: &str, body: &[u8]) -> Result<(u16, Vec<u8>)> {
    let proxy_uri: http::Uri = proxy.parse().map_err(|_| Error::invalid("HTTPS_PROXY is not a URL"))?;
    let authority = proxy_uri.authority().ok_or_else(|| Error::invalid("HTTPS_PROXY has no host"))?;
    let (userinfo, hostport) = match authority.as_str().rsplit_once('@') {
        Some((u, h)) => (Some(u.to_owned()), h.to_owned()),
        None => (None, authority.as_str().to_owned()),
    };
    let target: http::Uri = url.parse().map_err(|_| Error::invalid(format!("bad URL {url}")))?;
    let host = target.host().ok_or_else(|| Error::invalid(format!("no host in {url}")))?.to_owned();
    let port = target.port_u16().unwrap_or(443);
    let mut tcp = tokio::net::TcpStream::connect(&hostport)
        .await
        .map_err(|e| Error::Network(format!("cannot reach the proxy at {hostport}: {e}")))?;
    let auth = userinfo
        .map(|u| {
            let decoded = String::from_utf8_lossy(&crate::percent::decode(&u)).into_owned();
            zeroize::Zeroizing::new(format!(
                "Proxy-Authorization: Basic {}\r\n",
                base64::engine::general_purpose::STANDARD.encode(decoded)
            ))
        })
        .unwrap_or_default();
    let head =
        zeroize::Zeroizing::new(format!("CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n{}\r\n", *auth));
    tcp.write_all(head.as_bytes()).await?;
    let mut reply = Vec::new();
    let mut byte = [0u8; 1];
    while !reply.ends_with(b"\r\n\r\n") && reply.len() < 16 * 1024 {
        if tcp.read(&mut byte).await? == 0 {
            break;
        }
        reply.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&reply);
    let status = text.split_whitespace().nth(1).and_then(|s| s.parse::<u16>().ok()).unwrap_or(0);
    if status != 200 {
        return Err(Error::Network(format!("the proxy refused the tunnel to {host}: HTTP {status}")));
    }
    let mut roots = rustls::RootCertStore::empty();
    for cert in
        CertificateDer::pem_file_iter(bundle).map_err(|e| Error::invalid(format!("cannot read {bundle}: {e}")))?
    {
        let cert = cert.map_err(|e| Error::invalid(format!("bad certificate in {bundle}: {e}")))?;
        let _ = roots.add(cert);
    }
    let cfg = rustls::ClientConfig::builder_with_provider(super::crypto_provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Internal(format!("no TLS protocol versions: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from(host.clone()).map_err(|_| Error::invalid(format!("bad host {host}")))?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(name, tcp)
        .await
        .map_err(|e| Error::Network(format!("TLS to {host} through the proxy failed: {e}")))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| Error::Network(format!("HTTP to {host} failed: {e}")))?;
    tokio::spawn(conn);
    let req = http::Request::builder()
        .method(method)
        .uri(target.path_and_query().map(|p| p.as_str()).unwrap_or("/"))
        .header(http::header::HOST, host.as_str())
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::copy_from_slice(body)))
        .map_err(|e| Error::invalid(e.to_string()))?;
    let resp = sender.send_request(req).await.map_err(|e| Error::Network(format!("request to {host} failed: {e}")))?;
    let status = resp.status().as_u16();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| Error::Network(format!("reading the answer from {host} failed: {e}")))?
        .to_bytes();
    Ok((status, bytes.to_vec()))
}
