//! Byte splicing for tunnels and WebSockets, closed when neither side has moved a byte for the
//! idle timeout.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Why a splice ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// A side closed (or failed).
    Closed,
    /// Nothing moved for the idle timeout.
    Idle,
    /// `stop` resolved (the agent was revoked, the proxy is shutting down).
    Stopped,
}

impl Ending {
    /// The audit outcome.
    pub fn outcome(self) -> &'static str {
        match self {
            Ending::Closed => "ok",
            Ending::Idle => "idle_timeout",
            Ending::Stopped => "revoked",
        }
    }
}

/// Copies both ways until either side closes, nothing moves for `idle`, or `stop` resolves.
/// Returns the bytes copied (a → b, b → a) and why it ended.
pub async fn splice<A, B>(a: A, b: B, idle: Duration, stop: impl std::future::Future<Output = ()>) -> (u64, u64, Ending)
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let start = Instant::now();
    let last = Arc::new(AtomicU64::new(0));
    let mut a = Activity { inner: a, last: last.clone(), start, moved: 0 };
    let mut b = Activity { inner: b, last: last.clone(), start, moved: 0 };
    let idle_ms = idle.as_millis() as u64;
    let watchdog = async {
        loop {
            tokio::time::sleep(idle / 4).await;
            if start.elapsed().as_millis() as u64 - last.load(Ordering::Relaxed) >= idle_ms {
                return;
            }
        }
    };
    let ending = tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut a, &mut b) => Ending::Closed,
        () = watchdog => Ending::Idle,
        () = stop => Ending::Stopped,
    };
    (a.moved, b.moved, ending)
}

/// Records the time of the last byte read through it.
struct Activity<T> {
    inner: T,
    last: Arc<AtomicU64>,
    start: Instant,
    moved: u64,
}

impl<T: AsyncRead + Unpin> AsyncRead for Activity<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        if n > 0 {
            self.moved += n as u64;
            self.last.store(self.start.elapsed().as_millis() as u64, Ordering::Relaxed);
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Activity<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    #[tokio::test]
    async fn copies_both_ways_and_closes_when_idle() {
        let (mut client, proxy_a) = tokio::io::duplex(1024);
        let (proxy_b, mut server) = tokio::io::duplex(1024);
        let task = tokio::spawn(splice(proxy_a, proxy_b, Duration::from_millis(200), std::future::pending()));
        client.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        server.read_exact(&mut buf).await.unwrap();
        server.write_all(b"pong!").await.unwrap();
        let mut back = [0u8; 5];
        client.read_exact(&mut back).await.unwrap();
        assert_eq!((&buf, &back), (b"ping", b"pong!"));
        let (up, down, ending) = task.await.unwrap();
        assert_eq!((up, down, ending), (4, 5, Ending::Idle));
    }
}
