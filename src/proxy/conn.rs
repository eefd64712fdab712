//! Connection accounting: what an accepted socket may hold, for how long.
//!
//! - Every accepted socket holds a `Slot` (one of `--max-connections`) until it closes *and*
//!   every tunnel, intercepted connection or WebSocket it turned into has closed: the slot is an
//!   `Arc` those tasks share.
//! - A socket that has not yet authenticated is *pending*: pending sockets have their own budget
//!   (`--max-pending-connections`; when it is full the oldest pending socket is closed to make
//!   room) and a deadline (`--auth-timeout`), so a flood of silent sockets cannot keep agents out.
//! - The first request with a valid agent token *admits* the socket, counted against that agent's
//!   cap (`--max-agent-connections`, refused with `429 too_many_connections` beyond it).
//! - `Activity` tracks the last byte moved and the requests in flight on a connection; `idle`
//!   resolves when nothing moved for the idle timeout with no request in flight (h1 and h2, outer
//!   and intercepted alike).
//! - `revoked` resolves when the agent's token is no longer in the snapshot, so open tunnels and
//!   WebSockets of a revoked agent are closed, not only their next request refused.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, oneshot};
use tokio::time::Instant;

use super::pipeline::SnapshotCell;
use super::upstream::{Body, BoxError};
use crate::refusal::{ErrorCode, Refusal};

/// The budgets, shared by every connection of one proxy.
pub struct Accounting {
    max_pending: usize,
    max_per_agent: usize,
    next_id: AtomicU64,
    /// Pending sockets, oldest first; sending closes one.
    pending: Mutex<BTreeMap<u64, oneshot::Sender<()>>>,
    /// Admitted sockets per agent token hash.
    per_agent: Mutex<HashMap<String, usize>>,
}

impl Accounting {
    pub fn new(max_pending: usize, max_per_agent: usize) -> Arc<Accounting> {
        Arc::new(Accounting {
            max_pending: max_pending.max(1),
            max_per_agent: max_per_agent.max(1),
            next_id: AtomicU64::new(0),
            pending: Mutex::new(BTreeMap::new()),
            per_agent: Mutex::new(HashMap::new()),
        })
    }

    /// Registers an accepted socket as pending. The receiver fires if it is evicted to make room.
    pub fn accept(self: &Arc<Self>, permit: OwnedSemaphorePermit) -> (Arc<Slot>, oneshot::Receiver<()>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        let evicted = {
            let mut pending = lock(&self.pending);
            pending.insert(id, tx);
            if pending.len() > self.max_pending { pending.pop_first().map(|(_, tx)| tx) } else { None }
        };
        if let Some(oldest) = evicted {
            let _ = oldest.send(());
        }
        let slot = Slot { id, accounting: self.clone(), _permit: permit, admitted: Mutex::new(None) };
        (Arc::new(slot), rx)
    }

    /// How many sockets are still waiting to authenticate.
    pub fn pending(&self) -> usize {
        lock(&self.pending).len()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// One accepted socket's place in the budgets; released when the last holder drops it.
pub struct Slot {
    id: u64,
    accounting: Arc<Accounting>,
    _permit: OwnedSemaphorePermit,
    /// The agent token hash this socket was admitted for.
    admitted: Mutex<Option<String>>,
}

impl Slot {
    /// Moves the socket from pending to the agent's budget (idempotent).
    pub fn admit(&self, token_hash: &str) -> Result<(), Refusal> {
        let mut admitted = lock(&self.admitted);
        if admitted.is_some() {
            return Ok(());
        }
        {
            let mut per_agent = lock(&self.accounting.per_agent);
            let n = per_agent.entry(token_hash.to_owned()).or_insert(0);
            if *n >= self.accounting.max_per_agent {
                return Err(Refusal::new(
                    ErrorCode::TooManyConnections,
                    format!("this agent already has {n} open connections (--max-agent-connections)"),
                ));
            }
            *n += 1;
        }
        *admitted = Some(token_hash.to_owned());
        // Dropping the sender tells the connection it is no longer pending (not an eviction).
        lock(&self.accounting.pending).remove(&self.id);
        Ok(())
    }

    pub fn is_admitted(&self) -> bool {
        lock(&self.admitted).is_some()
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        lock(&self.accounting.pending).remove(&self.id);
        let admitted = lock(&self.admitted).take();
        if let Some(hash) = admitted {
            let mut per_agent = lock(&self.accounting.per_agent);
            if let Some(n) = per_agent.get_mut(&hash) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    per_agent.remove(&hash);
                }
            }
        }
    }
}

/// Resolves when a pending socket must close: evicted for a newer one, or not admitted in time.
pub async fn pending_over(slot: &Slot, evicted: oneshot::Receiver<()>, deadline: Duration) {
    let evicted = async {
        if evicted.await.is_err() {
            // Admitted: the sender was dropped, nothing to wait for.
            std::future::pending::<()>().await;
        }
    };
    let late = async {
        tokio::time::sleep(deadline).await;
        if slot.is_admitted() {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        () = evicted => {}
        () = late => {}
    }
}

/// Whether bytes moved, and the requests in flight, on one connection. Every read and write bumps
/// a counter (no clock on the I/O path: reading the time per read and write was a visible share
/// of a request's CPU); `idle` samples it on its own timer.
pub struct Activity {
    moves: AtomicU64,
    in_flight: AtomicUsize,
}

impl Activity {
    pub fn new() -> Arc<Activity> {
        Arc::new(Activity { moves: AtomicU64::new(0), in_flight: AtomicUsize::new(0) })
    }

    fn touch(&self) {
        // Only "did it change" matters: a racing bump lost between two threads still changes it.
        self.moves.store(self.moves.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
    }

    /// Marks a request in flight until the returned guard (or the body holding it) is dropped.
    pub fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        self.touch();
        InFlight(self.clone())
    }
}

/// A request in flight; see `Activity::begin`.
pub struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Resolves once nothing moved for `timeout` and no request is in flight. Checked every quarter
/// of `timeout` (at least 50 ms), so a quiet connection closes between `timeout` and about
/// `timeout` plus two checks after its last byte.
pub async fn idle(activity: &Activity, timeout: Duration) {
    let every = (timeout / 4).max(Duration::from_millis(50));
    let mut seen = activity.moves.load(Ordering::Relaxed);
    let mut quiet_since = Instant::now();
    loop {
        tokio::time::sleep(every).await;
        let moves = activity.moves.load(Ordering::Relaxed);
        if moves != seen {
            seen = moves;
            quiet_since = Instant::now();
            continue;
        }
        if quiet_since.elapsed() >= timeout && activity.in_flight.load(Ordering::SeqCst) == 0 {
            return;
        }
    }
}

/// Resolves when `token_hash` is no longer a valid agent token in the current snapshot.
pub async fn revoked(snapshot: &SnapshotCell, token_hash: &str) {
    let mut changes = snapshot.subscribe();
    loop {
        if snapshot.load().agent_by_hash(token_hash).is_none() {
            return;
        }
        if changes.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// An I/O stream that records activity on every byte read or written.
pub struct Tracked<T> {
    inner: T,
    activity: Arc<Activity>,
}

impl<T> Tracked<T> {
    pub fn new(inner: T, activity: Arc<Activity>) -> Self {
        Tracked { inner, activity }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Tracked<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Tracked<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// A response body that keeps its request counted as in flight until it ends.
pub struct Held {
    inner: Body,
    _in_flight: InFlight,
}

impl Held {
    pub fn wrap(inner: Body, in_flight: InFlight) -> Body {
        http_body_util::BodyExt::boxed(Held { inner, _in_flight: in_flight })
    }
}

impl HttpBody for Held {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::Semaphore;

    #[tokio::test]
    async fn pending_sockets_are_evicted_oldest_first_and_admission_counts_per_agent() {
        let global = Arc::new(Semaphore::new(10));
        let acct = Accounting::new(2, 1);
        let permit = || global.clone().try_acquire_owned().unwrap();
        let (a, mut a_rx) = acct.accept(permit());
        let (b, _b_rx) = acct.accept(permit());
        assert_eq!(acct.pending(), 2);
        let (_c, _c_rx) = acct.accept(permit());
        assert_eq!(a_rx.try_recv(), Ok(()), "the oldest pending socket is evicted");
        assert_eq!(acct.pending(), 2);
        b.admit("agent-1").unwrap();
        assert!(b.is_admitted());
        assert_eq!(acct.pending(), 1);
        let (d, _d_rx) = acct.accept(permit());
        assert_eq!(d.admit("agent-1").unwrap_err().code, ErrorCode::TooManyConnections);
        drop(b);
        d.admit("agent-1").unwrap();
        drop(a);
        assert_eq!(global.available_permits(), 10 - 2, "c and d hold permits");
    }

    #[tokio::test(start_paused = true)]
    async fn idle_waits_for_quiet_and_no_request_in_flight() {
        let activity = Activity::new();
        let guard = activity.begin();
        let idle_fut = idle(&activity, Duration::from_secs(10));
        tokio::pin!(idle_fut);
        assert!(tokio::time::timeout(Duration::from_secs(60), &mut idle_fut).await.is_err(), "a request is in flight");
        drop(guard);
        assert!(tokio::time::timeout(Duration::from_secs(15), &mut idle_fut).await.is_ok());
    }
}
