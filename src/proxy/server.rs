//! The listener: accepts agent connections, enforces limits, keeps the snapshot current, and shuts
//! down gracefully on SIGINT/SIGTERM (stop accepting, let in-flight requests finish within a bound).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

use super::audit_sink::AuditSink;
use super::conn::{Accounting, Activity, Held, Slot, Tracked, idle, pending_over};
use super::outer;
use super::pipeline::{Shared, SnapshotCell};
use super::state::{ActiveGuard, ProxyState, stopped};
pub use super::state::{ProxyOptions, Unmatched};
use super::upstream::Upstream;
use crate::ca::Authority;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::service::Vault;

/// A bound, ready proxy.
pub struct Proxy {
    listener: TcpListener,
    state: Arc<ProxyState>,
    shutdown_tx: watch::Sender<bool>,
    audit_task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Opens the vault, loads the CA and the snapshot, and binds the listener.
    pub async fn bind(config: &Config, opts: ProxyOptions) -> Result<Proxy> {
        // Opening the store blocks (a file lock, or a database connection): off the async threads.
        let cfg = config.clone();
        let (key, material, snapshot) = tokio::task::spawn_blocking(move || {
            let vault = Vault::open(&cfg)?;
            let material = vault.ca_material()?;
            let snapshot = vault.snapshot()?;
            // Closing the store blocks too (a database connection ends here).
            Ok::<_, Error>((vault.into_key(), material, snapshot))
        })
        .await
        .map_err(|_| Error::Internal("the vault opener stopped".into()))??;
        let ca =
            Authority::new(&material.cert_pem, &material.key_pkcs8, &material.common_name, super::crypto_provider())?;
        let ca_name = material.common_name.clone();
        drop(material);
        let listener = TcpListener::bind(opts.listen)
            .await
            .map_err(|e| Error::Network(format!("cannot listen on {}: {e}", opts.listen)))?;
        let (audit, audit_task) = AuditSink::spawn(config.store.clone(), config.spill_path(), config.lock_wait);
        let shared = Shared {
            key,
            store: config.store.clone(),
            lock_wait: config.lock_wait,
            snapshot: SnapshotCell::new(snapshot),
            upstream: Upstream::new(opts.upstream.clone())?,
            audit,
            limits: opts.limits,
            oauth: super::oauth::TokenManager::new(Some(config.clone())),
            maskers: Default::default(),
        };
        let (shutdown_tx, shutdown) = watch::channel(false);
        let (opts_pending, opts_per_agent) = (opts.max_pending_connections, opts.max_agent_connections);
        let state = Arc::new(ProxyState {
            shared,
            ca: std::sync::RwLock::new(Arc::new(ca)),
            ca_name_cache: std::sync::RwLock::new(ca_name),
            opts,
            config: config.clone(),
            active: AtomicUsize::new(0),
            shutdown,
            accounting: Accounting::new(opts_pending, opts_per_agent),
            console: std::sync::OnceLock::new(),
        });
        Ok(Proxy { listener, state, shutdown_tx, audit_task })
    }

    pub fn local_addr(&self) -> Result<SocketAddr> {
        self.listener.local_addr().map_err(Error::from)
    }

    pub fn state(&self) -> Arc<ProxyState> {
        self.state.clone()
    }

    /// Serves until `stop` resolves, then shuts down gracefully.
    pub async fn run(self, stop: impl std::future::Future<Output = ()>) -> Result<()> {
        let Proxy { listener, state, shutdown_tx, audit_task } = self;
        let me = announcement(&state, &listener);
        if let Err(e) = crate::service::proxies::announce(&state.config.home, &me) {
            tracing::warn!(error = %e, "cannot announce this proxy; management commands will not wait for it");
        }
        let watcher = tokio::spawn(watch_vault(state.clone(), me.clone()));
        // Cached masking needles go a minute after their last use even when no request comes.
        let expiry = {
            let state = state.clone();
            tokio::spawn(async move {
                let mut every = tokio::time::interval(Duration::from_secs(1));
                loop {
                    every.tick().await;
                    state.shared.maskers.expire();
                    state.shared.snapshot.load().expire_opened();
                }
            })
        };
        let permits = Arc::new(Semaphore::new(state.opts.max_connections));
        tokio::pin!(stop);
        loop {
            let permit = tokio::select! {
                () = &mut stop => break,
                p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            };
            let accepted = tokio::select! {
                () = &mut stop => break,
                a = listener.accept() => a,
            };
            let (tcp, _) = match accepted {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let state = state.clone();
            let (slot, evicted) = state.accounting.accept(permit);
            tokio::spawn(async move {
                let _active = ActiveGuard::new(&state);
                serve_client(state, tcp, slot, evicted).await;
            });
        }
        drop(listener);
        let _ = shutdown_tx.send(true);
        let deadline = tokio::time::Instant::now() + state.opts.shutdown_grace;
        while state.active.load(Ordering::SeqCst) > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        watcher.abort();
        expiry.abort();
        state.shared.maskers.clear();
        crate::service::proxies::withdraw(&state.config.home, &me);
        let remaining = state.active.load(Ordering::SeqCst);
        if remaining > 0 {
            tracing::warn!(connections = remaining, "shutdown grace period over; closing remaining connections");
        }
        // Dropping the last sender flushes the audit writer.
        drop(state);
        let _ = tokio::time::timeout(Duration::from_secs(10), audit_task).await;
        Ok(())
    }
}

/// Serves one agent socket: pending until its first authenticated request, closed when idle,
/// when the agent is revoked, or (while pending) when evicted or late.
fn announcement(state: &ProxyState, listener: &TcpListener) -> crate::service::proxies::Announcement {
    crate::service::proxies::Announcement {
        pid: std::process::id(),
        listen: listener.local_addr().map(|a| a.to_string()).unwrap_or_default(),
        generation: state.shared.snapshot.load().generation,
    }
}

async fn serve_client(
    state: Arc<ProxyState>,
    tcp: tokio::net::TcpStream,
    slot: Arc<Slot>,
    evicted: tokio::sync::oneshot::Receiver<()>,
) {
    let activity = Activity::new();
    let (svc_state, svc_slot, svc_activity) = (state.clone(), slot.clone(), activity.clone());
    let svc = hyper::service::service_fn(move |req| {
        let (state, slot) = (svc_state.clone(), svc_slot.clone());
        let in_flight = svc_activity.begin();
        // Boxed for the same reason as in `mitm`: hyper keeps room for it in every connection.
        Box::pin(async move {
            let resp = outer::handle(state, slot, req).await;
            resp.map(|r| r.map(|b| Held::wrap(b, in_flight)))
        })
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(state.opts.idle_timeout)
        .max_buf_size(state.opts.max_header_bytes.max(8192))
        .keep_alive(true)
        .serve_connection(TokioIo::new(Tracked::new(tcp, activity.clone())), svc)
        .with_upgrades();
    tokio::pin!(conn);
    let shutdown = state.shutdown.clone();
    // The reasons to end the connection, polled only when one of them is woken (see `gate`):
    // an absolute-form `http://` request would otherwise poll all three on each of its wakes.
    let ending = super::gate::Gated::new(async {
        tokio::select! {
            () = stopped(shutdown) => Ending::Stopped,
            () = pending_over(&slot, evicted, state.opts.auth_timeout) => Ending::Pending,
            () = idle(&activity, state.opts.idle_timeout) => Ending::Idle,
        }
    });
    tokio::select! {
        r = conn.as_mut() => { if let Err(e) = r { tracing::debug!(error = %e, "client connection ended"); } }
        why = ending => match why {
            Ending::Stopped => {
                conn.as_mut().graceful_shutdown();
                let _ = conn.await;
            }
            Ending::Pending => {
                tracing::debug!("closed a connection that did not authenticate in time (or made room for a newer one)");
            }
            Ending::Idle => tracing::debug!("idle agent connection closed"),
        },
    }
}

/// Why a client connection ends before hyper is done with it.
enum Ending {
    Stopped,
    Pending,
    Idle,
}

/// Keeps the snapshot (and the CA) current: a management command anywhere reaches a running
/// proxy within about 250 ms.
async fn watch_vault(state: Arc<ProxyState>, mut me: crate::service::proxies::Announcement) {
    let path = state.config.store.clone();
    // PostgreSQL: a dedicated connection LISTENs and reports each generation it sees.
    let mut pg_generations = crate::store::GenerationWatch::new(&path, state.config.lock_wait).map(|mut watch| {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<u64, crate::store::StoreError>>(4);
        std::thread::spawn(move || {
            loop {
                let seen = watch.next(Duration::from_millis(500));
                let failed = seen.is_err();
                if tx.blocking_send(seen).is_err() {
                    break;
                }
                if failed {
                    std::thread::sleep(Duration::from_millis(500));
                }
            }
        });
        rx
    });
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    // A damaged or unreadable store is logged once (and its recovery), not every tick:
    // `report(Some(error))` on a failure, `report(None)` on success.
    let mut failing: Option<String> = None;
    // Said once when it starts failing (an outage's changing errors are one outage), and once
    // when it recovers.
    let mut report = |result: Option<String>| match (result, failing.as_ref()) {
        (Some(e), None) => {
            tracing::error!(error = %e, "cannot reload the vault; serving from the last good snapshot");
            failing = Some(e);
        }
        (None, Some(_)) => {
            tracing::info!("the vault is readable again");
            failing = None;
        }
        _ => {}
    };
    loop {
        // The generation to load: PostgreSQL's watcher reports it; a redb file is polled.
        let generation = if let Some(rx) = pg_generations.as_mut() {
            let Some(seen) = rx.recv().await else { return };
            match seen {
                Ok(g) if g == state.shared.snapshot.load().generation => {
                    report(None);
                    continue;
                }
                Ok(g) => g,
                Err(e) => {
                    report(Some(e.to_string()));
                    continue;
                }
            }
        } else {
            tick.tick().await;
            let current = state.shared.snapshot.load().generation;
            // Cheap check first: the sidecar changes only when a management command commits.
            match crate::store::read_generation_file(&path) {
                Some(g) if g == current => continue,
                _ => {}
            }
            let (p, wait) = (path.clone(), state.config.lock_wait);
            let generation = match tokio::task::spawn_blocking(move || crate::service::read_generation(&p, wait)).await
            {
                Ok(Ok(g)) => g,
                Ok(Err(e)) => {
                    report(Some(e.to_string()));
                    continue;
                }
                Err(_) => continue,
            };
            if generation == current {
                // No sidecar yet (a store from before it existed): wait for the next change.
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            generation
        };
        let (p, wait) = (path.clone(), state.config.lock_wait);
        match tokio::task::spawn_blocking(move || crate::service::load_snapshot(&p, wait)).await {
            Ok(Ok(snapshot)) => {
                report(None);
                let ca_changed = snapshot.ca_name().is_some_and(|n| Some(n) != current_ca_name(&state).as_deref());
                let build_ms = snapshot.build_time.as_millis() as u64;
                state.shared.snapshot.store(snapshot);
                // Nothing derived from the previous vault's secrets is kept.
                state.shared.maskers.clear();
                if ca_changed {
                    reload_ca(&state).await;
                }
                // Acknowledge: `agent revoke` and friends wait for this before they return.
                me.generation = generation;
                let _ = crate::service::proxies::announce(&state.config.home, &me);
                tracing::info!(generation, build_ms, "vault changed; snapshot reloaded");
            }
            Ok(Err(e)) => report(Some(e.to_string())),
            Err(_) => {}
        }
    }
}

fn current_ca_name(state: &ProxyState) -> Option<String> {
    state.ca_name_cache.read().ok().map(|g| g.clone())
}

async fn reload_ca(state: &Arc<ProxyState>) {
    let config = state.config.clone();
    let loaded = tokio::task::spawn_blocking(move || {
        let vault = Vault::open(&config)?;
        let m = vault.ca_material()?;
        let ca = Authority::new(&m.cert_pem, &m.key_pkcs8, &m.common_name, super::crypto_provider())?;
        Ok::<_, Error>((ca, m.common_name.clone()))
    })
    .await;
    match loaded {
        Ok(Ok((ca, name))) => {
            if let Ok(mut g) = state.ca.write() {
                *g = Arc::new(ca);
            }
            if let Ok(mut g) = state.ca_name_cache.write() {
                *g = name;
            }
            tracing::info!("CA rotated; new leaves are issued by the new root");
        }
        Ok(Err(e)) => tracing::error!(error = %e, "CA reload failed"),
        Err(_) => {}
    }
}
