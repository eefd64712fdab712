//! Refusals per `run` / `env` session, counted in memory as they are audited, so `aivault run`
//! can say what went wrong when its command exits (it asks `aivault.internal/session` with the
//! session's own token before the session ends).
//!
//! Bounded: at most `MAX_SESSIONS` sessions (the least recently refused is forgotten first) and
//! `MAX_KEYS` (code, host) pairs per session; the rest of a session's refusals are counted as
//! `other`. Nothing here touches the store.

use std::collections::HashMap;
use std::sync::Mutex;

use serde::Serialize;

use crate::audit::AuditEvent;

const MAX_SESSIONS: usize = 4096;
const MAX_KEYS: usize = 32;

/// One line of a summary: `count` refusals with `code` for `host`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Refused {
    pub code: String,
    pub host: String,
    pub count: u64,
}

/// What one session was refused.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct SessionRefusals {
    pub refused: Vec<Refused>,
    /// Refusals beyond the first `MAX_KEYS` (code, host) pairs.
    pub other: u64,
}

impl SessionRefusals {
    pub fn total(&self) -> u64 {
        self.refused.iter().map(|r| r.count).sum::<u64>() + self.other
    }
}

#[derive(Default)]
struct Entry {
    counts: HashMap<(String, String), u64>,
    other: u64,
    seq: u64,
}

#[derive(Default)]
pub struct Tally {
    inner: Mutex<(HashMap<String, Entry>, u64)>,
}

/// Outcomes that are not refusals.
fn is_refusal(outcome: &str) -> bool {
    !matches!(outcome, "ok" | "client_closed")
}

impl Tally {
    /// Counts `e` if it is a refused request of a session.
    pub fn note(&self, e: &AuditEvent) {
        let (Some(session), Some(outcome)) = (&e.session, &e.outcome) else { return };
        if !is_refusal(outcome) {
            return;
        }
        let mut guard = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (map, seq) = &mut *guard;
        *seq += 1;
        if !map.contains_key(session) && map.len() >= MAX_SESSIONS {
            if let Some(oldest) = map.iter().min_by_key(|(_, v)| v.seq).map(|(k, _)| k.clone()) {
                map.remove(&oldest);
            }
        }
        let entry = map.entry(session.clone()).or_default();
        entry.seq = *seq;
        let key = (outcome.clone(), e.host.clone().unwrap_or_else(|| "-".into()));
        let n = e.count.unwrap_or(1);
        if let Some(c) = entry.counts.get_mut(&key) {
            *c += n;
        } else if entry.counts.len() < MAX_KEYS {
            entry.counts.insert(key, n);
        } else {
            entry.other += n;
        }
    }

    /// What `session` was refused so far, most frequent first.
    pub fn get(&self, session: &str) -> SessionRefusals {
        let guard = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(entry) = guard.0.get(session) else { return SessionRefusals::default() };
        let mut refused: Vec<Refused> = entry
            .counts
            .iter()
            .map(|((code, host), count)| Refused { code: code.clone(), host: host.clone(), count: *count })
            .collect();
        refused.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| (&a.code, &a.host).cmp(&(&b.code, &b.host))));
        SessionRefusals { refused, other: entry.other }
    }
}

/// The lines `run` prints: one per code, its hosts with counts, then what to do.
pub fn summary_lines(s: &SessionRefusals) -> Vec<String> {
    let total = s.total();
    if total == 0 {
        return Vec::new();
    }
    let plural = if total == 1 { "request" } else { "requests" };
    let mut lines = vec![format!("aivault: {total} {plural} refused during this command:")];
    let mut codes: Vec<&str> = Vec::new();
    for r in &s.refused {
        if !codes.contains(&r.code.as_str()) {
            codes.push(&r.code);
        }
    }
    for code in codes {
        let hosts: Vec<String> =
            s.refused.iter().filter(|r| r.code == code).map(|r| format!("{} ×{}", r.host, r.count)).collect();
        let hint = crate::refusal::ErrorCode::parse(code).map(|c| c.hint()).unwrap_or("see `aivault audit`");
        lines.push(format!("  {code} {} — {hint}", hosts.join(", ")));
    }
    if s.other > 0 {
        lines.push(format!("  and {} more (`aivault audit` has each)", s.other));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(session: Option<&str>, outcome: &str, host: &str) -> AuditEvent {
        let mut e = AuditEvent::new("proxy.connect");
        e.session = session.map(str::to_owned);
        e.outcome = Some(outcome.to_owned());
        e.host = Some(host.to_owned());
        e
    }

    #[test]
    fn counts_only_refusals_of_sessions_and_stays_bounded() {
        let t = Tally::default();
        for _ in 0..3 {
            t.note(&refused(Some("s1"), "host_not_allowed", "pypi.org"));
        }
        t.note(&refused(Some("s1"), "ok", "pypi.org"));
        t.note(&refused(Some("s1"), "client_closed", "pypi.org"));
        t.note(&refused(None, "host_not_allowed", "pypi.org"));
        t.note(&refused(Some("s1"), "capability_denied", "api.openai.com"));
        let got = t.get("s1");
        assert_eq!(got.total(), 4);
        assert_eq!(got.refused[0], Refused { code: "host_not_allowed".into(), host: "pypi.org".into(), count: 3 });
        let lines = summary_lines(&got);
        assert_eq!(lines[0], "aivault: 4 requests refused during this command:");
        assert!(lines[1].starts_with("  host_not_allowed pypi.org ×3 — add a capability"), "{lines:?}");
        assert!(summary_lines(&t.get("nobody")).is_empty());
        for i in 0..(MAX_KEYS + 5) {
            t.note(&refused(Some("s2"), "host_not_allowed", &format!("h{i}")));
        }
        assert_eq!(t.get("s2").refused.len(), MAX_KEYS);
        assert_eq!(t.get("s2").other, 5);
        for i in 0..(MAX_SESSIONS + 1) {
            t.note(&refused(Some(&format!("x{i}")), "host_not_allowed", "h"));
        }
        assert!(t.inner.lock().unwrap().0.len() <= MAX_SESSIONS);
        assert_eq!(t.get("s1").total(), 0, "the least recently refused session was forgotten first");
    }
}
