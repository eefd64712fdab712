//! Hosts without a capability under `--unmatched tunnel`: bytes are spliced end to end, the
//! agent's own TLS reaches the upstream untouched, no certificate is minted.

use std::sync::Arc;
use std::time::Instant;

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::conn::Slot;
use super::state::{ActiveGuard, Agent, ProxyState};
use crate::audit::AuditEvent;

pub async fn splice(
    state: Arc<ProxyState>,
    slot: Arc<Slot>,
    on_upgrade: OnUpgrade,
    mut upstream: TcpStream,
    agent: Agent,
    host: String,
    port: u16,
) {
    let _active = ActiveGuard::new(&state);
    let started = Instant::now();
    let mut event = AuditEvent::new("proxy.tunnel");
    agent.caller.stamp(&mut event);
    event.method = Some("CONNECT".into());
    event.host = Some(format!("{host}:{port}"));
    let (outcome, up, down) = match on_upgrade.await {
        Ok(upgraded) => {
            let revoked = super::conn::revoked(&state.shared.snapshot, &agent.token_hash);
            let (to_up, to_client, ending) =
                super::splice::splice(TokioIo::new(upgraded), &mut upstream, state.opts.tunnel_idle_timeout, revoked)
                    .await;
            (ending.outcome(), to_up, to_client)
        }
        Err(_) => ("upgrade_failed", 0, 0),
    };
    event.status = Some(200);
    event.outcome = Some(outcome.into());
    event.bytes_in = Some(up);
    event.bytes_out = Some(down);
    event.duration_ms = Some(started.elapsed().as_millis() as u64);
    state.shared.audit.record(event);
    drop(slot);
}
