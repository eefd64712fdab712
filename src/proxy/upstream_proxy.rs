//! Chaining to an upstream (corporate egress) proxy: every upstream connection, intercepted or
//! tunnelled, becomes a `CONNECT host:port` through it, with `Proxy-Authorization: Basic` when the
//! URL carries credentials. TLS to the real upstream (and the credential injection inside it)
//! then runs over that tunnel exactly as over a direct connection.
//!
//! The destination guard: with an upstream proxy the name is resolved by that proxy, so aivault
//! checks IP-literal destinations (blocked ranges stay refused unless `--allow-destination`) and
//! leaves names to the egress proxy's own policy. Hosts matching `--upstream-no-proxy` (or
//! `NO_PROXY` with `--upstream-proxy-from-env`) and `--resolve` targets connect directly.

use std::time::Duration;

use base64::Engine as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use super::upstream::ConnectError;
use crate::secret::SecretString;

/// Largest CONNECT response head accepted from the upstream proxy.
const MAX_HEAD: usize = 16 * 1024;

/// Why an upstream proxy setting does not parse.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamProxyError {
    #[error("--upstream-proxy '{0}' must be http://[USER:PASS@]HOST:PORT")]
    Shape(String),
    #[error("--upstream-proxy: {0}:// proxies are not supported; use an http:// proxy (CONNECT carries the TLS)")]
    Scheme(String),
}

/// `NO_PROXY` entries: `*`, a host (`mirror.corp`), a domain suffix (`.corp` or `corp`), an IP.
#[derive(Clone, Debug, PartialEq, Eq)]
enum NoProxy {
    All,
    Suffix(String),
}

/// The upstream proxy to chain through.
#[derive(Clone)]
pub struct UpstreamProxy {
    host: String,
    port: u16,
    /// `base64(user:pass)`, when the URL has credentials.
    auth: Option<SecretString>,
    no_proxy: Vec<NoProxy>,
}

impl std::fmt::Debug for UpstreamProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "UpstreamProxy({})", self)
    }
}

/// `http://HOST:PORT` without the credentials (for logs, `proxy.json` and `run`'s comparison).
impl std::fmt::Display for UpstreamProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let auth = if self.auth.is_some() { "<credentials>@" } else { "" };
        write!(f, "http://{auth}{}:{}", self.host, self.port)?;
        if !self.no_proxy.is_empty() {
            let list: Vec<&str> = self
                .no_proxy
                .iter()
                .map(|n| match n {
                    NoProxy::All => "*",
                    NoProxy::Suffix(s) => s.as_str(),
                })
                .collect();
            write!(f, " (not for {})", list.join(","))?;
        }
        Ok(())
    }
}

impl UpstreamProxy {
    /// Parses `http://[user:pass@]host:port` and a comma-separated `NO_PROXY` list.
    pub fn parse(url: &str, no_proxy: &str) -> Result<UpstreamProxy, UpstreamProxyError> {
        let shape = || UpstreamProxyError::Shape(redacted(url));
        let (scheme, rest) = url.split_once("://").unwrap_or(("http", url));
        if !scheme.eq_ignore_ascii_case("http") {
            return Err(UpstreamProxyError::Scheme(scheme.to_owned()));
        }
        let rest = rest.trim_end_matches('/');
        let (userinfo, hostport) = match rest.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, rest),
        };
        let (host, port) = match crate::policy::split_host_port(hostport) {
            Ok((h, Some(p))) if !h.is_empty() => (h, p),
            _ => return Err(shape()),
        };
        let auth = userinfo.map(|u| {
            let decoded = zeroize::Zeroizing::new(crate::percent::decode_form(u));
            SecretString::new(base64::engine::general_purpose::STANDARD.encode(decoded.as_bytes()))
        });
        let no_proxy = no_proxy
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| match s {
                "*" => NoProxy::All,
                other => NoProxy::Suffix(other.trim_start_matches("*.").trim_start_matches('.').to_ascii_lowercase()),
            })
            .collect();
        Ok(UpstreamProxy { host, port, auth, no_proxy })
    }

    /// Whether connections to `host` go through this proxy.
    pub fn applies_to(&self, host: &str) -> bool {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        !self.no_proxy.iter().any(|n| match n {
            NoProxy::All => true,
            NoProxy::Suffix(s) => host == s || host.strip_suffix(s.as_str()).is_some_and(|p| p.ends_with('.')),
        })
    }

    /// A TCP stream to `host:port` tunnelled through the upstream proxy.
    pub async fn connect(&self, host: &str, port: u16, timeout: Duration) -> Result<TcpStream, ConnectError> {
        let via = format!("the upstream proxy {}:{}", self.host, self.port);
        let mut stream = tokio::time::timeout(timeout, TcpStream::connect((self.host.as_str(), self.port)))
            .await
            .map_err(|_| ConnectError::Timeout(via.clone()))?
            .map_err(|e| ConnectError::Io(via.clone(), e.to_string()))?;
        let _ = stream.set_nodelay(true);
        let target = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        let mut head = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
        if let Some(auth) = &self.auth {
            head.push_str(&format!("Proxy-Authorization: Basic {}\r\n", auth.expose()));
        }
        head.push_str("\r\n");
        let head = zeroize::Zeroizing::new(head);
        let answer = tokio::time::timeout(timeout, async {
            stream.write_all(head.as_bytes()).await?;
            read_head(&mut stream).await
        })
        .await
        .map_err(|_| ConnectError::Timeout(via.clone()))?
        .map_err(|e| ConnectError::Io(via.clone(), e.to_string()))?;
        let status_line = answer.lines().next().unwrap_or_default().to_owned();
        let status: u16 = status_line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        match status {
            200..=299 => Ok(stream),
            // 407 is the standard answer; some proxies (tinyproxy) answer CONNECT with 401.
            401 | 407 => Err(ConnectError::Io(
                via,
                format!(
                    "it requires authentication ({status}): put USER:PASS in --upstream-proxy http://USER:PASS@HOST:PORT"
                ),
            )),
            _ => Err(ConnectError::Io(via, format!("it refused CONNECT {target}: {}", printable(&status_line)))),
        }
    }
}

/// Reads a response head (through the blank line). The proxy sends nothing after a 2xx until
/// the client speaks, so nothing of the tunnel is consumed.
async fn read_head(stream: &mut TcpStream) -> std::io::Result<String> {
    let mut buf = Vec::with_capacity(256);
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if buf.len() >= MAX_HEAD {
            return Err(std::io::Error::other("the CONNECT answer is too long"));
        }
        if stream.read(&mut byte).await? == 0 {
            return Err(std::io::Error::other("the connection closed before the CONNECT answer"));
        }
        buf.push(byte[0]);
    }
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

fn printable(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(120).collect()
}

/// `url` with any password replaced, for error messages.
fn redacted(url: &str) -> String {
    match url.rsplit_once('@') {
        Some((_, host)) => format!("http://<credentials>@{host}"),
        None => printable(url),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls_and_no_proxy_lists() {
        let p =
            UpstreamProxy::parse("http://alice:s%40cret@proxy.corp:3128", ".internal, mirror.corp,10.1.2.3").unwrap();
        assert_eq!((p.host.as_str(), p.port), ("proxy.corp", 3128));
        let expected = base64::engine::general_purpose::STANDARD.encode("alice:s@cret");
        assert_eq!(p.auth.as_ref().map(SecretString::expose), Some(expected.as_str()));
        assert_eq!(p.to_string(), "http://<credentials>@proxy.corp:3128 (not for internal,mirror.corp,10.1.2.3)");
        assert!(!format!("{p:?} {p}").contains("cret"), "never the password");
        let cases = [
            ("api.openai.com", true),
            ("db.internal", false),
            ("internal", false),
            ("notinternal", true),
            ("mirror.corp", false),
            ("pypi.mirror.corp", false),
            ("10.1.2.3", false),
        ];
        for (host, via) in cases {
            assert_eq!(p.applies_to(host), via, "{host}");
        }
        assert!(!UpstreamProxy::parse("proxy:8080", "*").unwrap().applies_to("anything"));
        for bad in ["http://", "http://proxy", "https://proxy:443", "socks5://p:1080", "http://u:p@:80"] {
            let e = UpstreamProxy::parse(bad, "").unwrap_err().to_string();
            assert!(!e.contains(":p@"), "{e}");
        }
    }
}
