//! Agent identities: random tokens shown once, stored as SHA-256, carrying a workspace and group.

use serde::Serialize;

use super::secrets::check_name;
use super::{Vault, record};
use crate::audit::AuditEvent;
use crate::crypto;
use crate::error::{Error, Result};
use crate::scope::Context;
use crate::secret::SecretString;
use crate::store::AgentRow;
use crate::time::{now_ms, rfc3339};

#[derive(Debug, Serialize)]
pub struct AgentInfo {
    pub id: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workspace_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
    pub status: &'static str,
    pub session: bool,
    /// Capabilities it may use (empty: everything its scope resolves).
    pub grants: Vec<String>,
    pub created_at: String,
}

/// A new agent with its token. The token exists only in this value and the agent's hands.
pub struct AgentCreated {
    pub info: AgentInfo,
    pub token: SecretString,
}

impl Vault {
    /// Creates an agent (or a `run` session) and returns its token once.
    pub fn agent_create(&self, name: &str, ctx: Context, session: bool, grants: &[String]) -> Result<AgentCreated> {
        let mut created = self.agents_create(&[name], ctx, session, grants)?;
        created.pop().ok_or_else(|| Error::Internal("no agent was created".to_owned()))
    }

    /// Creates agents (or sessions) with one context and grants in one transaction, each with its
    /// own token. Names are checked against the active agents once, not once per agent.
    pub fn agents_create(
        &self,
        names: &[&str],
        ctx: Context,
        session: bool,
        grants: &[String],
    ) -> Result<Vec<AgentCreated>> {
        let grants = self.check_grants(grants)?;
        let mut made = Vec::with_capacity(names.len());
        for name in names {
            check_name("agent name", name)?;
            let token = SecretString::new(crypto::random_token("avt_")?);
            let row = AgentRow {
                id: crypto::random_id("agt_")?,
                name: (*name).to_owned(),
                token_sha256: crypto::sha256_hex(token.expose().as_bytes()),
                context: ctx.clone(),
                created_ms: now_ms(),
                revoked_ms: None,
                session,
                grants: grants.clone(),
            };
            made.push((row, token));
        }
        self.store.write(|tx| {
            if !session {
                let mut taken: std::collections::HashSet<String> = tx
                    .list::<AgentRow>()?
                    .into_iter()
                    .filter(|a| a.revoked_ms.is_none() && !a.session)
                    .map(|a| a.name)
                    .collect();
                for (row, _) in &made {
                    if !taken.insert(row.name.clone()) {
                        return Err(Error::Conflict(format!(
                            "an active agent named {} exists; revoke it first",
                            row.name
                        )));
                    }
                }
            }
            for (row, _) in &made {
                tx.put(&row.id, row)?;
                tx.put_agent_token(&row.token_sha256, &row.id)?;
                let kind = if session { "agent.session" } else { "agent.create" };
                let mut e = AuditEvent::new(kind).detail(format!("{} ({})", row.name, row.context));
                e.agent = Some(row.name.clone());
                record(tx, e)?;
            }
            Ok(())
        })?;
        Ok(made.into_iter().map(|(row, token)| AgentCreated { info: agent_info(&row), token }).collect())
    }

    pub fn agents_list(&self) -> Result<Vec<AgentInfo>> {
        let mut rows = self.store.read(|tx| tx.list::<AgentRow>())?;
        rows.retain(|a| !a.session);
        rows.sort_by(|a, b| (&a.name, a.created_ms).cmp(&(&b.name, b.created_ms)));
        Ok(rows.iter().map(agent_info).collect())
    }

    /// The active (non-session) agent called `name`.
    pub fn agent_by_name(&self, name: &str) -> Result<AgentInfo> {
        let rows = self.store.read(|tx| tx.list::<AgentRow>())?;
        rows.iter()
            .find(|a| a.name == name && a.revoked_ms.is_none() && !a.session)
            .map(agent_info)
            .ok_or_else(|| Error::not_found("agent", name, "create one with `aivault agent create NAME`"))
    }

    /// Revokes an agent: its token stops working at the next request, even inside open tunnels.
    pub fn agent_revoke(&self, name_or_id: &str) -> Result<AgentInfo> {
        self.store.write(|tx| {
            let mut row = tx
                .list::<AgentRow>()?
                .into_iter()
                .find(|a| (a.name == name_or_id || a.id == name_or_id) && a.revoked_ms.is_none())
                .ok_or_else(|| Error::not_found("agent", name_or_id, "list agents with `aivault agent list`"))?;
            row.revoked_ms = Some(now_ms());
            tx.put(&row.id.clone(), &row)?;
            tx.delete_agent_token(&row.token_sha256)?;
            let mut e = AuditEvent::new("agent.revoke").detail(row.name.clone());
            e.agent = Some(row.name.clone());
            record(tx, e)?;
            Ok(agent_info(&row))
        })
    }

    /// Adds (`add`) or removes grants of an active agent; returns it.
    pub fn agent_grants(&self, name: &str, patterns: &[String], add: bool) -> Result<AgentInfo> {
        let patterns = if add { self.check_grants(patterns)? } else { patterns.to_vec() };
        self.store.write(|tx| {
            let mut row = tx
                .list::<AgentRow>()?
                .into_iter()
                .find(|a| a.name == name && a.revoked_ms.is_none() && !a.session)
                .ok_or_else(|| Error::not_found("agent", name, "list agents with `aivault agent list`"))?;
            for p in &patterns {
                if add && !row.grants.contains(p) {
                    row.grants.push(p.clone());
                } else if !add {
                    row.grants.retain(|g| g != p);
                }
            }
            tx.put(&row.id.clone(), &row)?;
            let kind = if add { "agent.grant" } else { "agent.ungrant" };
            let mut e = AuditEvent::new(kind).detail(patterns.join(", "));
            e.agent = Some(row.name.clone());
            record(tx, e)?;
            Ok(agent_info(&row))
        })
    }

    /// Grants name an existing capability or a provider (`provider/*`).
    fn check_grants(&self, grants: &[String]) -> Result<Vec<String>> {
        let custom = self.store.read(|tx| tx.list::<crate::store::CapabilityRow>())?;
        let mut out = Vec::new();
        for g in grants {
            let known = match g.strip_suffix("/*") {
                Some(provider) => {
                    self.registry.provider(provider).is_some() || custom.iter().any(|c| c.provider == provider)
                }
                None => self.registry.capability(g).is_some() || custom.iter().any(|c| c.id == *g),
            };
            if !known {
                return Err(Error::invalid(format!(
                    "--allow {g}: no such capability or provider; see `aivault capability list` (a provider is PROVIDER/*)"
                )));
            }
            if !out.contains(g) {
                out.push(g.clone());
            }
        }
        Ok(out)
    }

    /// Placeholder variables for an agent in `ctx` with `grants`: (the secret names of every
    /// registry provider it can use, every registry secret name). SDKs that refuse to start
    /// without an API key get a placeholder; real values of the others are removed from the child.
    pub fn placeholder_vars(&self, ctx: &Context, grants: &[String]) -> Result<(Vec<String>, Vec<String>)> {
        let reader = crate::scope::Scope::from_args(None, ctx.workspace_id.as_deref(), ctx.group_id.as_deref())?;
        let creds = self.store.read(|tx| tx.list::<crate::store::CredentialRow>())?;
        let mut usable = Vec::new();
        let mut all = Vec::new();
        for p in self.registry.providers() {
            let names = p.def.vault_secrets.keys().chain(p.def.optional_vault_secrets.keys());
            all.extend(names.cloned());
            let served = creds.iter().any(|c| c.provider == p.id() && c.scope.readable_from(&reader));
            let granted = p.rules.iter().any(|r| crate::policy::granted(grants, r));
            if served && granted {
                usable.extend(p.def.vault_secrets.keys().cloned());
            }
        }
        for list in [&mut usable, &mut all] {
            list.sort();
            list.dedup();
        }
        Ok((usable, all))
    }

    /// Deletes a `run` session when its child exits.
    pub fn agent_session_end(&self, id: &str) -> Result<()> {
        self.store.write(|tx| {
            if let Some(row) = tx.get::<AgentRow>(id)? {
                tx.delete::<AgentRow>(id)?;
                tx.delete_agent_token(&row.token_sha256)?;
                tx.bump_generation()?;
            }
            Ok(())
        })
    }
}

fn agent_info(a: &AgentRow) -> AgentInfo {
    AgentInfo {
        id: a.id.clone(),
        name: a.name.clone(),
        workspace_id: a.context.workspace_id.clone(),
        group_id: a.context.group_id.clone(),
        status: if a.revoked_ms.is_some() { "revoked" } else { "active" },
        session: a.session,
        grants: a.grants.clone(),
        created_at: rfc3339(a.created_ms),
    }
}
