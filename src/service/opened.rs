//! Decrypted material kept for the next request that needs it, and the bounds every such cache
//! keeps.
//!
//! Opening a sealed secret is two AES-256-GCM opens (the data key, then the value) and a key
//! schedule, and reading it into a credential's fields (`Material`: a copy per field, a JSON
//! parse for a structured secret) a few allocations more: spent again on every request with the
//! same credential. A snapshot keeps each credential's opened material ([`Opened`]; a request
//! shares it); the proxy keeps the masking needles compiled from injected values the same way
//! (`proxy::redact::cache`). Both are a [`Bounded`] cache:
//! - at most [`ENTRIES`] entries;
//! - an entry goes [`IDLE`] after its last use (the proxy runs the expiry every second, so an
//!   idle entry goes even when no request comes);
//! - every entry goes at a vault change (the opened material with its snapshot, the needles when
//!   the proxy swaps snapshots).
//!
//! Values zeroize themselves when their last holder drops them (`SecretString` fields of a
//! `Material`, `Zeroizing`). Material that reads a secret from an external source is not kept
//! here: the source's own cache keeps its TTL.
//! The proxy holds the master key for its whole life, so these caches widen nothing a reader of
//! its memory could not already open; they bound how long plaintext sits there between requests.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::auth::Material;

/// Entries kept at most by a cache of decrypted material.
pub const ENTRIES: u64 = 1024;
/// How long an entry is kept after its last use.
pub const IDLE: Duration = Duration::from_secs(60);

/// A cache of decrypted material (or of what is derived from it), bounded in number and in time.
///
/// One map behind a mutex: a hit is one hash, one clock read and a clone, with nothing queued
/// for later (a general-purpose concurrent cache cost about three times as much per request in
/// its bookkeeping). The lock is never held while a value is made. When an insert finds the
/// cache full, entries that idled out go first, then the least recently used quarter, so the
/// eviction's scan is paid once per `ENTRIES / 4` inserts.
pub struct Bounded<K, V> {
    map: Mutex<HashMap<K, Slot<V>>>,
    entries: usize,
    idle: Duration,
}

struct Slot<V> {
    value: V,
    used: Instant,
}

/// Opened credentials: the material (fields parsed from the decrypted secrets) by credential id
/// (a binding's entry is keyed by its secret and field).
pub type Opened = Bounded<String, std::sync::Arc<Material>>;

impl<K: Hash + Eq, V: Clone> Default for Bounded<K, V> {
    fn default() -> Self {
        Bounded::new(ENTRIES, IDLE)
    }
}

impl<K: Hash + Eq, V: Clone> Bounded<K, V> {
    pub fn new(entries: u64, idle: Duration) -> Self {
        let entries = usize::try_from(entries).unwrap_or(usize::MAX).max(1);
        Bounded { map: Mutex::new(HashMap::new()), entries, idle }
    }

    fn map(&self) -> MutexGuard<'_, HashMap<K, Slot<V>>> {
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
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
        let now = Instant::now();
        {
            let mut map = self.map();
            match map.get_mut(key) {
                Some(slot) if self.live(slot, now) => {
                    slot.used = now;
                    return Ok(slot.value.clone());
                }
                Some(_) => {
                    map.remove(key);
                }
                None => {}
            }
        }
        let value = make()?;
        let mut map = self.map();
        if map.len() >= self.entries {
            self.evict(&mut map, now);
        }
        map.insert(own(key), Slot { value: value.clone(), used: now });
        Ok(value)
    }

    /// Whether an entry is still within its idle time.
    fn live(&self, slot: &Slot<V>, now: Instant) -> bool {
        now.saturating_duration_since(slot.used) < self.idle
    }

    /// Makes room: what idled out, then the least recently used quarter.
    fn evict(&self, map: &mut HashMap<K, Slot<V>>, now: Instant) {
        map.retain(|_, slot| self.live(slot, now));
        if map.len() < self.entries {
            return;
        }
        let mut used: Vec<Instant> = map.values().map(|s| s.used).collect();
        let keep = self.entries - self.entries.div_ceil(4);
        let (_, &mut cut, _) = used.select_nth_unstable(map.len() - keep - 1);
        map.retain(|_, slot| slot.used > cut);
    }

    /// Drops every entry.
    pub fn clear(&self) {
        self.map().clear();
    }

    /// Drops what idled out (a lookup notices an idle entry itself; this frees it sooner).
    pub fn expire(&self) {
        let now = Instant::now();
        self.map().retain(|_, slot| self.live(slot, now));
    }

    /// Entries held (after dropping what idled out).
    pub fn entries(&self) -> u64 {
        self.expire();
        self.map().len() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::SecretBytes;
    use std::sync::Arc;

    #[test]
    fn a_credential_is_opened_once_while_it_is_used_and_again_after_it_idles() {
        let cache = Opened::new(ENTRIES, Duration::from_millis(200));
        let opens = std::cell::Cell::new(0);
        let open = || {
            opens.set(opens.get() + 1);
            Ok::<_, ()>(Arc::new(Material::single(SecretBytes::from_str_copy("sk-SENTINEL"))))
        };
        for _ in 0..3 {
            let got = cache.get_or_insert("cred_a", str::to_owned, open).unwrap();
            assert_eq!(got.field("secret").unwrap().expose(), "sk-SENTINEL");
        }
        assert_eq!(opens.get(), 1);
        std::thread::sleep(Duration::from_millis(350));
        cache.expire();
        assert_eq!(cache.entries(), 0);
        cache.get_or_insert("cred_a", str::to_owned, open).unwrap();
        assert_eq!(opens.get(), 2);
    }

    #[test]
    fn a_failed_open_is_not_kept_and_entries_are_bounded() {
        let cache = Opened::default();
        assert!(cache.get_or_insert("cred_x", str::to_owned, || Err::<Arc<Material>, _>("tampered")).is_err());
        assert_eq!(cache.entries(), 0);
        for i in 0..ENTRIES + 100 {
            let id = format!("cred_{i}");
            let v = || Ok::<_, ()>(Arc::new(Material::single(SecretBytes::from_str_copy("v"))));
            cache.get_or_insert(id.as_str(), str::to_owned, v).unwrap();
        }
        assert!(cache.entries() <= ENTRIES, "{}", cache.entries());
    }

    #[test]
    fn a_full_cache_keeps_what_was_used_last() {
        let cache: Bounded<String, u32> = Bounded::new(8, IDLE);
        let put = |i: u32| cache.get_or_insert(format!("k{i}").as_str(), str::to_owned, || Ok::<_, ()>(i)).unwrap();
        for i in 0..8 {
            put(i);
        }
        // Used again: the newest entries now, whatever their age.
        assert_eq!(put(0), 0);
        assert_eq!(put(1), 1);
        put(8);
        assert!(cache.entries() <= 8);
        let made = std::cell::Cell::new(false);
        for i in [0, 1, 8] {
            let got = cache.get_or_insert(format!("k{i}").as_str(), str::to_owned, || {
                made.set(true);
                Ok::<_, ()>(99)
            });
            assert_eq!(got, Ok(i), "k{i} was evicted");
        }
        assert!(!made.get());
    }
}
