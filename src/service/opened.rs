//! Decrypted material kept for the next request that needs it, and the bounds every such cache
//! keeps.
//!
//! Opening a sealed secret is two AES-256-GCM opens (the data key, then the value) and a key
//! schedule: about half a microsecond of every request, spent again on every request with the
//! same credential. A snapshot keeps what it opened ([`Opened`]); the proxy keeps the masking
//! needles compiled from injected values the same way (`proxy::redact::cache`). Both are a
//! [`Bounded`] cache:
//! - at most [`ENTRIES`] entries;
//! - an entry goes [`IDLE`] after its last use (the proxy runs the expiry every second, so an
//!   idle entry goes even when no request comes);
//! - every entry goes at a vault change (the opened secrets with their snapshot, the needles when
//!   the proxy swaps snapshots).
//!
//! Keys and values zeroize themselves when the cache drops them (`SecretBytes`, `Zeroizing`).
//! The proxy holds the master key for its whole life, so these caches widen nothing a reader of
//! its memory could not already open; they bound how long plaintext sits there between requests.

use std::borrow::Borrow;
use std::hash::Hash;
use std::time::Duration;

use crate::secret::SecretBytes;

/// Entries kept at most by a cache of decrypted material.
pub const ENTRIES: u64 = 1024;
/// How long an entry is kept after its last use.
pub const IDLE: Duration = Duration::from_secs(60);

/// A cache of decrypted material (or of what is derived from it), bounded in number and in time.
pub struct Bounded<K, V> {
    values: moka::sync::Cache<K, V>,
}

/// Opened secret values by secret id.
pub type Opened = Bounded<String, SecretBytes>;

impl<K: Hash + Eq + Send + Sync + 'static, V: Clone + Send + Sync + 'static> Default for Bounded<K, V> {
    fn default() -> Self {
        Bounded::new(ENTRIES, IDLE)
    }
}

impl<K: Hash + Eq + Send + Sync + 'static, V: Clone + Send + Sync + 'static> Bounded<K, V> {
    pub fn new(entries: u64, idle: Duration) -> Self {
        Bounded { values: moka::sync::Cache::builder().max_capacity(entries).time_to_idle(idle).build() }
    }

    /// The value for `key`, made by `make` (and kept, under the key `own` makes) if it is not
    /// here. A failure is not kept.
    pub fn get_or_insert<Q: Hash + Eq + ?Sized, E>(
        &self,
        key: &Q,
        own: impl FnOnce(&Q) -> K,
        make: impl FnOnce() -> Result<V, E>,
    ) -> Result<V, E>
    where
        K: Borrow<Q>,
    {
        if let Some(hit) = self.values.get(key) {
            return Ok(hit);
        }
        let value = make()?;
        self.values.insert(own(key), value.clone());
        Ok(value)
    }

    /// Drops every entry.
    pub fn clear(&self) {
        self.values.invalidate_all();
        self.values.run_pending_tasks();
    }

    /// Drops what expired (the cache itself does so only while it is used).
    pub fn expire(&self) {
        self.values.run_pending_tasks();
    }

    /// Entries held (after pending expiry has run).
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
            assert_eq!(cache.get_or_insert("sec_a", str::to_owned, open).unwrap().expose(), b"sk-SENTINEL");
        }
        assert_eq!(opens.get(), 1);
        std::thread::sleep(Duration::from_millis(350));
        cache.expire();
        assert_eq!(cache.entries(), 0);
        cache.get_or_insert("sec_a", str::to_owned, open).unwrap();
        assert_eq!(opens.get(), 2);
    }

    #[test]
    fn a_failed_open_is_not_kept_and_entries_are_bounded() {
        let cache = Opened::default();
        assert!(cache.get_or_insert("sec_x", str::to_owned, || Err::<SecretBytes, _>("tampered")).is_err());
        assert_eq!(cache.entries(), 0);
        for i in 0..ENTRIES + 100 {
            let id = format!("sec_{i}");
            cache.get_or_insert(id.as_str(), str::to_owned, || Ok::<_, ()>(SecretBytes::from_str_copy("v"))).unwrap();
        }
        assert!(cache.entries() <= ENTRIES, "{}", cache.entries());
    }
}
