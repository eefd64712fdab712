//! A future polled only after one of its own wake-ups.
//!
//! An intercepted connection's task races the connection against the reasons to end it (the
//! proxy stopping, the idle timeout, the agent's revocation). `select!` polls every branch each
//! time the task wakes, and a busy connection wakes its task several times per request: polling
//! the three watchers each time was about 1 % of the proxy's CPU per request. Behind a `Gated`
//! they are polled once at the start and then only when a waker they registered fires. A plain
//! client connection (`server::serve_client`) gates its own three the same way.
//!
//! Invariant: a wake-up of the inner future is never lost. The flag is set before the task is
//! woken, and cleared before the inner future is polled, so a wake that races with a poll makes
//! the next poll go through.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

pin_project_lite::pin_project! {
    /// `inner`, polled only when it asked to be (see the module docs). The future stays inline
    /// (no box: an idle connection would pay for a second allocation of the watchers).
    pub struct Gated<F> {
        #[pin]
        inner: F,
        signal: Arc<Signal>,
        // A waker for `signal`, made once.
        waker: Waker,
    }
}

struct Signal {
    woken: AtomicBool,
    /// The task to wake: the one that polled the gate last.
    task: Mutex<Option<Waker>>,
}

impl Wake for Signal {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        let task = self.task.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        if let Some(task) = task {
            task.wake();
        }
    }
}

impl<F: Future> Gated<F> {
    pub fn new(inner: F) -> Gated<F> {
        let signal = Arc::new(Signal { woken: AtomicBool::new(true), task: Mutex::new(None) });
        let waker = Waker::from(signal.clone());
        Gated { inner, signal, waker }
    }
}

impl<F: Future> Future for Gated<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        {
            let mut task = this.signal.task.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if !task.as_ref().is_some_and(|t| t.will_wake(cx.waker())) {
                *task = Some(cx.waker().clone());
            }
        }
        if !this.signal.woken.swap(false, Ordering::AcqRel) {
            return Poll::Pending;
        }
        this.inner.poll(&mut Context::from_waker(this.waker))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// Counts its polls; pending until `ready` is set, then ready. Registers the waker it was
    /// given in `waker` so the test can fire it.
    struct Probe {
        polls: Arc<AtomicUsize>,
        ready: Arc<AtomicBool>,
        waker: Arc<Mutex<Option<Waker>>>,
    }

    impl Future for Probe {
        type Output = ();
        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            self.polls.fetch_add(1, Ordering::SeqCst);
            *self.waker.lock().unwrap() = Some(cx.waker().clone());
            if self.ready.load(Ordering::SeqCst) { Poll::Ready(()) } else { Poll::Pending }
        }
    }

    #[test]
    fn polls_on_its_own_wakes_only_and_loses_none() {
        let (polls, ready, waker) = (Arc::default(), Arc::new(AtomicBool::new(false)), Arc::default());
        let mut gate =
            Box::pin(Gated::new(Probe { polls: Arc::clone(&polls), ready: ready.clone(), waker: Arc::clone(&waker) }));
        let task_wakes = Arc::new(Counter::default());
        let task = Waker::from(task_wakes.clone());
        let mut cx = Context::from_waker(&task);
        let mut gate = gate.as_mut();
        let polled = |n: usize| assert_eq!(polls.load(Ordering::SeqCst), n);

        // The first poll goes through; wakes of the task from elsewhere do not poll it again.
        assert!(gate.as_mut().poll(&mut cx).is_pending());
        polled(1);
        for _ in 0..5 {
            assert!(gate.as_mut().poll(&mut cx).is_pending());
        }
        polled(1);
        // Its own wake wakes the task and lets exactly one poll through.
        let inner_waker = waker.lock().unwrap().clone().unwrap();
        inner_waker.wake_by_ref();
        assert_eq!(task_wakes.0.load(Ordering::SeqCst), 1);
        assert!(gate.as_mut().poll(&mut cx).is_pending());
        assert!(gate.as_mut().poll(&mut cx).is_pending());
        polled(2);
        // Ready after a wake: the gate is ready.
        ready.store(true, Ordering::SeqCst);
        inner_waker.wake();
        assert!(gate.as_mut().poll(&mut cx).is_ready());
        polled(3);
    }

    #[derive(Default)]
    struct Counter(AtomicUsize);

    impl Wake for Counter {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
}
