//! The compiled snapshot the request pipeline reads, and credential resolution over it.
//!
//! Architecture invariant: nothing per request touches the store. A `Snapshot` is built once from
//! one read transaction (policy compiled, credentials indexed, secrets still sealed) and swapped
//! atomically when the management generation changes.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::Vault;
use crate::auth::{Material, Strategy};
use crate::crypto::{self, MasterKey};
use crate::error::{Error, Result};
use crate::policy::limit::{Exceeded, Limiter};
use crate::policy::{Denial, HostPattern, Policy, Rule};
use crate::refusal::{ErrorCode, Refusal};
use crate::registry::Registry;
use crate::scope::{self, BindingCandidate, Context, CredentialCandidate, Level, Resolved};
use crate::store::{AgentRow, AttachmentRow, BindingRow, CapabilityRow, CredentialRow, SecretRow};

/// Per-capability facts the pipeline needs beyond its allow-list.
#[derive(Clone, Debug)]
pub struct CapabilityMeta {
    pub provider: String,
    /// A custom capability may name the one credential it uses.
    pub credential: Option<String>,
}

/// An immutable, compiled view of vault state.
pub struct Snapshot {
    pub generation: u64,
    /// How long reading the store and building this snapshot took.
    pub build_time: std::time::Duration,
    pub policy: Policy,
    capabilities: HashMap<String, CapabilityMeta>,
    credentials: HashMap<String, Cred>,
    by_provider: HashMap<String, Vec<String>>,
    bindings: HashMap<String, Vec<BindingRow>>,
    attachments: HashSet<(String, String, String)>,
    /// Secrets by id, each with its seal's additional data (ids only) built once.
    secrets: HashMap<String, (SecretRow, Vec<u8>)>,
    agents: HashMap<String, AgentRow>,
    /// Providers whose strategy puts the secret in the path, so the agent's placeholder segment
    /// is stripped before matching.
    path_auth: HashMap<String, Arc<Strategy>>,
    ca_name: Option<String>,
    registry: &'static Registry,
    /// Decided approvals by id, and standing allowances by (agent, capability) → until.
    approvals: HashMap<String, crate::store::ApprovalRow>,
    allowances: HashMap<(String, String), u64>,
    /// Live limit state per target kind (`agent`, `capability`, `credential`) and id, so a
    /// request looks its limits up without building a key.
    limiters: [HashMap<String, Arc<Limiter>>; 3],
    /// Values of external secrets, fetched on demand and kept for their TTL (carried over from
    /// one snapshot to the next, like the limiters).
    external: Arc<super::external::ExternalCache>,
    /// The material of credentials opened for recent requests (bounded; see `service::opened`).
    opened: super::opened::Opened,
}

/// A credential as the snapshot holds it: its row, its hosts parsed, its strategy compiled.
struct Cred {
    row: CredentialRow,
    hosts: Vec<HostPattern>,
    /// `None` when the stored strategy does not compile (a damaged row): it never serves.
    strategy: Option<Arc<Strategy>>,
}

const LIMIT_KINDS: [&str; 3] = ["agent", "capability", "credential"];

/// A person's decision on a held request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decided {
    Allowed,
    Denied(Option<String>),
}

/// What step 2 chose, before anything is decrypted.
#[derive(Clone, Debug)]
pub enum Pick {
    Credential {
        id: String,
        level: Level,
    },
    /// A capability binding: its secret, injected with the strategy of `origin`.
    Binding {
        capability: String,
        provider: String,
        secret_id: String,
        level: Level,
        auth: Arc<Strategy>,
        origin: String,
        field: String,
    },
}

impl Pick {
    pub fn level(&self) -> Level {
        match self {
            Pick::Credential { level, .. } | Pick::Binding { level, .. } => *level,
        }
    }

    /// The credential id (or `binding:<capability>@<origin>`), never a value. Borrowed for a
    /// credential, so the per-request limit check allocates nothing.
    pub fn credential_label(&self) -> std::borrow::Cow<'_, str> {
        match self {
            Pick::Credential { id, .. } => std::borrow::Cow::Borrowed(id),
            Pick::Binding { capability, origin, .. } => format!("binding:{capability}@{origin}").into(),
        }
    }
}

/// The capability that serves a request and what it resolved to.
#[derive(Clone, Debug)]
pub struct Selection<'a> {
    pub rule: &'a Rule,
    /// The path the capability matched (without a path-auth placeholder segment).
    pub match_path: &'a str,
    pub pick: Pick,
}

#[derive(Clone)]
struct Tried<'a> {
    rule: &'a Rule,
    match_path: &'a str,
    pick: Option<Pick>,
}

/// What `select` decides on: the destination and the request line (path without query).
#[derive(Clone, Copy, Debug)]
pub struct RequestLine<'r, 'p> {
    pub host: &'r str,
    pub port: u16,
    pub method: &'r str,
    pub path: &'p str,
}

/// One capability `select` considered, for `explain`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Considered {
    pub capability: String,
    pub prefix: String,
    /// The credential and level it resolved to, or why it could not serve.
    pub outcome: String,
    pub chosen: bool,
}

/// The credential chosen for a request, with its decrypted material.
pub struct ResolvedCredential {
    pub credential_id: String,
    pub provider: String,
    pub auth: Arc<Strategy>,
    pub level: Level,
    /// The secrets read, with the version each was at (OAuth token state follows these).
    pub secrets: Vec<(String, u32)>,
    /// Shared with the snapshot's opened cache (zeroized when the last holder drops it).
    pub material: Arc<Material>,
}

impl std::fmt::Debug for ResolvedCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResolvedCredential")
            .field("credential_id", &self.credential_id)
            .field("provider", &self.provider)
            .field("auth", &self.auth.kind())
            .field("level", &self.level)
            .finish_non_exhaustive()
    }
}

impl Vault {
    /// Builds a snapshot from one read transaction.
    pub fn snapshot(&self) -> Result<Snapshot> {
        Snapshot::load(&self.store, self.registry)
    }
}

impl Snapshot {
    /// Builds a snapshot from one read transaction of `store`. Needs no key: secrets stay sealed.
    pub fn load(store: &crate::store::Store, registry: &'static Registry) -> Result<Snapshot> {
        let started = std::time::Instant::now();
        store
            .read(|tx| {
                let generation = tx.meta("generation")?.and_then(|g| g.parse().ok()).unwrap_or(0);
                let mut rules: Vec<Rule> = Vec::new();
                let mut capabilities = HashMap::new();
                for p in registry.providers() {
                    for rule in &p.rules {
                        rules.push(rule.clone());
                        capabilities
                            .insert(rule.id.clone(), CapabilityMeta { provider: p.id().to_owned(), credential: None });
                    }
                }
                for c in tx.list::<CapabilityRow>()? {
                    if let Ok(rule) = Rule::new(&c.id, &c.provider, &c.hosts, &c.methods, &c.path_prefixes)
                        .map(|r| r.with_http(c.allow_http).with_approval(c.approval).custom())
                    {
                        rules.push(rule);
                        capabilities
                            .insert(c.id.clone(), CapabilityMeta { provider: c.provider, credential: c.credential });
                    }
                }
                let mut credentials = HashMap::new();
                let mut by_provider: HashMap<String, Vec<String>> = HashMap::new();
                for c in tx.list::<CredentialRow>()? {
                    let hosts = c.hosts.iter().filter_map(|h| HostPattern::parse(h).ok()).collect();
                    by_provider.entry(c.provider.clone()).or_default().push(c.id.clone());
                    let strategy = match Strategy::compile(&c.auth) {
                        Ok(s) => Some(Arc::new(s)),
                        Err(e) => {
                            tracing::warn!(credential = %c.id, error = %e, "stored strategy does not compile; the credential cannot serve");
                            None
                        }
                    };
                    credentials.insert(c.id.clone(), Cred { row: c, hosts, strategy });
                }
                let mut bindings: HashMap<String, Vec<BindingRow>> = HashMap::new();
                for b in tx.list::<BindingRow>()? {
                    bindings.entry(b.capability.clone()).or_default().push(b);
                }
                let attachments = tx
                    .list::<AttachmentRow>()?
                    .into_iter()
                    .map(|a| (a.secret_id, a.workspace_id, a.group_id))
                    .collect();
                let mut path_auth = HashMap::new();
                for p in registry.providers() {
                    if p.strategy.is_path() {
                        path_auth.insert(p.id().to_owned(), p.strategy.clone());
                    }
                }
                for c in credentials.values() {
                    if let Some(s) = c.strategy.as_ref().filter(|s| s.is_path()) {
                        path_auth.insert(c.row.provider.clone(), s.clone());
                    }
                }
                let ca_name = tx.get::<crate::store::CaRow>("root")?.map(|c| c.common_name);
                let secrets = tx
                    .list::<SecretRow>()?
                    .into_iter()
                    .map(|s| {
                        let aad = super::secret_aad(&s);
                        (s.id.clone(), (s, aad))
                    })
                    .collect();
                let agents = tx.list::<AgentRow>()?.into_iter().map(|a| (a.token_sha256.clone(), a)).collect();
                let mut limiters: [HashMap<String, Arc<Limiter>>; 3] = Default::default();
                for l in tx.list::<crate::store::LimitRow>()? {
                    let Some((kind, id)) = l.target.split_once(':') else { continue };
                    if let Some(i) = LIMIT_KINDS.iter().position(|k| *k == kind) {
                        limiters[i].insert(id.to_owned(), Arc::new(Limiter::new(l.rate, l.budget).asking(l.ask)));
                    }
                }
                let mut approvals = HashMap::new();
                let mut allowances: HashMap<(String, String), u64> = HashMap::new();
                for a in tx.list::<crate::store::ApprovalRow>()? {
                    if let Some(until) = a.until_ms {
                        let slot = allowances.entry((a.agent.clone(), a.capability.clone())).or_default();
                        *slot = (*slot).max(until);
                    }
                    if a.status != "pending" {
                        approvals.insert(a.id.clone(), a);
                    }
                }
                Ok(Snapshot {
                    build_time: started.elapsed(),
                    approvals,
                    allowances,
                    limiters,
                    external: Arc::default(),
                    opened: Default::default(),
                    generation,
                    policy: Policy::new(rules),
                    capabilities,
                    credentials,
                    by_provider,
                    bindings,
                    attachments,
                    secrets,
                    agents,
                    path_auth,
                    ca_name,
                    registry,
                })
            })
            .map_err(Error::from)
    }

    pub fn capability(&self, id: &str) -> Option<(&Rule, &CapabilityMeta)> {
        Some((self.policy.rule(id)?, self.capabilities.get(id)?))
    }

    /// The agent holding a token, if it exists and is not revoked.
    pub fn agent_by_token(&self, token: &str) -> Option<&AgentRow> {
        self.agent_by_hash(&crypto::sha256_hex(token.as_bytes()))
    }

    /// The agent whose token hashes to `hash`, if it exists and is not revoked.
    pub fn agent_by_hash(&self, hash: &str) -> Option<&AgentRow> {
        self.agents.get(hash).filter(|a| a.revoked_ms.is_none())
    }

    /// Checks the limits on the agent, the capability and the credential serving a request.
    /// `Ok(true)`: an exhausted budget that asks a person (the request is held).
    pub fn check_limits(&self, agent: &str, capability: &str, credential: &str, now_ms: u64) -> Result<bool, Refusal> {
        let mut ask = false;
        for (i, id) in [agent, capability, credential].into_iter().enumerate() {
            let Some(limiter) = self.limiters[i].get(id) else { continue };
            let key = format_args!("{} {id}", LIMIT_KINDS[i]);
            match limiter.check(now_ms) {
                Ok(()) => {}
                Err(Exceeded::Rate { retry_after_secs }) => {
                    let why = format!("{key} allows {}", limiter.rate.map(|r| r.to_string()).unwrap_or_default());
                    return Err(Refusal::new(ErrorCode::RateLimited, why).retry_after(retry_after_secs));
                }
                Err(Exceeded::Budget { .. }) if limiter.ask => ask = true,
                Err(Exceeded::Budget { retry_after_secs }) => {
                    let why = format!(
                        "{key} has used its budget of {}",
                        limiter.budget.map(|b| b.to_string()).unwrap_or_default()
                    );
                    return Err(Refusal::new(ErrorCode::BudgetExhausted, why).retry_after(retry_after_secs));
                }
            }
        }
        Ok(ask)
    }

    /// The decision on a held request, once a person made it.
    pub fn decided(&self, id: &str) -> Option<Decided> {
        let a = self.approvals.get(id)?;
        match a.status.as_str() {
            "allowed" => Some(Decided::Allowed),
            "denied" => Some(Decided::Denied(a.reason.clone())),
            _ => Some(Decided::Denied(Some("it expired".to_owned()))),
        }
    }

    /// Whether an earlier "allow for N minutes" still covers `agent` on `capability`.
    pub fn allowance(&self, agent: &str, capability: &str, now_ms: u64) -> bool {
        self.allowances.get(&(agent.to_owned(), capability.to_owned())).is_some_and(|until| *until > now_ms)
    }

    /// Keeps the counters of limits whose spec did not change (a reload must not reset them).
    pub fn adopt_limiters(&mut self, previous: &Snapshot) {
        self.external = previous.external.clone();
        for (mine, theirs) in self.limiters.iter_mut().zip(&previous.limiters) {
            for (id, limiter) in mine.iter_mut() {
                if let Some(old) = theirs.get(id) {
                    if old.same_spec(limiter) {
                        *limiter = old.clone();
                    }
                }
            }
        }
    }

    /// The limits on the same targets `check_limits` checks (for `explain`; the counters live in
    /// each running proxy).
    pub fn limits_for(&self, agent: &str, capability: &str, credential: &str) -> Vec<String> {
        [agent, capability, credential]
            .into_iter()
            .enumerate()
            .filter_map(|(i, id)| {
                let l = self.limiters[i].get(id)?;
                let rate = l.rate.map(|r| format!("rate {r}"));
                let budget = l.budget.map(|b| format!("budget {b}"));
                let what = [rate, budget].into_iter().flatten().collect::<Vec<_>>().join("; ");
                Some(format!("{}:{id}: {what}", LIMIT_KINDS[i]))
            })
            .collect()
    }

    /// The CA subject the store holds now (a change means `ca rotate` ran).
    pub fn ca_name(&self) -> Option<&str> {
        self.ca_name.as_deref()
    }

    /// Picks the credential for capability `cap_id` serving `host:port` in `ctx`, then decrypts
    /// its material with `key`.
    pub fn resolve(
        &self,
        key: &MasterKey,
        cap_id: &str,
        host: &str,
        port: u16,
        ctx: &Context,
    ) -> Result<ResolvedCredential> {
        let pick = self.pick(cap_id, host, port, ctx)?;
        self.open(key, &pick)
    }

    /// Which binding or credential serves capability `cap_id` for `host:port` in `ctx` (nothing
    /// is decrypted: `explain` and the proxy's step 2 share this).
    pub fn pick(&self, cap_id: &str, host: &str, port: u16, ctx: &Context) -> Result<Pick> {
        let (_, meta) = self
            .capability(cap_id)
            .ok_or_else(|| Error::not_found("capability", cap_id, "list them with `aivault capability list`"))?;
        let serves_host = |c: &&Cred| c.hosts.iter().any(|h| h.matches(host, port));
        let candidates: Vec<&Cred> = match &meta.credential {
            Some(id) => self.credentials.get(id).into_iter().filter(serves_host).collect(),
            None => self
                .by_provider
                .get(&meta.provider)
                .into_iter()
                .flatten()
                .filter_map(|id| self.credentials.get(id))
                .filter(serves_host)
                .collect(),
        };
        let cand: Vec<CredentialCandidate<'_>> = candidates
            .iter()
            .map(|c| CredentialCandidate {
                id: &c.row.id,
                scope: &c.row.scope,
                secret_ids: c.row.secrets.values().map(String::as_str).collect(),
                exact_host: c.hosts.iter().any(|h| !h.is_wildcard() && h.matches(host, port)),
                manual: c.row.origin == crate::store::Origin::Manual,
            })
            .collect();
        let bind: Vec<BindingCandidate<'_>> = self
            .bindings
            .get(cap_id)
            .into_iter()
            .flatten()
            .map(|b| BindingCandidate { secret_id: &b.secret_id, scope: &b.scope })
            .collect();
        let attached = |secret: &str| match (&ctx.workspace_id, &ctx.group_id) {
            (Some(w), Some(g)) => self.attachments.contains(&(secret.to_owned(), w.clone(), g.clone())),
            _ => false,
        };
        match scope::resolve(ctx, &bind, &cand, &attached)? {
            Resolved::Credential { id, level } => Ok(Pick::Credential { id: id.to_owned(), level }),
            Resolved::Binding { secret_id, level } => {
                // The binding supplies the secret; the strategy comes from the registry or from the
                // credential that would otherwise serve this context.
                let template = match self.registry.provider(&meta.provider) {
                    Some(p) => Some((p.strategy.clone(), meta.provider.clone())),
                    None => scope::resolve(ctx, &[], &cand, &attached)
                        .ok()
                        .and_then(|r| match r {
                            Resolved::Credential { id, .. } => self.credentials.get(id),
                            Resolved::Binding { .. } => None,
                        })
                        .or_else(|| candidates.first().copied())
                        .and_then(|c| Some((c.strategy.clone()?, c.row.id.clone()))),
                };
                let (auth, origin) = template.ok_or_else(|| Error::Denied {
                    code: crate::refusal::ErrorCode::NoCredential,
                    message: format!("capability {cap_id} has a binding but no credential defines how to inject it"),
                })?;
                let field = match self.registry.provider(&meta.provider) {
                    Some(p) if p.def.vault_secrets.len() == 1 => p.def.vault_secrets.values().next().cloned(),
                    _ => None,
                };
                Ok(Pick::Binding {
                    capability: cap_id.to_owned(),
                    provider: meta.provider.clone(),
                    secret_id: secret_id.to_owned(),
                    level,
                    auth,
                    origin,
                    field: field.unwrap_or_else(|| "secret".to_owned()),
                })
            }
        }
    }

    /// The strategy a pick would inject with (nothing decrypted).
    pub fn auth_of<'a>(&'a self, pick: &'a Pick) -> Option<&'a Strategy> {
        match pick {
            Pick::Credential { id, .. } => self.credentials.get(id).and_then(|c| c.strategy.as_deref()),
            Pick::Binding { auth, .. } => Some(auth),
        }
    }

    /// A secret's value: opened from its seal, or fetched (cached) from its external source. An
    /// external failure is its own error (naming the source); `None` is "did not open".
    fn plaintext(
        &self,
        key: &MasterKey,
        (secret, aad): &(SecretRow, Vec<u8>),
    ) -> std::result::Result<crate::secret::SecretBytes, Option<Error>> {
        match &secret.source {
            Some(source) => self.external.get(&secret.id, source).map_err(|why| {
                Some(Error::Denied {
                    code: crate::refusal::ErrorCode::CredentialUnavailable,
                    message: format!("secret {} comes from {source}, which failed: {why}", secret.name),
                })
            }),
            None => crypto::open(key, aad, &secret.sealed).map_err(|_| None),
        }
    }

    /// The material of `fields` (field name → secret id), from the opened cache under
    /// `cache_key` when every secret is `sealed` in the vault (a snapshot's sealed values never
    /// change). A secret from an external source is fetched through its own cache, which keeps
    /// its TTL, so such material is built per request.
    fn material<'f>(
        &self,
        key: &MasterKey,
        cache_key: &str,
        sealed: bool,
        fields: impl Iterator<Item = (&'f str, &'f str)>,
        owner: &str,
    ) -> Result<Arc<Material>> {
        let build = || -> Result<Arc<Material>> {
            let mut material = Material::default();
            for (field, secret_id) in fields {
                let entry = self.secrets.get(secret_id).ok_or_else(|| unavailable(owner))?;
                let plain = self.plaintext(key, entry).map_err(|why| why.unwrap_or_else(|| unavailable(owner)))?;
                material.add(field, &plain);
            }
            Ok(Arc::new(material))
        };
        if sealed { self.opened.get_or_insert(cache_key, str::to_owned, build) } else { build() }
    }

    /// Drops opened material that idled out (the cache does so itself only while it is used).
    pub fn expire_opened(&self) {
        self.opened.expire();
    }

    /// Credentials (and bindings) whose opened material is held now.
    pub fn opened_entries(&self) -> u64 {
        self.opened.entries()
    }

    /// Decrypts what `pick` chose (or takes it from the opened cache).
    pub fn open(&self, key: &MasterKey, pick: &Pick) -> Result<ResolvedCredential> {
        match pick {
            Pick::Credential { id, level } => {
                let cred = self.credentials.get(id).ok_or_else(|| unavailable(id))?;
                let (row, strategy) = (&cred.row, cred.strategy.clone().ok_or_else(|| unavailable(id))?);
                let mut secrets = Vec::with_capacity(row.secrets.len());
                let mut sealed = true;
                for secret_id in row.secrets.values() {
                    let (secret, _) = self.secrets.get(secret_id).ok_or_else(|| unavailable(&row.id))?;
                    secrets.push((secret.id.clone(), secret.version));
                    sealed &= secret.source.is_none();
                }
                let fields = row.secrets.iter().map(|(f, s)| (f.as_str(), s.as_str()));
                let material = self.material(key, &row.id, sealed, fields, &row.id)?;
                Ok(ResolvedCredential {
                    credential_id: row.id.clone(),
                    provider: row.provider.clone(),
                    auth: strategy,
                    level: *level,
                    secrets,
                    material,
                })
            }
            Pick::Binding { capability, provider, secret_id, level, auth, origin, field } => {
                let (secret, _) = self.secrets.get(secret_id).ok_or_else(|| unavailable(secret_id))?;
                // Not a credential id (those have no NUL): the two never share an entry.
                let cache_key = format!("binding\0{secret_id}\0{field}");
                let field = std::iter::once((field.as_str(), secret_id.as_str()));
                let material = self.material(key, &cache_key, secret.source.is_none(), field, secret_id)?;
                Ok(ResolvedCredential {
                    credential_id: format!("binding:{capability}@{origin}"),
                    provider: provider.clone(),
                    auth: auth.clone(),
                    level: *level,
                    secrets: vec![(secret.id.clone(), secret.version)],
                    material,
                })
            }
        }
    }

    /// Steps 1 and 2 as one decision: every capability that allows the request, most specific
    /// first, and the first whose credential resolves for `ctx` serves it. `trace` (for
    /// `explain`) receives every capability considered and what became of it.
    pub fn select<'a>(
        &'a self,
        req: &RequestLine<'_, 'a>,
        ctx: &Context,
        grants: &[String],
        mut trace: Option<&mut Vec<Considered>>,
    ) -> Result<Selection<'a>, Refusal> {
        let RequestLine { host, port, method, path } = *req;
        let found = self.matching(host, port, method, path)?;
        let mut tried = Vec::new();
        let mut not_granted = Vec::new();
        for (rule, prefix, match_path) in found {
            if !crate::policy::granted(grants, rule) {
                if let Some(t) = trace.as_deref_mut() {
                    t.push(Considered {
                        capability: rule.id.clone(),
                        prefix: prefix.to_owned(),
                        outcome: "not granted to this agent".to_owned(),
                        chosen: false,
                    });
                }
                not_granted.push(rule.id.as_str());
                continue;
            }
            let outcome = self.pick(&rule.id, host, port, ctx);
            if let Some(t) = trace.as_deref_mut() {
                t.push(Considered {
                    capability: rule.id.clone(),
                    prefix: prefix.to_owned(),
                    chosen: outcome.is_ok() && !t.iter().any(|c| c.chosen),
                    outcome: match &outcome {
                        Ok(p) => format!("{} at {} level", p.credential_label(), p.level()),
                        Err(e) => e.to_string(),
                    },
                });
            }
            match outcome {
                Ok(pick) if trace.is_none() => return Ok(Selection { rule, match_path, pick }),
                Ok(pick) => {
                    // Keep tracing the rest for `explain`; the first that resolved wins.
                    if tried.iter().all(|t: &Tried<'a>| t.pick.is_none()) {
                        tried.insert(0, Tried { rule, match_path, pick: Some(pick) });
                    }
                }
                Err(Error::Resolve(crate::scope::ResolveError::NoCredential(_))) => {
                    tried.push(Tried { rule, match_path, pick: None });
                }
                Err(e) => return Err(e.refusal()),
            }
        }
        if let Some(Tried { rule, match_path, pick: Some(pick) }) = tried.first().cloned() {
            return Ok(Selection { rule, match_path, pick });
        }
        if tried.is_empty() {
            return Err(Refusal::new(
                ErrorCode::CapabilityNotGranted,
                format!("this agent is not granted {}; grant one with `aivault agent grant`", not_granted.join(" or ")),
            ));
        }
        let names: Vec<&str> = tried.iter().map(|t| t.rule.id.as_str()).collect();
        Err(Refusal::new(
            ErrorCode::NoCredential,
            format!(
                "no credential for {} in {ctx} (searched group, workspace and global scope for {}); \
                 store the provider's secret with `aivault secrets create` in a scope this agent reads",
                names.join(", "),
                if names.len() == 1 { "it" } else { "each" }
            ),
        ))
    }

    /// The capabilities that allow a request, most specific first, with the path each matched
    /// (path-auth providers match without the agent's placeholder segment).
    fn matching<'a>(
        &'a self,
        host: &str,
        port: u16,
        method: &str,
        path: &'a str,
    ) -> Result<Vec<(&'a Rule, &'a str, &'a str)>, Refusal> {
        let (mut found, denial): (Vec<(&Rule, &str, &str)>, _) = match self.policy.matches(host, port, method, path) {
            Ok(m) => (m.into_iter().map(|(r, p)| (r, p, path)).collect(), None),
            Err(d @ Denial::CapabilityDenied { .. }) if !self.path_auth.is_empty() => (Vec::new(), Some(d)),
            Err(d) => return Err(d.refusal()),
        };
        for (provider, auth) in &self.path_auth {
            let Some(stripped) = crate::auth::inject::strip_path_placeholder(auth, path) else { continue };
            if let Ok(m) = self.policy.matches(host, port, method, stripped) {
                found.extend(m.into_iter().filter(|(r, _)| &r.provider == provider).map(|(r, p)| (r, p, stripped)));
            }
        }
        if found.is_empty() {
            return Err(denial.map_or_else(
                || Refusal::new(ErrorCode::CapabilityDenied, format!("no capability allows {method} {path}")),
                |d| d.refusal(),
            ));
        }
        Ok(found)
    }

    /// Checks a named capability for `invoke`: method and path inside its allow-list.
    pub fn check_capability(&self, cap_id: &str, method: &str, path: &str) -> Result<&Rule, Denial> {
        let Some((rule, _)) = self.capability(cap_id) else {
            return Err(Denial::CapabilityDenied {
                method: method.to_owned(),
                path: format!("(no capability {cap_id})"),
            });
        };
        let normalized = crate::policy::normalize_path(path).map_err(|reason| Denial::AmbiguousPath { reason })?;
        let m = crate::policy::canonical_method(method);
        let ok = rule.methods.iter().any(|allowed| *allowed == *m)
            && rule.path_prefixes.iter().any(|p| crate::policy::prefix_matches(p, &normalized));
        if ok { Ok(rule) } else { Err(Denial::CapabilityDenied { method: m.into_owned(), path: normalized }) }
    }

    /// Concrete hosts a credential can serve for a capability (for `invoke`, which has no CONNECT host).
    pub fn invoke_host(&self, cap_id: &str, ctx: &Context) -> Result<(String, u16)> {
        let (rule, meta) = self
            .capability(cap_id)
            .ok_or_else(|| Error::not_found("capability", cap_id, "list them with `aivault capability list`"))?;
        for h in &rule.hosts {
            if !h.is_wildcard() {
                return Ok((h.host().to_owned(), h.port()));
            }
        }
        // Wildcard capability: use the concrete host of a credential that would serve it.
        let ids: Vec<&String> = match &meta.credential {
            Some(c) => vec![c],
            None => self.by_provider.get(&meta.provider).into_iter().flatten().collect(),
        };
        for id in ids {
            if let Some(c) = self.credentials.get(id) {
                let visible = ctx.workspace_id.is_some() || c.row.scope == crate::scope::Scope::Global;
                for h in &c.hosts {
                    if visible && !h.is_wildcard() && rule.hosts.iter().any(|r| r.matches(h.host(), h.port())) {
                        return Ok((h.host().to_owned(), h.port()));
                    }
                }
            }
        }
        Err(Error::Denied {
            code: crate::refusal::ErrorCode::NoCredential,
            message: format!(
                "capability {cap_id} covers {} but no credential names a concrete host; create one with \
                 `aivault credential create ... --host <tenant host>`",
                rule.hosts.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
            ),
        })
    }
}

fn unavailable(id: &str) -> Error {
    Error::Denied {
        code: crate::refusal::ErrorCode::CredentialUnavailable,
        message: format!("credential {id} references a secret that is missing or does not decrypt"),
    }
}
