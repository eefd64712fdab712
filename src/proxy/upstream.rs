//! Re-originating requests: one pooled client for every upstream (keep-alive, HTTP/2 when the
//! server offers it), with a connector that applies `--resolve`, the destination guard and
//! certificate verification against the public web roots plus `--upstream-ca`.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::Uri;
use http_body_util::combinators::BoxBody;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject as _};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::guard;
use crate::error::{Error, Result};

/// Errors from the body stream of requests and responses.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// The body type flowing through the proxy.
pub type Body = BoxBody<Bytes, BoxError>;

/// Where upstream connections go and whom they trust.
#[derive(Clone, Debug, Default)]
pub struct UpstreamConfig {
    pub extra_roots: Vec<CertificateDer<'static>>,
    /// `(host, port)` → address, from `--resolve`.
    pub resolve: HashMap<(String, u16), SocketAddr>,
    /// Private destinations the operator lets through the guard (`--allow-destination`).
    pub allow: Vec<guard::Allowed>,
    /// An upstream (egress) proxy every connection goes through (`--upstream-proxy`).
    pub via: Option<super::upstream_proxy::UpstreamProxy>,
    pub connect_timeout: Duration,
    /// Time to the first response byte.
    pub response_timeout: Duration,
    pub idle_timeout: Duration,
}

impl UpstreamConfig {
    pub fn new(ca_files: &[PathBuf], resolve: &[String]) -> Result<UpstreamConfig> {
        let mut extra_roots = Vec::new();
        for path in ca_files {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .map_err(|e| Error::invalid(format!("cannot read --upstream-ca {}: {e}", path.display())))?
                .collect::<std::result::Result<_, _>>()
                .map_err(|e| Error::invalid(format!("bad PEM in {}: {e}", path.display())))?;
            if certs.is_empty() {
                return Err(Error::invalid(format!("{} holds no certificate", path.display())));
            }
            extra_roots.extend(certs);
        }
        let mut map = HashMap::new();
        for entry in resolve {
            let (from, to) = parse_resolve(entry)?;
            map.insert(from, to);
        }
        Ok(UpstreamConfig {
            extra_roots,
            resolve: map,
            allow: Vec::new(),
            via: None,
            connect_timeout: Duration::from_secs(10),
            response_timeout: Duration::from_secs(300),
            idle_timeout: Duration::from_secs(90),
        })
    }
}

/// `HOST:PORT:ADDR:PORT` (ADDR may be a bracketed IPv6 literal).
fn parse_resolve(entry: &str) -> Result<((String, u16), SocketAddr)> {
    let bad = || Error::invalid(format!("--resolve '{entry}' must be HOST:PORT:ADDR:PORT"));
    let (host, rest) = entry.split_once(':').ok_or_else(bad)?;
    let (port, target) = rest.split_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    let target: SocketAddr = target.parse().map_err(|_| bad())?;
    let host = crate::policy::normalize_host(host).map_err(|_| bad())?;
    Ok(((host, port), target))
}

/// Why connecting upstream failed. Carried through hyper's error chain so the pipeline can
/// tell a guard refusal from a timeout from a TLS failure.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error(
        "destination {host} resolves to {addr}, which is {reason}; the proxy does not connect there \
         unless the operator allows it with --allow-destination (or maps the name with --resolve)"
    )]
    Blocked { host: String, addr: std::net::IpAddr, reason: &'static str },
    #[error("connecting to {0} timed out")]
    Timeout(String),
    #[error("cannot resolve {0}: {1}")]
    Dns(String, String),
    #[error("connecting to {0} failed: {1}")]
    Io(String, String),
    #[error("TLS with {0} failed: {1}")]
    Tls(String, String),
    #[error("unsupported upstream URI {0}")]
    BadUri(String),
}

/// The pooled upstream client.
#[derive(Clone)]
pub struct Upstream {
    client: Client<Connector, Body>,
    /// HTTP/1.1-only TLS for WebSocket upstreams (upgrades need HTTP/1.1), built once.
    http1_tls: Arc<rustls::ClientConfig>,
    pub config: Arc<UpstreamConfig>,
}

impl Upstream {
    pub fn new(config: UpstreamConfig) -> Result<Upstream> {
        let config = Arc::new(config);
        let tls = Arc::new(client_tls(&config.extra_roots, &[b"h2", b"http/1.1"])?);
        let http1_tls = Arc::new(client_tls(&config.extra_roots, &[b"http/1.1"])?);
        let connector = Connector { tls, config: config.clone() };
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(config.idle_timeout)
            .pool_max_idle_per_host(256)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .build(connector);
        Ok(Upstream { client, http1_tls, config })
    }

    /// Sends a request; the future resolves at the response head, bounded by the response timeout.
    pub async fn send(
        &self,
        req: http::Request<Body>,
    ) -> std::result::Result<http::Response<hyper::body::Incoming>, UpstreamError> {
        match tokio::time::timeout(self.config.response_timeout, self.client.request(req)).await {
            Err(_) => Err(UpstreamError::Timeout),
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(e)) => Err(classify(&e)),
        }
    }

    /// The HTTP/1.1-only TLS configuration (same roots), for WebSocket upstreams.
    pub fn http1_tls(&self) -> Arc<rustls::ClientConfig> {
        self.http1_tls.clone()
    }

    /// Connects a raw stream to `host:port` through the resolve map and the guard.
    pub async fn connect_tcp(&self, host: &str, port: u16) -> std::result::Result<TcpStream, ConnectError> {
        connect_tcp(&self.config, host, port).await
    }
}

/// What went wrong upstream, as the pipeline reports it.
#[derive(Debug)]
pub enum UpstreamError {
    Blocked(String),
    Timeout,
    Failed(String),
}

fn classify(e: &hyper_util::client::legacy::Error) -> UpstreamError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(c) = s.downcast_ref::<ConnectError>() {
            return match c {
                ConnectError::Blocked { .. } => UpstreamError::Blocked(c.to_string()),
                ConnectError::Timeout(_) => UpstreamError::Timeout,
                other => UpstreamError::Failed(other.to_string()),
            };
        }
        source = s.source();
    }
    UpstreamError::Failed(format!("{e}: {}", std::error::Error::source(e).map(ToString::to_string).unwrap_or_default()))
}

fn client_tls(extra: &[CertificateDer<'static>], alpn: &[&[u8]]) -> Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for cert in extra {
        roots.add(cert.clone()).map_err(|e| Error::invalid(format!("bad upstream CA certificate: {e}")))?;
    }
    let mut cfg = rustls::ClientConfig::builder_with_provider(super::crypto_provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Internal(format!("no TLS protocol versions: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(cfg)
}

async fn connect_tcp(cfg: &UpstreamConfig, host: &str, port: u16) -> std::result::Result<TcpStream, ConnectError> {
    let key = (host.to_owned(), port);
    if let Some(via) = cfg.via.as_ref().filter(|v| v.applies_to(host) && !cfg.resolve.contains_key(&key)) {
        // The egress proxy resolves names (and applies its own policy); an address literal is
        // still checked here.
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = bare.parse::<std::net::IpAddr>() {
            if let Some(reason) = guard::refused(host, ip, &cfg.allow) {
                return Err(ConnectError::Blocked { host: host.to_owned(), addr: ip, reason });
            }
        }
        return via.connect(host, port, cfg.connect_timeout).await;
    }
    let addrs: Vec<SocketAddr> = match cfg.resolve.get(&key) {
        Some(addr) => vec![*addr],
        None => {
            let bare = host.trim_start_matches('[').trim_end_matches(']');
            let found: Vec<SocketAddr> =
                tokio::time::timeout(cfg.connect_timeout, tokio::net::lookup_host((bare, port)))
                    .await
                    .map_err(|_| ConnectError::Timeout(host.to_owned()))?
                    .map_err(|e| ConnectError::Dns(host.to_owned(), e.to_string()))?
                    .collect();
            if found.is_empty() {
                return Err(ConnectError::Dns(host.to_owned(), "no addresses".into()));
            }
            // Refuse the name if any address it resolves to is refused: no mixing public and private.
            for a in &found {
                if let Some(reason) = guard::refused(host, a.ip(), &cfg.allow) {
                    return Err(ConnectError::Blocked { host: host.to_owned(), addr: a.ip(), reason });
                }
            }
            found
        }
    };
    let mut last = ConnectError::Dns(host.to_owned(), "no addresses".into());
    for addr in addrs {
        match tokio::time::timeout(cfg.connect_timeout, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Ok(Err(e)) => last = ConnectError::Io(host.to_owned(), e.to_string()),
            Err(_) => last = ConnectError::Timeout(host.to_owned()),
        }
    }
    Err(last)
}

/// The connector the pooled client uses.
#[derive(Clone)]
pub struct Connector {
    tls: Arc<rustls::ClientConfig>,
    config: Arc<UpstreamConfig>,
}

impl tower_service::Service<Uri> for Connector {
    type Response = UpStream;
    type Error = ConnectError;
    type Future = Pin<Box<dyn Future<Output = std::result::Result<UpStream, ConnectError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<std::result::Result<(), ConnectError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let tls = self.tls.clone();
        let config = self.config.clone();
        Box::pin(async move {
            let host = uri.host().ok_or_else(|| ConnectError::BadUri(uri.to_string()))?.to_owned();
            let https = match uri.scheme_str() {
                Some("https") => true,
                Some("http") => false,
                _ => return Err(ConnectError::BadUri(uri.to_string())),
            };
            let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
            let tcp = connect_tcp(&config, &host, port).await?;
            if !https {
                return Ok(UpStream { inner: TokioIo::new(Inner::Plain(tcp)), h2: false });
            }
            let name_text = host.trim_start_matches('[').trim_end_matches(']').to_owned();
            let name = ServerName::try_from(name_text).map_err(|e| ConnectError::Tls(host.clone(), e.to_string()))?;
            let connector = tokio_rustls::TlsConnector::from(tls);
            let stream = tokio::time::timeout(config.connect_timeout, connector.connect(name, tcp))
                .await
                .map_err(|_| ConnectError::Timeout(host.clone()))?
                .map_err(|e| ConnectError::Tls(host.clone(), e.to_string()))?;
            let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
            Ok(UpStream { inner: TokioIo::new(Inner::Tls(Box::new(stream))), h2 })
        })
    }
}

/// A connected upstream stream, plain or TLS.
pub struct UpStream {
    inner: TokioIo<Inner>,
    h2: bool,
}

enum Inner {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl Connection for UpStream {
    fn connected(&self) -> Connected {
        let c = Connected::new();
        if self.h2 { c.negotiated_h2() } else { c }
    }
}

impl hyper::rt::Read for UpStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for UpStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl AsyncRead for Inner {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Inner::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Inner::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Inner {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Inner::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Inner::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Inner::Plain(s) => Pin::new(s).poll_flush(cx),
            Inner::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Inner::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Inner::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_table() {
        let ((h, p), a) = parse_resolve("api.example.com:443:127.0.0.1:8443").unwrap();
        assert_eq!((h.as_str(), p, a.to_string().as_str()), ("api.example.com", 443, "127.0.0.1:8443"));
        let (_, a) = parse_resolve("API.example.com:443:[::1]:9").unwrap();
        assert_eq!(a.to_string(), "[::1]:9");
        for bad in ["api.example.com", "a:443:127.0.0.1", "a:x:127.0.0.1:1", "a:443:host:1"] {
            assert!(parse_resolve(bad).is_err(), "{bad}");
        }
    }
}
