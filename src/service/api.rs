//! Request and response types of the service layer: what the CLI renders and `--json` prints.
//! These are the only serialisable views of vault state, and none carries a secret value.

use serde::Serialize;

use crate::scope::Scope;

/// Secret metadata.
#[derive(Clone, Debug, Serialize)]
pub struct SecretInfo {
    pub id: String,
    #[serde(rename = "ref")]
    pub reference: String,
    pub name: String,
    pub aliases: Vec<String>,
    pub scope: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workspace_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pinned_provider: Option<String>,
    pub version: u32,
    pub attached_groups: Vec<String>,
    pub created_at: String,
    pub updated_at: String,
    /// Where an external (read-only) secret's value comes from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// What creating (or importing) one secret did.
#[derive(Clone, Debug, Serialize)]
pub struct SecretCreated {
    #[serde(flatten)]
    pub secret: SecretInfo,
    /// `created` or `rotated` (import of an existing name).
    pub action: &'static str,
    pub provisioned: Vec<Provisioned>,
    /// Secrets still missing before a provider's credential can be provisioned.
    pub waiting: Vec<Waiting>,
    /// What the operator should know (a credential that injects into a wildcard of hosts).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Provisioned {
    pub credential: String,
    pub provider: String,
    pub capabilities: usize,
    /// `created` or `updated`.
    pub action: &'static str,
}

#[derive(Clone, Debug, Serialize)]
pub struct Waiting {
    pub provider: String,
    pub missing: Vec<String>,
    /// Why nothing was provisioned when no secret is missing (a per-tenant provider).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ImportSummary {
    pub created: usize,
    pub rotated: usize,
    pub failed: usize,
    pub entries: Vec<SecretCreated>,
    pub failures: Vec<ImportFailure>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ImportFailure {
    pub name: String,
    pub error: String,
}

/// What deleting a secret removed.
#[derive(Clone, Debug, Serialize)]
pub struct SecretDeleted {
    pub id: String,
    pub name: String,
    pub removed_credentials: Vec<String>,
    pub removed_bindings: Vec<String>,
    pub removed_attachments: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct CredentialInfo {
    pub id: String,
    pub provider: String,
    pub auth: &'static str,
    pub auth_detail: String,
    pub config: crate::auth::AuthConfig,
    pub hosts: Vec<String>,
    pub secrets: Vec<SecretRefInfo>,
    pub scope: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workspace_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
    /// `registry` (auto-provisioned) or `manual`.
    pub origin: &'static str,
    pub created_at: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct SecretRefInfo {
    pub field: String,
    #[serde(rename = "ref")]
    pub reference: String,
    pub name: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct CapabilityInfo {
    pub id: String,
    pub provider: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// `registry` or `custom`.
    pub origin: &'static str,
    /// `ready` (a credential can serve it) or `available`.
    pub status: &'static str,
    pub methods: Vec<String>,
    pub path_prefixes: Vec<String>,
    pub hosts: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
    /// Serves cleartext `http://` too (an explicit operator choice).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub allow_http: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct CapabilityDescription {
    #[serde(flatten)]
    pub capability: CapabilityInfo,
    pub auth: String,
    pub secrets_needed: Vec<String>,
    pub credentials: Vec<String>,
    pub bindings: Vec<BindingInfo>,
    pub example: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct BindingInfo {
    pub capability: String,
    pub secret_ref: String,
    pub secret_name: Option<String>,
    pub scope: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workspace_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
    pub created_at: String,
}

pub(crate) fn scope_fields(scope: &Scope) -> (&'static str, Option<String>, Option<String>) {
    (scope.level_name(), scope.workspace_id().map(str::to_owned), scope.group_id().map(str::to_owned))
}

/// The result of `rotate-master`.
#[derive(Clone, Debug, Serialize)]
pub struct MasterRotated {
    pub old_key_id: String,
    pub new_key_id: String,
    pub secrets_rewrapped: usize,
    /// Where the new key now lives, or what the operator must do with it.
    pub key_location: String,
}

/// `status` output.
#[derive(Clone, Debug, Serialize)]
pub struct Status {
    pub home: String,
    pub store: String,
    pub key_source: String,
    pub key_id: String,
    pub schema_version: u32,
    pub secrets: usize,
    pub credentials: usize,
    pub custom_capabilities: usize,
    pub registry_providers: usize,
    pub agents: usize,
}
