//! Prometheus metrics for the proxy, served as text on the console listener (`GET /metrics`).
//!
//! Counted from the audit records as the audit sink receives them (one place sees every proxied
//! request and refusal): requests by kind, outcome code and capability, and a latency histogram
//! of proxied requests. Gauges (open connections, audit queue depth, leaf certificates, OAuth
//! refreshes) are read when scraped. Labels are ids, hosts never; values never.
//!
//! Per request: a read lock and two map lookups by `&str`, one atomic add; a new (outcome,
//! capability) pair takes the write lock once. At most `MAX_SERIES` series (the rest are counted
//! under `capability="other"`).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::audit::AuditEvent;

const MAX_SERIES: usize = 10_000;
/// Upper bounds of the latency buckets, in milliseconds.
const BUCKETS_MS: [u64; 13] = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000];

type Series = HashMap<String, HashMap<String, HashMap<String, AtomicU64>>>;

#[derive(Default)]
pub struct Metrics {
    /// kind → outcome → capability → count.
    requests: RwLock<Series>,
    series: AtomicU64,
    buckets: [AtomicU64; BUCKETS_MS.len()],
    latency_count: AtomicU64,
    latency_sum_ms: AtomicU64,
}

/// Values read at scrape time.
pub struct Gauges {
    pub active_connections: u64,
    pub audit_queue: u64,
    pub leaf_certificates_minted: u64,
    pub oauth_refreshes: u64,
    pub snapshot_generation: u64,
    pub audit_written: u64,
    /// Audit records that went to the spill file because the queue was full.
    pub audit_spilled: u64,
    /// How long building the snapshot being served took.
    pub snapshot_build: std::time::Duration,
    /// Compiled masking needle sets held (bounded by `redact::cache::ENTRIES`).
    pub masker_cache_entries: u64,
    /// Credentials whose opened material the served snapshot holds (bounded by `service::opened::ENTRIES`).
    pub opened_secrets: u64,
}

impl Metrics {
    /// Counts a proxy audit record (other kinds are management events and are ignored).
    pub fn observe(&self, e: &AuditEvent) {
        let Some(kind) = e.kind.strip_prefix("proxy.") else { return };
        let outcome = e.outcome.as_deref().unwrap_or("ok");
        let capability = e.capability.as_deref().unwrap_or("-");
        let n = e.count.unwrap_or(1);
        let hit = {
            let map = self.requests.read().unwrap_or_else(std::sync::PoisonError::into_inner);
            map.get(kind)
                .and_then(|o| o.get(outcome))
                .and_then(|c| c.get(capability))
                .map(|c| c.fetch_add(n, Ordering::Relaxed))
        };
        if hit.is_none() {
            let mut map = self.requests.write().unwrap_or_else(std::sync::PoisonError::into_inner);
            let full = self.series.load(Ordering::Relaxed) as usize >= MAX_SERIES;
            let by_cap = map.entry(kind.to_owned()).or_default().entry(outcome.to_owned()).or_default();
            let key = if full && !by_cap.contains_key(capability) { "other" } else { capability };
            if !by_cap.contains_key(key) {
                self.series.fetch_add(1, Ordering::Relaxed);
            }
            by_cap.entry(key.to_owned()).or_default().fetch_add(n, Ordering::Relaxed);
        }
        if kind == "request" {
            if let Some(ms) = e.duration_ms {
                if let Some(i) = BUCKETS_MS.iter().position(|b| ms <= *b) {
                    self.buckets[i].fetch_add(1, Ordering::Relaxed);
                }
                self.latency_count.fetch_add(1, Ordering::Relaxed);
                self.latency_sum_ms.fetch_add(ms, Ordering::Relaxed);
            }
        }
    }

    /// The Prometheus text exposition (format 0.0.4).
    pub fn render(&self, g: &Gauges) -> String {
        let mut out = String::new();
        out.push_str("# HELP aivault_requests_total Proxied requests, tunnels and refusals by kind, outcome code and capability.\n");
        out.push_str("# TYPE aivault_requests_total counter\n");
        {
            let map = self.requests.read().unwrap_or_else(std::sync::PoisonError::into_inner);
            let mut rows: Vec<(&str, &str, &str, u64)> = Vec::new();
            for (kind, outcomes) in map.iter() {
                for (outcome, caps) in outcomes {
                    for (cap, n) in caps {
                        rows.push((kind, outcome, cap, n.load(Ordering::Relaxed)));
                    }
                }
            }
            rows.sort_unstable();
            for (kind, outcome, cap, n) in rows {
                let _ = writeln!(
                    out,
                    "aivault_requests_total{{kind=\"{}\",code=\"{}\",capability=\"{}\"}} {n}",
                    label(kind),
                    label(outcome),
                    label(cap)
                );
            }
        }
        out.push_str("# HELP aivault_request_duration_seconds Time from request head to the end of the response, proxied requests.\n");
        out.push_str("# TYPE aivault_request_duration_seconds histogram\n");
        let mut cumulative = 0;
        for (i, bound) in BUCKETS_MS.iter().enumerate() {
            cumulative += self.buckets[i].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "aivault_request_duration_seconds_bucket{{le=\"{}\"}} {cumulative}",
                *bound as f64 / 1000.0
            );
        }
        let count = self.latency_count.load(Ordering::Relaxed);
        let _ = writeln!(out, "aivault_request_duration_seconds_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(
            out,
            "aivault_request_duration_seconds_sum {}",
            self.latency_sum_ms.load(Ordering::Relaxed) as f64 / 1000.0
        );
        let _ = writeln!(out, "aivault_request_duration_seconds_count {count}");
        let gauges = [
            (
                "aivault_active_connections",
                "gauge",
                "Agent connections, tunnels and WebSockets open now.",
                g.active_connections,
            ),
            ("aivault_audit_queue_depth", "gauge", "Audit records waiting to be written to the store.", g.audit_queue),
            (
                "aivault_leaf_certificates_minted_total",
                "counter",
                "Per-host leaf certificates minted (the rest were served from the cache).",
                g.leaf_certificates_minted,
            ),
            (
                "aivault_oauth_refreshes_total",
                "counter",
                "OAuth2 access-token refreshes made by this proxy.",
                g.oauth_refreshes,
            ),
            ("aivault_snapshot_generation", "gauge", "The vault generation this proxy serves.", g.snapshot_generation),
            (
                "aivault_masker_cache_entries",
                "gauge",
                "Compiled masking needle sets kept for recent credentials (bounded, a minute after last use).",
                g.masker_cache_entries,
            ),
            (
                "aivault_opened_secrets",
                "gauge",
                "Credentials whose sealed secrets are held open for recent requests (bounded, a minute after last use, none kept across a vault change).",
                g.opened_secrets,
            ),
            (
                "aivault_audit_records_written_total",
                "counter",
                "Audit records this proxy committed to the store.",
                g.audit_written,
            ),
            (
                "aivault_audit_records_spilled_total",
                "counter",
                "Audit records written to the spill file because the queue was full (the store is slow or down); they are stored later.",
                g.audit_spilled,
            ),
        ];
        for (name, kind, help, value) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
        }
        let _ = writeln!(
            out,
            "# HELP aivault_snapshot_build_seconds How long reading the vault and building the snapshot served now took.\n\
             # TYPE aivault_snapshot_build_seconds gauge\naivault_snapshot_build_seconds {:.6}",
            g.snapshot_build.as_secs_f64()
        );
        out
    }
}

/// A label value escaped for the exposition format.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: &str, outcome: &str, cap: Option<&str>, ms: u64) -> AuditEvent {
        let mut e = AuditEvent::new(kind);
        e.outcome = Some(outcome.into());
        e.capability = cap.map(Into::into);
        e.duration_ms = Some(ms);
        e
    }

    #[test]
    fn counts_by_code_and_capability_and_fills_the_histogram() {
        let m = Metrics::default();
        m.observe(&event("proxy.request", "ok", Some("openai/models"), 3));
        m.observe(&event("proxy.request", "ok", Some("openai/models"), 40));
        m.observe(&event("proxy.connect", "host_not_allowed", None, 0));
        m.observe(&event("secret.create", "ok", None, 0));
        let g = Gauges {
            active_connections: 2,
            audit_queue: 0,
            leaf_certificates_minted: 1,
            audit_written: 3,
            audit_spilled: 5,
            oauth_refreshes: 0,
            snapshot_generation: 7,
            snapshot_build: std::time::Duration::from_millis(1500),
            masker_cache_entries: 4,
            opened_secrets: 2,
        };
        let text = m.render(&g);
        assert!(
            text.contains("aivault_requests_total{kind=\"request\",code=\"ok\",capability=\"openai/models\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("aivault_requests_total{kind=\"connect\",code=\"host_not_allowed\",capability=\"-\"} 1"),
            "{text}"
        );
        assert!(!text.contains("secret.create"), "management events are not requests");
        assert!(text.contains("aivault_request_duration_seconds_bucket{le=\"0.005\"} 1"), "{text}");
        assert!(text.contains("aivault_request_duration_seconds_bucket{le=\"0.05\"} 2"), "{text}");
        assert!(text.contains("aivault_request_duration_seconds_count 2"), "{text}");
        assert!(text.contains("aivault_active_connections 2") && text.contains("aivault_snapshot_generation 7"));
        assert!(text.contains("aivault_snapshot_build_seconds 1.500000"), "{text}");
        assert!(text.contains("\naivault_masker_cache_entries 4\n"), "{text}");
        assert!(text.contains("\naivault_opened_secrets 2\n"), "{text}");
        assert!(text.contains("\naivault_audit_records_spilled_total 5\n"), "{text}");
        assert_eq!(label("a\"b\\"), "a\\\"b\\\\");
    }
}
