//! The store: typed records (never plaintext) in the embedded redb file (default, `file.rs`) or in
//! PostgreSQL for a fleet (`pg.rs`), behind one transaction API.
//!
//! Architecture invariants:
//! - redb and postgres are used only in this module.
//! - The store never sees plaintext: it keeps metadata and sealed envelopes, on either backend.
//! - Every management command is one write transaction; a failed command commits nothing.
//! - Writers are serialised (redb: one file lock; PostgreSQL: one advisory lock per transaction).
//! - File handles are short-lived: redb lets one process hold the file at a time, so every process
//!   opens, does one transaction and closes, waiting a bounded time for the lock (ARCHITECTURE.md,
//!   "Sharing the store").

mod file;
mod guard;
mod location;
mod pg;
mod rows;

pub use guard::StoreError;
pub use location::Location;
pub use pg::PG_SCHEMA_VERSION;

use std::path::Path;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

pub use rows::{
    AgentRow, ApprovalRow, AttachmentRow, BindingRow, CaRow, CapabilityRow, CredentialRow, LimitRow, Origin,
    ProposalRow, ReviewLinkRow, SecretRow,
};

/// The schema this binary writes in the redb file. Older stores are migrated forward on open.
pub const SCHEMA_VERSION: u32 = 7;

/// The string-valued tables (names and token hashes map to ids).
const NAMES: &str = "secret_names";
const AGENT_TOKENS: &str = "agent_tokens";
const META: &str = "meta";

pub(crate) fn decode<T: DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// How much of the request log to keep.
#[derive(Clone, Copy, Debug)]
pub struct Retention {
    pub max_requests: u64,
    /// Request records older than this are trimmed.
    pub min_ts_ms: u64,
}

/// What `AuditEvent` serializes first, `{"ts_ms":N`, split into the digits of N and the rest:
/// the fast path that reads a record's time and kind without a JSON parse.
fn ts_prefix(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let rest = bytes.strip_prefix(br#"{"ts_ms":"#)?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    (digits > 0).then(|| rest.split_at(digits))
}

pub(crate) fn record_ts_ms(bytes: &[u8]) -> u64 {
    if let Some((digits, rest)) = ts_prefix(bytes) {
        if matches!(rest.first(), Some(b',' | b'}')) {
            if let Some(ts) = std::str::from_utf8(digits).ok().and_then(|d| d.parse().ok()) {
                return ts;
            }
        }
    }
    #[derive(serde::Deserialize)]
    struct Ts {
        ts_ms: u64,
    }
    serde_json::from_slice::<Ts>(bytes).map(|t| t.ts_ms).unwrap_or(u64::MAX)
}

/// Whether an encoded audit record is a security event (anything but a proxied request).
pub(crate) fn is_security_record(bytes: &[u8]) -> bool {
    // Fast path for what `AuditEvent` serializes (`{"ts_ms":N,"kind":"...`): no JSON parse for
    // the thousands of request records a proxy flushes at once.
    if let Some((_, rest)) = ts_prefix(bytes) {
        if let Some(kind) = rest.strip_prefix(br#","kind":""#) {
            if let Some(end) = kind.iter().position(|b| *b == b'"' || *b == b'\\') {
                if kind[end] == b'"' {
                    if let Ok(kind) = std::str::from_utf8(&kind[..end]) {
                        return crate::audit::is_security_kind(kind);
                    }
                }
            }
        }
    }
    #[derive(serde::Deserialize)]
    struct Kind {
        kind: String,
    }
    serde_json::from_slice::<Kind>(bytes).map(|k| crate::audit::is_security_kind(&k.kind)).unwrap_or(true)
}

/// A record kind stored as JSON in its own table, keyed by a string.
pub trait Record: Serialize + DeserializeOwned {
    /// The table (redb) or `tbl` value (PostgreSQL) the kind lives in.
    const NAME: &'static str;
    const WHAT: &'static str;
}

impl Record for SecretRow {
    const NAME: &'static str = "secrets";
    const WHAT: &'static str = "secret";
}
impl Record for CredentialRow {
    const NAME: &'static str = "credentials";
    const WHAT: &'static str = "credential";
}
impl Record for CapabilityRow {
    const NAME: &'static str = "capabilities";
    const WHAT: &'static str = "capability";
}
impl Record for BindingRow {
    const NAME: &'static str = "bindings";
    const WHAT: &'static str = "binding";
}
impl Record for AttachmentRow {
    const NAME: &'static str = "group_attachments";
    const WHAT: &'static str = "attachment";
}
impl Record for AgentRow {
    const NAME: &'static str = "agents";
    const WHAT: &'static str = "agent";
}
impl Record for CaRow {
    const NAME: &'static str = "ca";
    const WHAT: &'static str = "ca";
}
impl Record for ApprovalRow {
    const NAME: &'static str = "approvals";
    const WHAT: &'static str = "approval";
}
impl Record for ProposalRow {
    const NAME: &'static str = "proposals";
    const WHAT: &'static str = "proposal";
}
impl Record for ReviewLinkRow {
    const NAME: &'static str = "review_links";
    const WHAT: &'static str = "review link";
}
impl Record for LimitRow {
    const NAME: &'static str = "limits";
    const WHAT: &'static str = "limit";
}

/// Key helpers, so every caller spells composite keys the same way.
pub mod keys {
    use crate::scope::Scope;

    pub fn name(scope: &Scope, name: &str) -> String {
        format!("{}\0{name}", scope.key())
    }
    pub fn binding(capability: &str, scope: &Scope) -> String {
        format!("{capability}\0{}", scope.key())
    }
    pub fn attachment(secret_id: &str, workspace: &str, group: &str) -> String {
        format!("{secret_id}\0{workspace}\0{group}")
    }
}

/// An open store. Drop it promptly: an open redb file blocks other aivault processes.
pub struct Store {
    backend: Backend,
}

enum Backend {
    File(file::FileStore),
    Pg(Box<pg::PgStore>),
}

impl Store {
    /// Opens (creating and migrating as needed) the store at `loc`, waiting up to `lock_wait` for
    /// another process to release a redb file, or for the database to accept the connection.
    pub fn open(loc: &Location, lock_wait: Duration) -> Result<Store, StoreError> {
        let backend = match loc {
            Location::File(path) => Backend::File(file::FileStore::open(path, lock_wait)?),
            Location::Postgres(url, passfile) => {
                Backend::Pg(Box::new(pg::PgStore::open(loc, url, passfile.as_deref(), lock_wait)?))
            }
        };
        Ok(Store { backend })
    }

    /// Runs `f` in one read transaction (a consistent snapshot).
    pub fn read<T>(&self, f: impl FnOnce(&ReadTx<'_>) -> Result<T, StoreError>) -> Result<T, StoreError> {
        match &self.backend {
            Backend::File(s) => s.read(|tx| f(&ReadTx { inner: ReadInner::File(tx) })),
            Backend::Pg(s) => s.read(|tx| f(&ReadTx { inner: ReadInner::Pg(tx) })),
        }
    }

    /// Runs `f` in one write transaction, committed only if `f` returns `Ok`.
    pub fn write<T, E: From<StoreError>>(&self, f: impl FnOnce(&mut WriteTx<'_>) -> Result<T, E>) -> Result<T, E> {
        match &self.backend {
            Backend::File(s) => s.write(|tx| f(&mut WriteTx { inner: WriteInner::File(tx) })),
            Backend::Pg(s) => s.write(|tx| f(&mut WriteTx { inner: WriteInner::Pg(tx) })),
        }
    }
}

/// The generation a redb store's sidecar records (`None` for PostgreSQL, or without a sidecar).
pub fn read_generation_file(loc: &Location) -> Option<u64> {
    file::read_generation_file(loc.file()?)
}

/// The sidecar file of a redb store (tests and tools).
pub fn generation_file(store_path: &Path) -> std::path::PathBuf {
    file::generation_file(store_path)
}

/// A read transaction.
pub struct ReadTx<'a> {
    inner: ReadInner<'a>,
}

enum ReadInner<'a> {
    File(&'a file::FileRead),
    Pg(&'a dyn pg::PgReadOps),
}

impl ReadTx<'_> {
    pub fn get<R: Record>(&self, key: &str) -> Result<Option<R>, StoreError> {
        match &self.inner {
            ReadInner::File(t) => t.get::<R>(key),
            ReadInner::Pg(t) => t.get_raw(R::NAME, key)?.map(|b| decode(R::WHAT, &b)).transpose(),
        }
    }

    pub fn list<R: Record>(&self) -> Result<Vec<R>, StoreError> {
        match &self.inner {
            ReadInner::File(t) => t.list::<R>(),
            ReadInner::Pg(t) => t.list_raw(R::NAME)?.iter().map(|b| decode(R::WHAT, b)).collect(),
        }
    }

    pub fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        match &self.inner {
            ReadInner::File(t) => t.meta(key),
            ReadInner::Pg(t) => t.text(META, key),
        }
    }

    pub fn agent_by_token_hash(&self, hash: &str) -> Result<Option<String>, StoreError> {
        match &self.inner {
            ReadInner::File(t) => t.agent_by_token_hash(hash),
            ReadInner::Pg(t) => t.text(AGENT_TOKENS, hash),
        }
    }

    /// Audit records (requests and security events merged) with sequence numbers, newest
    /// first, at most `limit`.
    pub fn audit_newest(&self, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        match &self.inner {
            ReadInner::File(t) => t.audit_newest(limit),
            ReadInner::Pg(t) => t.audit_newest(limit),
        }
    }
}

/// A write transaction.
pub struct WriteTx<'a> {
    inner: WriteInner<'a>,
}

enum WriteInner<'a> {
    File(&'a mut file::FileWrite),
    Pg(&'a mut dyn pg::PgWriteOps),
}

impl WriteTx<'_> {
    pub fn get<R: Record>(&self, key: &str) -> Result<Option<R>, StoreError> {
        match &self.inner {
            WriteInner::File(t) => t.get::<R>(key),
            WriteInner::Pg(t) => t.get_raw(R::NAME, key)?.map(|b| decode(R::WHAT, &b)).transpose(),
        }
    }

    pub fn list<R: Record>(&self) -> Result<Vec<R>, StoreError> {
        match &self.inner {
            WriteInner::File(t) => t.list::<R>(),
            WriteInner::Pg(t) => t.list_raw(R::NAME)?.iter().map(|b| decode(R::WHAT, b)).collect(),
        }
    }

    pub fn put<R: Record>(&mut self, key: &str, row: &R) -> Result<(), StoreError> {
        match &mut self.inner {
            WriteInner::File(t) => t.put(key, row),
            WriteInner::Pg(t) => t.put_raw(R::NAME, key, &encode(row)?),
        }
    }

    /// Removes a record; returns whether it existed.
    pub fn delete<R: Record>(&mut self, key: &str) -> Result<bool, StoreError> {
        match &mut self.inner {
            WriteInner::File(t) => t.delete::<R>(key),
            WriteInner::Pg(t) => t.delete_raw(R::NAME, key),
        }
    }

    pub fn name_owner(&self, key: &str) -> Result<Option<String>, StoreError> {
        match &self.inner {
            WriteInner::File(t) => t.name_owner(key),
            WriteInner::Pg(t) => t.text(NAMES, key),
        }
    }

    pub fn put_name(&mut self, key: &str, secret_id: &str) -> Result<(), StoreError> {
        match &mut self.inner {
            WriteInner::File(t) => t.put_name(key, secret_id),
            WriteInner::Pg(t) => t.put_raw(NAMES, key, secret_id.as_bytes()),
        }
    }

    pub fn delete_name(&mut self, key: &str) -> Result<(), StoreError> {
        match &mut self.inner {
            WriteInner::File(t) => t.delete_name(key),
            WriteInner::Pg(t) => t.delete_raw(NAMES, key).map(|_| ()),
        }
    }

    pub fn put_agent_token(&mut self, hash: &str, agent_id: &str) -> Result<(), StoreError> {
        match &mut self.inner {
            WriteInner::File(t) => t.put_agent_token(hash, agent_id),
            WriteInner::Pg(t) => t.put_raw(AGENT_TOKENS, hash, agent_id.as_bytes()),
        }
    }

    pub fn delete_agent_token(&mut self, hash: &str) -> Result<(), StoreError> {
        match &mut self.inner {
            WriteInner::File(t) => t.delete_agent_token(hash),
            WriteInner::Pg(t) => t.delete_raw(AGENT_TOKENS, hash).map(|_| ()),
        }
    }

    pub fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        match &self.inner {
            WriteInner::File(t) => t.meta(key),
            WriteInner::Pg(t) => t.text(META, key),
        }
    }

    pub fn set_meta(&mut self, key: &str, value: &str) -> Result<(), StoreError> {
        match &mut self.inner {
            WriteInner::File(t) => t.set_meta(key, value),
            WriteInner::Pg(t) => t.put_raw(META, key, value.as_bytes()),
        }
    }

    /// Marks the management state as changed so running proxies reload their snapshot.
    pub fn bump_generation(&mut self) -> Result<u64, StoreError> {
        let next = self.meta("generation")?.and_then(|g| g.parse::<u64>().ok()).unwrap_or(0) + 1;
        self.set_meta("generation", &next.to_string())?;
        match &mut self.inner {
            WriteInner::File(t) => t.bumped = Some(next),
            WriteInner::Pg(t) => t.notify(next)?,
        }
        Ok(next)
    }

    /// Appends audit records: security events are never trimmed, request records are trimmed
    /// to `retention`.
    pub fn append_audit(&mut self, records: &[Vec<u8>], retention: Retention) -> Result<(), StoreError> {
        match &mut self.inner {
            WriteInner::File(t) => t.append_audit(records, retention),
            WriteInner::Pg(t) => t.append_audit(records, retention),
        }
    }
}

/// Follows the management generation of a PostgreSQL store on one dedicated connection:
/// `LISTEN aivault_generation`, woken by every commit that changed it, with a re-read after each
/// wait as the safety net for a lost notification or a dropped connection.
pub struct GenerationWatch {
    loc: Location,
    timeout: Duration,
    client: Option<postgres::Client>,
    listening: bool,
}

impl GenerationWatch {
    /// A watch on `loc` (PostgreSQL only; `None` for a redb file, which has its sidecar).
    pub fn new(loc: &Location, timeout: Duration) -> Option<GenerationWatch> {
        loc.is_postgres().then(|| GenerationWatch { loc: loc.clone(), timeout, client: None, listening: false })
    }

    /// Waits up to `wait` for a notification, then returns the current generation. A failure
    /// drops the connection; the next call reconnects.
    pub fn next(&mut self, wait: Duration) -> Result<u64, StoreError> {
        let Location::Postgres(url, passfile) = &self.loc else { return Ok(0) };
        if self.client.is_none() {
            self.client = Some(pg::connect(&self.loc, url, passfile.as_deref(), self.timeout)?);
            self.listening = false;
        }
        let name = self.loc.to_string();
        let outcome = match self.client.as_mut() {
            Some(client) => pg::listen(client, wait, &mut self.listening).and_then(|_| {
                client.query_opt(
                    "SELECT value FROM aivault_kv WHERE tbl = 'meta' AND key = $1",
                    &[&"generation".as_bytes()],
                )
            }),
            None => return Err(StoreError::Database(name, "not connected".into())),
        };
        match outcome {
            Ok(row) => Ok(row
                .map(|r| r.get::<_, Vec<u8>>(0))
                .and_then(|b| String::from_utf8_lossy(&b).parse().ok())
                .unwrap_or(0)),
            Err(e) => {
                self.client = None;
                Err(StoreError::Database(name, e.to_string()))
            }
        }
    }
}

/// A fleet-wide lock held on its own PostgreSQL connection (a session advisory lock); released
/// when dropped or when the connection ends. Drop it off the async threads: closing blocks.
pub struct NamedLock {
    _client: postgres::Client,
}

/// Takes the fleet-wide lock `name` on a PostgreSQL store, waiting for another holder; `None` for a
/// redb file (one process holds it at a time: a local lock is enough).
pub fn lock_named(loc: &Location, timeout: Duration, name: &str) -> Result<Option<NamedLock>, StoreError> {
    let Location::Postgres(url, passfile) = loc else { return Ok(None) };
    let mut client = pg::connect(loc, url, passfile.as_deref(), timeout)?;
    client
        .execute("SELECT pg_advisory_lock(hashtextextended($1, 0))", &[&name])
        .map_err(|e| StoreError::Database(loc.to_string(), e.to_string()))?;
    Ok(Some(NamedLock { _client: client }))
}

/// A whole store as it is stored (sealed values, hashes, ids): what `store copy` moves.
#[derive(Default)]
pub struct Dump {
    /// (table, key, value) of every record, name and token hash, and the meta entries.
    pub kv: Vec<(String, String, Vec<u8>)>,
    /// (sequence, record) of the audit log, security events and requests together.
    pub audit: Vec<(u64, Vec<u8>)>,
}

/// What a copy moved.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Copied {
    pub records: usize,
    pub audit_records: usize,
}

impl Store {
    /// Copies everything into `target` in one transaction on the target. A target holding
    /// anything is refused unless `force` (which replaces what it holds).
    pub fn copy_to(&self, target: &Store, force: bool) -> Result<Copied, StoreError> {
        let dump = match &self.backend {
            Backend::File(s) => s.read(|tx| tx.dump())?,
            Backend::Pg(s) => s.read(|tx| tx.dump())?,
        };
        let copied = Copied { records: dump.kv.len(), audit_records: dump.audit.len() };
        target.write(|tx| {
            let empty = match &tx.inner {
                WriteInner::File(t) => t.is_empty()?,
                WriteInner::Pg(t) => t.is_empty()?,
            };
            if !empty && !force {
                return Err(StoreError::NotEmpty);
            }
            match &mut tx.inner {
                WriteInner::File(t) => t.load(&dump)?,
                WriteInner::Pg(t) => t.load(&dump)?,
            }
            // Proxies on the target reload what it now holds.
            tx.bump_generation()?;
            Ok(copied)
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_records_time_is_read_with_and_without_the_fast_path() {
        for (record, want) in [
            (&br#"{"ts_ms":1700000000123,"kind":"proxy.request"}"#[..], 1_700_000_000_123),
            (br#"{"ts_ms":7}"#, 7),
            (br#"{"kind":"proxy.request","ts_ms":42}"#, 42),
            (br#"{"ts_ms":1.5,"kind":"x"}"#, u64::MAX),
            (br#"{"ts_ms":99999999999999999999999,"kind":"x"}"#, u64::MAX),
            (br#"{"ts_ms":,"kind":"x"}"#, u64::MAX),
            (b"not json", u64::MAX),
        ] {
            assert_eq!(super::record_ts_ms(record), want, "{}", String::from_utf8_lossy(record));
        }
    }
}
