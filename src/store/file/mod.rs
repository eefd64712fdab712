//! The embedded backend: one redb file in the data directory (the default).
//!
//! redb lets one process hold the file at a time, so every process (CLI command, proxy snapshot
//! reload, audit flush) opens, does one transaction and closes, waiting a bounded time for the
//! lock. See ARCHITECTURE.md, "Sharing the store". Request records and security events live in two
//! tables sharing one sequence; a sidecar file carries the management generation.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use redb::{
    Database, DatabaseError, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition, TableHandle,
};

use super::guard::{check_file, create_new, guarded, open_error};
use super::{Record, SCHEMA_VERSION, StoreError, decode, encode, is_security_record};

mod audit;

/// The redb table a record kind lives in.
fn table<R: Record>() -> Tbl {
    TableDefinition::new(R::NAME)
}

type Tbl = TableDefinition<'static, &'static str, &'static [u8]>;

const META: Tbl = TableDefinition::new("meta");
const SECRETS: Tbl = TableDefinition::new("secrets");
/// `<scope key>\0<name or alias>` → secret id. Names and aliases share one namespace per scope.
const NAMES: TableDefinition<'static, &'static str, &'static str> = TableDefinition::new("secret_names");
const CREDENTIALS: Tbl = TableDefinition::new("credentials");
const CAPABILITIES: Tbl = TableDefinition::new("capabilities");
/// `<capability>\0<scope key>` → binding.
const BINDINGS: Tbl = TableDefinition::new("bindings");
/// `<secret id>\0<workspace>\0<group>` → attachment.
const ATTACHMENTS: Tbl = TableDefinition::new("group_attachments");
const AGENTS: Tbl = TableDefinition::new("agents");
/// Token hash → agent id.
const AGENT_TOKENS: TableDefinition<'static, &'static str, &'static str> = TableDefinition::new("agent_tokens");
/// Request records (trimmed by age and count).
const AUDIT: TableDefinition<'static, u64, &'static [u8]> = TableDefinition::new("audit");
/// Security events (vault, secret, credential, agent changes): never evicted by request records.
/// Sequence numbers are shared with `audit`, so the two merge into one timeline.
const AUDIT_SECURITY: TableDefinition<'static, u64, &'static [u8]> = TableDefinition::new("audit_security");
const CA: Tbl = TableDefinition::new("ca");
/// `capability:<id>` / `credential:<id>` / `agent:<name>` → limit.
const LIMITS: Tbl = TableDefinition::new("limits");
/// Approval id → held request or standing allowance.
const APPROVALS: Tbl = TableDefinition::new("approvals");
/// Proposal id → proposal.
const PROPOSALS: Tbl = TableDefinition::new("proposals");
/// Review-link token hash → link.
const REVIEW_LINKS: Tbl = TableDefinition::new("review_links");

/// Ordered migrations: entry `i` moves a store from version `i` to `i + 1`.
type Migration = fn(&redb::WriteTransaction, &Path) -> Result<(), redb::Error>;
const MIGRATIONS: &[Migration] = &[
    migrate_0_to_1,
    migrate_1_to_2,
    migrate_2_to_3,
    migrate_3_to_4,
    migrate_4_to_5,
    migrate_5_to_6,
    audit::migrate_6_to_7,
];

/// Request records are appended as segments (see `audit`); earlier rows stay where they are.
fn migrate_5_to_6(tx: &redb::WriteTransaction, _: &Path) -> Result<(), redb::Error> {
    tx.open_table(audit::SEGMENTS)?;
    tx.open_table(audit::INFO)?;
    Ok(())
}

/// Proposals and their review links get their tables.
fn migrate_4_to_5(tx: &redb::WriteTransaction, _: &Path) -> Result<(), redb::Error> {
    tx.open_table(PROPOSALS)?;
    tx.open_table(REVIEW_LINKS)?;
    Ok(())
}

/// Held requests get their table.
fn migrate_3_to_4(tx: &redb::WriteTransaction, _: &Path) -> Result<(), redb::Error> {
    tx.open_table(APPROVALS)?;
    Ok(())
}

/// Rate limits and budgets get their table.
fn migrate_2_to_3(tx: &redb::WriteTransaction, _: &Path) -> Result<(), redb::Error> {
    tx.open_table(LIMITS)?;
    Ok(())
}

fn migrate_0_to_1(tx: &redb::WriteTransaction, _: &Path) -> Result<(), redb::Error> {
    tx.open_table(SECRETS)?;
    tx.open_table(NAMES)?;
    tx.open_table(CREDENTIALS)?;
    tx.open_table(CAPABILITIES)?;
    tx.open_table(BINDINGS)?;
    tx.open_table(ATTACHMENTS)?;
    tx.open_table(AGENTS)?;
    tx.open_table(AGENT_TOKENS)?;
    tx.open_table(AUDIT)?;
    tx.open_table(CA)?;
    Ok(())
}

/// Security events move out of the request log into their own table.
fn migrate_1_to_2(tx: &redb::WriteTransaction, _: &Path) -> Result<(), redb::Error> {
    let mut security = tx.open_table(AUDIT_SECURITY)?;
    let mut audit = tx.open_table(AUDIT)?;
    let mut moved = Vec::new();
    for item in audit.iter()? {
        let (k, v) = item?;
        if is_security_record(v.value()) {
            moved.push((k.value(), v.value().to_vec()));
        }
    }
    for (k, v) in moved {
        security.insert(k, v.as_slice())?;
        audit.remove(k)?;
    }
    Ok(())
}

/// An open store. Drop it promptly: holding it blocks other aivault processes.
pub(super) struct FileStore {
    /// `None` only while dropping.
    pub(super) db: Option<Database>,
    pub(super) path: PathBuf,
}

impl Drop for FileStore {
    /// redb commits its allocator state when a database is dropped, which can fail (and panic)
    /// on a damaged file: that too runs under the guard.
    fn drop(&mut self) {
        let db = self.db.take();
        let _ = guarded(&self.path, move || {
            drop(db);
            Ok(())
        });
    }
}

/// The sidecar file holding the management generation, rewritten after every commit that changed
/// it. Running proxies poll this tiny file instead of opening the store (audit appends, which
/// change the store file constantly, do not touch it).
pub(super) fn generation_file(store_path: &Path) -> PathBuf {
    store_path.with_extension("generation")
}

/// redb's page cache for one handle. Every handle here lives for one command, one snapshot build
/// or one audit batch, so a cache never outlives the pages it read; redb's default (1 GiB) let a
/// proxy's RSS jump by the size of the vault at every snapshot reload and audit batch.
const CACHE_BYTES: usize = 16 * 1024 * 1024;

impl FileStore {
    /// Opens (creating with mode 0600 if needed) and migrates the store at `path`, waiting up
    /// to `lock_wait` for another process to release it.
    pub(super) fn open(path: &Path, lock_wait: Duration) -> Result<FileStore, StoreError> {
        if !path.exists() {
            create_new(path)?;
        }
        check_file(path)?;
        let deadline = Instant::now() + lock_wait;
        let mut pause = Duration::from_millis(5);
        let db = loop {
            match guarded(path, || Ok(Database::builder().set_cache_size(CACHE_BYTES).create(path))) {
                Ok(Ok(db)) => break db,
                Ok(Err(DatabaseError::DatabaseAlreadyOpen)) if Instant::now() < deadline => {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(100));
                }
                Ok(Err(DatabaseError::DatabaseAlreadyOpen)) => {
                    return Err(StoreError::Busy(path.to_owned()));
                }
                Ok(Err(e)) => return Err(open_error(path, e)),
                Err(e) => return Err(e),
            }
        };
        let store = FileStore { db: Some(db), path: path.to_owned() };
        guarded(path, || store.migrate(path))?;
        Ok(store)
    }

    pub(super) fn migrate(&self, path: &Path) -> Result<(), StoreError> {
        let tx = self.db()?.begin_write()?;
        let version = {
            let meta = tx.open_table(META)?;
            let v = meta.get("schema_version")?.map(|g| g.value().to_vec());
            match v {
                Some(bytes) => std::str::from_utf8(&bytes)
                    .ok()
                    .and_then(|s| s.parse::<u32>().ok())
                    .ok_or_else(|| StoreError::Foreign(path.to_owned(), "bad schema version".into()))?,
                None => {
                    let foreign = tx.list_tables()?.any(|t| t.name() != "meta");
                    if foreign {
                        return Err(StoreError::Foreign(path.to_owned(), "no aivault schema".into()));
                    }
                    0
                }
            }
        };
        if version > SCHEMA_VERSION {
            return Err(StoreError::NewerSchema { found: version, known: SCHEMA_VERSION });
        }
        if version == SCHEMA_VERSION {
            tx.abort()?;
            return Ok(());
        }
        for step in &MIGRATIONS[version as usize..] {
            step(&tx, path)?;
        }
        {
            let mut meta = tx.open_table(META)?;
            meta.insert("schema_version", SCHEMA_VERSION.to_string().as_bytes())?;
        }
        tx.commit()?;
        Ok(())
    }

    fn db(&self) -> Result<&Database, StoreError> {
        self.db.as_ref().ok_or_else(|| StoreError::Io("the store is closed".into()))
    }

    /// Runs `f` in one read transaction.
    pub(super) fn read<T>(&self, f: impl FnOnce(&FileRead) -> Result<T, StoreError>) -> Result<T, StoreError> {
        guarded(&self.path, || {
            let tx = FileRead { tx: self.db()?.begin_read()?, path: self.path.clone() };
            f(&tx)
        })
    }

    /// Runs `f` in one write transaction, committed only if `f` returns `Ok`.
    pub(super) fn write<T, E: From<StoreError>>(&self, f: impl FnOnce(&mut FileWrite) -> Result<T, E>) -> Result<T, E> {
        // The closure's own error travels out of the guard untouched; only engine failures map.
        let outcome = guarded(&self.path, || {
            let mut tx = FileWrite {
                tx: self.db()?.begin_write()?,
                bumped: None,
                path: self.path.clone(),
                written: Vec::new(),
                live_segments: None,
            };
            let outcome = f(&mut tx);
            let FileWrite { tx: redb_tx, bumped, written, live_segments, .. } = tx;
            // Audit segment files this transaction wrote go with it if it does not commit.
            let forget = || written.iter().for_each(|p| drop(std::fs::remove_file(p)));
            match outcome {
                Ok(v) => {
                    if let Err(e) = redb_tx.commit() {
                        forget();
                        return Err(e.into());
                    }
                    if let Some(live) = live_segments {
                        audit::sweep(&self.path, &live);
                    }
                    Ok(Ok((v, bumped)))
                }
                Err(e) => {
                    let _ = redb_tx.abort();
                    forget();
                    Ok(Err(e))
                }
            }
        });
        match outcome {
            Ok(Ok((v, bumped))) => {
                if let Some(generation) = bumped {
                    // Best effort: a stale sidecar only delays a reload until the next change.
                    let _ = write_generation(&self.path, generation);
                }
                Ok(v)
            }
            Ok(Err(e)) => Err(e),
            Err(e) => Err(E::from(e)),
        }
    }
}

fn write_generation(store_path: &Path, generation: u64) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt;
    let path = generation_file(store_path);
    let tmp = path.with_extension("generation.tmp");
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
    f.write_all(generation.to_string().as_bytes())?;
    drop(f);
    std::fs::rename(tmp, path)
}

/// The generation recorded in the sidecar, if any.
pub(super) fn read_generation_file(store_path: &Path) -> Option<u64> {
    std::fs::read_to_string(generation_file(store_path)).ok()?.trim().parse().ok()
}

/// A read transaction.
pub(super) struct FileRead {
    pub(super) tx: redb::ReadTransaction,
    /// The store file (the audit log's segment files live beside it).
    pub(super) path: PathBuf,
}

/// One row of a record table, read or write transaction alike.
fn get_row<R: Record>(t: &impl ReadableTable<&'static str, &'static [u8]>, key: &str) -> Result<Option<R>, StoreError> {
    t.get(key)?.map(|g| decode(R::WHAT, g.value())).transpose()
}

/// Every row of a record table.
fn list_rows<R: Record>(t: &impl ReadableTable<&'static str, &'static [u8]>) -> Result<Vec<R>, StoreError> {
    let mut out = Vec::new();
    for item in t.iter()? {
        let (_, v) = item?;
        out.push(decode(R::WHAT, v.value())?);
    }
    Ok(out)
}

/// A `meta` value as text.
fn meta_text(t: &impl ReadableTable<&'static str, &'static [u8]>, key: &str) -> Result<Option<String>, StoreError> {
    Ok(t.get(key)?.map(|g| String::from_utf8_lossy(g.value()).into_owned()))
}

impl FileRead {
    pub(super) fn get<R: Record>(&self, key: &str) -> Result<Option<R>, StoreError> {
        get_row(&self.tx.open_table(table::<R>())?, key)
    }

    pub(super) fn list<R: Record>(&self) -> Result<Vec<R>, StoreError> {
        list_rows(&self.tx.open_table(table::<R>())?)
    }

    pub(super) fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        meta_text(&self.tx.open_table(META)?, key)
    }

    pub(super) fn agent_by_token_hash(&self, hash: &str) -> Result<Option<String>, StoreError> {
        let t = self.tx.open_table(AGENT_TOKENS)?;
        Ok(t.get(hash)?.map(|g| g.value().to_owned()))
    }
}

/// A write transaction.
pub(super) struct FileWrite {
    pub(super) tx: redb::WriteTransaction,
    pub(super) bumped: Option<u64>,
    /// The store file (the audit log's segment files live beside it).
    pub(super) path: PathBuf,
    /// Audit segment files written in this transaction (deleted if it does not commit).
    pub(super) written: Vec<PathBuf>,
    /// Set when segments left the log: the files it still names (the rest are deleted after
    /// the commit).
    pub(super) live_segments: Option<std::collections::BTreeSet<(u64, u64)>>,
}

impl FileWrite {
    pub(super) fn get<R: Record>(&self, key: &str) -> Result<Option<R>, StoreError> {
        get_row(&self.tx.open_table(table::<R>())?, key)
    }

    pub(super) fn list<R: Record>(&self) -> Result<Vec<R>, StoreError> {
        list_rows(&self.tx.open_table(table::<R>())?)
    }

    pub(super) fn put<R: Record>(&mut self, key: &str, row: &R) -> Result<(), StoreError> {
        let bytes = encode(row)?;
        let mut t = self.tx.open_table(table::<R>())?;
        t.insert(key, bytes.as_slice())?;
        Ok(())
    }

    /// Removes a record; returns whether it existed.
    pub(super) fn delete<R: Record>(&mut self, key: &str) -> Result<bool, StoreError> {
        let mut t = self.tx.open_table(table::<R>())?;
        let existed = t.remove(key)?.is_some();
        Ok(existed)
    }

    pub(super) fn name_owner(&self, key: &str) -> Result<Option<String>, StoreError> {
        let t = self.tx.open_table(NAMES)?;
        let owner = t.get(key)?.map(|g| g.value().to_owned());
        Ok(owner)
    }

    pub(super) fn put_name(&mut self, key: &str, secret_id: &str) -> Result<(), StoreError> {
        let mut t = self.tx.open_table(NAMES)?;
        t.insert(key, secret_id)?;
        Ok(())
    }

    pub(super) fn delete_name(&mut self, key: &str) -> Result<(), StoreError> {
        let mut t = self.tx.open_table(NAMES)?;
        t.remove(key)?;
        Ok(())
    }

    pub(super) fn put_agent_token(&mut self, hash: &str, agent_id: &str) -> Result<(), StoreError> {
        let mut t = self.tx.open_table(AGENT_TOKENS)?;
        t.insert(hash, agent_id)?;
        Ok(())
    }

    pub(super) fn delete_agent_token(&mut self, hash: &str) -> Result<(), StoreError> {
        let mut t = self.tx.open_table(AGENT_TOKENS)?;
        t.remove(hash)?;
        Ok(())
    }

    pub(super) fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        meta_text(&self.tx.open_table(META)?, key)
    }

    pub(super) fn set_meta(&mut self, key: &str, value: &str) -> Result<(), StoreError> {
        let mut t = self.tx.open_table(META)?;
        t.insert(key, value.as_bytes())?;
        Ok(())
    }
}

/// The byte-valued record tables a copy moves (names and token hashes are string tables).
const RECORD_TABLES: &[Tbl] = &[
    META,
    SECRETS,
    CREDENTIALS,
    CAPABILITIES,
    BINDINGS,
    ATTACHMENTS,
    AGENTS,
    CA,
    LIMITS,
    APPROVALS,
    PROPOSALS,
    REVIEW_LINKS,
];
const STRING_TABLES: &[TableDefinition<'static, &'static str, &'static str>] = &[NAMES, AGENT_TOKENS];

impl FileRead {
    /// Everything in the store, as it is stored (sealed).
    pub(super) fn dump(&self) -> Result<super::Dump, StoreError> {
        let mut d = super::Dump::default();
        for t in RECORD_TABLES {
            for item in self.tx.open_table(*t)?.iter()? {
                let (k, v) = item?;
                d.kv.push((t.name().to_owned(), k.value().to_owned(), v.value().to_vec()));
            }
        }
        for t in STRING_TABLES {
            for item in self.tx.open_table(*t)?.iter()? {
                let (k, v) = item?;
                d.kv.push((t.name().to_owned(), k.value().to_owned(), v.value().as_bytes().to_vec()));
            }
        }
        d.audit = self.audit_newest(usize::MAX)?;
        d.audit.reverse();
        Ok(d)
    }
}

impl FileWrite {
    /// Whether the store holds anything but its schema version.
    pub(super) fn is_empty(&self) -> Result<bool, StoreError> {
        for t in RECORD_TABLES {
            let table = self.tx.open_table(*t)?;
            let n = table.len()?;
            let only_schema = t.name() == META.name() && n == 1 && table.get("schema_version")?.is_some();
            if n > 0 && !only_schema {
                return Ok(false);
            }
        }
        for t in STRING_TABLES {
            if self.tx.open_table(*t)?.len()? > 0 {
                return Ok(false);
            }
        }
        self.audit_is_empty()
    }

    /// Replaces everything with `dump` (the schema version stays this store's own).
    pub(super) fn load(&mut self, dump: &super::Dump) -> Result<(), StoreError> {
        for t in RECORD_TABLES {
            let keep_schema = t.name() == META.name();
            self.tx.open_table(*t)?.retain(|k, _| keep_schema && k == "schema_version")?;
        }
        for t in STRING_TABLES {
            self.tx.open_table(*t)?.retain(|_, _| false)?;
        }
        for (tbl, key, value) in &dump.kv {
            if tbl == META.name() && key == "schema_version" {
                continue;
            }
            if let Some(t) = STRING_TABLES.iter().find(|t| t.name() == tbl) {
                self.tx.open_table(*t)?.insert(key.as_str(), String::from_utf8_lossy(value).as_ref())?;
            } else if let Some(t) = RECORD_TABLES.iter().find(|t| t.name() == tbl) {
                self.tx.open_table(*t)?.insert(key.as_str(), value.as_slice())?;
            } else {
                return Err(StoreError::Corrupt(format!("unknown table {tbl} in the copy")));
            }
        }
        self.load_audit(&dump.audit)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Retention;

    #[test]
    fn migrates_and_rejects_foreign_and_newer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vault.redb");
        {
            let s = FileStore::open(&path, Duration::from_secs(1)).unwrap();
            let v = s.read(|tx| tx.meta("schema_version")).unwrap();
            assert_eq!(v.as_deref(), Some("7"));
        }
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);

        let foreign = dir.path().join("foreign.redb");
        std::fs::write(&foreign, b"this is not a database at all, just some text of some length").unwrap();
        assert!(matches!(FileStore::open(&foreign, Duration::from_millis(10)), Err(StoreError::Foreign(..))));

        {
            let s = FileStore::open(&path, Duration::from_secs(1)).unwrap();
            s.write(|tx| tx.set_meta("schema_version", "99")).unwrap();
        }
        assert!(matches!(FileStore::open(&path, Duration::from_secs(1)), Err(StoreError::NewerSchema { .. })));
    }

    #[test]
    fn migration_2_moves_security_events_out_of_the_request_log() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.redb");
        {
            let s = FileStore::open(&path, Duration::from_secs(1)).unwrap();
            s.write(|tx| {
                let mut t = tx.tx.open_table(AUDIT)?;
                t.insert(1, br#"{"ts_ms":1,"kind":"vault.init"}"#.as_slice())?;
                t.insert(2, br#"{"ts_ms":2,"kind":"proxy.request"}"#.as_slice())?;
                t.insert(3, br#"{"ts_ms":3,"kind":"secret.create"}"#.as_slice())?;
                drop(t);
                tx.set_meta("schema_version", "1")
            })
            .unwrap();
        }
        let s = FileStore::open(&path, Duration::from_secs(1)).unwrap();
        let (requests, security) =
            s.read(|tx| Ok((tx.tx.open_table(AUDIT)?.len()?, tx.tx.open_table(AUDIT_SECURITY)?.len()?))).unwrap();
        assert_eq!((requests, security), (1, 2));
        assert_eq!(
            s.read(|tx| tx.audit_newest(10)).unwrap().iter().map(|(k, _)| *k).collect::<Vec<_>>(),
            vec![3, 2, 1]
        );
    }

    #[test]
    fn security_events_survive_a_flood_of_request_records() {
        let dir = tempfile::tempdir().unwrap();
        let s = FileStore::open(&dir.path().join("v.redb"), Duration::from_secs(1)).unwrap();
        let ev = |kind: &str, ts: u64| format!(r#"{{"ts_ms":{ts},"kind":"{kind}"}}"#).into_bytes();
        let keep = Retention { max_requests: 5, min_ts_ms: 100 };
        s.write(|tx| tx.append_audit(&[ev("vault.init", 1), ev("proxy.request", 50)], keep)).unwrap();
        let flood: Vec<Vec<u8>> = (0..50).map(|i| ev("proxy.request", 200 + i)).collect();
        s.write(|tx| tx.append_audit(&flood, keep)).unwrap();
        let newest = s.read(|tx| tx.audit_newest(100)).unwrap();
        let kinds: Vec<String> = newest.iter().map(|(_, b)| String::from_utf8_lossy(b).into_owned()).collect();
        assert_eq!(newest.len(), 6, "{kinds:?}");
        assert!(kinds.last().unwrap().contains("vault.init"), "{kinds:?}");
        let keys: Vec<u64> = newest.iter().map(|(k, _)| *k).collect();
        assert!(keys.windows(2).all(|w| w[0] > w[1]), "one merged timeline, newest first: {keys:?}");
    }

    #[test]
    fn failed_write_commits_nothing_and_audit_trims() {
        let dir = tempfile::tempdir().unwrap();
        let s = FileStore::open(&dir.path().join("v.redb"), Duration::from_secs(1)).unwrap();
        let r: Result<(), StoreError> = s.write(|tx| {
            tx.set_meta("x", "1")?;
            Err(StoreError::Corrupt("boom".into()))
        });
        assert!(r.is_err());
        assert_eq!(s.read(|tx| tx.meta("x")).unwrap(), None);
        let records: Vec<Vec<u8>> =
            (0..10).map(|i| format!(r#"{{"ts_ms":{i},"kind":"proxy.request"}}"#).into_bytes()).collect();
        s.write(|tx| tx.append_audit(&records, Retention { max_requests: 4, min_ts_ms: 0 })).unwrap();
        let newest = s.read(|tx| tx.audit_newest(100)).unwrap();
        assert_eq!(newest.iter().map(|(k, _)| *k).collect::<Vec<_>>(), vec![10, 9, 8, 7]);
        s.write(|tx| tx.append_audit(&[], Retention { max_requests: 4, min_ts_ms: 8 })).unwrap();
        let newest = s.read(|tx| tx.audit_newest(100)).unwrap();
        assert_eq!(newest.iter().map(|(k, _)| *k).collect::<Vec<_>>(), vec![10, 9], "older than the cutoff");
    }
}
