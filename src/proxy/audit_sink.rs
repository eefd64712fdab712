//! Writes proxy audit records to the store in batches from a background task.
//!
//! Records are never dropped: the channel is unbounded, and a batch that cannot be written
//! (store busy) is kept and retried on the next tick. On shutdown the remainder is flushed.

use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::audit::AuditEvent;

/// A handle to queue audit records.
#[derive(Clone)]
pub struct AuditSink {
    tx: mpsc::UnboundedSender<AuditEvent>,
}

impl AuditSink {
    /// Starts the writer task for the store at `store_path`.
    pub fn spawn(store_path: PathBuf, lock_wait: Duration) -> (AuditSink, tokio::task::JoinHandle<()>) {
        let (tx, mut rx) = mpsc::unbounded_channel::<AuditEvent>();
        let task = tokio::spawn(async move {
            let mut pending: Vec<AuditEvent> = Vec::new();
            let mut closed = false;
            while !closed || !pending.is_empty() {
                tokio::select! {
                    n = rx.recv_many(&mut pending, 4096) => { if n == 0 { closed = true; } }
                    () = tokio::time::sleep(Duration::from_millis(200)), if !pending.is_empty() => {}
                }
                if pending.is_empty() {
                    continue;
                }
                // Let a burst gather before paying for a store transaction.
                if !closed && pending.len() < 4096 {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    while let Ok(e) = rx.try_recv() {
                        pending.push(e);
                    }
                }
                let batch = std::mem::take(&mut pending);
                let path = store_path.clone();
                let result = tokio::task::spawn_blocking(move || {
                    let r = crate::service::append_audit_at(&path, lock_wait, &batch);
                    (r, batch)
                })
                .await;
                match result {
                    Ok((Ok(()), _)) => {}
                    Ok((Err(e), batch)) => {
                        tracing::warn!(error = %e, records = batch.len(), "audit write failed; will retry");
                        pending = batch;
                        if closed {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                    Err(e) => tracing::error!(error = %e, "audit writer panicked"),
                }
            }
        });
        (AuditSink { tx }, task)
    }

    pub fn record(&self, event: AuditEvent) {
        if self.tx.send(event).is_err() {
            tracing::error!("audit writer stopped; a record could not be queued");
        }
    }
}
