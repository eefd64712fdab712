//! Secrets opened for recent requests, kept for the next request that needs them.
//!
//! Opening a sealed secret is two AES-256-GCM opens (the data key, then the value) and a key
//! schedule: about half a microsecond of every request, spent again on every request with the
//! same credential. A snapshot keeps what it opened, bounded three ways:
//! - at most [`ENTRIES`] secrets;
//! - a secret goes [`IDLE`] after its last use (the proxy runs the expiry every second, so an
//!   idle secret goes even when no request comes);
//! - all of them go with the snapshot, that is at every vault change.
//!
//! Values are `SecretBytes`, zeroized when the cache drops them. The proxy holds the master key
//! for its whole life, so the cache widens nothing a reader of its memory could not already
//! open; it bounds how long plaintext sits there between requests.

use std::time::Duration;

use crate::secret::SecretBytes;

/// Secrets kept at most per snapshot.
pub const ENTRIES: u64 = 1024;
/// How long an opened secret is kept after its last use.
pub const IDLE: Duration = Duration::from_secs(60);

/// Opened secret values by secret id.
pub struct Opened {
    values: moka::sync::Cache<String, SecretBytes>,
}

impl Default for Opened {
    fn default() -> Self {
        Opened::new(ENTRIES, IDLE)
    }
}

impl Opened {
    fn new(entries: u64, idle: Duration) -> Self {
        Opened { values: moka::sync::Cache::builder().max_capacity(entries).time_to_idle(idle).build() }
    }

    /// The value of `secret_id`, opened by `open` (and kept) if it is not here.
    pub fn get_or_open<E>(
        &self,
        secret_id: &str,
        open: impl FnOnce() -> Result<SecretBytes, E>,
    ) -> Result<SecretBytes, E> {
        if let Some(hit) = self.values.get(secret_id) {
            return Ok(hit);
        }
        let value = open()?;
        self.values.insert(secret_id.to_owned(), value.clone());
        Ok(value)
    }

    /// Drops what expired (the cache itself does so only while it is used).
    pub fn expire(&self) {
        self.values.run_pending_tasks();
    }

    /// Secrets held (after pending expiry has run).
    pub fn entries(&self) -> u64 {
        self.values.run_pending_tasks();
        self.values.entry_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_is_opened_once_while_it_is_used_and_again_after_it_idles() {
        let cache = Opened::new(ENTRIES, Duration::from_millis(200));
        let opens = std::cell::Cell::new(0);
        let open = || {
            opens.set(opens.get() + 1);
            Ok::<_, ()>(SecretBytes::from_str_copy("sk-SENTINEL"))
        };
        for _ in 0..3 {
            assert_eq!(cache.get_or_open("sec_a", open).unwrap().expose(), b"sk-SENTINEL");
        }
        assert_eq!(opens.get(), 1);
        std::thread::sleep(Duration::from_millis(350));
        cache.expire();
        assert_eq!(cache.entries(), 0);
        cache.get_or_open("sec_a", open).unwrap();
        assert_eq!(opens.get(), 2);
    }

    #[test]
    fn a_failed_open_is_not_kept_and_entries_are_bounded() {
        let cache = Opened::default();
        assert!(cache.get_or_open("sec_x", || Err::<SecretBytes, _>("tampered")).is_err());
        assert_eq!(cache.entries(), 0);
        for i in 0..ENTRIES + 100 {
            cache.get_or_open(&format!("sec_{i}"), || Ok::<_, ()>(SecretBytes::from_str_copy("v"))).unwrap();
        }
        assert!(cache.entries() <= ENTRIES, "{}", cache.entries());
    }
}
