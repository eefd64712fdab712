//! External secret sources: a secret whose value lives upstream (a password manager, a mounted
//! Kubernetes Secret) instead of sealed in the vault. Read-only from aivault: the proxy fetches
//! the value, keeps it in memory for `ttl_secs`, and never writes it to the store.
//!
//! Architecture invariant: a pure leaf (the description only); fetching is `service::external`.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Default time a fetched value is reused.
pub const DEFAULT_TTL_SECS: u64 = 300;

/// Where an external secret's value comes from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Source {
    /// A command (run by `sh -c`) whose standard output is the value: `pass show api/openai`,
    /// `op read op://vault/item/field`, `vault kv get -field=key secret/app`.
    Exec { command: String, ttl_secs: u64 },
    /// A file whose contents are the value (re-read when it changes or the TTL passes).
    File { path: PathBuf, ttl_secs: u64 },
}

impl Source {
    pub fn ttl_secs(&self) -> u64 {
        match self {
            Source::Exec { ttl_secs, .. } | Source::File { ttl_secs, .. } => *ttl_secs,
        }
    }
}

/// `exec: pass show api/openai` / `file: /run/secrets/openai`.
impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Exec { command, .. } => write!(f, "exec: {command}"),
            Source::File { path, .. } => write!(f, "file: {}", path.display()),
        }
    }
}
