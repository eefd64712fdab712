//! The request log in the redb file: one row per appended batch (a *segment*), not one per record.
//!
//! The proxy flushes thousands of request records at a time; a B-tree insert per record was a
//! quarter of the proxy's CPU per request. A segment is `[count: u32]` then, per record,
//! `[seq: u64][len: u32][bytes]`, keyed by its first sequence number; the total of records in
//! segments lives in `audit_segment_info`. Security events keep one row each in `audit_security`
//! (never trimmed), and rows of the per-record `audit` table written by earlier versions are still
//! read and trimmed (they are always older than any segment). Trimming is exact: whole segments
//! go first, the oldest remaining one is rewritten without its head. Durability is unchanged: a
//! segment is written in the same transaction as before the per-record rows were.

use redb::{ReadableTable, ReadableTableMetadata, TableDefinition};

use super::{AUDIT, AUDIT_SECURITY, FileRead, FileWrite};
use crate::store::{Retention, StoreError, is_security_record, record_ts_ms};

pub(super) const SEGMENTS: TableDefinition<'static, u64, &'static [u8]> = TableDefinition::new("audit_segments");
/// `records` → how many request records the segments hold.
pub(super) const INFO: TableDefinition<'static, &'static str, u64> = TableDefinition::new("audit_segment_info");

/// Records per segment when a copy is loaded (an append writes one segment per batch).
const LOAD_SEGMENT: usize = 10_000;

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

impl FileWrite {
    /// Appends audit records: security events to their own table (never trimmed), request records
    /// as one segment, then trims the request log to `retention`.
    pub(in crate::store) fn append_audit(
        &mut self,
        records: &[Vec<u8>],
        retention: Retention,
    ) -> Result<(), StoreError> {
        let mut legacy = self.tx.open_table(AUDIT)?;
        let mut security = self.tx.open_table(AUDIT_SECURITY)?;
        let mut segments = self.tx.open_table(SEGMENTS)?;
        let mut info = self.tx.open_table(INFO)?;
        let newest_legacy = legacy.last()?.map_or(0, |(k, _)| k.value());
        let newest_security = security.last()?.map_or(0, |(k, _)| k.value());
        let newest_segment = match segments.last()? {
            Some((_, v)) => decode(v.value())?.last().map_or(0, |(s, _)| *s),
            None => 0,
        };
        let first = newest_legacy.max(newest_security).max(newest_segment) + 1;
        let mut batch: Vec<(u64, &[u8])> = Vec::with_capacity(records.len());
        for (seq, r) in (first..).zip(records) {
            if is_security_record(r) {
                security.insert(seq, r.as_slice())?;
            } else {
                batch.push((seq, r.as_slice()));
            }
        }
        let mut in_segments = info.get("records")?.map_or(0, |g| g.value());
        if let Some((seq, _)) = batch.first() {
            segments.insert(*seq, encode(&batch).as_slice())?;
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
            in_segments -= trim_segments(&mut segments, surplus, retention.min_ts_ms)?;
        }
        info.insert("records", in_segments)?;
        Ok(())
    }

    /// Replaces the request log with `records` (a store copy), in segments.
    pub(in crate::store) fn load_audit(&mut self, records: &[(u64, Vec<u8>)]) -> Result<(), StoreError> {
        let mut security = self.tx.open_table(AUDIT_SECURITY)?;
        let mut segments = self.tx.open_table(SEGMENTS)?;
        self.tx.open_table(AUDIT)?.retain(|_, _| false)?;
        security.retain(|_, _| false)?;
        segments.retain(|_, _| false)?;
        let mut plain: Vec<(u64, &[u8])> = Vec::new();
        for (seq, body) in records {
            if is_security_record(body) {
                security.insert(*seq, body.as_slice())?;
            } else {
                plain.push((*seq, body.as_slice()));
            }
        }
        for chunk in plain.chunks(LOAD_SEGMENT) {
            segments.insert(chunk[0].0, encode(chunk).as_slice())?;
        }
        self.tx.open_table(INFO)?.insert("records", plain.len() as u64)?;
        Ok(())
    }

    pub(in crate::store) fn audit_is_empty(&self) -> Result<bool, StoreError> {
        Ok(self.tx.open_table(AUDIT)?.is_empty()?
            && self.tx.open_table(AUDIT_SECURITY)?.is_empty()?
            && self.tx.open_table(SEGMENTS)?.is_empty()?)
    }
}

/// Drops `surplus` of the oldest records and every record older than `min_ts_ms` from the
/// segments; returns how many went.
fn trim_segments(
    segments: &mut redb::Table<'_, u64, &'static [u8]>,
    mut surplus: u64,
    min_ts_ms: u64,
) -> Result<u64, StoreError> {
    let mut removed = 0;
    loop {
        let Some((key, records)) = segments.first()?.map(|(k, v)| (k.value(), v.value().to_vec())) else { break };
        let decoded = decode(&records)?;
        let too_old = decoded.iter().take_while(|(_, r)| record_ts_ms(r) < min_ts_ms).count() as u64;
        let drop = surplus.max(too_old).min(decoded.len() as u64);
        if drop == 0 {
            break;
        }
        segments.remove(key)?;
        let rest = &decoded[drop as usize..];
        if let Some((first, _)) = rest.first() {
            segments.insert(*first, encode(rest).as_slice())?;
        }
        removed += drop;
        surplus = surplus.saturating_sub(drop);
        if !rest.is_empty() {
            break;
        }
    }
    Ok(removed)
}

impl FileRead {
    /// Audit records (requests and security events merged) with sequence numbers, newest first,
    /// at most `limit`.
    pub(in crate::store) fn audit_newest(&self, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let legacy = self.tx.open_table(AUDIT)?;
        let security = self.tx.open_table(AUDIT_SECURITY)?;
        let segments = self.tx.open_table(SEGMENTS)?;
        let mut security = security.iter()?.rev().peekable();
        let mut legacy = legacy.iter()?.rev().peekable();
        let mut segments = segments.iter()?.rev();
        // Records of the segment being read, newest last (popped from the end).
        let mut current: Vec<(u64, Vec<u8>)> = Vec::new();
        let mut out = Vec::new();
        while out.len() < limit {
            if current.is_empty() {
                if let Some(item) = segments.next() {
                    let (_, v) = item?;
                    current = decode(v.value())?.into_iter().map(|(s, r)| (s, r.to_vec())).collect();
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
