//! The registry file format (seed 002), parsed with unknown fields rejected at every level.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::auth::AuthConfig;

/// One `registry/<provider>.json` file.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProviderDef {
    #[serde(rename = "$schema", default, skip_serializing)]
    pub schema: Option<String>,
    pub provider: String,
    #[serde(default)]
    pub description: Option<String>,
    /// Secret name → the field it fills in the auth templates.
    #[serde(default)]
    pub vault_secrets: BTreeMap<String, String>,
    /// Secrets used when present but not needed to provision (e.g. `AWS_SESSION_TOKEN`).
    #[serde(default)]
    pub optional_vault_secrets: BTreeMap<String, String>,
    /// Providers sharing the same secrets (the AWS services) name one family; secrets are
    /// pinned to the family and one set of secrets provisions every member.
    #[serde(default)]
    pub secret_family: Option<String>,
    /// The hosts are per tenant (one store, one bucket per host): a credential is provisioned
    /// only for tenant hosts the operator names, never for the whole wildcard.
    #[serde(default)]
    pub tenant_hosts: bool,
    pub auth: AuthConfig,
    pub hosts: Vec<String>,
    pub capabilities: Vec<CapabilityDef>,
}

/// A capability as the registry (and `capability describe`) spells it.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CapabilityDef {
    pub id: String,
    pub provider: String,
    #[serde(default)]
    pub description: Option<String>,
    pub allow: AllowDef,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AllowDef {
    pub hosts: Vec<String>,
    pub methods: Vec<String>,
    pub path_prefixes: Vec<String>,
}
