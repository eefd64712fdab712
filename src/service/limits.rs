//! Rate limits and budgets on capabilities, credentials and agents (`aivault limit ...`).
//!
//! The rows live in the store; the proxy checks them from the snapshot (`Snapshot::check_limits`)
//! with in-memory counters per proxy (`policy::limit::Limiter`). Fleet mode will need shared
//! counters: see ARCHITECTURE.md.

use serde::Serialize;

use super::{Vault, record};
use crate::audit::AuditEvent;
use crate::error::{Error, Result};
use crate::policy::limit::Per;
use crate::store::{AgentRow, CapabilityRow, CredentialRow, LimitRow};
use crate::time::now_ms;

/// What a limit applies to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LimitTarget {
    Capability(String),
    Credential(String),
    Agent(String),
}

impl LimitTarget {
    pub fn key(&self) -> String {
        match self {
            LimitTarget::Capability(id) => format!("capability:{id}"),
            LimitTarget::Credential(id) => format!("credential:{id}"),
            LimitTarget::Agent(name) => format!("agent:{name}"),
        }
    }
}

/// A limit as `limit list` shows it.
#[derive(Clone, Debug, Serialize)]
pub struct LimitInfo {
    pub target: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget: Option<String>,
    /// `refuse` (429 budget_exhausted) or `ask` (held for a person).
    pub on_exhaust: &'static str,
}

fn info(row: &LimitRow) -> LimitInfo {
    LimitInfo {
        target: row.target.clone(),
        rate: row.rate.map(|r| r.to_string()),
        budget: row.budget.map(|b| b.to_string()),
        on_exhaust: if row.ask { "ask" } else { "refuse" },
    }
}

impl Vault {
    /// Sets (or replaces) the limit on `target`.
    pub fn limit_set(
        &self,
        target: &LimitTarget,
        rate: Option<Per>,
        budget: Option<Per>,
        ask: bool,
    ) -> Result<LimitInfo> {
        if rate.is_none() && budget.is_none() {
            return Err(Error::invalid("pass --rate N/PERIOD and/or --budget N/PERIOD"));
        }
        if ask && budget.is_none() {
            return Err(Error::invalid("--on-exhaust ask applies to a --budget"));
        }
        self.store.write(|tx| {
            let exists = match target {
                LimitTarget::Capability(id) => {
                    self.registry.capability(id).is_some() || tx.get::<CapabilityRow>(id)?.is_some()
                }
                LimitTarget::Credential(id) => tx.get::<CredentialRow>(id)?.is_some(),
                LimitTarget::Agent(name) => {
                    tx.list::<AgentRow>()?.iter().any(|a| a.name == *name && a.revoked_ms.is_none() && !a.session)
                }
            };
            if !exists {
                return Err(Error::not_found(
                    "limit target",
                    target.key(),
                    "see `aivault capability list`, `credential list`, `agent list`",
                ));
            }
            let row = LimitRow { target: target.key(), rate, budget, ask, created_ms: now_ms() };
            tx.put(&row.target, &row)?;
            let what = [rate.map(|r| format!("rate {r}")), budget.map(|b| format!("budget {b}"))];
            let detail = what.into_iter().flatten().collect::<Vec<_>>().join(", ");
            record(tx, AuditEvent::new("limit.set").detail(format!("{}: {detail}", row.target)))?;
            Ok(info(&row))
        })
    }

    pub fn limit_list(&self) -> Result<Vec<LimitInfo>> {
        let mut rows = self.store.read(|tx| tx.list::<LimitRow>())?;
        rows.sort_by(|a, b| a.target.cmp(&b.target));
        Ok(rows.iter().map(info).collect())
    }

    pub fn limit_remove(&self, target: &LimitTarget) -> Result<()> {
        self.store.write(|tx| {
            if !tx.delete::<LimitRow>(&target.key())? {
                return Err(Error::not_found("limit", target.key(), "list them with `aivault limit list`"));
            }
            record(tx, AuditEvent::new("limit.remove").detail(target.key()))
        })
    }
}
