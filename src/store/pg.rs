//! The PostgreSQL backend (fleet mode): the same typed records as the redb file, as sealed JSON in
//! one key-value table, and the audit log in another. Postgres never sees plaintext: it stores what
//! the redb file stores.
//!
//! Every write transaction takes one transaction-scoped advisory lock first, so writers are
//! serialised across the fleet exactly as redb serialises them in one file; reads are repeatable-
//! read snapshots. A commit that changed the management generation also `NOTIFY`s
//! `aivault_generation`, delivered to listening proxies when it commits.

use std::cell::RefCell;
use std::sync::Mutex;
use std::time::Duration;

use postgres::fallible_iterator::FallibleIterator as _;
use postgres::{Client, IsolationLevel, NoTls, Transaction};

use super::{Location, Retention, StoreError, is_security_record, record_ts_ms};

/// The schema this binary writes in PostgreSQL.
pub const PG_SCHEMA_VERSION: u32 = 2;

/// Ordered migrations: entry `i` moves a database from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    "
    CREATE TABLE aivault_kv (
        tbl   text  NOT NULL,
        key   bytea NOT NULL,
        value bytea NOT NULL,
        PRIMARY KEY (tbl, key)
    );
    CREATE TABLE aivault_audit (
        seq      bigint  PRIMARY KEY,
        security boolean NOT NULL,
        ts_ms    bigint  NOT NULL,
        body     bytea   NOT NULL
    );
    CREATE INDEX aivault_audit_requests ON aivault_audit (security, seq);
",
    "
    CREATE INDEX aivault_audit_request_age ON aivault_audit (ts_ms) WHERE NOT security;
",
];

/// How often one process trims the request log (a count over the table is not free).
const TRIM_EVERY_MS: u64 = 60_000;
static LAST_TRIM_MS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The advisory lock key every writer takes (`"aivault"` as bytes).
const WRITE_LOCK: i64 = 0x0061_6976_6175_6c74;

/// The channel a commit that changed the management generation notifies.
pub const CHANNEL: &str = "aivault_generation";

pub(super) struct PgStore {
    client: Mutex<Client>,
    /// `postgres://user@host/db`, for errors.
    name: String,
}

/// A read transaction (a repeatable-read snapshot).
pub(super) struct PgRead<'a> {
    tx: RefCell<Transaction<'a>>,
    name: &'a str,
}

/// A write transaction, holding the fleet-wide write lock.
pub(super) struct PgWrite<'a> {
    tx: RefCell<Transaction<'a>>,
    name: &'a str,
}

fn db_error(name: &str, e: &postgres::Error) -> StoreError {
    // The driver's message names no credentials (the URL is never in it).
    let why = match e.as_db_error() {
        Some(d) => d.message().to_owned(),
        None => {
            // "error performing TLS handshake" says little without its cause.
            let mut why = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(s) = source {
                why.push_str(&format!(": {s}"));
                source = s.source();
            }
            why
        }
    };
    StoreError::Database(name.to_owned(), why)
}

/// Connects to the database at `url` (waiting at most `timeout`); a URL without a password takes
/// it from the passfile (`PGPASSFILE`, else `~/.pgpass`, as `config` found it).
pub(super) fn connect(
    loc: &Location,
    url: &str,
    passfile: Option<&std::path::Path>,
    timeout: Duration,
) -> Result<Client, StoreError> {
    let name = loc.to_string();
    let (url, rootcert) = split_rootcert(url);
    let mut cfg: postgres::Config =
        url.parse().map_err(|e: postgres::Error| StoreError::Database(name.clone(), format!("bad URL: {e}")))?;
    cfg.connect_timeout(timeout.max(Duration::from_secs(1)));
    if cfg.get_password().is_none() {
        if let Some(pw) = passfile.and_then(|f| passfile_lookup(f, &cfg)) {
            cfg.password(pw.as_bytes());
        }
    }
    if cfg.get_application_name().is_none() {
        cfg.application_name("aivault");
    }
    match cfg.get_ssl_mode() {
        // `require`: TLS, and the server's certificate is verified (webpki roots, plus
        // `sslrootcert` / PGSSLROOTCERT for a private CA). Anything else is plaintext.
        postgres::config::SslMode::Require => {
            cfg.connect(tls_connector(&name, rootcert.as_deref())?).map_err(|e| db_error(&name, &e))
        }
        _ => cfg.connect(NoTls).map_err(|e| db_error(&name, &e)),
    }
}

/// Takes `sslrootcert=PATH` out of a URL's query (the driver does not know it).
fn split_rootcert(url: &str) -> (zeroize::Zeroizing<String>, Option<std::path::PathBuf>) {
    let Some((base, query)) = url.split_once('?') else { return (zeroize::Zeroizing::new(url.to_owned()), None) };
    let mut root = None;
    let kept: Vec<&str> = query
        .split('&')
        .filter(|p| match p.strip_prefix("sslrootcert=") {
            Some(path) => {
                root =
                    Some(std::path::PathBuf::from(String::from_utf8_lossy(&crate::percent::decode(path)).into_owned()));
                false
            }
            None => true,
        })
        .collect();
    let rebuilt = if kept.is_empty() { base.to_owned() } else { format!("{base}?{}", kept.join("&")) };
    (zeroize::Zeroizing::new(rebuilt), root)
}

fn tls_connector(
    name: &str,
    rootcert: Option<&std::path::Path>,
) -> Result<tokio_postgres_rustls::MakeRustlsConnect, StoreError> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject as _;
    let bad = |why: String| StoreError::Database(name.to_owned(), why);
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = rootcert {
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|e| bad(format!("cannot read sslrootcert {}: {e}", path.display())))?;
        for cert in certs {
            let cert = cert.map_err(|e| bad(format!("bad certificate in {}: {e}", path.display())))?;
            roots.add(cert).map_err(|e| bad(format!("bad certificate in {}: {e}", path.display())))?;
        }
    }
    let config =
        rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| bad(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

impl PgStore {
    pub(super) fn open(
        loc: &Location,
        url: &str,
        passfile: Option<&std::path::Path>,
        timeout: Duration,
    ) -> Result<PgStore, StoreError> {
        let client = connect(loc, url, passfile, timeout)?;
        let store = PgStore { client: Mutex::new(client), name: loc.to_string() };
        store.migrate()?;
        Ok(store)
    }

    fn migrate(&self) -> Result<(), StoreError> {
        let name = self.name.clone();
        let err = |e: postgres::Error| db_error(&name, &e);
        let mut client = self.client.lock().unwrap_or_else(|p| p.into_inner());
        // The common case, an up-to-date schema, is checked without the write lock: a reader
        // (a proxy reloading its snapshot) must not queue behind writers.
        let current: Option<i32> = client
            .query_opt("SELECT version FROM aivault_schema WHERE to_regclass('aivault_schema') IS NOT NULL", &[])
            .ok()
            .flatten()
            .map(|r| r.get(0));
        if current == Some(PG_SCHEMA_VERSION as i32) {
            return Ok(());
        }
        let mut tx = client.transaction().map_err(err)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&WRITE_LOCK]).map_err(err)?;
        let exists: bool = tx.query_one("SELECT to_regclass('aivault_schema') IS NOT NULL", &[]).map_err(err)?.get(0);
        if !exists {
            tx.batch_execute("CREATE TABLE aivault_schema (version integer NOT NULL)").map_err(err)?;
        }
        let found: Option<i32> =
            tx.query_opt("SELECT version FROM aivault_schema", &[]).map_err(err)?.map(|r| r.get(0));
        let version = u32::try_from(found.unwrap_or(0)).unwrap_or(0);
        if version > PG_SCHEMA_VERSION {
            return Err(StoreError::NewerSchema { found: version, known: PG_SCHEMA_VERSION });
        }
        if version == PG_SCHEMA_VERSION {
            return tx.commit().map_err(err);
        }
        for step in &MIGRATIONS[version as usize..] {
            tx.batch_execute(step).map_err(err)?;
        }
        tx.execute("DELETE FROM aivault_schema", &[]).map_err(err)?;
        tx.execute("INSERT INTO aivault_schema (version) VALUES ($1)", &[&(PG_SCHEMA_VERSION as i32)]).map_err(err)?;
        tx.commit().map_err(err)
    }

    pub(super) fn read<T>(&self, f: impl FnOnce(&PgRead<'_>) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let mut client = self.client.lock().unwrap_or_else(|p| p.into_inner());
        let tx = client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .map_err(|e| db_error(&self.name, &e))?;
        let read = PgRead { tx: RefCell::new(tx), name: &self.name };
        let out = f(&read)?;
        read.tx.into_inner().commit().map_err(|e| db_error(&self.name, &e))?;
        Ok(out)
    }

    pub(super) fn write<T, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&mut PgWrite<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        let mut client = self.client.lock().unwrap_or_else(|p| p.into_inner());
        let mut tx = client.transaction().map_err(|e| E::from(db_error(&self.name, &e)))?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&WRITE_LOCK])
            .map_err(|e| E::from(db_error(&self.name, &e)))?;
        let mut write = PgWrite { tx: RefCell::new(tx), name: &self.name };
        let v = f(&mut write)?;
        write.tx.into_inner().commit().map_err(|e| E::from(db_error(&self.name, &e)))?;
        Ok(v)
    }
}

/// The password a libpq passfile gives for this connection (`host:port:database:user:password`,
/// `*` matching anything, `\:` and `\\` escaped), if any. A missing or unreadable file is none.
fn passfile_lookup(file: &std::path::Path, cfg: &postgres::Config) -> Option<zeroize::Zeroizing<String>> {
    let text = zeroize::Zeroizing::new(std::fs::read_to_string(file).ok()?);
    let host = match cfg.get_hosts().first() {
        Some(postgres::config::Host::Tcp(h)) => h.clone(),
        Some(postgres::config::Host::Unix(_)) | None => "localhost".to_owned(),
    };
    let port = cfg.get_ports().first().copied().unwrap_or(5432).to_string();
    let user = cfg.get_user().unwrap_or("").to_owned();
    let db = cfg.get_dbname().map(str::to_owned).unwrap_or_else(|| user.clone());
    let wanted = [host.as_str(), port.as_str(), db.as_str(), user.as_str()];
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let fields = split_passfile_line(line);
        if fields.len() != 5 {
            continue;
        }
        if fields[..4].iter().zip(wanted).all(|(f, w)| f.as_str() == "*" || f.as_str() == w) {
            return Some(zeroize::Zeroizing::new(fields[4].to_string()));
        }
    }
    None
}

fn split_passfile_line(line: &str) -> Vec<zeroize::Zeroizing<String>> {
    let mut out = vec![zeroize::Zeroizing::new(String::new())];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let (Some(n), Some(last)) = (chars.next(), out.last_mut()) {
                    last.push(n);
                }
            }
            ':' => out.push(zeroize::Zeroizing::new(String::new())),
            c => {
                if let Some(last) = out.last_mut() {
                    last.push(c);
                }
            }
        }
    }
    out
}

/// Reads shared by read and write transactions.
fn get(tx: &RefCell<Transaction<'_>>, name: &str, tbl: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
    let row = tx
        .borrow_mut()
        .query_opt("SELECT value FROM aivault_kv WHERE tbl = $1 AND key = $2", &[&tbl, &key.as_bytes()])
        .map_err(|e| db_error(name, &e))?;
    Ok(row.map(|r| r.get::<_, Vec<u8>>(0)))
}

fn list(tx: &RefCell<Transaction<'_>>, name: &str, tbl: &str) -> Result<Vec<Vec<u8>>, StoreError> {
    let rows = tx
        .borrow_mut()
        .query("SELECT value FROM aivault_kv WHERE tbl = $1 ORDER BY key", &[&tbl])
        .map_err(|e| db_error(name, &e))?;
    Ok(rows.into_iter().map(|r| r.get::<_, Vec<u8>>(0)).collect())
}

fn audit_newest(tx: &RefCell<Transaction<'_>>, name: &str, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = tx
        .borrow_mut()
        .query("SELECT seq, body FROM aivault_audit ORDER BY seq DESC LIMIT $1", &[&limit])
        .map_err(|e| db_error(name, &e))?;
    Ok(rows.into_iter().map(|r| (r.get::<_, i64>(0) as u64, r.get::<_, Vec<u8>>(1))).collect())
}

fn text(bytes: Option<Vec<u8>>) -> Option<String> {
    bytes.map(|b| String::from_utf8_lossy(&b).into_owned())
}

/// What a read transaction can do (a trait object, so `ReadTx` carries one lifetime).
pub(super) trait PgReadOps {
    fn get_raw(&self, tbl: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    fn list_raw(&self, tbl: &str) -> Result<Vec<Vec<u8>>, StoreError>;
    fn audit_newest(&self, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, StoreError>;
    fn text(&self, tbl: &str, key: &str) -> Result<Option<String>, StoreError> {
        Ok(text(self.get_raw(tbl, key)?))
    }
}

/// What a write transaction can do beyond reading.
pub(super) trait PgWriteOps: PgReadOps {
    fn put_raw(&mut self, tbl: &str, key: &str, value: &[u8]) -> Result<(), StoreError>;
    fn delete_raw(&mut self, tbl: &str, key: &str) -> Result<bool, StoreError>;
    fn notify(&mut self, generation: u64) -> Result<(), StoreError>;
    fn append_audit(&mut self, records: &[Vec<u8>], retention: Retention) -> Result<(), StoreError>;
    /// Whether the database holds anything but its schema.
    fn is_empty(&self) -> Result<bool, StoreError>;
    /// Replaces everything with `dump`.
    fn load(&mut self, dump: &super::Dump) -> Result<(), StoreError>;
}

impl PgReadOps for PgRead<'_> {
    fn get_raw(&self, tbl: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        get(&self.tx, self.name, tbl, key)
    }

    fn list_raw(&self, tbl: &str) -> Result<Vec<Vec<u8>>, StoreError> {
        list(&self.tx, self.name, tbl)
    }

    fn audit_newest(&self, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        audit_newest(&self.tx, self.name, limit)
    }
}

impl PgReadOps for PgWrite<'_> {
    fn get_raw(&self, tbl: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        get(&self.tx, self.name, tbl, key)
    }

    fn list_raw(&self, tbl: &str) -> Result<Vec<Vec<u8>>, StoreError> {
        list(&self.tx, self.name, tbl)
    }

    fn audit_newest(&self, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        audit_newest(&self.tx, self.name, limit)
    }
}

impl PgWrite<'_> {
    fn err(&self, e: &postgres::Error) -> StoreError {
        db_error(self.name, e)
    }
}

impl PgWriteOps for PgWrite<'_> {
    fn is_empty(&self) -> Result<bool, StoreError> {
        self.is_empty_impl()
    }

    fn load(&mut self, dump: &super::Dump) -> Result<(), StoreError> {
        self.load_impl(dump)
    }

    fn put_raw(&mut self, tbl: &str, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.tx
            .borrow_mut()
            .execute(
                "INSERT INTO aivault_kv (tbl, key, value) VALUES ($1, $2, $3) \
                 ON CONFLICT (tbl, key) DO UPDATE SET value = EXCLUDED.value",
                &[&tbl, &key.as_bytes(), &value],
            )
            .map_err(|e| self.err(&e))?;
        Ok(())
    }

    fn delete_raw(&mut self, tbl: &str, key: &str) -> Result<bool, StoreError> {
        let n = self
            .tx
            .borrow_mut()
            .execute("DELETE FROM aivault_kv WHERE tbl = $1 AND key = $2", &[&tbl, &key.as_bytes()])
            .map_err(|e| self.err(&e))?;
        Ok(n > 0)
    }

    /// Tells listening proxies that the management generation changed (on commit).
    fn notify(&mut self, generation: u64) -> Result<(), StoreError> {
        self.tx
            .borrow_mut()
            .execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &generation.to_string()])
            .map_err(|e| self.err(&e))?;
        Ok(())
    }

    fn append_audit(&mut self, records: &[Vec<u8>], retention: Retention) -> Result<(), StoreError> {
        let mut tx = self.tx.borrow_mut();
        let name = self.name;
        let err = |e: postgres::Error| db_error(name, &e);
        let last: i64 = tx.query_one("SELECT COALESCE(MAX(seq), 0) FROM aivault_audit", &[]).map_err(err)?.get(0);
        // One binary COPY for the whole batch, sent as one message: a round trip per record was
        // most of the cost, and a message per 4 KiB (the driver's own COPY writer) made the
        // writer wait for its CPU once per message while the proxy was busy.
        if !records.is_empty() {
            use std::io::Write as _;
            let rows = copy_rows(name, last + 1, records)?;
            let mut sink =
                tx.copy_in("COPY aivault_audit (seq, security, ts_ms, body) FROM STDIN BINARY").map_err(err)?;
            sink.write_all(&rows).map_err(|e| StoreError::Database(name.to_owned(), e.to_string()))?;
            sink.finish().map_err(err)?;
        }
        // Trimming counts the request log: at most once a minute per process.
        let now = crate::time::now_ms();
        let last_trim = LAST_TRIM_MS.load(std::sync::atomic::Ordering::Relaxed);
        if now.saturating_sub(last_trim) < TRIM_EVERY_MS {
            return Ok(());
        }
        LAST_TRIM_MS.store(now, std::sync::atomic::Ordering::Relaxed);
        let requests: i64 =
            tx.query_one("SELECT COUNT(*) FROM aivault_audit WHERE NOT security", &[]).map_err(err)?.get(0);
        let max = i64::try_from(retention.max_requests).unwrap_or(i64::MAX);
        if requests > max {
            tx.execute(
                "DELETE FROM aivault_audit WHERE seq IN \
                 (SELECT seq FROM aivault_audit WHERE NOT security ORDER BY seq LIMIT $1)",
                &[&(requests - max)],
            )
            .map_err(err)?;
        }
        let min_ts = i64::try_from(retention.min_ts_ms).unwrap_or(i64::MAX);
        tx.execute("DELETE FROM aivault_audit WHERE NOT security AND ts_ms < $1", &[&min_ts]).map_err(err)?;
        Ok(())
    }
}

/// `records` as the rows of a binary `COPY aivault_audit (seq, security, ts_ms, body)`, numbered
/// from `first`: PostgreSQL's binary copy format (signature, flags and header extension, then per
/// row the field count and each field's length and network-order bytes, then -1). `name` is the
/// database, for the error.
fn copy_rows(name: &str, first: i64, records: &[Vec<u8>]) -> Result<Vec<u8>, StoreError> {
    let size = 21 + records.iter().map(|r| 2 + 12 + 5 + 12 + 4 + r.len()).sum::<usize>();
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
    out.extend_from_slice(&0i32.to_be_bytes());
    out.extend_from_slice(&0i32.to_be_bytes());
    for (seq, r) in (first..).zip(records) {
        let ts = i64::try_from(record_ts_ms(r)).unwrap_or(i64::MAX);
        out.extend_from_slice(&4i16.to_be_bytes());
        out.extend_from_slice(&8i32.to_be_bytes());
        out.extend_from_slice(&seq.to_be_bytes());
        out.extend_from_slice(&1i32.to_be_bytes());
        out.push(u8::from(is_security_record(r)));
        out.extend_from_slice(&8i32.to_be_bytes());
        out.extend_from_slice(&ts.to_be_bytes());
        let len = i32::try_from(r.len())
            .map_err(|_| StoreError::Database(name.to_owned(), "an audit record is too large".into()))?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(r);
    }
    out.extend_from_slice(&(-1i16).to_be_bytes());
    Ok(out)
}

impl PgRead<'_> {
    /// Everything in the store, as it is stored (sealed).
    pub(super) fn dump(&self) -> Result<super::Dump, StoreError> {
        let mut tx = self.tx.borrow_mut();
        let err = |e: postgres::Error| db_error(self.name, &e);
        let mut d = super::Dump::default();
        for row in tx.query("SELECT tbl, key, value FROM aivault_kv ORDER BY tbl, key", &[]).map_err(err)? {
            let key: Vec<u8> = row.get(1);
            d.kv.push((row.get(0), String::from_utf8_lossy(&key).into_owned(), row.get(2)));
        }
        for row in tx.query("SELECT seq, body FROM aivault_audit ORDER BY seq", &[]).map_err(err)? {
            d.audit.push((row.get::<_, i64>(0) as u64, row.get(1)));
        }
        Ok(d)
    }
}

impl PgWrite<'_> {
    /// Whether the database holds anything but its schema.
    fn is_empty_impl(&self) -> Result<bool, StoreError> {
        let mut tx = self.tx.borrow_mut();
        let err = |e: postgres::Error| db_error(self.name, &e);
        let kv: i64 = tx.query_one("SELECT COUNT(*) FROM aivault_kv", &[]).map_err(err)?.get(0);
        let audit: i64 = tx.query_one("SELECT COUNT(*) FROM aivault_audit", &[]).map_err(err)?.get(0);
        Ok(kv == 0 && audit == 0)
    }

    /// Replaces everything with `dump`.
    fn load_impl(&mut self, dump: &super::Dump) -> Result<(), StoreError> {
        let mut tx = self.tx.borrow_mut();
        let err = |e: postgres::Error| db_error(self.name, &e);
        tx.batch_execute("DELETE FROM aivault_kv; DELETE FROM aivault_audit").map_err(err)?;
        for (tbl, key, value) in &dump.kv {
            if tbl == "meta" && key == "schema_version" {
                continue;
            }
            tx.execute("INSERT INTO aivault_kv (tbl, key, value) VALUES ($1, $2, $3)", &[tbl, &key.as_bytes(), value])
                .map_err(err)?;
        }
        for (seq, body) in &dump.audit {
            let ts = i64::try_from(record_ts_ms(body)).unwrap_or(i64::MAX);
            tx.execute(
                "INSERT INTO aivault_audit (seq, security, ts_ms, body) VALUES ($1, $2, $3, $4)",
                &[&(*seq as i64), &is_security_record(body), &ts, body],
            )
            .map_err(err)?;
        }
        Ok(())
    }
}

/// Waits for the next generation notification on a dedicated connection (LISTEN), at most
/// `timeout`; `Ok(true)` when one arrived.
pub(super) fn listen(client: &mut Client, timeout: Duration, listening: &mut bool) -> Result<bool, postgres::Error> {
    if !*listening {
        client.batch_execute(&format!("LISTEN {CHANNEL}"))?;
        *listening = true;
    }
    let got = client.notifications().timeout_iter(timeout).next()?.is_some();
    // Drain whatever else is queued: one reload covers them all.
    while client.notifications().iter().next()?.is_some() {}
    Ok(got)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_rows_are_in_the_binary_copy_format() {
        let request = br#"{"ts_ms":7,"kind":"proxy.request"}"#.to_vec();
        let change = br#"{"ts_ms":9,"kind":"secret.create"}"#.to_vec();
        let rows = copy_rows("db", 41, &[request.clone(), change.clone()]).unwrap();
        let mut want = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0".to_vec();
        for (seq, security, ts, body) in [(41i64, 0u8, 7i64, &request), (42, 1, 9, &change)] {
            want.extend_from_slice(&[0, 4, 0, 0, 0, 8]);
            want.extend_from_slice(&seq.to_be_bytes());
            want.extend_from_slice(&[0, 0, 0, 1, security, 0, 0, 0, 8]);
            want.extend_from_slice(&ts.to_be_bytes());
            want.extend_from_slice(&u32::try_from(body.len()).unwrap().to_be_bytes());
            want.extend_from_slice(body);
        }
        want.extend_from_slice(&[0xff, 0xff]);
        assert_eq!(rows, want);
        assert_eq!(copy_rows("db", 1, &[]).unwrap().len(), 21, "signature, flags, extension and trailer");
    }

    #[test]
    fn passfile_lines_match_with_wildcards_and_escapes() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pgpass");
        std::fs::write(
            &file,
            "# comment\nother:5432:*:*:nope\n127.0.0.1:5433:vault:aivault:pa\\:ss\n*:*:*:*:fallback\n",
        )
        .unwrap();
        let cfg: postgres::Config = "postgres://aivault@127.0.0.1:5433/vault".parse().unwrap();
        assert_eq!(passfile_lookup(&file, &cfg).as_deref().map(String::as_str), Some("pa:ss"));
        let cfg: postgres::Config = "postgres://someone@db.example:5432/x".parse().unwrap();
        assert_eq!(passfile_lookup(&file, &cfg).as_deref().map(String::as_str), Some("fallback"));
        assert!(passfile_lookup(&dir.path().join("missing"), &cfg).is_none());
    }
}
