//! The approval console: a small HTTP server on loopback where a person reviews an agent's
//! proposal, fills in values, connects or pastes OAuth tokens, and allows or denies.
//!
//! Architecture invariants:
//! - A page opens only through a one-time review link (`aivault proposal link ID`, or the proxy's
//!   log); the link becomes a session bound to that one proposal. Agents never get a link: the
//!   `approval_url` they receive is the page's address, which asks for one.
//! - Every response carries a CSP without inline script or style, `Cache-Control: no-store`,
//!   `Referrer-Policy: same-origin` and `X-Frame-Options: DENY`; every form a CSRF token; the
//!   session cookie is `HttpOnly; SameSite=Strict`; a Host header other than the bound address is
//!   refused (DNS rebinding), so is a POST from another origin.
//! - No value is echoed into a page, a log line or an error (the agent's own value, masked,
//!   while pending, is the one exception: `pages.rs`).

mod oauth;
mod pages;
pub mod presets;
mod routes;
mod session;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use http_body_util::Full;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::proxy::upstream::Upstream;

/// The cookie naming a console session.
const COOKIE: &str = "aivault_console";

type Page = Response<Full<Bytes>>;

/// Where the console listens, and whether a person named that address on the command line.
#[derive(Clone, Copy, Debug)]
pub struct Bind {
    pub addr: SocketAddr,
    /// Named by `--console-listen` / `--listen` (a non-loopback address needs that).
    pub explicit: bool,
}

/// What every console request shares.
pub struct ConsoleState {
    pub config: Config,
    pub upstream: Upstream,
    pub base_url: String,
    /// Host header values this console answers to.
    hosts: Vec<String>,
    sessions: session::Sessions,
    presets: Vec<presets::Preset>,
    /// The proxy's `/metrics` text, when this console is served by `aivault proxy`.
    metrics: std::sync::OnceLock<MetricsSource>,
}

/// Renders the Prometheus text of the proxy that serves this console.
pub type MetricsSource = Arc<dyn Fn() -> String + Send + Sync>;

/// A bound console.
pub struct Console {
    listener: TcpListener,
    state: Arc<ConsoleState>,
}

impl Console {
    /// Binds the console (refusing a non-loopback address nobody asked for by name).
    pub async fn bind(config: &Config, bind: Bind, upstream: Upstream) -> Result<Console> {
        if !bind.addr.ip().is_loopback() && !bind.explicit {
            return Err(Error::invalid(format!(
                "refusing to serve the console on {}: it is not a loopback address; name it with --console-listen \
                 if you mean it",
                bind.addr
            )));
        }
        let listener = TcpListener::bind(bind.addr)
            .await
            .map_err(|e| Error::Network(format!("cannot listen on {} for the console: {e}", bind.addr)))?;
        let addr = listener.local_addr()?;
        let mut hosts = vec![addr.to_string()];
        if addr.ip().is_loopback() {
            hosts.push(format!("localhost:{}", addr.port()));
        }
        let shown = if addr.ip().is_unspecified() { SocketAddr::from(([127, 0, 0, 1], addr.port())) } else { addr };
        if shown != addr {
            hosts.push(shown.to_string());
        }
        let state = ConsoleState {
            config: config.clone(),
            upstream,
            base_url: format!("http://{shown}"),
            hosts,
            sessions: session::Sessions::default(),
            presets: presets::all(crate::registry::Registry::builtin()?),
            metrics: std::sync::OnceLock::new(),
        };
        Ok(Console { listener, state: Arc::new(state) })
    }

    pub fn url(&self) -> &str {
        &self.state.base_url
    }

    /// Serves `GET /metrics` from `source` (the proxy's counters).
    pub fn serve_metrics(&self, source: MetricsSource) {
        let _ = self.state.metrics.set(source);
    }

    /// Serves until `stop` resolves; announces itself so proxies without a console link here.
    pub async fn run(self, stop: impl std::future::Future<Output = ()>) {
        let Console { listener, state } = self;
        if let Err(e) = crate::service::proxies::announce_console(&state.config.home, &state.base_url) {
            tracing::warn!(error = %e, "cannot announce the console; approval links from other processes will be missing");
        }
        tokio::pin!(stop);
        loop {
            let accepted = tokio::select! {
                () = &mut stop => break,
                a = listener.accept() => a,
            };
            let Ok((tcp, _)) = accepted else {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            };
            let state = state.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| {
                    let state = state.clone();
                    async move { Ok::<_, std::convert::Infallible>(secure(routes::route(state, req).await)) }
                });
                let conn = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(Duration::from_secs(30))
                    .max_buf_size(64 * 1024)
                    .serve_connection(TokioIo::new(tcp), svc);
                let _ = tokio::time::timeout(Duration::from_secs(600), conn).await;
            });
        }
        crate::service::proxies::withdraw_console(&state.config.home);
    }
}

const CSP: &str = "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; form-action 'self'; \
                   frame-ancestors 'none'; base-uri 'none'";

/// The headers every console response carries.
fn secure(mut resp: Page) -> Page {
    let h = resp.headers_mut();
    h.insert("content-security-policy", HeaderValue::from_static(CSP));
    h.insert(http::header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(http::header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert(http::header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(http::header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert("cross-origin-opener-policy", HeaderValue::from_static("same-origin"));
    resp
}

fn respond(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Page {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

fn html(status: StatusCode, markup: maud::Markup) -> Page {
    respond(status, "text/html; charset=utf-8", markup.into_string())
}

fn see_other(location: &str) -> Page {
    let mut r = respond(StatusCode::SEE_OTHER, "text/plain; charset=utf-8", "");
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(http::header::LOCATION, v);
    }
    r
}
