//! Writes proxy audit records to the store in batches from a background task.
//!
//! Records are never dropped silently:
//! - the queue between the proxy and the writer is bounded (`QUEUE`); when it is full, records
//!   spill to `<store>.audit-spill` (0600, one JSON line each) and the writer ingests the spill
//!   after its next successful batch;
//! - a batch that cannot be written (store busy) is kept and retried;
//! - floods of identical refusals are folded into counted records (`audit::Aggregator`) before
//!   they reach the store, so a hostile agent cannot bury the log;
//! - on shutdown the remainder (and the spill) is flushed.

use std::io::{BufRead as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;

use crate::audit::{Aggregator, AuditEvent};

/// Records queued in memory before they spill to disk.
pub const QUEUE: usize = 65_536;

/// A batch this large is written at once, without waiting for more to gather.
const GATHER: usize = 4096;

/// The most records one store transaction takes (a backlog is written in batches this large).
const BATCH: usize = 16_384;

/// A handle to queue audit records.
#[derive(Clone)]
pub struct AuditSink {
    tx: mpsc::Sender<AuditEvent>,
    spill: std::sync::Arc<Spill>,
    /// Refusals per run/env session, counted as they are recorded.
    pub sessions: std::sync::Arc<super::session_tally::Tally>,
    /// Request counters and latency for `/metrics`, counted as records arrive.
    pub metrics: std::sync::Arc<super::metrics::Metrics>,
    /// Records committed to the store (a folded record counts for each event it stands for).
    pub written: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

struct Spill {
    path: PathBuf,
    /// The spill file, kept open while records arrive faster than the writer takes them (opening
    /// it per record was most of a spilled request's cost); closed before `take` renames it.
    file: Mutex<Option<std::fs::File>>,
    /// Records written to the spill file and not yet ingested.
    waiting: AtomicUsize,
    /// Records ever written to the spill file (for `/metrics`).
    total: std::sync::atomic::AtomicU64,
}

impl Spill {
    fn new(path: PathBuf) -> Spill {
        Spill { path, file: Mutex::new(None), waiting: AtomicUsize::new(0), total: Default::default() }
    }

    fn append(&self, event: &AuditEvent) -> std::io::Result<()> {
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut line = serde_json::to_vec(event).map_err(std::io::Error::other)?;
        line.push(b'\n');
        let mut file = self.file.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let f = match &mut *file {
            Some(f) => f,
            None => file.insert(std::fs::OpenOptions::new().create(true).append(true).mode(0o600).open(&self.path)?),
        };
        // One write per line: a reader never sees half a record, even after a crash.
        if let Err(e) = f.write_all(&line) {
            *file = None;
            return Err(e);
        }
        self.waiting.fetch_add(1, Ordering::SeqCst);
        self.total.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Takes every spilled record (the file is renamed first, so appends go to a fresh one).
    fn take(&self) -> Vec<AuditEvent> {
        if self.waiting.load(Ordering::SeqCst) == 0 && !self.path.exists() {
            return Vec::new();
        }
        let taking = self.path.with_extension("audit-spill.ingest");
        {
            let mut file = self.file.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            *file = None;
            if std::fs::rename(&self.path, &taking).is_err() {
                return Vec::new();
            }
            self.waiting.store(0, Ordering::SeqCst);
        }
        let events = read_lines(&taking);
        let _ = std::fs::remove_file(&taking);
        events
    }
}

fn read_lines(path: &Path) -> Vec<AuditEvent> {
    let Ok(f) = std::fs::File::open(path) else { return Vec::new() };
    std::io::BufReader::new(f).lines().map_while(Result::ok).filter_map(|l| serde_json::from_str(&l).ok()).collect()
}

impl AuditSink {
    /// Starts the writer task for the store at `store`, spilling to `spill_path` past the queue.
    pub fn spawn(
        store: crate::store::Location,
        spill_path: PathBuf,
        lock_wait: Duration,
    ) -> (AuditSink, tokio::task::JoinHandle<()>) {
        let (tx, mut rx) = mpsc::channel::<AuditEvent>(QUEUE);
        let spill = std::sync::Arc::new(Spill::new(spill_path));
        let writer_spill = spill.clone();
        let written = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let writer_written = written.clone();
        let task = tokio::spawn(async move {
            let mut aggregator = Aggregator::default();
            // A spill left by a proxy that was killed is ingested first.
            let mut pending: Vec<AuditEvent> = writer_spill.take();
            let mut incoming: Vec<AuditEvent> = Vec::new();
            let mut closed = false;
            let mut last_error: Option<String> = None;
            let mut writer = Some(crate::service::AuditWriter::new(store.clone(), lock_wait));
            loop {
                tokio::select! {
                    n = rx.recv_many(&mut incoming, GATHER) => { if n == 0 { closed = true; } }
                    () = tokio::time::sleep(Duration::from_millis(200)) => {}
                }
                // Let a burst gather before paying for a store transaction.
                if !closed && !incoming.is_empty() && incoming.len() < GATHER {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                // Take what else is queued, so a store that is slow per transaction (a busy
                // database) still keeps up: the batch grows with the backlog, not the count.
                // (`recv_many` on a non-empty queue returns at once, and takes the records in one
                // pass rather than `try_recv`'s per-record permit release.)
                while !closed && incoming.len() < BATCH && !rx.is_empty() {
                    let room = BATCH - incoming.len();
                    if rx.recv_many(&mut incoming, room).await == 0 {
                        closed = true;
                    }
                }
                pending.extend(incoming.drain(..).filter_map(|e| aggregator.push(e)));
                pending.extend(aggregator.flush(crate::time::now_ms(), closed));
                if pending.is_empty() {
                    if closed {
                        break;
                    }
                    continue;
                }
                let batch = std::mem::take(&mut pending);
                let mut w = writer.take().unwrap_or_else(|| crate::service::AuditWriter::new(store.clone(), lock_wait));
                let result = tokio::task::spawn_blocking(move || {
                    let r = w.append(&batch);
                    (r, batch, w)
                })
                .await;
                match result {
                    Ok((Ok(()), batch, w)) => {
                        writer = Some(w);
                        let n: u64 = batch.iter().map(|e| e.count.unwrap_or(1)).sum();
                        writer_written.fetch_add(n, Ordering::Relaxed);
                        last_error = None;
                        pending.extend(writer_spill.take());
                    }
                    Ok((Err(e), batch, w)) => {
                        writer = Some(w);
                        let e = e.to_string();
                        if last_error.as_ref() != Some(&e) {
                            tracing::warn!(error = %e, records = batch.len(), "audit write failed; will retry");
                            last_error = Some(e);
                        }
                        pending = batch;
                        // Memory stays bounded while the store is unwritable: the excess spills.
                        if pending.len() > QUEUE {
                            for e in pending.drain(QUEUE..) {
                                let _ = writer_spill.append(&e);
                            }
                        }
                        if closed {
                            // Keep what could not be written for the next proxy to ingest.
                            for e in &pending {
                                let _ = writer_spill.append(e);
                            }
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                    // The batch is gone with the panicked thread; a fresh writer takes the next one.
                    Err(e) => tracing::error!(error = %e, "audit writer panicked"),
                }
            }
            // A PostgreSQL client closes by blocking on a runtime of its own, which must not
            // happen on a worker thread (it panicked there at every graceful stop).
            if let Some(w) = writer.take() {
                let _ = tokio::task::spawn_blocking(move || drop(w)).await;
            }
        });
        (AuditSink { tx, spill, sessions: Default::default(), metrics: Default::default(), written }, task)
    }

    /// Queues a record; never blocks and never loses it (a full queue spills to disk).
    pub fn record(&self, event: AuditEvent) {
        self.sessions.note(&event);
        self.metrics.observe(&event);
        match self.tx.try_send(event) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(event) | mpsc::error::TrySendError::Closed(event)) => {
                if let Err(e) = self.spill.append(&event) {
                    tracing::error!(error = %e, "an audit record could not be queued or spilled");
                }
            }
        }
    }

    /// Records ever spilled to disk because the queue was full (for metrics).
    pub fn spilled(&self) -> u64 {
        self.spill.total.load(Ordering::Relaxed)
    }

    /// Records queued in memory (for tests and metrics).
    pub fn queued(&self) -> usize {
        QUEUE - self.tx.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_queue_spills_to_disk_and_nothing_is_lost() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("vault.redb");
        // No writer task: a channel that is never drained, as under a stalled store.
        let (tx, _rx) = mpsc::channel::<AuditEvent>(2);
        let spill = std::sync::Arc::new(Spill::new(store.with_extension("audit-spill")));
        let sink = AuditSink {
            tx,
            spill: spill.clone(),
            sessions: Default::default(),
            metrics: Default::default(),
            written: Default::default(),
        };
        for i in 0..10 {
            let mut e = AuditEvent::new("proxy.request");
            e.ts_ms = i;
            sink.record(e);
        }
        assert_eq!(sink.spilled(), 8);
        let spilled = spill.take();
        assert_eq!(spilled.iter().map(|e| e.ts_ms).collect::<Vec<_>>(), (2..10).collect::<Vec<_>>());
        use std::os::unix::fs::PermissionsExt as _;
        assert!(spill.take().is_empty(), "taken once");
        sink.record(AuditEvent::new("proxy.request"));
        sink.record(AuditEvent::new("proxy.request"));
        sink.record(AuditEvent::new("proxy.request"));
        let mode = std::fs::metadata(&spill.path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // The open file was closed at the rename: what came after is in the new file, and a
        // record after this second take lands in a third.
        assert_eq!(spill.take().len(), 3);
        sink.record(AuditEvent::new("proxy.request"));
        assert_eq!(spill.take().len(), 1);
        assert!(spill.take().is_empty());
    }
}
