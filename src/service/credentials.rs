//! Credentials: manual creation, registry auto-provisioning, listing and deletion.

use std::collections::BTreeMap;

use super::api::{CredentialInfo, Provisioned, SecretRefInfo, Waiting, scope_fields};
use super::secrets::check_name;
use super::{Vault, parse_secret_ref, record, resolve_secret_ref, secret_by_id_w, secret_ref};
use crate::audit::AuditEvent;
use crate::auth::{AuthConfig, ClientAuth, GrantType, HeaderTemplate, Material, QueryTemplate, aws_signing_name};
use crate::error::{Error, Result};
use crate::policy::HostPattern;
use crate::registry::Provider;
use crate::scope::Scope;
use crate::store::{CredentialRow, Origin, SecretRow, WriteTx, keys};
use crate::time::{now_ms, rfc3339};

/// Everything `credential create` accepts.
#[derive(Clone, Debug, Default)]
pub struct CredentialSpec {
    pub id: String,
    pub provider: String,
    pub secret_ref: String,
    pub auth: Option<String>,
    pub header_name: Option<String>,
    pub value_template: Option<String>,
    pub query_param: Option<String>,
    /// `NAME=TEMPLATE` pairs for multi-header.
    pub auth_headers: Vec<String>,
    /// `NAME=TEMPLATE` pairs for multi-query.
    pub auth_queries: Vec<String>,
    pub grant_type: Option<String>,
    pub token_endpoint: Option<String>,
    pub authorization_endpoint: Option<String>,
    pub scopes: Vec<String>,
    pub client_auth: Option<String>,
    pub aws_service: Option<String>,
    pub aws_region: Option<String>,
    pub hosts: Vec<String>,
    pub workspace_id: Option<String>,
    pub group_id: Option<String>,
}

/// What provisioning did: credentials provisioned, providers still waiting, warnings.
pub(super) type Provisioning = (Vec<Provisioned>, Vec<Waiting>, Vec<String>);

/// The id of a credential provisioned from registry secrets in `scope`.
pub fn registry_credential_id(provider: &str, scope: &Scope) -> String {
    match scope {
        Scope::Global => provider.to_owned(),
        Scope::Workspace { workspace_id } => format!("{provider}@{workspace_id}"),
        Scope::Group { workspace_id, group_id } => format!("{provider}@{workspace_id}/{group_id}"),
    }
}

impl Vault {
    /// Provisions (or refreshes) the registry credentials a pinned secret completes.
    /// `hosts` (from `secrets create --host`) narrows the provisioned credentials.
    pub(super) fn provision(&self, tx: &mut WriteTx, row: &SecretRow, hosts: &[String]) -> Result<Provisioning> {
        let mut provisioned = Vec::new();
        let mut waiting = Vec::new();
        let mut warnings = Vec::new();
        let claims = |pin: &str| self.registry.providers_for_pin(pin).iter().any(|p| p.field_for(&row.name).is_some());
        if !hosts.is_empty() && !row.pinned_provider.as_deref().is_some_and(claims) {
            return Err(Error::invalid(format!(
                "--host narrows a registry provider's credential; {} is not a registry secret (use `credential create --host`)",
                row.name
            )));
        }
        let Some(pin) = &row.pinned_provider else { return Ok((provisioned, waiting, warnings)) };
        for provider in self.registry.providers_for_pin(pin) {
            if provider.field_for(&row.name).is_none() {
                continue;
            }
            let mut fields = BTreeMap::new();
            let mut missing = Vec::new();
            for (name, field) in &provider.def.vault_secrets {
                match pinned_secret_in_scope(tx, &row.scope, name, pin)? {
                    Some(id) => {
                        fields.insert(field.clone(), id);
                    }
                    None => missing.push(name.clone()),
                }
            }
            if !missing.is_empty() {
                waiting.push(Waiting { provider: provider.id().to_owned(), missing, reason: None });
                continue;
            }
            for (name, field) in &provider.def.optional_vault_secrets {
                if let Some(id) = pinned_secret_in_scope(tx, &row.scope, name, pin)? {
                    fields.insert(field.clone(), id);
                }
            }
            let id = registry_credential_id(provider.id(), &row.scope);
            let existing = tx.get::<CredentialRow>(&id)?;
            // Named hosts narrow; an existing credential keeps its (possibly narrowed) hosts.
            let cred_hosts = match (hosts, &existing) {
                ([], Some(e)) => e.hosts.clone(),
                ([], None) if provider.def.tenant_hosts => {
                    let example = provider.def.hosts.first().map(|h| h.replace('*', "my-tenant")).unwrap_or_default();
                    waiting.push(Waiting {
                        provider: provider.id().to_owned(),
                        missing: Vec::new(),
                        reason: Some(format!(
                            "{} serves one tenant per host ({}); nothing was provisioned, so the key is \
                             injected nowhere yet: pass --host {example} (repeatable)",
                            provider.id(),
                            provider.def.hosts.join(", ")
                        )),
                    });
                    continue;
                }
                ([], None) => provider.def.hosts.clone(),
                (named, _) => narrow_hosts(provider, named)?,
            };
            let action = match &existing {
                Some(existing) if existing.origin == Origin::Manual => {
                    return Err(Error::Conflict(format!(
                        "cannot provision {}: a manual credential named {id} exists; delete it or rename it",
                        provider.id()
                    )));
                }
                Some(existing) if existing.secrets == fields && existing.hosts == cred_hosts => continue,
                Some(_) => "updated",
                None => "created",
            };
            let wildcards: Vec<&String> = cred_hosts.iter().filter(|h| h.starts_with("*.")).collect();
            if !wildcards.is_empty() {
                let mut named: Vec<&str> = wildcards.iter().take(2).map(|h| h.as_str()).collect();
                let rest = format!("{} more", wildcards.len().saturating_sub(2));
                if wildcards.len() > 2 {
                    named.push(&rest);
                }
                warnings.push(format!(
                    "{id} injects into every host matching {} (any tenant's bucket or store, not only yours); \
                     narrow it with --host",
                    named.join(", ")
                ));
            }
            let cred = CredentialRow {
                id: id.clone(),
                provider: provider.id().to_owned(),
                auth: provider.def.auth.clone(),
                hosts: cred_hosts,
                secrets: fields,
                scope: row.scope.clone(),
                origin: Origin::Registry,
                created_ms: now_ms(),
            };
            tx.put(&id, &cred)?;
            record(
                tx,
                AuditEvent::new("credential.provision").credential(&id).detail(format!("provider {}", provider.id())),
            )?;
            provisioned.push(Provisioned {
                credential: id,
                provider: provider.id().to_owned(),
                capabilities: provider.def.capabilities.len(),
                action,
            });
        }
        Ok((provisioned, waiting, warnings))
    }

    /// Creates a credential by hand (custom providers, per-tenant hosts, extra accounts, scoped overrides).
    pub fn credential_create(&self, spec: &CredentialSpec) -> Result<CredentialInfo> {
        check_name("credential id", &spec.id)?;
        check_name("provider", &spec.provider)?;
        let scope = Scope::from_args(None, spec.workspace_id.as_deref(), spec.group_id.as_deref())?;
        if !spec.secret_ref.starts_with("name:") {
            parse_secret_ref(&spec.secret_ref)?;
        }
        self.store.write(|tx| self.credential_create_in_tx(tx, spec, &scope))
    }

    /// `credential_create` inside the caller's transaction (a proposal's approval).
    pub(super) fn credential_create_in_tx(
        &self,
        tx: &mut WriteTx,
        spec: &CredentialSpec,
        scope: &Scope,
    ) -> Result<CredentialInfo> {
        {
            let secret_id = resolve_secret_ref(tx, &spec.secret_ref, scope)?;
            let secret_id = secret_id.as_str();
            if tx.get::<CredentialRow>(&spec.id)?.is_some() {
                return Err(Error::Conflict(format!(
                    "credential {} already exists; delete it first or pick another id",
                    spec.id
                )));
            }
            let secret = secret_by_id_w(tx, secret_id)?;
            check_visible(&secret, scope)?;
            let (auth, hosts) = match self.registry.provider(&spec.provider) {
                Some(provider) => registry_auth_and_hosts(provider, spec, &secret)?,
                None => {
                    if let Some(pin) = &secret.pinned_provider {
                        return Err(Error::Denied {
                            code: crate::refusal::ErrorCode::PinnedProvider,
                            message: format!(
                                "secret {} is pinned to provider {pin}; it cannot be used by {}",
                                secret.name, spec.provider
                            ),
                        });
                    }
                    (custom_auth(spec)?, custom_hosts(&spec.hosts)?)
                }
            };
            auth.validate()?;
            let mut material = Material::default();
            material.add("secret", &self.open_secret(&secret)?);
            let missing: Vec<String> =
                auth.required_fields().into_iter().filter(|f| material.field(f).is_none()).collect();
            // Basic auth also takes one "user:pass" value (the injector splits nothing: it encodes it whole).
            let user_pass = matches!(auth, AuthConfig::Basic { username: None, password: None })
                && material.field("secret").is_some_and(|v| v.expose().contains(':'));
            if !missing.is_empty() && !user_pass {
                return Err(Error::invalid(format!(
                    "the {} templates read {} but secret {} provides {}; store the value as a JSON object \
                     with those fields",
                    auth.kind(),
                    missing.join(", "),
                    secret.name,
                    material.field_names().join(", ")
                )));
            }
            drop(material);
            let row = CredentialRow {
                id: spec.id.clone(),
                provider: spec.provider.clone(),
                auth,
                hosts,
                secrets: BTreeMap::from([("secret".to_owned(), secret.id.clone())]),
                scope: scope.clone(),
                origin: Origin::Manual,
                created_ms: now_ms(),
            };
            tx.put(&row.id, &row)?;
            record(
                tx,
                AuditEvent::new("credential.create").credential(&row.id).secret(&secret.id).detail(format!(
                    "provider {} ({})",
                    row.provider,
                    row.auth.kind()
                )),
            )?;
            credential_info(tx, &row)
        }
    }

    pub fn credentials_list(&self) -> Result<Vec<CredentialInfo>> {
        self.store.write(|tx| {
            let mut rows = tx.list::<CredentialRow>()?;
            rows.sort_by(|a, b| a.id.cmp(&b.id));
            rows.iter().map(|r| credential_info(tx, r)).collect::<Result<Vec<_>>>()
        })
    }

    pub fn credential_delete(&self, id: &str) -> Result<CredentialInfo> {
        self.store.write(|tx| {
            let row = tx
                .get::<CredentialRow>(id)?
                .ok_or_else(|| Error::not_found("credential", id, "list them with `aivault credential list`"))?;
            let info = credential_info(tx, &row)?;
            tx.delete::<CredentialRow>(id)?;
            record(
                tx,
                AuditEvent::new("credential.delete").credential(id).detail(format!("provider {}", row.provider)),
            )?;
            Ok(info)
        })
    }
}

fn pinned_secret_in_scope(tx: &WriteTx, scope: &Scope, name: &str, pin: &str) -> Result<Option<String>> {
    let Some(id) = tx.name_owner(&keys::name(scope, name))? else { return Ok(None) };
    let row = secret_by_id_w(tx, &id)?;
    Ok((row.name == name && row.pinned_provider.as_deref() == Some(pin)).then_some(id))
}

/// A credential may read a secret only if every context that sees the credential sees the secret.
fn check_visible(secret: &SecretRow, cred_scope: &Scope) -> Result<()> {
    if secret.scope.readable_from(cred_scope) {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "secret {} lives in {}, which a credential in {cred_scope} cannot read; pass matching --workspace-id/--group-id",
            secret.name, secret.scope
        )))
    }
}

fn registry_auth_and_hosts(
    provider: &Provider,
    spec: &CredentialSpec,
    secret: &SecretRow,
) -> Result<(AuthConfig, Vec<String>)> {
    let pid = provider.id();
    if let Some(pin) = &secret.pinned_provider {
        if pin != provider.pin() {
            return Err(Error::Denied {
                code: crate::refusal::ErrorCode::PinnedProvider,
                message: format!("secret {} is pinned to provider {pin}; it cannot be used by {pid}", secret.name),
            });
        }
    }
    let mut auth = provider.def.auth.clone();
    if let Some(kind) = &spec.auth {
        if kind != auth.kind() {
            return Err(Error::invalid(format!(
                "provider {pid} uses {} auth from the registry; --auth {kind} cannot change it",
                auth.kind()
            )));
        }
    }
    let template_flags = spec.header_name.is_some()
        || spec.value_template.is_some()
        || spec.query_param.is_some()
        || !spec.auth_headers.is_empty()
        || !spec.auth_queries.is_empty();
    if template_flags {
        return Err(Error::invalid(format!(
            "provider {pid} is a registry provider: its auth templates are compiled in and cannot be overridden"
        )));
    }
    match &mut auth {
        AuthConfig::Oauth2 { grant_type, token_endpoint, .. } => {
            if let Some(g) = &spec.grant_type {
                if GrantType::parse(g)? != *grant_type {
                    return Err(Error::invalid(format!(
                        "provider {pid} uses grant type {grant_type:?} from the registry"
                    )));
                }
            }
            if let Some(t) = &spec.token_endpoint {
                if t != token_endpoint {
                    return Err(Error::invalid(format!(
                        "provider {pid} refreshes at {token_endpoint}; a different --token-endpoint is not allowed"
                    )));
                }
            }
        }
        AuthConfig::AwsSigv4 { service, region } => {
            if let Some(s) = &spec.aws_service {
                if aws_signing_name(s) != aws_signing_name(service) {
                    return Err(Error::invalid(format!(
                        "provider {pid} signs for AWS service {service}; --aws-service {s} does not match"
                    )));
                }
            }
            if let Some(r) = &spec.aws_region {
                *region = r.clone();
            }
        }
        _ => {}
    }
    let hosts = if spec.hosts.is_empty() { provider.def.hosts.clone() } else { narrow_hosts(provider, &spec.hosts)? };
    Ok((auth, hosts))
}

/// Hosts inside a registry provider's own patterns (registry hosts can only be narrowed).
fn narrow_hosts(provider: &crate::registry::Provider, hosts: &[String]) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for h in hosts {
        let pattern = HostPattern::parse(h)?;
        if !provider.allows_host(&pattern) {
            return Err(Error::invalid(format!(
                "host {h} is outside provider {}'s registry hosts ({}); registry hosts can only be narrowed",
                provider.id(),
                provider.def.hosts.join(", ")
            )));
        }
        out.push(pattern.to_string());
    }
    Ok(out)
}

fn custom_hosts(hosts: &[String]) -> Result<Vec<String>> {
    if hosts.is_empty() {
        return Err(Error::invalid("a custom provider needs at least one --host"));
    }
    hosts.iter().map(|h| Ok(HostPattern::parse(h)?.to_string())).collect()
}

fn custom_auth(spec: &CredentialSpec) -> Result<AuthConfig> {
    let kind = spec.auth.as_deref().ok_or_else(|| {
        Error::invalid(format!(
            "{} is not a registry provider: pass --auth header|query|path|basic|multi-header|multi-query|oauth2|aws-sigv4",
            spec.provider
        ))
    })?;
    let pairs = |list: &[String], flag: &str| -> Result<Vec<(String, String)>> {
        list.iter()
            .map(|p| {
                p.split_once('=')
                    .map(|(n, t)| (n.trim().to_owned(), t.to_owned()))
                    .ok_or_else(|| Error::invalid(format!("{flag} '{p}' must be NAME=TEMPLATE")))
            })
            .collect()
    };
    Ok(match kind {
        "header" => AuthConfig::Header {
            header_name: spec.header_name.clone().unwrap_or_else(|| "authorization".into()),
            value_template: spec.value_template.clone().unwrap_or_else(|| "Bearer {{secret}}".into()),
        },
        "query" => AuthConfig::Query {
            param_name: spec.query_param.clone().unwrap_or_else(|| "api_key".into()),
            value_template: spec.value_template.clone(),
        },
        "path" => AuthConfig::Path {
            prefix_template: spec
                .value_template
                .clone()
                .ok_or_else(|| Error::invalid("--auth path needs --value-template, e.g. \"/bot{{secret}}\""))?,
        },
        "basic" => AuthConfig::Basic { username: None, password: None },
        "multi-header" => {
            let list = pairs(&spec.auth_headers, "--auth-header")?;
            if list.is_empty() {
                return Err(Error::invalid("--auth multi-header needs --auth-header NAME=TEMPLATE (repeatable)"));
            }
            AuthConfig::MultiHeader(
                list.into_iter()
                    .map(|(header_name, value_template)| HeaderTemplate { header_name, value_template })
                    .collect(),
            )
        }
        "multi-query" => {
            let list = pairs(&spec.auth_queries, "--auth-query")?;
            if list.is_empty() {
                return Err(Error::invalid("--auth multi-query needs --auth-query NAME=TEMPLATE (repeatable)"));
            }
            AuthConfig::MultiQuery(
                list.into_iter()
                    .map(|(param_name, value_template)| QueryTemplate { param_name, value_template })
                    .collect(),
            )
        }
        "oauth2" => AuthConfig::Oauth2 {
            grant_type: GrantType::parse(spec.grant_type.as_deref().unwrap_or("refresh_token"))?,
            token_endpoint: spec
                .token_endpoint
                .clone()
                .ok_or_else(|| Error::invalid("--auth oauth2 needs --token-endpoint"))?,
            scopes: spec.scopes.clone(),
            client_auth: match spec.client_auth.as_deref() {
                None | Some("basic") => ClientAuth::Basic,
                Some("form") => ClientAuth::Form,
                Some(other) => return Err(Error::invalid(format!("--client-auth {other}: use basic or form"))),
            },
            authorization_endpoint: spec.authorization_endpoint.clone(),
        },
        "aws-sigv4" => AuthConfig::AwsSigv4 {
            service: aws_signing_name(
                spec.aws_service.as_deref().ok_or_else(|| Error::invalid("--auth aws-sigv4 needs --aws-service"))?,
            )
            .to_owned(),
            region: spec.aws_region.clone().ok_or_else(|| Error::invalid("--auth aws-sigv4 needs --aws-region"))?,
        },
        other => {
            return Err(Error::invalid(format!(
                "unknown --auth '{other}': use header, query, path, basic, multi-header, multi-query, oauth2 or aws-sigv4"
            )));
        }
    })
}

fn credential_info(tx: &WriteTx, row: &CredentialRow) -> Result<CredentialInfo> {
    let (scope, workspace_id, group_id) = scope_fields(&row.scope);
    let mut secrets = Vec::new();
    for (field, id) in &row.secrets {
        let name = tx.get::<SecretRow>(id)?.map(|s| s.name);
        secrets.push(SecretRefInfo { field: field.clone(), reference: secret_ref(id), name });
    }
    Ok(CredentialInfo {
        id: row.id.clone(),
        provider: row.provider.clone(),
        auth: row.auth.kind(),
        auth_detail: row.auth.describe(),
        config: row.auth.clone(),
        hosts: row.hosts.clone(),
        secrets,
        scope,
        workspace_id,
        group_id,
        origin: match row.origin {
            Origin::Registry => "registry",
            Origin::Manual => "manual",
        },
        created_at: rfc3339(row.created_ms),
    })
}
