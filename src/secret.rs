//! Plaintext secret material in memory.
//!
//! `SecretBytes` is the only type that holds decrypted secret values. It zeroizes its buffer on
//! drop, has a redacted `Debug`, and implements neither `Display` nor `Serialize`, so a secret
//! cannot reach a log line, an error message or a JSON document by accident.
//! `Sealed` is the opaque envelope that the store keeps instead of plaintext.

use std::fmt;

use zeroize::{Zeroize, ZeroizeOnDrop};

/// Decrypted secret bytes. Zeroized on drop; never printable.
#[derive(Clone, Zeroize, ZeroizeOnDrop, PartialEq, Eq)]
pub struct SecretBytes(Vec<u8>);

impl SecretBytes {
    /// Takes ownership of `bytes`; the caller's buffer is moved, not copied.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// Copies a string into a new secret buffer.
    pub fn from_str_copy(s: &str) -> Self {
        Self(s.as_bytes().to_vec())
    }

    /// The plaintext. Callers must not copy it into long-lived, non-zeroizing storage.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// The plaintext as UTF-8, if it is.
    pub fn expose_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The buffer, to read a value into. Read only within its capacity: a reallocation would
    /// leave a copy behind that is not zeroized (the drop zeroizes the whole capacity).
    pub fn as_mut_vec(&mut self) -> &mut Vec<u8> {
        &mut self.0
    }

    /// Drops trailing `\n` / `\r` (a value typed into a file or piped with `echo`).
    pub fn trim_trailing_newlines(&mut self) {
        while self.0.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            if let Some(last) = self.0.last_mut() {
                *last = 0;
            }
            self.0.pop();
        }
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretBytes(<redacted {} bytes>)", self.0.len())
    }
}

/// A secret string that zeroizes on drop (rendered templates, tokens in flight).
#[derive(Clone, Zeroize, ZeroizeOnDrop, PartialEq, Eq)]
pub struct SecretString(String);

impl SecretString {
    pub fn new(s: String) -> Self {
        Self(s)
    }

    /// `parts` joined, in one allocation of the exact size: a `format!` that regrows its buffer
    /// would leave partial copies of the secret in freed memory.
    pub fn concat(parts: &[&str]) -> Self {
        let mut out = String::with_capacity(parts.iter().map(|p| p.len()).sum());
        for p in parts {
            out.push_str(p);
        }
        Self(out)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.0.capacity()
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretString(<redacted {} bytes>)", self.0.len())
    }
}

/// An envelope-encrypted value: a data key wrapped by the master key, and the value sealed by
/// the data key. Both are `nonce || ciphertext || tag`. Meaningless without the master key and
/// the exact associated data it was sealed with.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Sealed {
    /// Identifies the master key that wrapped the data key.
    pub kek_id: String,
    #[serde(with = "b64")]
    pub wrapped_dek: Vec<u8>,
    #[serde(with = "b64")]
    pub ciphertext: Vec<u8>,
}

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealed").field("kek_id", &self.kek_id).finish_non_exhaustive()
    }
}

mod b64 {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        STANDARD.decode(text.as_bytes()).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_plaintext() {
        let s = SecretBytes::from_str_copy("sk-SENTINEL-123");
        let shown = format!("{s:?} {:?}", SecretString::new("sk-SENTINEL-123".into()));
        assert!(!shown.contains("SENTINEL"), "{shown}");
        assert!(shown.contains("redacted 15 bytes"));
    }
}
