//! Interception: terminate the agent's TLS with a leaf for the CONNECT host, then serve HTTP/1.1
//! or HTTP/2 inside the tunnel and hand each request to the pipeline.
//!
//! The target is pinned by the CONNECT line: an SNI naming another host ends the handshake, and
//! an inner `Host`/`:authority` naming another host gets 421. The agent token is re-checked on
//! every request, so revocation reaches tunnels that are already open.

use std::sync::Arc;

use http::{Request, Response};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio_rustls::LazyConfigAcceptor;

use super::conn::{Activity, Held, Slot, Tracked, idle, revoked};
use super::gate::Gated;
use super::pipeline::{self, Destination};
use super::respond;
use super::state::{ActiveGuard, Agent, ProxyState};
use super::upstream::Body;
use super::websocket;
use crate::audit::AuditEvent;
use crate::policy::normalize_host;
use crate::refusal::ErrorCode;

pub async fn intercept(
    state: Arc<ProxyState>,
    slot: Arc<Slot>,
    on_upgrade: OnUpgrade,
    agent: Agent,
    host: String,
    port: u16,
) {
    let _active = ActiveGuard::new(&state);
    let Ok(upgraded) = on_upgrade.await else { return };
    let activity = Activity::new();
    let io = Tracked::new(TokioIo::new(upgraded), activity.clone());
    let acceptor = LazyConfigAcceptor::new(rustls::server::Acceptor::default(), io);
    let start = match tokio::time::timeout(state.opts.handshake_timeout, acceptor).await {
        Ok(Ok(start)) => start,
        Ok(Err(e)) => return tls_failure(&state, &agent, &host, &format!("not a TLS ClientHello: {e}")),
        Err(_) => return tls_failure(&state, &agent, &host, "the client sent no TLS ClientHello in time"),
    };
    if let Some(sni) = start.client_hello().server_name() {
        if normalize_host(sni).ok().as_deref() != Some(host.trim_start_matches('[').trim_end_matches(']')) {
            return tls_failure(&state, &agent, &host, &format!("SNI {sni} differs from the CONNECT host"));
        }
    }
    let config = match state.ca().server_config(&host).await {
        Ok(c) => c,
        Err(e) => return tls_failure(&state, &agent, &host, &e.to_string()),
    };
    let tls = match tokio::time::timeout(state.opts.handshake_timeout, start.into_stream(config)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => return tls_failure(&state, &agent, &host, &format!("TLS handshake failed: {e}")),
        Err(_) => return tls_failure(&state, &agent, &host, "TLS handshake timed out"),
    };
    let dest_host = host.clone();
    // Shared by every request on the connection: a request clones two pointers, not the
    // agent's names, context and token hash.
    let dest = Arc::new(Destination { https: true, host, port, capability: None });
    let agent = Arc::new(agent);
    let svc_state = state.clone();
    let (svc_agent, svc_activity, svc_slot) = (agent.clone(), activity.clone(), slot.clone());
    let svc = hyper::service::service_fn(move |req| {
        let (state, dest, agent, slot) = (svc_state.clone(), dest.clone(), svc_agent.clone(), svc_slot.clone());
        let in_flight = svc_activity.begin();
        // Boxed: hyper keeps room for the service's future in every connection, busy or idle;
        // the request's whole pipeline inline would cost each idle connection about 7 KiB.
        Box::pin(async move {
            let resp = inner(state, dest, agent, slot, req).await;
            Ok::<_, std::convert::Infallible>(resp.map(|b| Held::wrap(b, in_flight)))
        })
    });
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(state.opts.idle_timeout)
        .max_buf_size(state.opts.max_header_bytes.max(8192));
    builder.http2().timer(TokioTimer::new()).max_header_list_size(state.opts.max_header_bytes as u32);
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(tls), svc);
    tokio::pin!(conn);
    let shutdown = state.shutdown.clone();
    // The reasons to end the tunnel, polled only when one of them is woken (see `gate`).
    let ending = Gated::new(async {
        tokio::select! {
            () = super::state::stopped(shutdown) => Ending::Stopped,
            () = idle(&activity, state.opts.idle_timeout) => Ending::Idle,
            () = revoked(&state.shared.snapshot, &agent.token_hash) => Ending::Revoked,
        }
    });
    tokio::select! {
        r = conn.as_mut() => { if let Err(e) = r { tracing::debug!(error = %e, "tunnel ended"); } }
        why = ending => match why {
            Ending::Stopped => {
                conn.as_mut().graceful_shutdown();
                let _ = conn.await;
            }
            Ending::Idle => tracing::debug!(host = %dest_host, "idle intercepted tunnel closed"),
            Ending::Revoked => tracing::info!(agent = %agent.caller.agent, "agent revoked; intercepted tunnel closed"),
        },
    }
    drop(slot);
}

/// Why an intercepted tunnel ends before its connection does.
enum Ending {
    Stopped,
    Idle,
    Revoked,
}

fn tls_failure(state: &ProxyState, agent: &Agent, host: &str, why: &str) {
    tracing::debug!(host, why, "interception refused");
    let mut e = AuditEvent::new("proxy.tls");
    agent.caller.stamp(&mut e);
    e.host = Some(host.to_owned());
    e.outcome = Some("tls_refused".into());
    e.detail = Some(why.to_owned());
    state.shared.audit.record(e);
}

async fn inner(
    state: Arc<ProxyState>,
    dest: Arc<Destination>,
    agent: Arc<Agent>,
    slot: Arc<Slot>,
    req: Request<Incoming>,
) -> Response<Body> {
    let named = req
        .uri()
        .authority()
        .map(|a| a.as_str())
        .or_else(|| req.headers().get(http::header::HOST).and_then(|h| h.to_str().ok()));
    if let Some(named) = named {
        if !crate::policy::names_authority(named, &dest.host, dest.port, 443) {
            return respond::error(
                ErrorCode::MisdirectedRequest,
                &format!(
                    "this tunnel was opened for {}:{}; it cannot carry requests for {named}",
                    dest.host, dest.port
                ),
            );
        }
    }
    if state.shared.snapshot.load().agent_by_hash(&agent.token_hash).is_none() {
        return respond::error(ErrorCode::ProxyAuthRequired, "the agent token was revoked");
    }
    if dest.host == super::proposals::PROPOSAL_HOST {
        return super::proposals::serve(state, agent, req).await;
    }
    if websocket::is_upgrade(&req) {
        return websocket::handle(state, dest, agent, slot, req).await;
    }
    let req = req.map(|b| b.map_err(Into::into).boxed());
    pipeline::handle(&state.shared, &agent.caller, &dest, req).await
}
