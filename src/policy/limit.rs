//! Rate limits and budgets, checked per request with a few atomic operations (no lock, no
//! allocation). Pure: the caller passes the time.
//!
//! - A **rate** (`N/period`) is a GCRA token bucket: one atomic "theoretical arrival time"; a burst
//!   of up to N is allowed, then one request every `period / N`. Exceeding it: `429 rate_limited`
//!   with the wait until the next slot.
//! - A **budget** (`N/period`) counts requests in fixed windows aligned to the period. Exhausting
//!   it: `429 budget_exhausted` with the wait until the window ends.
//!
//! Counters live in memory, per proxy; they survive snapshot reloads (`Limiter` states are carried
//! over while their spec is unchanged) but not a restart.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

/// `count` requests per `period_secs`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Per {
    pub count: u64,
    pub period_secs: u64,
}

/// Why a `N/PERIOD` text is not a limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PerError {
    #[error("'{0}' is not N/PERIOD (e.g. 60/min)")]
    Shape(String),
    #[error("'{count}' in '{text}' is not a whole number")]
    Count { count: String, text: String },
    #[error("unknown period '{period}' in '{text}' (use s, min, hour or day)")]
    Period { period: String, text: String },
    #[error("'{0}' allows nothing; remove the limit instead")]
    Zero(String),
}

impl Per {
    /// Parses `10/s`, `60/min`, `1000/hour`, `5000/day` (also `second`, `minute`, `h`, `d`, `m`).
    pub fn parse(text: &str) -> Result<Per, PerError> {
        let (n, unit) = text.split_once('/').ok_or_else(|| PerError::Shape(text.to_owned()))?;
        let count: u64 =
            n.trim().parse().map_err(|_| PerError::Count { count: n.to_owned(), text: text.to_owned() })?;
        let period_secs = match unit.trim() {
            "s" | "sec" | "second" => 1,
            "m" | "min" | "minute" => 60,
            "h" | "hour" => 3600,
            "d" | "day" => 86_400,
            other => return Err(PerError::Period { period: other.to_owned(), text: text.to_owned() }),
        };
        if count == 0 {
            return Err(PerError::Zero(text.to_owned()));
        }
        Ok(Per { count, period_secs })
    }
}

impl std::fmt::Display for Per {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let unit = match self.period_secs {
            1 => "s",
            60 => "min",
            3600 => "hour",
            86_400 => "day",
            _ => "?",
        };
        write!(f, "{}/{unit}", self.count)
    }
}

/// Why a request was held back, and for how long (whole seconds, at least 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exceeded {
    Rate { retry_after_secs: u64 },
    Budget { retry_after_secs: u64 },
}

/// The live state of one limit.
#[derive(Debug)]
pub struct Limiter {
    pub rate: Option<Per>,
    pub budget: Option<Per>,
    /// An exhausted budget holds the request for a person instead of refusing it.
    pub ask: bool,
    /// GCRA theoretical arrival time, in ms.
    tat_ms: AtomicU64,
    window_start_ms: AtomicU64,
    used: AtomicU64,
}

impl Limiter {
    pub fn new(rate: Option<Per>, budget: Option<Per>) -> Limiter {
        Limiter {
            rate,
            budget,
            ask: false,
            tat_ms: AtomicU64::new(0),
            window_start_ms: AtomicU64::new(0),
            used: AtomicU64::new(0),
        }
    }

    /// An exhausted budget asks a person (held request) instead of refusing.
    pub fn asking(mut self, ask: bool) -> Limiter {
        self.ask = ask;
        self
    }

    /// Same spec: the state can be carried into a new snapshot.
    pub fn same_spec(&self, other: &Limiter) -> bool {
        self.rate == other.rate && self.budget == other.budget && self.ask == other.ask
    }

    /// Admits one request at `now_ms`, or says how long to wait.
    pub fn check(&self, now_ms: u64) -> Result<(), Exceeded> {
        if let Some(rate) = self.rate {
            // One request every `interval`, with a burst of `count` (GCRA's tolerance).
            let interval = (rate.period_secs * 1000 / rate.count).max(1);
            let tolerance = interval * (rate.count - 1);
            let mut tat = self.tat_ms.load(Ordering::Relaxed);
            loop {
                let start = tat.max(now_ms);
                if start - now_ms > tolerance {
                    let wait = start - now_ms - tolerance;
                    return Err(Exceeded::Rate { retry_after_secs: wait.div_ceil(1000).max(1) });
                }
                match self.tat_ms.compare_exchange_weak(tat, start + interval, Ordering::AcqRel, Ordering::Relaxed) {
                    Ok(_) => break,
                    Err(actual) => tat = actual,
                }
            }
        }
        if let Some(budget) = self.budget {
            let period = budget.period_secs * 1000;
            let window = now_ms - now_ms % period;
            let start = self.window_start_ms.load(Ordering::Acquire);
            if start != window
                && self.window_start_ms.compare_exchange(start, window, Ordering::AcqRel, Ordering::Acquire).is_ok()
            {
                self.used.store(0, Ordering::Release);
            }
            if self.used.fetch_add(1, Ordering::AcqRel) >= budget.count {
                let wait = window + period - now_ms;
                return Err(Exceeded::Budget { retry_after_secs: wait.div_ceil(1000).max(1) });
            }
        }
        Ok(())
    }

    /// Requests left in the current budget window at `now_ms`.
    pub fn budget_left(&self, now_ms: u64) -> Option<u64> {
        let budget = self.budget?;
        let period = budget.period_secs * 1000;
        let window = now_ms - now_ms % period;
        if self.window_start_ms.load(Ordering::Acquire) != window {
            return Some(budget.count);
        }
        Some(budget.count.saturating_sub(self.used.load(Ordering::Acquire)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_periods() {
        for (text, want) in [
            ("10/s", Ok(Per { count: 10, period_secs: 1 })),
            ("60/min", Ok(Per { count: 60, period_secs: 60 })),
            ("1000/hour", Ok(Per { count: 1000, period_secs: 3600 })),
            ("5/day", Ok(Per { count: 5, period_secs: 86_400 })),
        ] {
            assert_eq!(Per::parse(text), want, "{text}");
            assert_eq!(Per::parse(text).unwrap().to_string(), text);
        }
        for bad in ["10", "x/s", "10/week", "0/s", "-1/s"] {
            assert!(Per::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_rate_allows_its_burst_then_one_per_interval() {
        let l = Limiter::new(Some(Per { count: 3, period_secs: 1 }), None);
        let t0 = 1_000_000;
        assert!(l.check(t0).is_ok() && l.check(t0).is_ok() && l.check(t0).is_ok(), "a burst of 3");
        assert_eq!(l.check(t0), Err(Exceeded::Rate { retry_after_secs: 1 }));
        assert!(l.check(t0 + 340).is_ok(), "one slot every 333 ms");
        assert!(l.check(t0 + 340).is_err());
        assert!(l.check(t0 + 5000).is_ok(), "idle time refills");
    }

    #[test]
    fn a_budget_counts_per_window_and_says_when_it_resets() {
        let l = Limiter::new(None, Some(Per { count: 2, period_secs: 60 }));
        let t0 = 120_000;
        assert!(l.check(t0).is_ok() && l.check(t0 + 1).is_ok());
        assert_eq!(l.budget_left(t0 + 2), Some(0));
        assert_eq!(l.check(t0 + 30_000), Err(Exceeded::Budget { retry_after_secs: 30 }));
        assert!(l.check(t0 + 60_000).is_ok(), "a new window");
        assert_eq!(l.budget_left(t0 + 60_001), Some(1));
    }
}
