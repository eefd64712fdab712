//! Stored records. The store serialises them as JSON inside redb values; none holds plaintext.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::auth::AuthConfig;
use crate::scope::{Context, Scope};
use crate::secret::Sealed;

/// A secret's metadata and its sealed value.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SecretRow {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub aliases: Vec<String>,
    pub scope: Scope,
    #[serde(default)]
    pub pinned_provider: Option<String>,
    /// Bumped on every rotation; bound into the associated data.
    pub version: u32,
    /// Empty (sealed) for an external secret, whose value lives in `source`.
    pub sealed: Sealed,
    /// Read-only: the value is fetched from here by whoever needs it, never stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<crate::source::Source>,
    pub created_ms: u64,
    pub updated_ms: u64,
}

/// Where a credential came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// Provisioned automatically from registry secrets; removed when they are.
    Registry,
    /// Created with `credential create`.
    Manual,
}

/// A credential: a provider, an auth strategy, allowed hosts, and the secrets it reads.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CredentialRow {
    pub id: String,
    pub provider: String,
    pub auth: AuthConfig,
    pub hosts: Vec<String>,
    /// Template field → secret id.
    pub secrets: BTreeMap<String, String>,
    pub scope: Scope,
    pub origin: Origin,
    pub created_ms: u64,
}

/// A user-defined capability (registry capabilities are compiled in, not stored).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CapabilityRow {
    pub id: String,
    pub provider: String,
    #[serde(default)]
    pub credential: Option<String>,
    pub hosts: Vec<String>,
    pub methods: Vec<String>,
    pub path_prefixes: Vec<String>,
    /// Cleartext `http://` allowed (older rows: no).
    #[serde(default)]
    pub allow_http: bool,
    /// Every request is held until a person allows it (`--approval required`).
    #[serde(default)]
    pub approval: bool,
    pub created_ms: u64,
}

/// A capability bound to a specific secret at a scope.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BindingRow {
    pub capability: String,
    pub secret_id: String,
    pub scope: Scope,
    pub created_ms: u64,
}

/// A secret attached to a group.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AttachmentRow {
    pub secret_id: String,
    pub workspace_id: String,
    pub group_id: String,
    pub created_ms: u64,
}

/// An agent identity. Only a hash of its token is kept.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AgentRow {
    pub id: String,
    pub name: String,
    pub token_sha256: String,
    pub context: Context,
    pub created_ms: u64,
    #[serde(default)]
    pub revoked_ms: Option<u64>,
    /// A session minted by `aivault run` for one child process; deleted when it exits.
    #[serde(default)]
    pub session: bool,
    /// Capabilities (`provider/id`) or whole providers (`provider/*`) the agent may use; empty
    /// means every capability its scope resolves.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grants: Vec<String>,
}

/// A rate limit and/or budget on a capability, a credential or an agent.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct LimitRow {
    /// `capability:<id>`, `credential:<id>` or `agent:<name>`.
    pub target: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<crate::policy::limit::Per>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<crate::policy::limit::Per>,
    /// An exhausted budget holds requests for a person instead of refusing them.
    #[serde(default)]
    pub ask: bool,
    pub created_ms: u64,
}

/// A request held for a person's decision, or a standing allowance.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ApprovalRow {
    pub id: String,
    pub agent: String,
    pub capability: String,
    pub method: String,
    pub host: String,
    /// Without the query.
    pub path: String,
    pub created_ms: u64,
    /// `pending`, `allowed`, `denied` or `expired`.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_ms: Option<u64>,
    /// An allow that also covers the same agent and capability until then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// An agent's request for credentials and capabilities, decided by a person.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ProposalRow {
    pub id: String,
    /// The proposing agent's name and the scope its slots land in.
    pub agent: String,
    pub context: Context,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    pub slots: Vec<crate::proposal::Slot>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<crate::proposal::CapabilityAsk>,
    /// Slot key → a value staged before approval (one the agent supplied, or OAuth tokens a
    /// person connected or pasted on the page), sealed under the proposal's id and the key.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub staged: BTreeMap<String, Sealed>,
    pub status: crate::proposal::Status,
    pub created_ms: u64,
    pub expires_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_ms: Option<u64>,
    /// `cli` or `console`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_via: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A one-time link to a console page; only the token's hash is kept.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ReviewLinkRow {
    pub token_sha256: String,
    /// What it opens: a proposal id (`prp_...`) or `credential:<id>` (the Connect page).
    pub subject: String,
    pub expires_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub used_ms: Option<u64>,
}

/// The local certificate authority: certificate in PEM, private key sealed by the master key.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CaRow {
    pub cert_pem: String,
    /// The root's subject common name (needed to issue leaves under it).
    pub common_name: String,
    pub sealed_key: Sealed,
    pub created_ms: u64,
}
