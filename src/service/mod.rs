//! The service layer: every use case, shared by the CLI and the proxy.
//!
//! Architecture invariant: this is the only layer that both decrypts and knows who is asking.
//! Each management method runs in one store transaction and records its audit event in it.

pub mod agents;
pub mod api;
pub mod approvals;
pub mod ca;
mod capabilities;
mod credentials;
pub mod explain;
pub mod external;
mod keys;
pub mod limits;
pub mod oauth;
pub mod opened;
pub mod proposals;
pub mod proxies;
pub mod resolve;
mod secrets;

use std::path::{Path, PathBuf};

pub use capabilities::CapabilitySpec;
pub use credentials::{CredentialSpec, registry_credential_id};
pub use resolve::{CapabilityMeta, ResolvedCredential, Snapshot};
pub use secrets::SecretFilter;

use crate::audit::{AuditEvent, AuditQuery};
use crate::config::{Config, KeySource};
use crate::crypto::{self, MasterKey};
use crate::error::{Error, Result};
use crate::registry::Registry;
use crate::scope::Scope;
use crate::secret::{Sealed, SecretBytes};
use crate::store::{SecretRow, Store, WriteTx};

/// An open vault: the store, the master key and the registry. Short-lived: drop it to let
/// other aivault processes use the store.
pub struct Vault {
    home: PathBuf,
    store: Store,
    key: MasterKey,
    key_source: String,
    registry: &'static Registry,
    location: crate::store::Location,
}

impl Vault {
    /// Opens the vault in `cfg.home`, creating the directory, master key and store on first use.
    pub fn open(cfg: &Config) -> Result<Vault> {
        ensure_private_dir(&cfg.home)?;
        let registry = Registry::builtin()?;
        let (store, key, key_source) = match &cfg.store {
            crate::store::Location::File(path) => {
                let store_existed = std::fs::metadata(path).map(|m| m.len() > 0).unwrap_or(false);
                let (key, source) = keys::load(cfg, store_existed)?;
                (Store::open(&cfg.store, cfg.lock_wait)?, key, source)
            }
            // A database is shared: it "exists" once a vault was initialised in it.
            crate::store::Location::Postgres(..) => {
                let store = Store::open(&cfg.store, cfg.lock_wait)?;
                let initialised = store.read(|tx| tx.meta("kek_id"))?.is_some();
                let (key, source) = keys::load(cfg, initialised)?;
                (store, key, source)
            }
        };
        let mut vault = Vault { home: cfg.home.clone(), store, key, key_source, registry, location: cfg.store.clone() };
        vault.check_key(cfg)?;
        Ok(vault)
    }

    fn check_key(&mut self, cfg: &Config) -> Result<()> {
        let stored = self.store.read(|tx| tx.meta("kek_id"))?;
        match stored {
            None => self.store.write(|tx| {
                tx.set_meta("kek_id", self.key.id())?;
                record(tx, AuditEvent::new("vault.init").detail(format!("master key {}", self.key.id())))
            }),
            Some(id) if id == self.key.id() => {
                // The store is locked by us: a `master.key.next` now is from a rotation that was
                // killed before it committed, and no data is sealed under it.
                if let KeySource::File(path) = &cfg.key {
                    keys::discard_abandoned_rotation(path);
                }
                Ok(())
            }
            Some(expected) => {
                if let KeySource::File(path) = &cfg.key {
                    if let Some(key) = keys::finish_interrupted_rotation(path, &expected)? {
                        self.key = key;
                        return Ok(());
                    }
                }
                Err(Error::WrongMasterKey {
                    expected,
                    found: self.key.id().to_owned(),
                    home: self.home.display().to_string(),
                })
            }
        }
    }

    pub fn home(&self) -> &Path {
        &self.home
    }

    pub fn registry(&self) -> &'static Registry {
        self.registry
    }

    pub fn key(&self) -> &MasterKey {
        &self.key
    }

    /// Closes the store and keeps only the master key (for long-running request handling).
    pub fn into_key(self) -> MasterKey {
        self.key
    }

    pub fn status(&self) -> Result<api::Status> {
        self.store
            .read(|tx| {
                Ok(api::Status {
                    home: self.home.display().to_string(),
                    store: self.location.to_string(),
                    key_source: self.key_source.clone(),
                    key_id: self.key.id().to_owned(),
                    schema_version: crate::store::SCHEMA_VERSION,
                    secrets: tx.list::<SecretRow>()?.len(),
                    credentials: tx.list::<crate::store::CredentialRow>()?.len(),
                    custom_capabilities: tx.list::<crate::store::CapabilityRow>()?.len(),
                    registry_providers: self.registry.providers().count(),
                    agents: tx.list::<crate::store::AgentRow>()?.len(),
                })
            })
            .map_err(Error::from)
    }

    /// The management generation (bumped by every change a proxy must load).
    pub fn generation(&self) -> Result<u64> {
        Ok(self.store.read(|tx| tx.meta("generation"))?.and_then(|g| g.parse().ok()).unwrap_or(0))
    }

    /// Audit records matching `q`, newest first.
    pub fn audit(&self, q: &AuditQuery) -> Result<Vec<AuditEvent>> {
        let limit = if q.limit == 0 { 100 } else { q.limit };
        let scan = if q.agent.is_some() || q.capability.is_some() || q.since_ms.is_some() { usize::MAX } else { limit };
        let raw = self.store.read(|tx| tx.audit_newest(scan))?;
        let mut out = Vec::new();
        for (_, bytes) in raw {
            let Ok(event) = serde_json::from_slice::<AuditEvent>(&bytes) else { continue };
            if q.since_ms.is_some_and(|s| event.ts_ms < s) {
                break;
            }
            if q.accepts(&event) {
                out.push(event);
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Decrypts one secret row. Callers zeroize by dropping the result promptly.
    /// (An external secret is fetched from its source, uncached: management commands are rare.)
    pub(crate) fn open_secret(&self, row: &SecretRow) -> Result<SecretBytes> {
        if let Some(source) = &row.source {
            return external::fetch(source).map_err(|why| Error::Denied {
                code: crate::refusal::ErrorCode::CredentialUnavailable,
                message: format!("secret {} comes from {source}, which failed: {why}", row.name),
            });
        }
        crypto::open(&self.key, &secret_aad(row), &row.sealed).map_err(Error::from)
    }
}

/// Copies the whole store of `cfg` into `to` (sealed, one transaction on the target).
pub fn store_copy(cfg: &Config, to: &crate::store::Location, force: bool) -> Result<crate::store::Copied> {
    if *to == cfg.store {
        return Err(Error::invalid(format!("{to} is the store in use; name another target")));
    }
    let source = Store::open(&cfg.store, cfg.lock_wait)?;
    let target = Store::open(to, cfg.lock_wait)?;
    let copied = source.copy_to(&target, force)?;
    drop(source);
    target.write(|tx| {
        let detail = format!("{} records, {} audit records from {}", copied.records, copied.audit_records, cfg.store);
        record(tx, AuditEvent::new("store.copy").detail(detail))
    })?;
    Ok(copied)
}

/// Opens the store at `path` just long enough to read the management generation.
pub fn read_generation(path: &crate::store::Location, lock_wait: std::time::Duration) -> Result<u64> {
    let store = Store::open(path, lock_wait)?;
    Ok(store.read(|tx| tx.meta("generation"))?.and_then(|g| g.parse().ok()).unwrap_or(0))
}

/// Opens the store at `path` and builds a snapshot (no master key needed: secrets stay sealed).
pub fn load_snapshot(path: &crate::store::Location, lock_wait: std::time::Duration) -> Result<Snapshot> {
    let store = Store::open(path, lock_wait)?;
    Snapshot::load(&store, Registry::builtin()?)
}

/// How much of the request log the store keeps (security events are kept regardless).
pub(crate) fn audit_retention() -> crate::store::Retention {
    let age_ms = crate::audit::RETAIN_REQUEST_DAYS * 24 * 3600 * 1000;
    crate::store::Retention {
        max_requests: crate::audit::RETAIN_REQUESTS,
        min_ts_ms: crate::time::now_ms().saturating_sub(age_ms),
    }
}

/// Appends batches of audit records for one proxy. A redb vault is opened per batch (redb locks
/// its file for as long as it is open, and the CLI must be able to write between batches); a
/// PostgreSQL connection is kept between batches (dropped after an error, reconnected on the next),
/// so a busy proxy does not pay a connection and a schema check every few hundred milliseconds.
pub struct AuditWriter {
    location: crate::store::Location,
    lock_wait: std::time::Duration,
    held: Option<Store>,
}

impl AuditWriter {
    pub fn new(location: crate::store::Location, lock_wait: std::time::Duration) -> AuditWriter {
        AuditWriter { location, lock_wait, held: None }
    }

    /// Appends `events` in one transaction.
    pub fn append(&mut self, events: &[AuditEvent]) -> Result<()> {
        let store = match self.held.take() {
            Some(store) => store,
            None => Store::open(&self.location, self.lock_wait)?,
        };
        // A request record is 250–450 bytes: one allocation each, not `to_vec`'s three growths.
        let encoded: Vec<Vec<u8>> = events
            .iter()
            .filter_map(|e| {
                let mut line = Vec::with_capacity(512);
                serde_json::to_writer(&mut line, e).ok().map(|()| line)
            })
            .collect();
        store.write(|tx| tx.append_audit(&encoded, audit_retention()))?;
        if self.location.file().is_none() {
            self.held = Some(store);
        }
        Ok(())
    }
}

/// Associated data for a secret value: binds id, version, scope and pinned provider.
pub(crate) fn secret_aad(row: &SecretRow) -> Vec<u8> {
    secret_aad_parts(&row.id, row.version, &row.scope, row.pinned_provider.as_deref())
}

pub(crate) fn secret_aad_parts(id: &str, version: u32, scope: &Scope, pinned: Option<&str>) -> Vec<u8> {
    format!("aivault:secret:v1\0{id}\0{version}\0{}\0{}", scope.key(), pinned.unwrap_or("")).into_bytes()
}

pub(crate) fn seal_secret(
    key: &MasterKey,
    id: &str,
    version: u32,
    scope: &Scope,
    pinned: Option<&str>,
    value: &[u8],
) -> Result<Sealed> {
    crypto::seal(key, &secret_aad_parts(id, version, scope, pinned), value).map_err(Error::from)
}

/// Records a management event and marks the state changed, inside the command's transaction.
pub(crate) fn record(tx: &mut WriteTx, event: AuditEvent) -> Result<()> {
    let bytes =
        serde_json::to_vec(&event).map_err(|e| Error::Internal(format!("an audit record does not encode: {e}")))?;
    tx.append_audit(&[bytes], audit_retention())?;
    tx.bump_generation()?;
    Ok(())
}

/// Parses `vault:secret:<id>` or a bare secret id (`sec_...`, as `secrets list` prints it).
pub fn parse_secret_ref(text: &str) -> Result<&str> {
    let id = match text.strip_prefix("vault:secret:") {
        Some(id) => id,
        None if text.starts_with("sec_") => text,
        None => {
            return Err(Error::invalid(format!(
                "malformed secret reference '{text}': expected vault:secret:<id>, a bare id (sec_...) or name:NAME"
            )));
        }
    };
    let ok = id.len() > 4 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !ok {
        return Err(Error::invalid(format!("malformed secret reference '{text}': bad id '{id}'")));
    }
    Ok(id)
}

/// The secret a reference names: `vault:secret:<id>`, a bare id, or `name:NAME` looked up in
/// `scope`, then the scopes it reads (its workspace, then global).
pub(crate) fn resolve_secret_ref(tx: &WriteTx, text: &str, scope: &Scope) -> Result<String> {
    let Some(name) = text.strip_prefix("name:") else { return Ok(parse_secret_ref(text)?.to_owned()) };
    if let Some(id) = secret_named(tx, scope, name)? {
        return Ok(id);
    }
    Err(Error::not_found(
        "secret",
        name,
        &format!("no secret named {name} is readable from {scope}; see `aivault secrets list`"),
    ))
}

/// The id of the secret `name` as `scope` reads it: that scope, then its workspace, then global.
pub(crate) fn secret_named(tx: &WriteTx, scope: &Scope, name: &str) -> Result<Option<String>> {
    let mut scopes = vec![scope.clone()];
    if let Scope::Group { workspace_id, .. } = scope {
        scopes.push(Scope::Workspace { workspace_id: workspace_id.clone() });
    }
    if *scope != Scope::Global {
        scopes.push(Scope::Global);
    }
    for s in scopes {
        if let Some(id) = tx.name_owner(&crate::store::keys::name(&s, name))? {
            return Ok(Some(id));
        }
    }
    Ok(None)
}

pub(crate) fn secret_ref(id: &str) -> String {
    format!("vault:secret:{id}")
}

fn ensure_private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(Error::io(format!("cannot create data directory {}", dir.display())))?;
    }
    let meta = std::fs::metadata(dir).map_err(Error::io(format!(
        "cannot read data directory {} (run aivault as the user that owns it)",
        dir.display()
    )))?;
    if !meta.is_dir() {
        return Err(Error::invalid(format!("{} is not a directory", dir.display())));
    }
    if meta.permissions().mode() & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Reads that several use cases share.
pub(crate) fn secret_by_id_w(tx: &WriteTx, id: &str) -> Result<SecretRow> {
    tx.get::<SecretRow>(id)?.ok_or_else(|| Error::not_found("secret", id, "list secrets with `aivault secrets list`"))
}
