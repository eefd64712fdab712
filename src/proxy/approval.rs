//! Holding a request for a person's decision (pipeline stage 2c): record it, wait for the
//! decision to reach the snapshot, forward on allow; refuse on deny or after the timeout.

use std::time::Duration;

use super::pipeline::Shared;
use crate::refusal::{ErrorCode, Refusal};
use crate::service::resolve::Decided;
use crate::store::ApprovalRow;

/// What a held request is, for the person deciding.
pub struct Hold {
    pub agent: String,
    pub capability: String,
    pub method: String,
    pub host: String,
    pub path: String,
}

/// Holds until allowed (`Ok`), denied or timed out (`Err`).
pub async fn wait(shared: &Shared, hold: Hold, timeout: Duration) -> Result<(), Refusal> {
    let refused = |why: String| Refusal::new(ErrorCode::ApprovalDenied, why);
    let id = crate::crypto::random_id("apr_").map_err(|e| refused(format!("cannot hold the request: {e}")))?;
    let row = ApprovalRow {
        id: id.clone(),
        agent: hold.agent.clone(),
        capability: hold.capability.clone(),
        method: hold.method.clone(),
        host: hold.host.clone(),
        path: hold.path.clone(),
        created_ms: crate::time::now_ms(),
        status: "pending".to_owned(),
        decided_ms: None,
        until_ms: None,
        reason: None,
    };
    let mut changes = shared.snapshot.subscribe();
    let (path, lock_wait) = (shared.store.clone(), shared.lock_wait);
    match tokio::task::spawn_blocking(move || crate::service::approvals::request_at(&path, lock_wait, &row)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(refused(format!("cannot record the request for approval: {e}"))),
        Err(_) => return Err(refused("cannot record the request for approval".to_owned())),
    }
    tracing::info!(
        id = %id, agent = %hold.agent, capability = %hold.capability, method = %hold.method, host = %hold.host,
        path = %hold.path, "request held for approval: `aivault approval allow {id}` or `deny {id}`"
    );
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match shared.snapshot.load().decided(&id) {
            Some(Decided::Allowed) => return Ok(()),
            Some(Decided::Denied(reason)) => {
                let why = reason.map(|r| format!(": {r}")).unwrap_or_default();
                return Err(refused(format!("approval {id} was denied{why}")));
            }
            None => {}
        }
        tokio::select! {
            changed = changes.changed() => {
                if changed.is_err() {
                    tokio::time::sleep_until(deadline).await;
                }
            }
            () = tokio::time::sleep_until(deadline) => {
                let (path, lock_wait, expired) = (shared.store.clone(), shared.lock_wait, id.clone());
                let _ = tokio::task::spawn_blocking(move || crate::service::approvals::expire_at(&path, lock_wait, &expired)).await;
                return Err(refused(format!(
                    "approval {id} got no decision within {} s (--approval-timeout)",
                    timeout.as_secs()
                )));
            }
        }
    }
}
