//! The request log of the embedded store: one file per appended batch (a *segment*) in
//! `<store>.audit/` (0700; files 0600), with its bookkeeping in the redb file.
//!
//! A proxy flushes thousands of request records at a time. One B-tree row per record was a
//! quarter of the proxy's CPU per request; one redb row per batch still cost a read and a rewrite
//! of the previous batch's leaf on every insert and a read of the oldest one on every trim, which
//! was most of an audit flush. A segment file is written once, read only by `audit` and copies,
//! and deleted whole. Its layout is `[count: u32]` then, per record, `[seq: u64][len: u32][bytes]`;
//! it is named by its first sequence number and a random tag, so no write ever replaces a file
//! that a committed row names (a failed transaction deletes only the files it wrote).
//!
//! What makes a segment part of the log is its row in `audit_segment_meta` (count, oldest and
//! newest `ts_ms`, tag), written in the batch's transaction after the file is written and synced: a
//! batch is durable exactly when that transaction commits, as before. Files without a row (a
//! crash between the two, or a failed commit) are never read, and are deleted by the next
//! transaction that drops segments. `audit_segment_info` holds `records` (live records), `next`
//! (the last sequence number handed out), `skip` (records at the head of the oldest segment that
//! are trimmed; readers leave them out) and `head_ts` (a lower bound of the oldest live record's
//! `ts_ms`, so the oldest segment is read for an age trim only when it straddles the cutoff).
//!
//! Security events keep one row each in `audit_security` (never trimmed). Rows of the per-record
//! `audit` table written before schema 6 are still read and trimmed first (they are older than
//! any segment); schema 6's redb segments move to files in migration 7. Trimming is exact, by
//! count and by age.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use redb::{ReadableTable, ReadableTableMetadata, TableDefinition};

use super::{AUDIT, AUDIT_SECURITY, FileRead, FileWrite};
use crate::store::{Retention, StoreError, is_security_record, record_ts_ms};

/// Schema 6's segments, one redb row per batch (moved to files by migration 7).
pub(super) const SEGMENTS: TableDefinition<'static, u64, &'static [u8]> = TableDefinition::new("audit_segments");
/// `records` → live request records in segments; `next` → the last sequence number handed out;
/// `skip` → records at the head of the oldest segment that are trimmed; `head_ts` → a lower bound
/// of the oldest live record's `ts_ms`.
pub(super) const INFO: TableDefinition<'static, &'static str, u64> = TableDefinition::new("audit_segment_info");
/// First sequence number → (records in the segment, oldest `ts_ms`, newest `ts_ms`, the file's tag).
pub(super) const SEGMENT_META: TableDefinition<'static, u64, Meta> = TableDefinition::new("audit_segment_meta");
type Meta = (u64, u64, u64, u64);
type MetaTable<'t> = redb::Table<'t, u64, Meta>;

/// Records per segment when a copy is loaded (an append writes one segment per batch).
const LOAD_SEGMENT: usize = 10_000;

/// The directory of a store's segment files: `vault.audit/` beside `vault.redb`.
pub(super) fn segment_dir(store: &Path) -> PathBuf {
    let dir = store.with_extension("audit");
    if dir == store { store.with_extension("audit.d") } else { dir }
}

fn segment_file(dir: &Path, first: u64, tag: u64) -> PathBuf {
    dir.join(format!("{first:020}-{tag:016x}.seg"))
}

/// A file's name back to (first sequence number, tag).
fn parse_segment_file(name: &str) -> Option<(u64, u64)> {
    let (first, tag) = name.strip_suffix(".seg")?.split_once('-')?;
    Some((first.parse().ok()?, u64::from_str_radix(tag, 16).ok()?))
}

fn io_error(what: &str, path: &Path, e: &std::io::Error) -> StoreError {
    StoreError::Io(format!("{what} {}: {e}", path.display()))
}

/// Writes and syncs a new segment file; returns its tag and path.
fn write_segment(dir: &Path, first: u64, bytes: &[u8]) -> Result<(u64, PathBuf), StoreError> {
    use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io_error("cannot create", dir, &e)),
    }
    let mut tag = [0u8; 8];
    crate::crypto::random_bytes(&mut tag).map_err(|e| StoreError::Io(format!("an audit segment's tag: {e}")))?;
    let tag = u64::from_le_bytes(tag);
    let path = segment_file(dir, first, tag);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| io_error("cannot create", &path, &e))?;
    f.write_all(bytes).and_then(|()| f.sync_data()).map_err(|e| io_error("cannot write", &path, &e))?;
    // The new name is durable before the transaction that makes it part of the log commits.
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| io_error("cannot sync", dir, &e))?;
    Ok((tag, path))
}

fn read_segment(dir: &Path, first: u64, tag: u64) -> Result<Vec<u8>, StoreError> {
    let path = segment_file(dir, first, tag);
    std::fs::read(&path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => StoreError::Corrupt(format!("the audit segment {} is missing", path.display())),
        _ => io_error("cannot read", &path, &e),
    })
}

/// Deletes every segment file of the store at `store` that is not in `live` (after a commit, with
/// the store still held).
pub(super) fn sweep(store: &Path, live: &BTreeSet<(u64, u64)>) {
    let Ok(entries) = std::fs::read_dir(segment_dir(store)) else { return };
    for entry in entries.flatten() {
        let Some(file) = entry.file_name().to_str().and_then(parse_segment_file) else { continue };
        if !live.contains(&file) {
            // Best effort: a file left behind is never read and goes with the next sweep.
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

fn encode(records: &[(u64, &[u8])]) -> Vec<u8> {
    let size = 4 + records.iter().map(|(_, r)| 12 + r.len()).sum::<usize>();
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(&(records.len() as u32).to_le_bytes());
    for (seq, r) in records {
        out.extend_from_slice(&seq.to_le_bytes());
        out.extend_from_slice(&(r.len() as u32).to_le_bytes());
        out.extend_from_slice(r);
    }
    out
}

fn decode(bytes: &[u8]) -> Result<Vec<(u64, &[u8])>, StoreError> {
    let bad = || StoreError::Corrupt("an audit segment is truncated".into());
    let take = |at: usize, n: usize| bytes.get(at..at + n).ok_or_else(bad);
    let mut at = 4;
    let count = u32::from_le_bytes(take(0, 4)?.try_into().map_err(|_| bad())?) as usize;
    let mut out = Vec::with_capacity(count.min(bytes.len() / 12));
    for _ in 0..count {
        let seq = u64::from_le_bytes(take(at, 8)?.try_into().map_err(|_| bad())?);
        let len = u32::from_le_bytes(take(at + 8, 4)?.try_into().map_err(|_| bad())?) as usize;
        out.push((seq, take(at + 12, len)?));
        at += 12 + len;
    }
    Ok(out)
}

/// A segment's bookkeeping row: its record count, the range of its records' `ts_ms`, its tag.
fn segment_meta(records: &[(u64, &[u8])], tag: u64) -> Meta {
    let (lo, hi) =
        records.iter().map(|(_, r)| record_ts_ms(r)).fold((u64::MAX, 0), |(lo, hi), ts| (lo.min(ts), hi.max(ts)));
    (records.len() as u64, lo, hi, tag)
}

/// Schema 7: schema 6's redb segments move to files, each with its bookkeeping row; `next` is
/// set from the tables (the last time they are searched for it).
pub(super) fn migrate_6_to_7(tx: &redb::WriteTransaction, store: &Path) -> Result<(), redb::Error> {
    let failed = |e: StoreError| redb::Error::Corrupted(e.to_string());
    let dir = segment_dir(store);
    let mut meta = tx.open_table(SEGMENT_META)?;
    let mut newest = 0;
    {
        let segments = tx.open_table(SEGMENTS)?;
        for item in segments.iter()? {
            let (k, v) = item?;
            let records = decode(v.value()).map_err(failed)?;
            newest = newest.max(records.last().map_or(0, |(s, _)| *s));
            let (tag, _) = write_segment(&dir, k.value(), v.value()).map_err(failed)?;
            meta.insert(k.value(), segment_meta(&records, tag))?;
        }
    }
    tx.delete_table(SEGMENTS)?;
    let newest_legacy = tx.open_table(AUDIT)?.last()?.map_or(0, |(k, _)| k.value());
    let newest_security = tx.open_table(AUDIT_SECURITY)?.last()?.map_or(0, |(k, _)| k.value());
    let mut info = tx.open_table(INFO)?;
    info.insert("next", newest.max(newest_legacy).max(newest_security))?;
    info.insert("skip", 0)?;
    info.insert("head_ts", 0)?;
    Ok(())
}

impl FileWrite {
    /// Appends audit records: security events to their own table (never trimmed), request records
    /// as one segment, then trims the request log to `retention`.
    pub(in crate::store) fn append_audit(
        &mut self,
        records: &[Vec<u8>],
        retention: Retention,
    ) -> Result<(), StoreError> {
        let dir = segment_dir(&self.path);
        let mut legacy = self.tx.open_table(AUDIT)?;
        let mut security = self.tx.open_table(AUDIT_SECURITY)?;
        let mut meta = self.tx.open_table(SEGMENT_META)?;
        let mut info = self.tx.open_table(INFO)?;
        let next = info.get("next")?.map_or(0, |g| g.value());
        let mut batch: Vec<(u64, &[u8])> = Vec::with_capacity(records.len());
        for (seq, r) in (next + 1..).zip(records) {
            if is_security_record(r) {
                security.insert(seq, r.as_slice())?;
            } else {
                batch.push((seq, r.as_slice()));
            }
        }
        info.insert("next", next + records.len() as u64)?;
        let mut in_segments = info.get("records")?.map_or(0, |g| g.value());
        if let Some((seq, _)) = batch.first() {
            let (tag, path) = write_segment(&dir, *seq, &encode(&batch))?;
            self.written.push(path);
            meta.insert(*seq, segment_meta(&batch, tag))?;
            in_segments += batch.len() as u64;
        }
        // By count: the oldest records go first (the per-record rows of earlier versions, then
        // whole segments, then the head of the oldest remaining one).
        let mut surplus = (legacy.len()? + in_segments).saturating_sub(retention.max_requests);
        if surplus > 0 {
            let cut = legacy.iter()?.nth(surplus.min(legacy.len()?) as usize).transpose()?.map(|(k, _)| k.value());
            let before = legacy.len()?;
            match cut {
                Some(cut) => legacy.retain_in(..cut, |_, _| false)?,
                None => legacy.retain(|_, _| false)?,
            }
            surplus -= before - legacy.len()?;
        }
        // By age: the log is in time order, so only its head can be too old.
        let mut old = Vec::new();
        for item in legacy.iter()? {
            let (k, v) = item?;
            if record_ts_ms(v.value()) >= retention.min_ts_ms {
                break;
            }
            old.push(k.value());
        }
        for k in old {
            legacy.remove(k)?;
        }
        if legacy.is_empty()? {
            let mut head = Head {
                skip: info.get("skip")?.map_or(0, |g| g.value()),
                ts: info.get("head_ts")?.map_or(0, |g| g.value()),
            };
            let (removed, dropped) = trim_segments(&dir, &mut meta, &mut head, surplus, retention.min_ts_ms)?;
            in_segments -= removed;
            info.insert("skip", head.skip)?;
            info.insert("head_ts", head.ts)?;
            if dropped {
                self.live_segments = Some(live_keys(&meta)?);
            }
        }
        info.insert("records", in_segments)?;
        Ok(())
    }

    /// Replaces the request log with `records` (a store copy), in segments.
    pub(in crate::store) fn load_audit(&mut self, records: &[(u64, Vec<u8>)]) -> Result<(), StoreError> {
        let dir = segment_dir(&self.path);
        let mut security = self.tx.open_table(AUDIT_SECURITY)?;
        let mut meta = self.tx.open_table(SEGMENT_META)?;
        self.tx.open_table(AUDIT)?.retain(|_, _| false)?;
        security.retain(|_, _| false)?;
        meta.retain(|_, _| false)?;
        let mut plain: Vec<(u64, &[u8])> = Vec::new();
        for (seq, body) in records {
            if is_security_record(body) {
                security.insert(*seq, body.as_slice())?;
            } else {
                plain.push((*seq, body.as_slice()));
            }
        }
        for chunk in plain.chunks(LOAD_SEGMENT) {
            let (tag, path) = write_segment(&dir, chunk[0].0, &encode(chunk))?;
            self.written.push(path);
            meta.insert(chunk[0].0, segment_meta(chunk, tag))?;
        }
        self.live_segments = Some(live_keys(&meta)?);
        let mut info = self.tx.open_table(INFO)?;
        info.insert("records", plain.len() as u64)?;
        info.insert("next", records.iter().map(|(s, _)| *s).max().unwrap_or(0))?;
        info.insert("skip", 0)?;
        info.insert("head_ts", 0)?;
        Ok(())
    }

    pub(in crate::store) fn audit_is_empty(&self) -> Result<bool, StoreError> {
        Ok(self.tx.open_table(AUDIT)?.is_empty()?
            && self.tx.open_table(AUDIT_SECURITY)?.is_empty()?
            && self.tx.open_table(SEGMENT_META)?.is_empty()?)
    }
}

/// The segment files the log names.
fn live_keys(meta: &MetaTable<'_>) -> Result<BTreeSet<(u64, u64)>, StoreError> {
    let mut keys = BTreeSet::new();
    for item in meta.iter()? {
        let (k, v) = item?;
        keys.insert((k.value(), v.value().3));
    }
    Ok(keys)
}

/// Where the live part of the segments begins.
struct Head {
    /// Records at the head of the oldest segment that are trimmed.
    skip: u64,
    /// A lower bound of the oldest live record's `ts_ms`.
    ts: u64,
}

/// Drops `surplus` of the oldest records and every record older than `min_ts_ms` from the
/// segments; returns how many went and whether whole segments went. Whole segments go by their
/// bookkeeping rows alone; the oldest remaining one is read only when its records straddle
/// `min_ts_ms`.
fn trim_segments(
    dir: &Path,
    meta: &mut MetaTable<'_>,
    head: &mut Head,
    mut surplus: u64,
    min_ts_ms: u64,
) -> Result<(u64, bool), StoreError> {
    let (mut removed, mut dropped) = (0, false);
    loop {
        let first = meta.first()?.map(|(k, v)| (k.value(), v.value()));
        let Some((key, (count, oldest, newest, tag))) = first else { break };
        let live = count.saturating_sub(head.skip);
        let mut drop = surplus;
        let mut whole = surplus >= live || newest < min_ts_ms;
        if !whole && head.ts.max(oldest) < min_ts_ms {
            let bytes = std::fs::read(segment_file(dir, key, tag)).ok();
            match bytes.as_deref().and_then(|b| too_old(b, (head.skip + drop) as usize, min_ts_ms)) {
                Some((old, ts)) => {
                    drop += old;
                    head.ts = ts;
                }
                // A segment whose file is gone or is not a segment holds no record any more: its
                // row goes, so the log keeps taking new records (`audit` reports the damage
                // until then).
                None => whole = true,
            }
        }
        if whole {
            meta.remove(key)?;
            removed += live;
            surplus = surplus.saturating_sub(live);
            head.skip = 0;
            dropped = true;
            continue;
        }
        head.skip += drop;
        removed += drop;
        break;
    }
    Ok((removed, dropped))
}

/// How many of a segment's records from index `from` on are older than `min_ts_ms`, and the
/// `ts_ms` of the first one that is not; `None` if `bytes` is not a segment.
fn too_old(bytes: &[u8], from: usize, min_ts_ms: u64) -> Option<(u64, u64)> {
    let records = decode(bytes).ok()?;
    let live = records.get(from..).unwrap_or_default();
    let old = live.iter().take_while(|(_, r)| record_ts_ms(r) < min_ts_ms).count();
    // The segment's newest record is at or past the cutoff, so one is left.
    Some((old as u64, live.get(old).map_or(min_ts_ms, |(_, r)| record_ts_ms(r))))
}

impl FileRead {
    /// Audit records (requests and security events merged) with sequence numbers, newest first,
    /// at most `limit`.
    pub(in crate::store) fn audit_newest(&self, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let dir = segment_dir(&self.path);
        let legacy = self.tx.open_table(AUDIT)?;
        let security = self.tx.open_table(AUDIT_SECURITY)?;
        let meta = self.tx.open_table(SEGMENT_META)?;
        // The oldest segment's trimmed head is left out.
        let oldest = meta.first()?.map(|(k, _)| k.value());
        let skip = self.tx.open_table(INFO)?.get("skip")?.map_or(0, |g| g.value()) as usize;
        let mut security = security.iter()?.rev().peekable();
        let mut legacy = legacy.iter()?.rev().peekable();
        let mut segments = meta.iter()?.rev();
        // Records of the segment being read, newest last (popped from the end).
        let mut current: Vec<(u64, Vec<u8>)> = Vec::new();
        let mut out = Vec::new();
        while out.len() < limit {
            if current.is_empty() {
                if let Some(item) = segments.next() {
                    let (k, v) = item?;
                    let key = k.value();
                    let from = if Some(key) == oldest { skip } else { 0 };
                    let bytes = read_segment(&dir, key, v.value().3)?;
                    let records = decode(&bytes)?;
                    current = records.get(from..).unwrap_or_default().iter().map(|(s, r)| (*s, r.to_vec())).collect();
                    continue;
                }
            }
            let seg = current.last().map(|(s, _)| *s);
            let sec = security.peek().and_then(|r| r.as_ref().ok()).map(|(k, _)| k.value());
            let old = legacy.peek().and_then(|r| r.as_ref().ok()).map(|(k, _)| k.value());
            let best = [seg, sec, old].into_iter().flatten().max();
            match best {
                None => {
                    // A read error at the head of an iterator surfaces here.
                    if let Some(Err(e)) = security.next() {
                        return Err(e.into());
                    }
                    if let Some(Err(e)) = legacy.next() {
                        return Err(e.into());
                    }
                    break;
                }
                Some(b) if Some(b) == seg => out.extend(current.pop()),
                Some(b) if Some(b) == sec => {
                    if let Some(item) = security.next() {
                        let (k, v) = item?;
                        out.push((k.value(), v.value().to_vec()));
                    }
                }
                Some(_) => {
                    if let Some(item) = legacy.next() {
                        let (k, v) = item?;
                        out.push((k.value(), v.value().to_vec()));
                    }
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn security_records_are_told_apart_without_a_parse_and_with_one() {
        for kind in ["proxy.request", "proxy.connect", "secret.create", "agent.revoke", "vault.init"] {
            let mut e = crate::audit::AuditEvent::new(kind);
            e.detail = Some("\"kind\":\"proxy.x".into());
            let bytes = serde_json::to_vec(&e).unwrap();
            assert!(bytes.starts_with(br#"{"ts_ms":"#), "the fast path's shape");
            assert_eq!(is_security_record(&bytes), !kind.starts_with("proxy."), "{kind}");
        }
        // Other shapes take the parse (and anything unreadable counts as a security event).
        assert!(!is_security_record(br#"{"kind":"proxy.request","ts_ms":1}"#));
        assert!(is_security_record(br#"{"kind":"secret.create"}"#));
        assert!(is_security_record(b"not json"));
    }

    #[test]
    fn segments_round_trip_and_refuse_truncation() {
        let records: Vec<(u64, &[u8])> = vec![(7, b"a"), (8, b""), (10, b"{\"x\":1}")];
        let bytes = encode(&records);
        assert_eq!(decode(&bytes).unwrap(), records);
        for cut in [0, 3, 5, bytes.len() - 1] {
            assert!(decode(&bytes[..cut]).is_err(), "{cut}");
        }
    }

    #[test]
    fn old_rows_then_segments_trim_exactly_by_count_and_age() {
        use crate::store::Retention;
        let dir = tempfile::tempdir().unwrap();
        let s = super::super::FileStore::open(&dir.path().join("v.redb"), std::time::Duration::from_secs(1)).unwrap();
        let ev = |ts: u64| format!(r#"{{"ts_ms":{ts},"kind":"proxy.request"}}"#).into_bytes();
        s.write(|tx| {
            let mut t = tx.tx.open_table(AUDIT)?;
            for seq in 1..=3u64 {
                t.insert(seq, ev(9 + seq).as_slice())?;
            }
            // Migration 7 found the last sequence number in these tables.
            tx.tx.open_table(INFO)?.insert("next", 3)?;
            Ok::<(), StoreError>(())
        })
        .unwrap();
        let seqs = || s.read(|tx| tx.audit_newest(100)).unwrap().iter().map(|(k, _)| *k).collect::<Vec<_>>();
        let keep = |max, min| Retention { max_requests: max, min_ts_ms: min };
        s.write(|tx| tx.append_audit(&(20..25).map(ev).collect::<Vec<_>>(), keep(6, 0))).unwrap();
        assert_eq!(seqs(), vec![8, 7, 6, 5, 4, 3], "the oldest rows of the earlier format go first");
        s.write(|tx| tx.append_audit(&(30..33).map(ev).collect::<Vec<_>>(), keep(6, 0))).unwrap();
        assert_eq!(seqs(), vec![11, 10, 9, 8, 7, 6], "then the head of the oldest segment");
        s.write(|tx| tx.append_audit(&[], keep(6, 31))).unwrap();
        assert_eq!(seqs(), vec![11, 10], "older than the cutoff, across segments");
        let count =
            s.read(|tx| Ok::<_, StoreError>(tx.tx.open_table(INFO)?.get("records")?.map(|g| g.value()))).unwrap();
        assert_eq!(count, Some(2));
    }
}

#[cfg(test)]
mod model {
    //! The segments against a plain list: any sequence of appends and trims reads back the same.
    use super::*;
    use crate::store::Retention;
    use crate::store::file::FileStore;
    use std::time::Duration;

    fn ev(kind: &str, ts: u64) -> Vec<u8> {
        format!(r#"{{"ts_ms":{ts},"kind":"{kind}","n":"{}"}}"#, "x".repeat((ts % 7) as usize)).into_bytes()
    }

    /// One step: `n` records (every `security_every`-th a security event, 0 for none), then a trim to
    /// `max` records and `age` ms behind the newest record.
    #[derive(Debug, Clone)]
    struct Step {
        n: usize,
        security_every: usize,
        max: u64,
        age: u64,
    }

    fn step() -> impl proptest::strategy::Strategy<Value = Step> {
        use proptest::prelude::*;
        (0usize..40, 0usize..6, 1u64..60, 1u64..200).prop_map(|(n, s, max, age)| Step {
            n,
            security_every: s,
            max,
            age,
        })
    }

    fn check(steps: &[Step]) {
        let (_dir, _, s) = store();
        // The model: (seq, record), oldest first.
        let mut requests: Vec<(u64, Vec<u8>)> = Vec::new();
        let mut security: Vec<(u64, Vec<u8>)> = Vec::new();
        let (mut seq, mut ts) = (0u64, 1000u64);
        for st in steps {
            let mut batch = Vec::new();
            for i in 0..st.n {
                seq += 1;
                ts += 3;
                let is_security = st.security_every > 0 && i % st.security_every == 0;
                let r = ev(if is_security { "secret.create" } else { "proxy.request" }, ts);
                if is_security { &mut security } else { &mut requests }.push((seq, r.clone()));
                batch.push(r);
            }
            let keep = Retention { max_requests: st.max, min_ts_ms: ts.saturating_sub(st.age) };
            s.write(|tx| tx.append_audit(&batch, keep)).unwrap();
            let surplus = requests.len().saturating_sub(st.max as usize);
            requests.drain(..surplus);
            requests.retain(|(_, r)| record_ts_ms(r) >= keep.min_ts_ms);
            let mut want: Vec<(u64, Vec<u8>)> = requests.iter().chain(security.iter()).cloned().collect();
            want.sort_by_key(|r| std::cmp::Reverse(r.0));
            assert_eq!(s.read(|tx| tx.audit_newest(usize::MAX)).unwrap(), want, "after {st:?}");
            let counted = s.read(|tx| Ok(tx.tx.open_table(INFO)?.get("records")?.map(|g| g.value()))).unwrap();
            assert_eq!(counted.unwrap_or(0), requests.len() as u64, "the count after {st:?}");
            let some = want.len().min(5);
            assert_eq!(s.read(|tx| tx.audit_newest(some)).unwrap(), want[..some], "a limit after {st:?}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        #[test]
        fn appends_and_trims_read_back_like_a_list(steps in proptest::collection::vec(step(), 1..12)) {
            check(&steps);
        }
    }

    /// A new store in a temporary directory (kept alive by the first value).
    fn store() -> (tempfile::TempDir, std::path::PathBuf, FileStore) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.redb");
        let s = FileStore::open(&path, Duration::from_secs(1)).unwrap();
        (dir, path, s)
    }

    /// The segment files in the store's directory, oldest first: (first sequence number, bytes).
    fn files(store: &std::path::Path) -> Vec<(u64, Vec<u8>)> {
        let mut out: Vec<(u64, Vec<u8>)> = std::fs::read_dir(segment_dir(store))
            .map(|d| d.flatten().collect::<Vec<_>>())
            .unwrap_or_default()
            .into_iter()
            .filter_map(|e| {
                let (first, _) = parse_segment_file(e.file_name().to_str()?)?;
                Some((first, std::fs::read(e.path()).ok()?))
            })
            .collect();
        out.sort();
        out
    }

    #[test]
    fn a_full_log_trims_the_oldest_segment_without_rewriting_it() {
        let (_dir, path, s) = store();
        let keep = Retention { max_requests: 10, min_ts_ms: 0 };
        let batch = |from: u64| (from..from + 6).map(|ts| ev("proxy.request", ts)).collect::<Vec<_>>();
        s.write(|tx| tx.append_audit(&batch(1), keep)).unwrap();
        let before = files(&path);
        assert_eq!(before.len(), 1);
        s.write(|tx| tx.append_audit(&batch(7), keep)).unwrap();
        let after = files(&path);
        assert_eq!(after.len(), 2);
        assert_eq!(after[0], before[0], "two records of the oldest segment went by `skip` alone");
        assert_eq!(s.read(|tx| tx.audit_newest(100)).unwrap().len(), 10);
        s.write(|tx| tx.append_audit(&batch(13), keep)).unwrap();
        assert_eq!(files(&path).iter().map(|(k, _)| *k).collect::<Vec<_>>(), vec![7, 13], "the first file went");
        use std::os::unix::fs::PermissionsExt as _;
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&segment_dir(&path)), 0o700);
        for e in std::fs::read_dir(segment_dir(&path)).unwrap() {
            assert_eq!(mode(&e.unwrap().path()), 0o600);
        }
    }

    #[test]
    fn a_batch_that_does_not_commit_leaves_no_file_and_strays_are_swept() {
        let (_dir, path, s) = store();
        let keep = Retention { max_requests: 4, min_ts_ms: 0 };
        let r: Result<(), StoreError> = s.write(|tx| {
            tx.append_audit(&[ev("proxy.request", 1)], keep)?;
            Err(StoreError::Corrupt("the command failed after the append".into()))
        });
        assert!(r.is_err());
        assert_eq!(files(&path), vec![], "the failed transaction's file is gone");
        assert_eq!(s.read(|tx| tx.audit_newest(10)).unwrap(), vec![]);
        // A file no row names (as a crash between the write and the commit leaves) is never read,
        // and goes when segments next leave the log.
        std::fs::write(segment_dir(&path).join(format!("{:020}-{:016x}.seg", 1, 7)), b"stray").unwrap();
        s.write(|tx| tx.append_audit(&(2..5).map(|t| ev("proxy.request", t)).collect::<Vec<_>>(), keep)).unwrap();
        assert_eq!(s.read(|tx| tx.audit_newest(10)).unwrap().len(), 3);
        s.write(|tx| tx.append_audit(&(5..9).map(|t| ev("proxy.request", t)).collect::<Vec<_>>(), keep)).unwrap();
        assert_eq!(files(&path).iter().map(|(k, _)| *k).collect::<Vec<_>>(), vec![4], "stray and dropped files went");
    }

    #[test]
    fn a_lost_segment_file_is_reported_by_readers_and_does_not_stop_appends() {
        let (_dir, path, s) = store();
        let keep = |min| Retention { max_requests: 100, min_ts_ms: min };
        s.write(|tx| tx.append_audit(&(1..4).map(|t| ev("proxy.request", t)).collect::<Vec<_>>(), keep(0))).unwrap();
        s.write(|tx| tx.append_audit(&(10..13).map(|t| ev("proxy.request", t)).collect::<Vec<_>>(), keep(0))).unwrap();
        std::fs::remove_dir_all(segment_dir(&path)).unwrap();
        let err = s.read(|tx| tx.audit_newest(10)).unwrap_err().to_string();
        assert!(err.contains("is missing"), "{err}");
        // An age trim that needs the lost oldest segment drops its row; new records land.
        s.write(|tx| tx.append_audit(&[ev("proxy.request", 20)], keep(2))).unwrap();
        s.write(|tx| tx.append_audit(&[ev("proxy.request", 21)], keep(11))).unwrap();
        let left: Vec<u64> = files(&path).iter().map(|(k, _)| *k).collect();
        assert_eq!(left, vec![7, 8], "the two new segments; the lost ones' rows are gone");
        assert_eq!(s.read(|tx| tx.audit_newest(10)).unwrap().len(), 2);
    }

    #[test]
    fn a_lost_segment_counts_against_the_surplus() {
        let (_dir, path, s) = store();
        let keep = |max, min| Retention { max_requests: max, min_ts_ms: min };
        s.write(|tx| tx.append_audit(&(1..4).map(|t| ev("proxy.request", t)).collect::<Vec<_>>(), keep(100, 0)))
            .unwrap();
        s.write(|tx| tx.append_audit(&(10..13).map(|t| ev("proxy.request", t)).collect::<Vec<_>>(), keep(100, 0)))
            .unwrap();
        let first = std::fs::read_dir(segment_dir(&path)).unwrap().flatten().map(|e| e.path()).min().unwrap();
        std::fs::remove_file(first).unwrap();
        // Seven records against five: the lost segment's three go, so the next one keeps all of its.
        s.write(|tx| tx.append_audit(&[ev("proxy.request", 20)], keep(5, 2))).unwrap();
        assert_eq!(s.read(|tx| tx.audit_newest(10)).unwrap().len(), 4);
    }

    #[test]
    fn migration_7_moves_schema_6_segments_to_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.redb");
        {
            // A store as schema 6 wrote it: segments in redb and a count, no bookkeeping rows.
            let s = FileStore::open(&path, Duration::from_secs(1)).unwrap();
            s.write(|tx| {
                let records: Vec<(u64, Vec<u8>)> = (1..=8).map(|i| (i, ev("proxy.request", 100 + i))).collect();
                let refs: Vec<(u64, &[u8])> = records.iter().map(|(s, r)| (*s, r.as_slice())).collect();
                let mut segments = tx.tx.open_table(SEGMENTS)?;
                segments.insert(1, encode(&refs[..5]).as_slice())?;
                segments.insert(6, encode(&refs[5..]).as_slice())?;
                drop(segments);
                tx.tx.open_table(AUDIT_SECURITY)?.insert(9, ev("secret.create", 109).as_slice())?;
                let mut info = tx.tx.open_table(INFO)?;
                info.insert("records", 8)?;
                info.remove("next")?;
                info.remove("skip")?;
                drop(info);
                tx.tx.delete_table(SEGMENT_META)?;
                tx.set_meta("schema_version", "6")
            })
            .unwrap();
        }
        let s = FileStore::open(&path, Duration::from_secs(1)).unwrap();
        let meta = s
            .read(|tx| {
                let t = tx.tx.open_table(SEGMENT_META)?;
                Ok(t.iter()?.map(|r| r.map(|(k, v)| (k.value(), v.value()))).collect::<Result<Vec<_>, _>>()?)
            })
            .unwrap();
        assert_eq!(
            meta.iter().map(|(k, m)| (*k, m.0, m.1, m.2)).collect::<Vec<_>>(),
            vec![(1, 5, 101, 105), (6, 3, 106, 108)]
        );
        assert_eq!(files(&path).iter().map(|(k, _)| *k).collect::<Vec<_>>(), vec![1, 6]);
        let tables: Vec<String> =
            s.read(|tx| Ok(tx.tx.list_tables()?.map(|t| redb::TableHandle::name(&t).to_owned()).collect())).unwrap();
        assert!(!tables.iter().any(|t| t == "audit_segments"), "{tables:?}");
        s.write(|tx| tx.append_audit(&[ev("proxy.request", 110)], Retention { max_requests: 7, min_ts_ms: 0 }))
            .unwrap();
        let seqs: Vec<u64> = s.read(|tx| tx.audit_newest(100)).unwrap().iter().map(|(k, _)| *k).collect();
        assert_eq!(seqs, vec![10, 9, 8, 7, 6, 5, 4, 3], "numbering continues after the security event");
    }
}
