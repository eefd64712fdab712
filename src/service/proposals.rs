//! Proposals: an agent asks for credential slots and capabilities; a person approves (every
//! change in one transaction, into the proposing agent's scope) or rejects.
//!
//! The proxy creates proposals and answers their status for the agent that raised them; the CLI
//! and the console list, show, stage OAuth tokens, approve and reject. Review links are one-time
//! tokens (only their hash is stored) that open one proposal's page in the console.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use super::api::scope_fields;
use super::{CapabilitySpec, CredentialSpec, Vault, record};
use crate::audit::AuditEvent;
use crate::crypto::{self, MasterKey};
use crate::error::{Error, Result};
use crate::proposal::{self, Action, CapabilityAsk, Parsed, Slot, Status};
use crate::refusal::{ErrorCode, Refusal};
use crate::scope::Context;
use crate::secret::{SecretBytes, SecretString};
use crate::store::{CredentialRow, Location, ProposalRow, ReviewLinkRow, SecretRow, Store, WriteTx};
use crate::time::{now_ms, rfc3339};

/// How long a review link opens its page.
pub const LINK_TTL_MS: u64 = 30 * 60 * 1000;
/// Most proposals one agent may raise per minute.
const MAX_PER_MINUTE: usize = 10;

/// A proposal as people and `--json` see it: never a value.
#[derive(Clone, Debug, Serialize)]
pub struct ProposalView {
    pub id: String,
    pub status: &'static str,
    pub agent: String,
    pub scope: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workspace_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    pub credentials: Vec<SlotView>,
    pub capabilities: Vec<CapabilityAsk>,
    pub created_at: String,
    pub expires_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decided_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decided_via: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct SlotView {
    #[serde(flatten)]
    pub slot: Slot,
    /// `static` or `oauth`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// A value is ready (the agent's, or OAuth tokens connected or pasted).
    pub staged: bool,
    /// For `delete`: the secret exists in a scope the agent reads.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exists: Option<bool>,
    /// What approving this slot also removes (credentials reading the secret).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// What an approval changed.
#[derive(Clone, Debug, Serialize)]
pub struct Approved {
    pub id: String,
    pub status: &'static str,
    pub secrets_set: Vec<String>,
    pub secrets_deleted: Vec<String>,
    pub credentials_created: Vec<String>,
    pub capabilities_created: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

fn staged_aad(proposal: &str, key: &str) -> Vec<u8> {
    format!("aivault:proposal-value:v1\0{proposal}\0{key}").into_bytes()
}

fn effective(row: &ProposalRow, now: u64) -> Status {
    if row.status == Status::Pending && now >= row.expires_ms { Status::Expired } else { row.status }
}

/// Marks pending proposals past their expiry as expired (audited), inside `tx`.
fn expire_due(tx: &mut WriteTx, now: u64) -> Result<()> {
    for mut row in tx.list::<ProposalRow>()? {
        if row.status == Status::Pending && now >= row.expires_ms {
            row.status = Status::Expired;
            row.decided_ms = Some(now);
            row.staged.clear();
            tx.put(&row.id.clone(), &row)?;
            record(tx, event("proposal.expire", &row))?;
        }
    }
    Ok(())
}

fn event(kind: &str, row: &ProposalRow) -> AuditEvent {
    let mut e = AuditEvent::new(kind).detail(row.id.clone());
    e.agent = Some(row.agent.clone());
    e.workspace_id = row.context.workspace_id.clone();
    e.group_id = row.context.group_id.clone();
    e
}

/// The secret a key names, as the agent's scope reads it (its scope, its workspace, global).
fn secret_named(tx: &WriteTx, ctx: &Context, key: &str) -> Result<Option<SecretRow>> {
    match super::secret_named(tx, &ctx.own_scope(), key)? {
        Some(id) => Ok(tx.get::<SecretRow>(&id)?),
        None => Ok(None),
    }
}

fn internal(e: impl std::fmt::Display) -> Refusal {
    Refusal::new(ErrorCode::InternalError, format!("cannot record the proposal: {e}"))
}

fn invalid(field: &str, message: String) -> Refusal {
    Refusal::new(ErrorCode::InvalidProposal, message).with("field", field)
}

/// Records a new proposal from `agent` (called by the proxy, off its async threads). A refusal
/// is for the agent: a bad field, too many pending, or a failure to record.
pub fn create_at(
    path: &Location,
    lock_wait: Duration,
    key: &MasterKey,
    agent: &str,
    ctx: &Context,
    parsed: Parsed,
) -> std::result::Result<ProposalRow, Refusal> {
    let store = Store::open(path, lock_wait).map_err(internal)?;
    let outcome = store.write(|tx| -> Result<std::result::Result<ProposalRow, Refusal>> {
        let now = now_ms();
        expire_due(tx, now)?;
        let mine: Vec<ProposalRow> = tx.list::<ProposalRow>()?.into_iter().filter(|p| p.agent == agent).collect();
        let pending = mine.iter().filter(|p| p.status == Status::Pending).count();
        if pending >= proposal::MAX_PENDING_PER_AGENT {
            return Ok(Err(Refusal::new(
                ErrorCode::TooManyProposals,
                format!("agent {agent} already has {pending} pending proposals"),
            )));
        }
        let recent = mine.iter().filter(|p| p.created_ms + 60_000 > now).count();
        if recent >= MAX_PER_MINUTE {
            return Ok(Err(Refusal::new(
                ErrorCode::TooManyProposals,
                format!("agent {agent} raised {recent} proposals in the last minute"),
            )
            .retry_after(60)));
        }
        for (i, slot) in parsed.slots.iter().enumerate() {
            if slot.action == Action::Delete && secret_named(tx, ctx, &slot.key)?.is_none() {
                return Ok(Err(invalid(
                    &format!("credentials[{i}].key"),
                    format!("no secret named {} is readable from {ctx}; nothing to delete", slot.key),
                )));
            }
        }
        for (i, cap) in parsed.capabilities.iter().enumerate() {
            let in_slots = parsed.slots.iter().any(|s| s.key == cap.secret);
            if !in_slots && secret_named(tx, ctx, &cap.secret)?.is_none() {
                return Ok(Err(invalid(
                    &format!("capabilities[{i}].secret"),
                    format!("{} is neither a slot of this proposal nor a secret readable from {ctx}", cap.secret),
                )));
            }
        }
        let id = crypto::random_id("prp_")?;
        let mut staged = BTreeMap::new();
        for (i, value) in &parsed.values {
            let slot_key = &parsed.slots[*i].key;
            staged.insert(slot_key.clone(), crypto::seal(key, &staged_aad(&id, slot_key), value.expose().as_bytes())?);
        }
        let row = ProposalRow {
            id: id.clone(),
            agent: agent.to_owned(),
            context: ctx.clone(),
            message: parsed.message,
            slots: parsed.slots,
            capabilities: parsed.capabilities,
            staged,
            status: Status::Pending,
            created_ms: now,
            expires_ms: now + proposal::DEFAULT_TTL_MS,
            decided_ms: None,
            decided_via: None,
            reason: None,
        };
        tx.put(&id, &row)?;
        let keys: Vec<&str> = row.slots.iter().map(|s| s.key.as_str()).collect();
        let mut e = event("proposal.create", &row);
        e.detail = Some(format!(
            "{id}: {} slot(s) [{}], {} capability(ies)",
            keys.len(),
            keys.join(", "),
            row.capabilities.len()
        ));
        record(tx, e)?;
        Ok(Ok(row))
    });
    match outcome {
        Ok(r) => r,
        Err(e) => Err(internal(e)),
    }
}

/// A proposal's status, for the agent that raised it only (`None` for anyone else), with the
/// management generation it was read at (a proxy answers `approved` only once it serves that).
pub fn status_for_agent(path: &Location, lock_wait: Duration, agent: &str, id: &str) -> Result<Option<(Status, u64)>> {
    let store = Store::open(path, lock_wait)?;
    let (row, generation) = store.read(|tx| {
        let generation = tx.meta("generation")?.and_then(|g| g.parse().ok()).unwrap_or(0);
        Ok((tx.get::<ProposalRow>(id)?, generation))
    })?;
    Ok(row.filter(|r| r.agent == agent).map(|r| (effective(&r, now_ms()), generation)))
}

impl Vault {
    /// Marks due proposals expired and commits, so a refused decision that follows (which rolls
    /// its own transaction back) cannot undo the expiry.
    fn sweep(&self) -> Result<()> {
        self.store.write(|tx| expire_due(tx, now_ms()))
    }

    /// Proposals, pending first then newest (`all`: decided ones too).
    pub fn proposal_list(&self, all: bool) -> Result<Vec<ProposalView>> {
        self.store.write(|tx| {
            expire_due(tx, now_ms())?;
            let mut rows = tx.list::<ProposalRow>()?;
            if !all {
                rows.retain(|r| r.status == Status::Pending);
            }
            rows.sort_by_key(|r| (r.status != Status::Pending, std::cmp::Reverse(r.created_ms)));
            rows.iter().map(|r| view(tx, r)).collect()
        })
    }

    pub fn proposal_show(&self, id: &str) -> Result<ProposalView> {
        self.store.write(|tx| {
            expire_due(tx, now_ms())?;
            view(tx, &get(tx, id)?)
        })
    }

    /// Records that a person opened the proposal's page.
    pub fn proposal_viewed(&self, id: &str) -> Result<()> {
        self.store.write(|tx| {
            let row = get(tx, id)?;
            record(tx, event("proposal.view", &row))
        })
    }

    /// The value the agent put in a slot, for the person to confirm on the page (pending only).
    pub fn proposal_agent_value(&self, id: &str, key: &str) -> Result<Option<SecretBytes>> {
        let row = self.store.read(|tx| tx.get::<ProposalRow>(id))?;
        let Some(row) = row.filter(|r| effective(r, now_ms()) == Status::Pending) else { return Ok(None) };
        let agent_slot = row.slots.iter().any(|s| s.key == key && s.agent_value && !s.is_oauth());
        match row.staged.get(key).filter(|_| agent_slot) {
            Some(sealed) => Ok(Some(crypto::open(&self.key, &staged_aad(id, key), sealed)?)),
            None => Ok(None),
        }
    }

    /// Stages OAuth tokens (a token document) for an OAuth slot of a pending proposal, with the
    /// endpoints the person actually connected through.
    pub fn proposal_stage_tokens(
        &self,
        id: &str,
        key: &str,
        document: &SecretString,
        endpoints: proposal::OAuthSlot,
        why: &str,
    ) -> Result<()> {
        self.sweep()?;
        self.store.write(|tx| {
            let mut row = pending(tx, id)?;
            let Some(slot) = row.slots.iter_mut().find(|s| s.key == key && s.is_oauth() && s.action == Action::Set)
            else {
                return Err(Error::invalid(format!("proposal {id} has no oauth slot {key}")));
            };
            slot.oauth = Some(endpoints);
            let sealed = crypto::seal(&self.key, &staged_aad(id, key), document.expose().as_bytes())?;
            row.staged.insert(key.to_owned(), sealed);
            tx.put(id, &row)?;
            let mut e = event("proposal.oauth", &row);
            e.detail = Some(format!("{id}: tokens for {key} ({why})"));
            record(tx, e)
        })
    }

    /// Applies every change of a pending proposal in one transaction. `values` fill (or
    /// replace the agent's value in) static `set` slots; a slot left without a value refuses
    /// the whole approval and changes nothing.
    pub fn proposal_approve(&self, id: &str, values: &[(String, SecretBytes)], via: &str) -> Result<Approved> {
        self.sweep()?;
        self.store.write(|tx| {
            let mut row = pending(tx, id)?;
            for (k, _) in values {
                if !row.slots.iter().any(|s| s.key == *k && s.action == Action::Set && !s.is_oauth()) {
                    return Err(Error::invalid(format!("proposal {id} has no static set slot {k}")));
                }
            }
            let given = |k: &str| values.iter().find(|(n, _)| n == k).map(|(_, v)| v);
            let missing: Vec<&str> = row
                .slots
                .iter()
                .filter(|s| s.action == Action::Set && given(&s.key).is_none() && !row.staged.contains_key(&s.key))
                .map(|s| s.key.as_str())
                .collect();
            if !missing.is_empty() {
                return Err(Error::invalid(format!(
                    "proposal {id} still needs a value for {}; nothing was changed (pass --value KEY=VALUE, \
                     or connect/paste OAuth tokens on the approval page)",
                    missing.join(", ")
                )));
            }
            let scope = row.context.own_scope();
            let mut out = Approved {
                id: id.to_owned(),
                status: "approved",
                secrets_set: Vec::new(),
                secrets_deleted: Vec::new(),
                credentials_created: Vec::new(),
                capabilities_created: Vec::new(),
                warnings: Vec::new(),
            };
            for slot in &row.slots {
                match slot.action {
                    Action::Set => {
                        let value = match given(&slot.key) {
                            Some(v) => SecretBytes::new(v.expose().to_vec()),
                            None => match row.staged.get(&slot.key) {
                                Some(sealed) => crypto::open(&self.key, &staged_aad(id, &slot.key), sealed)?,
                                None => return Err(Error::invalid(format!("no value for {}", slot.key))),
                            },
                        };
                        let new = super::secrets::NewSecret {
                            name: &slot.key,
                            value: &value,
                            scope: &scope,
                            aliases: &[],
                            hosts: &[],
                            source: None,
                        };
                        let created = self.create_in_tx(tx, &new, true)?;
                        out.warnings.extend(created.warnings);
                        out.secrets_set.push(format!("{} ({})", slot.key, created.action));
                    }
                    Action::Delete => {
                        let secret = secret_named(tx, &row.context, &slot.key)?.ok_or_else(|| {
                            Error::Conflict(format!("secret {} no longer exists; reject the proposal", slot.key))
                        })?;
                        let gone = super::secrets::delete_in_tx(tx, &secret.id)?;
                        for c in &gone.removed_credentials {
                            out.warnings.push(format!("deleting {} removed credential {c}", slot.key));
                        }
                        out.secrets_deleted.push(slot.key.clone());
                    }
                }
            }
            for cap in &row.capabilities {
                let oauth = row.slots.iter().find(|s| s.key == cap.secret).and_then(|s| s.oauth.clone());
                let spec = credential_spec(cap, oauth.as_ref(), &row.context);
                self.credential_create_in_tx(tx, &spec, &scope)?;
                out.credentials_created.push(spec.id.clone());
                let cap_spec = CapabilitySpec {
                    id: cap.id.clone(),
                    provider: Some(cap.provider().to_owned()),
                    credential: Some(spec.id.clone()),
                    methods: cap.methods.clone(),
                    paths: cap.paths.clone(),
                    hosts: cap.hosts.clone(),
                    allow_http: false,
                    approval: false,
                };
                self.capability_create_in_tx(tx, &cap_spec)?;
                out.capabilities_created.push(cap.id.clone());
            }
            row.status = Status::Approved;
            row.decided_ms = Some(now_ms());
            row.decided_via = Some(via.to_owned());
            row.staged.clear();
            tx.put(id, &row)?;
            let mut e = event("proposal.approve", &row);
            e.detail = Some(format!("{id} via {via}"));
            record(tx, e)?;
            Ok(out)
        })
    }

    pub fn proposal_reject(&self, id: &str, reason: Option<String>, via: &str) -> Result<ProposalView> {
        self.sweep()?;
        self.store.write(|tx| {
            let mut row = pending(tx, id)?;
            row.status = Status::Rejected;
            row.decided_ms = Some(now_ms());
            row.decided_via = Some(via.to_owned());
            row.reason = reason;
            row.staged.clear();
            tx.put(id, &row)?;
            let mut e = event("proposal.reject", &row);
            e.detail = Some(format!("{id} via {via}"));
            record(tx, e)?;
            view(tx, &row)
        })
    }

    /// Mints a one-time review link token for a pending proposal.
    pub fn proposal_link(&self, id: &str) -> Result<String> {
        self.sweep()?;
        let token = crypto::random_token("")?;
        self.store.write(|tx| {
            let row = pending(tx, id)?;
            mint_link(tx, &token, row.id.clone(), row.expires_ms)
        })?;
        Ok(token)
    }

    /// Spends a review link: what it opens (a proposal id or `credential:<id>`), once. A used,
    /// expired or unknown link is refused.
    pub fn review_redeem(&self, token: &str) -> Result<String> {
        let hash = crypto::sha256_hex(token.as_bytes());
        self.store.write(|tx| {
            let refused = |why: &str| Error::Denied { code: ErrorCode::ProxyAuthRequired, message: why.to_owned() };
            let again = "mint a new one (`aivault proposal link ID`, `aivault oauth connect CREDENTIAL --browser`)";
            let Some(mut link) = tx.get::<ReviewLinkRow>(&hash)? else {
                return Err(refused(&format!("this link is not valid; {again}")));
            };
            let now = now_ms();
            if link.used_ms.is_some() {
                return Err(refused(&format!("this link was already used; {again}")));
            }
            if now >= link.expires_ms {
                return Err(refused(&format!("this link has expired; {again}")));
            }
            link.used_ms = Some(now);
            tx.put(&hash, &link)?;
            Ok(link.subject)
        })
    }
}

/// Stores a one-time link for `subject` (valid 30 minutes at most), dropping links past use.
pub(super) fn mint_link(tx: &mut WriteTx, token: &str, subject: String, not_after_ms: u64) -> Result<()> {
    let now = now_ms();
    for old in tx.list::<ReviewLinkRow>()? {
        if old.expires_ms < now {
            tx.delete::<ReviewLinkRow>(&old.token_sha256)?;
        }
    }
    let link = ReviewLinkRow {
        token_sha256: crypto::sha256_hex(token.as_bytes()),
        subject,
        expires_ms: (now + LINK_TTL_MS).min(not_after_ms),
        used_ms: None,
    };
    tx.put(&link.token_sha256.clone(), &link)?;
    Ok(())
}

fn get(tx: &WriteTx, id: &str) -> Result<ProposalRow> {
    tx.get::<ProposalRow>(id)?
        .ok_or_else(|| Error::not_found("proposal", id, "list them with `aivault proposal list --all`"))
}

/// The pending proposal `id` (expiry is swept first, in its own transaction: see `Vault::sweep`).
fn pending(tx: &mut WriteTx, id: &str) -> Result<ProposalRow> {
    let row = get(tx, id)?;
    if row.status != Status::Pending {
        return Err(Error::Conflict(format!("proposal {id} is already {}", row.status.as_str())));
    }
    Ok(row)
}

/// The credential a requested capability gets: named after the capability, in the agent's scope.
fn credential_spec(cap: &CapabilityAsk, oauth: Option<&proposal::OAuthSlot>, ctx: &Context) -> CredentialSpec {
    let mut spec = CredentialSpec {
        id: cap.id.replace('/', "-"),
        provider: cap.provider().to_owned(),
        secret_ref: format!("name:{}", cap.secret),
        auth: Some(cap.auth.kind.clone()),
        header_name: cap.auth.header_name.clone(),
        value_template: cap.auth.value_template.clone(),
        query_param: cap.auth.query_param.clone(),
        hosts: cap.hosts.clone(),
        workspace_id: ctx.workspace_id.clone(),
        group_id: ctx.group_id.clone(),
        ..CredentialSpec::default()
    };
    if let Some(o) = oauth {
        spec.auth = Some("oauth2".into());
        spec.grant_type = Some("refresh_token".into());
        spec.token_endpoint = Some(o.token_url.clone());
        spec.authorization_endpoint = o.authorization_url.clone();
        spec.scopes = o.scopes.clone();
        spec.client_auth = o.client_auth.clone();
    }
    spec
}

fn view(tx: &WriteTx, row: &ProposalRow) -> Result<ProposalView> {
    let (scope, workspace_id, group_id) = scope_fields(&row.context.own_scope());
    let creds = tx.list::<CredentialRow>()?;
    let mut credentials = Vec::new();
    for slot in &row.slots {
        let mut exists = None;
        let mut warnings = Vec::new();
        if slot.action == Action::Delete && row.status == Status::Pending {
            let secret = secret_named(tx, &row.context, &slot.key)?;
            exists = Some(secret.is_some());
            if let Some(s) = secret {
                for c in creds.iter().filter(|c| c.secrets.values().any(|v| *v == s.id)) {
                    warnings.push(format!(
                        "credential {} reads {}: deleting it makes requests through it fail (credential_unavailable \
                         until it is recreated)",
                        c.id, slot.key
                    ));
                }
            }
        }
        credentials.push(SlotView {
            kind: if slot.is_oauth() { "oauth" } else { "static" },
            staged: row.staged.contains_key(&slot.key),
            exists,
            warnings,
            slot: slot.clone(),
        });
    }
    Ok(ProposalView {
        id: row.id.clone(),
        status: effective(row, now_ms()).as_str(),
        agent: row.agent.clone(),
        scope,
        workspace_id,
        group_id,
        message: row.message.clone(),
        credentials,
        capabilities: row.capabilities.clone(),
        created_at: rfc3339(row.created_ms),
        expires_at: rfc3339(row.expires_ms),
        decided_at: row.decided_ms.map(rfc3339),
        decided_via: row.decided_via.clone(),
        reason: row.reason.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn config(dir: &std::path::Path) -> Config {
        Config::for_home(&dir.join("home"))
    }

    /// Raises a proposal the way the proxy does (the store is free while it writes); returns the
    /// row and the vault opened again.
    fn raise(cfg: &Config, body: &str) -> (ProposalRow, Vault) {
        let key = Vault::open(cfg).unwrap().into_key();
        let parsed = proposal::parse(body.as_bytes()).unwrap();
        let row = create_at(&cfg.store, cfg.lock_wait, &key, "bot", &Context::global(), parsed).unwrap();
        (row, Vault::open(cfg).unwrap())
    }

    #[test]
    fn a_proposal_past_its_expiry_is_expired_audited_and_cannot_be_approved() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path());
        let (row, v) = raise(&cfg, r#"{"credentials": [{"key": "K", "value": "agent-made"}]}"#);
        assert!(!row.staged.is_empty());
        v.store
            .write(|tx| {
                let mut r = get(tx, &row.id)?;
                r.expires_ms = now_ms() - 1;
                tx.put(&row.id, &r)?;
                Ok::<_, Error>(())
            })
            .unwrap();
        assert!(matches!(v.proposal_approve(&row.id, &[], "cli"), Err(Error::Conflict(m)) if m.contains("expired")));
        let stored = v.store.read(|tx| tx.get::<ProposalRow>(&row.id)).unwrap().unwrap();
        assert!(stored.staged.is_empty(), "an expired proposal drops the agent's staged value");
        let kinds: Vec<String> = v.audit(&Default::default()).unwrap().into_iter().map(|e| e.kind).collect();
        assert!(kinds.contains(&"proposal.expire".to_owned()), "{kinds:?}");
        assert!(v.proposal_link(&row.id).is_err(), "no link to a decided proposal");
        drop(v);
        assert_eq!(
            status_for_agent(&cfg.store, cfg.lock_wait, "bot", &row.id).unwrap().map(|s| s.0),
            Some(Status::Expired)
        );
        assert_eq!(status_for_agent(&cfg.store, cfg.lock_wait, "other", &row.id).unwrap(), None);
    }

    #[test]
    fn review_links_are_single_use_and_expire() {
        let dir = tempfile::tempdir().unwrap();
        let (row, v) = raise(&config(dir.path()), r#"{"credentials": [{"key": "K"}]}"#);
        let token = v.proposal_link(&row.id).unwrap();
        assert_eq!(v.review_redeem(&token).unwrap(), row.id);
        assert!(v.review_redeem(&token).unwrap_err().to_string().contains("already used"));
        assert!(v.review_redeem("forged").unwrap_err().to_string().contains("not valid"));
        let stale = crypto::random_token("").unwrap();
        v.store.write(|tx| mint_link(tx, &stale, row.id.clone(), now_ms() - 1)).unwrap();
        assert!(v.review_redeem(&stale).unwrap_err().to_string().contains("expired"));
        let links = v.store.read(|tx| tx.list::<ReviewLinkRow>()).unwrap();
        assert!(links.iter().all(|l| l.token_sha256 != token && l.token_sha256 != stale), "only hashes are stored");
    }
}
