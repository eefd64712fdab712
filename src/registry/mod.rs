//! The built-in provider registry, compiled into the binary from `registry/*.json`.
//!
//! Architecture invariant: the registry is immutable at run time. Nothing the user stores can
//! change a registry provider's auth strategy, widen its hosts or edit its capabilities.

mod model;
pub mod regions;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

pub use model::{AllowDef, CapabilityDef, ProviderDef};

use crate::policy::{HostPattern, Rule};

mod builtin {
    include!(concat!(env!("OUT_DIR"), "/registry_files.rs"));
}

/// A registry file that does not load.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[error("registry file {file}: {reason}")]
pub struct RegistryError {
    pub file: String,
    pub reason: String,
}

/// A loaded provider.
#[derive(Debug)]
pub struct Provider {
    pub def: ProviderDef,
    pub hosts: Vec<HostPattern>,
    pub rules: Vec<Rule>,
    /// The provider's strategy, compiled once when the registry loads.
    pub strategy: std::sync::Arc<crate::auth::Strategy>,
}

impl Provider {
    pub fn id(&self) -> &str {
        &self.def.provider
    }

    /// What secrets are pinned to: the family if the provider has one, else the provider id.
    pub fn pin(&self) -> &str {
        self.def.secret_family.as_deref().unwrap_or(&self.def.provider)
    }

    /// Whether `host` stays inside the provider's compiled host patterns.
    pub fn allows_host(&self, host: &HostPattern) -> bool {
        self.hosts.iter().any(|outer| host.within(outer))
    }

    /// The field a secret name fills, required or optional.
    pub fn field_for(&self, secret_name: &str) -> Option<&str> {
        self.def
            .vault_secrets
            .get(secret_name)
            .or_else(|| self.def.optional_vault_secrets.get(secret_name))
            .map(String::as_str)
    }
}

/// Who claims a secret name.
#[derive(Debug, Clone)]
pub struct Claim {
    /// The provider or family the secret is pinned to.
    pub pin: String,
    /// Every provider that reads the secret.
    pub providers: Vec<String>,
}

/// All providers, indexed.
#[derive(Debug)]
pub struct Registry {
    providers: BTreeMap<String, Provider>,
    claims: BTreeMap<String, Claim>,
}

impl Registry {
    /// The registry compiled into this binary.
    pub fn builtin() -> Result<&'static Registry, RegistryError> {
        static CELL: OnceLock<Result<Registry, RegistryError>> = OnceLock::new();
        CELL.get_or_init(|| Registry::from_sources(builtin::BUILTIN)).as_ref().map_err(Clone::clone)
    }

    /// The file names and contents compiled in (for tests and schema checks).
    pub fn builtin_sources() -> &'static [(&'static str, &'static str)] {
        builtin::BUILTIN
    }

    /// Loads and cross-checks a set of provider files.
    pub fn from_sources(sources: &[(&str, &str)]) -> Result<Registry, RegistryError> {
        let mut providers = BTreeMap::new();
        let mut cap_ids = BTreeSet::new();
        for (file, text) in sources {
            let err = |reason: String| RegistryError { file: (*file).to_owned(), reason };
            let mut def: ProviderDef = serde_json::from_str(text).map_err(|e| err(e.to_string()))?;
            def.hosts = regions::expand(&def.hosts);
            for cap in &mut def.capabilities {
                cap.allow.hosts = regions::expand(&cap.allow.hosts);
            }
            let provider = load_provider(file, def)?;
            let expected = format!("{}.json", provider.id());
            if *file != expected {
                return Err(err(format!("file name must be {expected}")));
            }
            for rule in &provider.rules {
                if !cap_ids.insert(rule.id.clone()) {
                    return Err(err(format!("capability id {} is defined twice", rule.id)));
                }
            }
            if providers.insert(provider.id().to_owned(), provider).is_some() {
                return Err(err("provider id is defined twice".into()));
            }
        }
        let claims = build_claims(&providers)?;
        Ok(Registry { providers, claims })
    }

    pub fn provider(&self, id: &str) -> Option<&Provider> {
        self.providers.get(id)
    }

    pub fn providers(&self) -> impl Iterator<Item = &Provider> {
        self.providers.values()
    }

    /// Who claims `secret_name`, if anyone.
    pub fn claim(&self, secret_name: &str) -> Option<&Claim> {
        self.claims.get(secret_name)
    }

    /// The providers whose secrets are pinned to `pin` (one provider, or a family).
    pub fn providers_for_pin(&self, pin: &str) -> Vec<&Provider> {
        self.providers.values().filter(|p| p.pin() == pin).collect()
    }

    /// A registry capability by id, with its provider.
    pub fn capability(&self, id: &str) -> Option<(&Provider, &CapabilityDef, &Rule)> {
        let provider_id = id.split('/').next()?;
        let provider = self.providers.get(provider_id)?;
        let pos = provider.def.capabilities.iter().position(|c| c.id == id)?;
        Some((provider, &provider.def.capabilities[pos], &provider.rules[pos]))
    }
}

fn load_provider(file: &str, def: ProviderDef) -> Result<Provider, RegistryError> {
    let err = |reason: String| RegistryError { file: file.to_owned(), reason };
    let id = &def.provider;
    let id_ok = !id.is_empty()
        && id.len() <= 63
        && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !id_ok {
        return Err(err(format!("provider id '{id}' must be lowercase letters, digits and '-'")));
    }
    let strategy = crate::auth::Strategy::compile(&def.auth).map_err(|e| err(e.to_string()))?;
    if def.hosts.is_empty() {
        return Err(err("hosts must not be empty".into()));
    }
    let hosts = def
        .hosts
        .iter()
        .map(|h| HostPattern::parse(h).map_err(|e| err(e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    for name in def.vault_secrets.keys().chain(def.optional_vault_secrets.keys()) {
        let ok = name.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
        if !ok || name.is_empty() {
            return Err(err(format!("secret name '{name}' must be UPPER_SNAKE_CASE")));
        }
    }
    let fields: BTreeSet<&str> = def.vault_secrets.values().map(String::as_str).collect();
    if !def.vault_secrets.is_empty() {
        for needed in def.auth.required_fields() {
            if !fields.contains(needed.as_str()) {
                return Err(err(format!("auth reads field '{needed}' that no vaultSecrets entry fills")));
            }
        }
    }
    if def.capabilities.is_empty() {
        return Err(err("capabilities must not be empty".into()));
    }
    let mut rules = Vec::new();
    for cap in &def.capabilities {
        if cap.provider != *id {
            return Err(err(format!("capability {} names provider {}, not {id}", cap.id, cap.provider)));
        }
        if !cap.id.starts_with(&format!("{id}/")) {
            return Err(err(format!("capability id {} must start with '{id}/'", cap.id)));
        }
        let rule = Rule::new(&cap.id, id, &cap.allow.hosts, &cap.allow.methods, &cap.allow.path_prefixes)
            .map_err(|e| err(format!("capability {}: {e}", cap.id)))?;
        for h in &rule.hosts {
            if !hosts.iter().any(|outer| h.within(outer)) {
                return Err(err(format!("capability {} host {h} is outside the provider's hosts", cap.id)));
            }
        }
        rules.push(rule);
    }
    Ok(Provider { def, hosts, rules, strategy: std::sync::Arc::new(strategy) })
}

fn build_claims(providers: &BTreeMap<String, Provider>) -> Result<BTreeMap<String, Claim>, RegistryError> {
    let mut claims: BTreeMap<String, Claim> = BTreeMap::new();
    for p in providers.values() {
        let names = p.def.vault_secrets.keys().chain(p.def.optional_vault_secrets.keys());
        for name in names {
            match claims.get_mut(name) {
                None => {
                    claims.insert(name.clone(), Claim { pin: p.pin().to_owned(), providers: vec![p.id().to_owned()] });
                }
                Some(claim) if claim.pin == p.pin() && p.def.secret_family.is_some() => {
                    claim.providers.push(p.id().to_owned());
                }
                Some(claim) => {
                    return Err(RegistryError {
                        file: format!("{}.json", p.id()),
                        reason: format!(
                            "secret {name} is already claimed by {}; share it only through a common secretFamily",
                            claim.providers.join(", ")
                        ),
                    });
                }
            }
        }
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"{
      "$schema": "./schemas/registry-provider.schema.json",
      "provider": "my-api",
      "vaultSecrets": { "MY_API_KEY": "secret" },
      "auth": { "header": { "header_name": "authorization", "value_template": "Bearer {{secret}}" } },
      "hosts": ["api.example.com"],
      "capabilities": [ { "id": "my-api/users", "provider": "my-api",
        "allow": { "hosts": ["api.example.com"], "methods": ["GET", "POST"], "pathPrefixes": ["/v1/users"] } } ]
    }"#;

    #[test]
    fn the_seed_example_loads() {
        let r = Registry::from_sources(&[("my-api.json", MINIMAL)]).unwrap();
        assert_eq!(r.claim("MY_API_KEY").unwrap().pin, "my-api");
        assert!(r.capability("my-api/users").is_some());
    }

    #[test]
    fn rejections() {
        let cases: Vec<(&str, String, &str)> = vec![
            ("unknown field", MINIMAL.replace("\"hosts\": [\"api", "\"extra\": 1, \"hosts\": [\"api"), "unknown field"),
            ("file name", MINIMAL.to_owned(), "file name"),
            (
                "host outside",
                MINIMAL
                    .replace("\"hosts\": [\"api.example.com\"], \"methods\"", "\"hosts\": [\"evil.com\"], \"methods\""),
                "outside",
            ),
            (
                "missing field",
                MINIMAL.replace("\"MY_API_KEY\": \"secret\"", "\"MY_API_KEY\": \"token\""),
                "no vaultSecrets entry",
            ),
            ("bad prefix", MINIMAL.replace("/v1/users\"]", "v1/users\"]"), "path prefix"),
        ];
        for (name, text, want) in cases {
            let file = if name == "file name" { "other.json" } else { "my-api.json" };
            let err = Registry::from_sources(&[(file, &text)]).unwrap_err();
            assert!(err.to_string().contains(want), "{name}: {err}");
        }
    }

    #[test]
    fn duplicate_claims_need_a_family() {
        let other = MINIMAL.replace("my-api", "other-api");
        let err = Registry::from_sources(&[("my-api.json", MINIMAL), ("other-api.json", &other)]).unwrap_err();
        assert!(err.to_string().contains("already claimed"), "{err}");
    }

    #[test]
    fn builtin_registry_covers_the_required_providers() {
        let r = Registry::builtin().unwrap();
        assert!(r.providers().count() >= 40);
        let kinds: BTreeSet<&str> = r.providers().map(|p| p.def.auth.kind()).collect();
        for k in ["header", "query", "path", "basic", "multi-header", "multi-query", "oauth2", "aws-sigv4"] {
            assert!(kinds.contains(k), "no provider uses {k}");
        }
        for (p, kind) in [
            ("openai", "header"),
            ("anthropic", "header"),
            ("github", "header"),
            ("stripe", "header"),
            ("slack", "header"),
            ("gemini", "query"),
            ("youtube", "query"),
            ("telegram", "path"),
            ("twilio", "basic"),
            ("mailgun", "basic"),
            ("trello", "multi-query"),
            ("datadog", "multi-header"),
            ("plaid", "multi-header"),
            ("shopify", "header"),
            ("spotify", "oauth2"),
            ("google-calendar", "oauth2"),
            ("aws-bedrock", "aws-sigv4"),
            ("aws-s3", "aws-sigv4"),
            ("aws-sts", "aws-sigv4"),
        ] {
            assert_eq!(r.provider(p).map(|x| x.def.auth.kind()), Some(kind), "{p}");
        }
        assert_eq!(r.provider("openai").unwrap().def.capabilities.len(), 17);
        assert_eq!(r.claim("AWS_ACCESS_KEY_ID").unwrap().providers.len(), 3);
        assert!(r.provider("shopify").unwrap().hosts[0].is_wildcard());
    }
}
