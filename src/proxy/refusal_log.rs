//! A refusal is also a log line where the operator is looking (the proxy's stderr), so "CONNECT
//! tunnel failed, response 403" in an agent's output has its reason next to it: one `warn` line
//! per refusal with the code, agent, method, host and the refusal's message (what the agent was
//! told: codes, ids, hosts and its own request line, never a value). At most 20 lines a second;
//! the rest are counted in one line, and `aivault audit` has every one of them.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::refusal::Refusal;

const PER_SECOND: u64 = 20;

static WINDOW: AtomicU64 = AtomicU64::new(0);
static LOGGED: AtomicU64 = AtomicU64::new(0);
static SUPPRESSED: AtomicU64 = AtomicU64::new(0);

/// Logs `refusal` for `agent` (if known) on `method host`.
pub fn note(agent: Option<&str>, method: &str, host: &str, refusal: &Refusal) {
    let second = crate::time::now_ms() / 1000;
    let window = WINDOW.load(Ordering::Relaxed);
    if window != second && WINDOW.compare_exchange(window, second, Ordering::Relaxed, Ordering::Relaxed).is_ok() {
        LOGGED.store(0, Ordering::Relaxed);
        let suppressed = SUPPRESSED.swap(0, Ordering::Relaxed);
        if suppressed > 0 {
            tracing::warn!(
                suppressed,
                "{suppressed} more refusals in the last second were not logged (`aivault audit` has each)"
            );
        }
    }
    if LOGGED.fetch_add(1, Ordering::Relaxed) >= PER_SECOND {
        SUPPRESSED.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let agent = agent.unwrap_or("-");
    tracing::warn!(
        code = refusal.code.as_str(),
        agent,
        "refused {method} {host} for agent {agent}: {} {}: {}",
        refusal.status(),
        refusal.code,
        refusal.message
    );
}
