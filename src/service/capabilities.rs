//! Capabilities (registry and custom) and capability bindings.

use super::api::{BindingInfo, CapabilityDescription, CapabilityInfo, scope_fields};
use super::{Vault, parse_secret_ref, record, secret_by_id_w, secret_ref};
use crate::audit::AuditEvent;
use crate::error::{Error, Result};
use crate::policy::{HostPattern, Rule};
use crate::scope::Scope;
use crate::store::{BindingRow, CapabilityRow, CredentialRow, SecretRow, WriteTx, keys};
use crate::time::{now_ms, rfc3339};

/// Everything `capability create` accepts.
#[derive(Clone, Debug, Default)]
pub struct CapabilitySpec {
    pub id: String,
    pub provider: Option<String>,
    pub credential: Option<String>,
    pub methods: Vec<String>,
    pub paths: Vec<String>,
    pub hosts: Vec<String>,
    /// Inject into plain `http://` requests too (off by default).
    pub allow_http: bool,
    /// Hold every request until a person allows it.
    pub approval: bool,
}

impl Vault {
    pub fn capability_create(&self, spec: &CapabilitySpec) -> Result<CapabilityInfo> {
        check_capability_id(&spec.id)?;
        if self.registry.capability(&spec.id).is_some() {
            return Err(Error::Conflict(format!("{} is a registry capability; pick another id", spec.id)));
        }
        self.store.write(|tx| self.capability_create_in_tx(tx, spec))
    }

    /// `capability_create` inside the caller's transaction (a proposal's approval).
    pub(super) fn capability_create_in_tx(&self, tx: &mut WriteTx, spec: &CapabilitySpec) -> Result<CapabilityInfo> {
        {
            if tx.get::<CapabilityRow>(&spec.id)?.is_some() {
                return Err(Error::Conflict(format!("capability {} already exists; delete it first", spec.id)));
            }
            let credential = match &spec.credential {
                Some(c) => Some(tx.get::<CredentialRow>(c)?.ok_or_else(|| {
                    Error::not_found("credential", c.as_str(), "list them with `aivault credential list`")
                })?),
                None => None,
            };
            let provider = match (&spec.provider, &credential) {
                (Some(p), Some(c)) if *p != c.provider => {
                    return Err(Error::invalid(format!(
                        "credential {} belongs to provider {}, not {p}",
                        c.id, c.provider
                    )));
                }
                (Some(p), _) => p.clone(),
                (None, Some(c)) => c.provider.clone(),
                (None, None) => return Err(Error::invalid("pass --provider or --credential")),
            };
            super::secrets::check_name("provider", &provider)?;
            let hosts = if spec.hosts.is_empty() {
                match &credential {
                    Some(c) => c.hosts.clone(),
                    None => match self.registry.provider(&provider) {
                        Some(p) => p.def.hosts.clone(),
                        None => return Err(Error::invalid("pass --host (or --credential to use its hosts)")),
                    },
                }
            } else {
                spec.hosts.clone()
            };
            let rule = Rule::new(&spec.id, &provider, &hosts, &spec.methods, &spec.paths)?;
            for h in &rule.hosts {
                if let Some(c) = &credential {
                    let within =
                        c.hosts.iter().filter_map(|x| HostPattern::parse(x).ok()).any(|outer| h.within(&outer));
                    if !within {
                        return Err(Error::invalid(format!(
                            "host {h} is outside credential {}'s hosts ({})",
                            c.id,
                            c.hosts.join(", ")
                        )));
                    }
                }
                if let Some(p) = self.registry.provider(&provider) {
                    if !p.allows_host(h) {
                        return Err(Error::invalid(format!(
                            "host {h} is outside registry provider {provider}'s hosts ({})",
                            p.def.hosts.join(", ")
                        )));
                    }
                }
            }
            let row = CapabilityRow {
                id: spec.id.clone(),
                provider,
                credential: spec.credential.clone(),
                hosts: rule.hosts.iter().map(ToString::to_string).collect(),
                methods: rule.methods.clone(),
                path_prefixes: rule.path_prefixes.clone(),
                allow_http: spec.allow_http,
                approval: spec.approval,
                created_ms: now_ms(),
            };
            tx.put(&row.id, &row)?;
            record(tx, AuditEvent::new("capability.create").capability(&row.id))?;
            let creds = tx.list::<CredentialRow>()?;
            Ok(custom_info(&row, &creds))
        }
    }

    /// Every capability: registry ones and custom ones, with ready/available status.
    pub fn capabilities_list(&self) -> Result<Vec<CapabilityInfo>> {
        self.store.write(|tx| {
            let creds = tx.list::<CredentialRow>()?;
            let mut out: Vec<CapabilityInfo> =
                tx.list::<CapabilityRow>()?.iter().map(|r| custom_info(r, &creds)).collect();
            for p in self.registry.providers() {
                let ready = creds.iter().any(|c| c.provider == p.id());
                for (def, rule) in p.def.capabilities.iter().zip(&p.rules) {
                    out.push(CapabilityInfo {
                        id: def.id.clone(),
                        provider: p.id().to_owned(),
                        description: def.description.clone(),
                        origin: "registry",
                        status: if ready { "ready" } else { "available" },
                        methods: rule.methods.clone(),
                        path_prefixes: rule.path_prefixes.clone(),
                        hosts: def.allow.hosts.clone(),
                        credential: None,
                        allow_http: false,
                    });
                }
            }
            out.sort_by(|a, b| (a.status != "ready", &a.id).cmp(&(b.status != "ready", &b.id)));
            Ok(out)
        })
    }

    pub fn capability_describe(&self, id: &str) -> Result<CapabilityDescription> {
        let info = self
            .capabilities_list()?
            .into_iter()
            .find(|c| c.id == id)
            .ok_or_else(|| Error::not_found("capability", id, "list them with `aivault capability list`"))?;
        self.store.write(|tx| {
            let creds = tx.list::<CredentialRow>()?;
            let credentials: Vec<String> = creds
                .iter()
                .filter(|c| match &info.credential {
                    Some(pinned) => &c.id == pinned,
                    None => c.provider == info.provider,
                })
                .map(|c| format!("{} ({})", c.id, c.scope))
                .collect();
            let (auth, secrets_needed) = match self.registry.provider(&info.provider) {
                Some(p) => (p.def.auth.describe(), p.def.vault_secrets.keys().cloned().collect()),
                None => (
                    creds
                        .iter()
                        .find(|c| c.provider == info.provider)
                        .map(|c| c.auth.describe())
                        .unwrap_or_else(|| "custom (no credential yet)".into()),
                    vec![],
                ),
            };
            let bindings = bindings_filtered(tx, Some(id), None)?;
            let method = if info.methods.len() == 1 { String::new() } else { format!(" --method {}", info.methods[0]) };
            let path = if info.path_prefixes.len() == 1 {
                String::new()
            } else {
                format!(" --path {}", info.path_prefixes[0])
            };
            let example = format!("aivault invoke {id}{method}{path}");
            Ok(CapabilityDescription { capability: info.clone(), auth, secrets_needed, credentials, bindings, example })
        })
    }

    pub fn capability_delete(&self, id: &str) -> Result<CapabilityInfo> {
        if self.registry.capability(id).is_some() {
            return Err(Error::invalid(format!(
                "{id} is compiled into the registry and cannot be deleted; delete its credential to disable it"
            )));
        }
        self.store.write(|tx| {
            let row = tx
                .get::<CapabilityRow>(id)?
                .ok_or_else(|| Error::not_found("capability", id, "list them with `aivault capability list`"))?;
            tx.delete::<CapabilityRow>(id)?;
            for b in tx.list::<BindingRow>()? {
                if b.capability == id {
                    tx.delete::<BindingRow>(&keys::binding(id, &b.scope))?;
                }
            }
            record(tx, AuditEvent::new("capability.delete").capability(id))?;
            let creds = tx.list::<CredentialRow>()?;
            Ok(custom_info(&row, &creds))
        })
    }

    /// Binds a capability to a specific secret at a scope (rebinding replaces the secret).
    pub fn capability_bind(&self, capability: &str, secret: &str, scope: Scope) -> Result<BindingInfo> {
        if !secret.starts_with("name:") {
            parse_secret_ref(secret)?;
        }
        self.store.write(|tx| {
            let provider = self.capability_provider(tx, capability)?;
            let secret_id = super::resolve_secret_ref(tx, secret, &scope)?;
            let row = secret_by_id_w(tx, &secret_id)?;
            if let Some(pin) = &row.pinned_provider {
                let cap_pin = self.registry.provider(&provider).map(|p| p.pin().to_owned()).unwrap_or(provider.clone());
                if *pin != cap_pin {
                    return Err(Error::Denied {
                        code: crate::refusal::ErrorCode::PinnedProvider,
                        message: format!(
                            "secret {} is pinned to provider {pin}; it cannot be bound to {capability} ({provider})",
                            row.name
                        ),
                    });
                }
            }
            if !row.scope.readable_from(&scope) {
                return Err(Error::invalid(format!(
                    "secret {} lives in {}; a binding in {scope} could not read it",
                    row.name, row.scope
                )));
            }
            let b = BindingRow {
                capability: capability.to_owned(),
                secret_id: row.id.clone(),
                scope: scope.clone(),
                created_ms: now_ms(),
            };
            tx.put(&keys::binding(capability, &scope), &b)?;
            record(
                tx,
                AuditEvent::new("capability.bind").capability(capability).secret(&row.id).detail(scope.to_string()),
            )?;
            Ok(binding_info(&b, Some(row.name)))
        })
    }

    pub fn capability_unbind(&self, capability: &str, scope: Scope) -> Result<BindingInfo> {
        self.store.write(|tx| {
            let key = keys::binding(capability, &scope);
            let b = tx.get::<BindingRow>(&key)?.ok_or_else(|| {
                Error::not_found("binding", format!("{capability} at {scope}"), "see `aivault capability bindings`")
            })?;
            tx.delete::<BindingRow>(&key)?;
            record(tx, AuditEvent::new("capability.unbind").capability(capability).detail(scope.to_string()))?;
            let name = tx.get::<SecretRow>(&b.secret_id)?.map(|s| s.name);
            Ok(binding_info(&b, name))
        })
    }

    pub fn capability_bindings(&self, capability: Option<&str>, scope: Option<&Scope>) -> Result<Vec<BindingInfo>> {
        self.store.write(|tx| bindings_filtered(tx, capability, scope))
    }

    fn capability_provider(&self, tx: &WriteTx, id: &str) -> Result<String> {
        if let Some((p, _, _)) = self.registry.capability(id) {
            return Ok(p.id().to_owned());
        }
        tx.get::<CapabilityRow>(id)?
            .map(|c| c.provider)
            .ok_or_else(|| Error::not_found("capability", id, "list them with `aivault capability list`"))
    }
}

fn bindings_filtered(tx: &WriteTx, capability: Option<&str>, scope: Option<&Scope>) -> Result<Vec<BindingInfo>> {
    let mut out = Vec::new();
    for b in tx.list::<BindingRow>()? {
        if capability.is_some_and(|c| c != b.capability) || scope.is_some_and(|s| *s != b.scope) {
            continue;
        }
        let name = tx.get::<SecretRow>(&b.secret_id)?.map(|s| s.name);
        out.push(binding_info(&b, name));
    }
    Ok(out)
}

fn binding_info(b: &BindingRow, secret_name: Option<String>) -> BindingInfo {
    let (scope, workspace_id, group_id) = scope_fields(&b.scope);
    BindingInfo {
        capability: b.capability.clone(),
        secret_ref: secret_ref(&b.secret_id),
        secret_name,
        scope,
        workspace_id,
        group_id,
        created_at: rfc3339(b.created_ms),
    }
}

fn custom_info(row: &CapabilityRow, creds: &[CredentialRow]) -> CapabilityInfo {
    let ready = match &row.credential {
        Some(c) => creds.iter().any(|x| &x.id == c),
        None => creds.iter().any(|x| x.provider == row.provider),
    };
    CapabilityInfo {
        id: row.id.clone(),
        provider: row.provider.clone(),
        description: None,
        origin: "custom",
        status: if ready { "ready" } else { "available" },
        methods: row.methods.clone(),
        path_prefixes: row.path_prefixes.clone(),
        hosts: row.hosts.clone(),
        credential: row.credential.clone(),
        allow_http: row.allow_http,
    }
}

fn check_capability_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'/'));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!("invalid capability id '{id}': use letters, digits, '/', '_', '-', '.'")))
    }
}
