//! Audit events: one flat record type for management events and proxied requests.
//!
//! Architecture invariant: an event holds identifiers, never values. Paths are recorded
//! without their query, and path-auth prefixes are redacted before an event is built.

use serde::{Deserialize, Serialize};

/// One audit record.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct AuditEvent {
    pub ts_ms: u64,
    /// `secret.create`, `credential.delete`, `proxy.request`, ...
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capability: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_in: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_out: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// `ok` or an error code such as `capability_denied`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl AuditEvent {
    pub fn new(kind: &str) -> AuditEvent {
        AuditEvent { ts_ms: crate::time::now_ms(), kind: kind.to_owned(), ..Default::default() }
    }

    pub fn secret(mut self, id: &str) -> Self {
        self.secret_id = Some(id.to_owned());
        self
    }

    pub fn credential(mut self, id: &str) -> Self {
        self.credential = Some(id.to_owned());
        self
    }

    pub fn capability(mut self, id: &str) -> Self {
        self.capability = Some(id.to_owned());
        self
    }

    pub fn detail(mut self, d: impl Into<String>) -> Self {
        self.detail = Some(d.into());
        self
    }
}

/// How many audit records the store keeps; older ones are trimmed on append.
pub const RETAIN: u64 = 200_000;

/// Filters for `aivault audit`.
#[derive(Clone, Debug, Default)]
pub struct AuditQuery {
    pub limit: usize,
    pub since_ms: Option<u64>,
    pub agent: Option<String>,
    pub capability: Option<String>,
}

impl AuditQuery {
    pub fn accepts(&self, e: &AuditEvent) -> bool {
        self.since_ms.is_none_or(|s| e.ts_ms >= s)
            && self.agent.as_ref().is_none_or(|a| e.agent.as_ref() == Some(a))
            && self.capability.as_ref().is_none_or(|c| e.capability.as_ref() == Some(c))
    }
}
