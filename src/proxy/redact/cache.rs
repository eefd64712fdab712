//! Compiled needles kept for the next response that injects the same values.
//!
//! Deriving a value's encodings and sorting them was about 0.7 µs of a request's CPU, spent again
//! on every request with the same credential. The cache holds what that produced, keyed by the
//! values themselves (length-prefixed, in push order), so a hit costs one hash of a few dozen
//! bytes. It is decrypted material kept across requests, so it keeps the bounds of
//! `service::opened::Bounded` (at most 1024 sets of values, each a minute after its last use);
//! the proxy empties it whenever it swaps snapshots. Keys and needles are zeroized when they
//! leave. The values whose form changes on every request (SigV4's signature) are never cached.

use std::borrow::Borrow;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use zeroize::Zeroizing;

use super::Compiled;
use crate::service::opened::Bounded;

/// The values one request injected (`Needles::inputs`), as a cache key. Never printed.
#[derive(PartialEq, Eq)]
struct Key(Zeroizing<Vec<u8>>);

impl Hash for Key {
    /// As the slice hashes, so a lookup by `&[u8]` needs no allocation.
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.as_slice().hash(state);
    }
}

impl Borrow<[u8]> for Key {
    fn borrow(&self) -> &[u8] {
        &self.0
    }
}

/// The proxy's cache of compiled needles.
#[derive(Default)]
pub struct MaskerCache {
    entries: Bounded<Key, Arc<Compiled>>,
}

impl MaskerCache {
    /// The compiled needles for `inputs`, built by `build` (and kept) on a miss.
    pub(super) fn get_or_build(
        &self,
        inputs: &[u8],
        build: impl FnOnce(&[u8]) -> Option<Compiled>,
    ) -> Option<Arc<Compiled>> {
        let own = |key: &[u8]| Key(Zeroizing::new(key.to_vec()));
        self.entries.get_or_insert(inputs, own, || build(inputs).map(Arc::new).ok_or(())).ok()
    }

    /// Drops every entry (the vault changed).
    pub fn clear(&self) {
        self.entries.clear();
    }

    /// Drops what expired (the cache itself does so only while it is used).
    pub fn expire(&self) {
        self.entries.expire();
    }

    /// Entries held (after pending expiry has run).
    pub fn entries(&self) -> u64 {
        self.entries.entries()
    }
}

#[cfg(test)]
mod tests {
    use super::super::Needles;
    use super::*;
    use crate::service::opened::ENTRIES;
    use std::time::Duration;

    fn needles(values: &[&str]) -> Needles {
        let mut n = Needles::default();
        for v in values {
            n.push(v.as_bytes());
        }
        n
    }

    fn masked(cache: &MaskerCache, values: &[&str], text: &str) -> String {
        let m = needles(values).compile(Some(cache)).unwrap();
        let mut buf = text.as_bytes().to_vec();
        m.mask(&mut buf);
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn the_same_values_share_one_entry_and_others_get_their_own() {
        let cache = MaskerCache::default();
        assert_eq!(masked(&cache, &["sk-ONE-123"], "a sk-ONE-123 b"), "a ********** b");
        assert_eq!(masked(&cache, &["sk-ONE-123"], "sk-ONE-123"), "**********");
        assert_eq!(cache.entries(), 1);
        // Order and split matter to the key: ["ab", "c"] is not ["a", "bc"] nor ["abc"].
        assert_eq!(masked(&cache, &["sk-TWO", "-9"], "sk-TWO sk-ONE-123 -9"), "****** sk-ONE-123 **");
        assert_eq!(masked(&cache, &["sk-TW", "O-9"], "sk-TWO-9"), "********");
        assert_eq!(cache.entries(), 3);
        cache.clear();
        assert_eq!(cache.entries(), 0, "a vault change drops everything");
    }

    #[test]
    fn values_that_change_per_request_are_not_kept() {
        let cache = MaskerCache::default();
        let mut n = needles(&["AWS4-signature-0001"]);
        n.vary_per_request();
        let m = n.compile(Some(&cache)).unwrap();
        let mut buf = b"x AWS4-signature-0001".to_vec();
        m.mask(&mut buf);
        assert_eq!(buf, b"x *******************");
        assert_eq!(cache.entries(), 0);
    }

    #[test]
    fn an_entry_goes_after_it_idles() {
        let cache = MaskerCache { entries: Bounded::new(ENTRIES, Duration::from_millis(200)) };
        masked(&cache, &["sk-IDLE-1"], "-");
        std::thread::sleep(Duration::from_millis(100));
        masked(&cache, &["sk-IDLE-1"], "-");
        std::thread::sleep(Duration::from_millis(150));
        assert_eq!(cache.entries(), 1, "a use restarts the clock");
        std::thread::sleep(Duration::from_millis(300));
        cache.expire();
        assert_eq!(cache.entries(), 0);
    }

    #[test]
    fn entries_are_bounded_in_number() {
        let cache = MaskerCache::default();
        for i in 0..ENTRIES + 200 {
            masked(&cache, &[&format!("sk-{i:06}")], "-");
        }
        assert!(cache.entries() <= ENTRIES, "{}", cache.entries());
    }
}
