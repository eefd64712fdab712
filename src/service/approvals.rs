//! Held requests: a capability created with `--approval required` holds each request until a
//! person decides (`aivault approval allow | deny`), or its timeout passes.
//!
//! The proxy records the held request here (a store write per held request: rare by design),
//! waits for the decision to reach its snapshot, and forwards or refuses. An allow `--for N`
//! minutes also covers later requests of the same agent to the same capability until then.

use super::{Vault, record};
use crate::audit::AuditEvent;
use crate::error::{Error, Result};
use crate::store::{ApprovalRow, Store};
use crate::time::now_ms;

impl Vault {
    /// Held requests, pending first, then the newest decisions (`all`: every record).
    pub fn approval_list(&self, all: bool) -> Result<Vec<ApprovalRow>> {
        let mut rows = self.store.read(|tx| tx.list::<ApprovalRow>())?;
        if !all {
            rows.retain(|r| r.status == "pending");
        }
        rows.sort_by(|a, b| {
            (a.status != "pending", std::cmp::Reverse(a.created_ms))
                .cmp(&(b.status != "pending", std::cmp::Reverse(b.created_ms)))
        });
        Ok(rows)
    }

    /// Allows or denies a pending request; an allow `for_minutes` covers the same agent and
    /// capability until then.
    pub fn approval_decide(
        &self,
        id: &str,
        allow: bool,
        for_minutes: Option<u64>,
        reason: Option<String>,
    ) -> Result<ApprovalRow> {
        self.store.write(|tx| {
            let mut row = tx
                .get::<ApprovalRow>(id)?
                .ok_or_else(|| Error::not_found("approval", id, "list pending ones with `aivault approval list`"))?;
            if row.status != "pending" {
                return Err(Error::Conflict(format!("approval {id} is already {}", row.status)));
            }
            let now = now_ms();
            row.status = if allow { "allowed" } else { "denied" }.to_owned();
            row.decided_ms = Some(now);
            row.until_ms = for_minutes.filter(|_| allow).map(|m| now + m * 60_000);
            row.reason = reason;
            tx.put(id, &row)?;
            let kind = if allow { "approval.allow" } else { "approval.deny" };
            let mut e = AuditEvent::new(kind)
                .capability(&row.capability)
                .detail(format!("{id}: {} {}{}", row.method, row.host, row.path));
            e.agent = Some(row.agent.clone());
            record(tx, e)?;
            Ok(row)
        })
    }
}

/// Records a held request (called by the proxy off its async threads).
pub fn request_at(path: &crate::store::Location, lock_wait: std::time::Duration, row: &ApprovalRow) -> Result<()> {
    let store = Store::open(path, lock_wait)?;
    store.write(|tx| {
        tx.put(&row.id, row)?;
        let mut e = AuditEvent::new("approval.request")
            .capability(&row.capability)
            .detail(format!("{}: {} {}{}", row.id, row.method, row.host, row.path));
        e.agent = Some(row.agent.clone());
        record(tx, e)
    })
}

/// Marks a held request that timed out (unless a decision arrived meanwhile).
pub fn expire_at(path: &crate::store::Location, lock_wait: std::time::Duration, id: &str) -> Result<()> {
    let store = Store::open(path, lock_wait)?;
    store.write(|tx| {
        if let Some(mut row) = tx.get::<ApprovalRow>(id)? {
            if row.status == "pending" {
                row.status = "expired".to_owned();
                row.decided_ms = Some(now_ms());
                tx.put(id, &row)?;
                record(tx, AuditEvent::new("approval.expire").capability(&row.capability).detail(id.to_owned()))?;
            }
        }
        Ok::<_, Error>(())
    })
}
