//! What every connection handler shares: the proxy's options, its state (snapshot, CA, counters,
//! shutdown signal), the live-connection guard and the authenticated agent.
//!
//! The accept path flows one way: `server` builds a `ProxyState` and hands it to `outer` (the
//! agent's HTTP/1 connection), which hands it to `mitm`, `tunnel`, `websocket` and `proposals`.
//! None of those import `server` or `outer`; they import this file.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::watch;

use super::conn::Accounting;
use super::pipeline::{Caller, Shared};
use super::upstream::UpstreamConfig;
use crate::ca::Authority;
use crate::config::Config;

/// What to do with hosts no capability names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unmatched {
    /// Answer CONNECT with 403 `host_not_allowed`.
    Deny,
    /// Splice bytes end to end without interception (still guarded and audited).
    Tunnel,
}

/// Proxy settings (flags of `aivault proxy`).
#[derive(Clone, Debug)]
pub struct ProxyOptions {
    pub listen: SocketAddr,
    pub unmatched: Unmatched,
    pub upstream: UpstreamConfig,
    pub max_header_bytes: usize,
    pub idle_timeout: Duration,
    /// How long a spliced tunnel or WebSocket may carry no bytes before it is closed.
    pub tunnel_idle_timeout: Duration,
    pub handshake_timeout: Duration,
    pub max_connections: usize,
    /// Sockets that have not authenticated yet (the oldest is closed when more arrive).
    pub max_pending_connections: usize,
    /// Admitted connections (and the tunnels they became) per agent.
    pub max_agent_connections: usize,
    /// How long a new socket may take to send an authenticated request.
    pub auth_timeout: Duration,
    pub shutdown_grace: Duration,
    pub limits: super::pipeline::Limits,
}

impl ProxyOptions {
    /// The settings that change what a proxied request does (not only how long it may take):
    /// `run` compares them with a running proxy's before reusing it.
    pub fn policy_fingerprint(&self) -> std::collections::BTreeMap<&'static str, String> {
        let mut resolve: Vec<String> =
            self.upstream.resolve.iter().map(|((h, p), to)| format!("{h}:{p}:{to}")).collect();
        resolve.sort();
        let mut allow: Vec<String> = self.upstream.allow.iter().map(ToString::to_string).collect();
        allow.sort();
        let mut roots: Vec<String> =
            self.upstream.extra_roots.iter().map(|c| crate::crypto::sha256_hex(c.as_ref())).collect();
        roots.sort();
        std::collections::BTreeMap::from([
            ("--unmatched", format!("{:?}", self.unmatched).to_ascii_lowercase()),
            ("--resolve", resolve.join(",")),
            ("--upstream-ca", roots.join(",")),
            ("--sigv4-max-body-bytes", self.limits.sigv4_max_body.to_string()),
            ("--allow-destination", allow.join(",")),
            ("--upstream-proxy", self.upstream.via.as_ref().map(ToString::to_string).unwrap_or_default()),
        ])
    }

    pub fn new(listen: SocketAddr, upstream: UpstreamConfig) -> ProxyOptions {
        ProxyOptions {
            listen,
            unmatched: Unmatched::Deny,
            upstream,
            max_header_bytes: 64 * 1024,
            idle_timeout: Duration::from_secs(120),
            tunnel_idle_timeout: Duration::from_secs(600),
            handshake_timeout: Duration::from_secs(10),
            max_connections: 4096,
            max_pending_connections: 1024,
            max_agent_connections: 1024,
            auth_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(10),
            limits: super::pipeline::Limits::default(),
        }
    }
}

/// Everything connection handlers share.
pub struct ProxyState {
    pub shared: Shared,
    pub ca: std::sync::RwLock<Arc<Authority>>,
    pub(super) ca_name_cache: std::sync::RwLock<String>,
    pub opts: ProxyOptions,
    pub config: Config,
    pub active: AtomicUsize,
    pub shutdown: watch::Receiver<bool>,
    pub accounting: Arc<Accounting>,
    /// The console this process serves (set once it listens), for approval links.
    pub console: std::sync::OnceLock<String>,
}

impl ProxyState {
    /// The console's base URL: this process's, else the one another aivault process announced.
    pub fn console_url(&self) -> Option<String> {
        self.console.get().cloned().or_else(|| crate::service::proxies::console_url(&self.config.home))
    }

    /// The Prometheus text for `/metrics` (counters from the audit sink, gauges read now).
    pub fn metrics_text(&self) -> String {
        let snapshot = self.shared.snapshot.load();
        let gauges = super::metrics::Gauges {
            active_connections: self.active.load(Ordering::Relaxed) as u64,
            audit_queue: self.shared.audit.queued() as u64,
            leaf_certificates_minted: self.ca().minted(),
            oauth_refreshes: self.shared.oauth.refreshes.load(Ordering::Relaxed),
            snapshot_generation: snapshot.generation,
            snapshot_build: snapshot.build_time,
            audit_written: self.shared.audit.written.load(Ordering::Relaxed),
            audit_spilled: self.shared.audit.spilled(),
            masker_cache_entries: self.shared.maskers.entries(),
            opened_secrets: snapshot.opened_entries(),
        };
        self.shared.audit.metrics.render(&gauges)
    }

    pub fn ca(&self) -> Arc<Authority> {
        match self.ca.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }
}

/// Resolves once shutdown has been signalled.
pub async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await.map(|_| ());
}

/// Counts a live connection or tunnel for graceful shutdown.
pub struct ActiveGuard(Arc<ProxyState>);

impl ActiveGuard {
    pub fn new(state: &Arc<ProxyState>) -> ActiveGuard {
        state.active.fetch_add(1, Ordering::SeqCst);
        ActiveGuard(state.clone())
    }
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::SeqCst);
    }
}

/// An authenticated agent, remembered by token hash so every later request can be re-checked.
#[derive(Clone, Debug)]
pub struct Agent {
    pub caller: Caller,
    pub token_hash: String,
}
