//! Audit events: one flat record type for management events and proxied requests.
//!
//! Architecture invariant: an event holds identifiers, never values. Paths are recorded
//! without their query, and path-auth prefixes are redacted before an event is built.

use serde::{Deserialize, Serialize};

/// One audit record.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct AuditEvent {
    pub ts_ms: u64,
    /// `secret.create`, `credential.delete`, `proxy.request`, ...
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// The session agent's id, for requests made under `aivault run` / `aivault env`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capability: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_in: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_out: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// `ok` or an error code such as `capability_denied`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// For a folded record: how many events it stands for (`ts_ms` is the first, `last_ts_ms` the last).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_ts_ms: Option<u64>,
}

impl AuditEvent {
    pub fn new(kind: &str) -> AuditEvent {
        AuditEvent { ts_ms: crate::time::now_ms(), kind: kind.to_owned(), ..Default::default() }
    }

    pub fn secret(mut self, id: &str) -> Self {
        self.secret_id = Some(id.to_owned());
        self
    }

    pub fn credential(mut self, id: &str) -> Self {
        self.credential = Some(id.to_owned());
        self
    }

    pub fn capability(mut self, id: &str) -> Self {
        self.capability = Some(id.to_owned());
        self
    }

    pub fn detail(mut self, d: impl Into<String>) -> Self {
        self.detail = Some(d.into());
        self
    }
}

/// How many request records the store keeps; older ones are trimmed on append. Security events
/// (every kind but `proxy.*`) live in their own table and are never trimmed by request traffic.
pub const RETAIN_REQUESTS: u64 = 200_000;
/// Request records older than this many days are trimmed.
pub const RETAIN_REQUEST_DAYS: u64 = 90;

/// Refusals per agent, code and host passed through one by one in each window; beyond it they
/// are folded into one record with a count.
pub const AGGREGATE_AFTER: u64 = 20;
/// The aggregation window.
pub const AGGREGATE_WINDOW_MS: u64 = 1000;

/// Whether an event kind is a security event: everything but a proxied request (`proxy.*`).
pub fn is_security_kind(kind: &str) -> bool {
    !kind.starts_with("proxy.")
}

impl AuditEvent {
    /// Whether this event is a security event (a change to the vault), not a proxied request.
    pub fn is_security(&self) -> bool {
        is_security_kind(&self.kind)
    }

    /// A proxy refusal (the outcome is an aivault error code).
    fn is_refusal(&self) -> bool {
        self.kind.starts_with("proxy.") && self.outcome.as_deref().and_then(crate::refusal::ErrorCode::parse).is_some()
    }
}

type AggKey = (Option<String>, Option<String>, Option<String>, String);

struct Window {
    start_ms: u64,
    seen: u64,
    folded: Option<AuditEvent>,
}

/// Folds floods of identical refusals (same agent, code and host) into counted records, so a
/// hostile agent cannot bury the log (or the disk) under them. Everything else passes through.
#[derive(Default)]
pub struct Aggregator {
    windows: std::collections::HashMap<AggKey, Window>,
}

impl Aggregator {
    /// Returns the event if it should be recorded as it is; otherwise it was folded.
    pub fn push(&mut self, event: AuditEvent) -> Option<AuditEvent> {
        if !event.is_refusal() {
            return Some(event);
        }
        let key = (event.agent.clone(), event.outcome.clone(), event.host.clone(), event.kind.clone());
        let w = self.windows.entry(key).or_insert(Window { start_ms: event.ts_ms, seen: 0, folded: None });
        w.seen += 1;
        if w.seen <= AGGREGATE_AFTER {
            return Some(event);
        }
        match &mut w.folded {
            Some(f) => {
                f.count = Some(f.count.unwrap_or(1) + 1);
                f.last_ts_ms = Some(event.ts_ms);
            }
            None => {
                let mut f = event;
                f.count = Some(1);
                f.last_ts_ms = Some(f.ts_ms);
                f.path = None;
                f.detail = Some("repeated refusals folded into one record".into());
                w.folded = Some(f);
            }
        }
        None
    }

    /// Closes windows older than the window length (all of them with `all`) and returns the
    /// folded records they hold.
    pub fn flush(&mut self, now_ms: u64, all: bool) -> Vec<AuditEvent> {
        let mut out = Vec::new();
        self.windows.retain(|_, w| {
            let over = all || now_ms.saturating_sub(w.start_ms) >= AGGREGATE_WINDOW_MS;
            if over {
                out.extend(w.folded.take());
            }
            !over
        });
        out.sort_by_key(|e| e.ts_ms);
        out
    }
}

/// Filters for `aivault audit`.
#[derive(Clone, Debug, Default)]
pub struct AuditQuery {
    pub limit: usize,
    pub since_ms: Option<u64>,
    pub agent: Option<String>,
    pub capability: Option<String>,
}

impl AuditQuery {
    pub fn accepts(&self, e: &AuditEvent) -> bool {
        self.since_ms.is_none_or(|s| e.ts_ms >= s)
            && self.agent.as_ref().is_none_or(|a| e.agent.as_ref() == Some(a))
            && self.capability.as_ref().is_none_or(|c| e.capability.as_ref() == Some(c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(agent: &str, code: &str, host: &str, ts: u64) -> AuditEvent {
        AuditEvent {
            ts_ms: ts,
            kind: "proxy.connect".into(),
            agent: Some(agent.into()),
            host: Some(host.into()),
            status: Some(403),
            outcome: Some(code.into()),
            ..Default::default()
        }
    }

    #[test]
    fn floods_of_one_refusal_fold_into_a_count_and_the_rest_pass() {
        let mut agg = Aggregator::default();
        let mut passed = 0;
        for i in 0..1000 {
            passed += usize::from(agg.push(refusal("a", "host_not_allowed", "x.com", 10 + i)).is_some());
        }
        assert_eq!(passed as u64, AGGREGATE_AFTER);
        // Another agent, another code, and successful requests are not affected.
        assert!(agg.push(refusal("b", "host_not_allowed", "x.com", 20)).is_some());
        assert!(agg.push(refusal("a", "capability_denied", "x.com", 20)).is_some());
        let ok = AuditEvent { kind: "proxy.request".into(), outcome: Some("ok".into()), ..Default::default() };
        for _ in 0..100 {
            assert!(agg.push(ok.clone()).is_some());
        }
        assert!(agg.flush(500, false).is_empty(), "the window is still open");
        let folded = agg.flush(2000, false);
        assert_eq!(folded.len(), 1);
        assert_eq!(folded[0].count, Some(1000 - AGGREGATE_AFTER));
        assert_eq!((folded[0].ts_ms, folded[0].last_ts_ms), (10 + AGGREGATE_AFTER, Some(1009)));
        // A new window starts counting afresh.
        assert!(agg.push(refusal("a", "host_not_allowed", "x.com", 3000)).is_some());
        let ev = AuditEvent::new("secret.create");
        assert!(ev.is_security() && !refusal("a", "x", "y", 1).is_security());
    }
}
