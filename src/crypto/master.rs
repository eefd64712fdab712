//! The master key (key-encryption key). 32 random bytes, given as base64.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ring::aead::{AES_256_GCM, LessSafeKey, UnboundKey};
use zeroize::Zeroizing;

use super::{CryptoError, random_bytes};

/// The key that wraps every data key. Its `id` is a one-way fingerprint, safe to store and show.
pub struct MasterKey {
    pub(super) aead: LessSafeKey,
    id: String,
}

impl MasterKey {
    /// Parses base64 (standard or url-safe, padding optional) of exactly 32 bytes.
    pub fn from_base64(text: &str) -> Result<Self, CryptoError> {
        let text = text.trim();
        let raw = Zeroizing::new(
            STANDARD
                .decode(text)
                .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text))
                .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(text))
                .map_err(|_| CryptoError::BadMasterKey)?,
        );
        Self::from_bytes(&raw)
    }

    fn from_bytes(raw: &[u8]) -> Result<Self, CryptoError> {
        if raw.len() != 32 {
            return Err(CryptoError::BadMasterKey);
        }
        let unbound = UnboundKey::new(&AES_256_GCM, raw).map_err(|_| CryptoError::BadMasterKey)?;
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        ctx.update(b"aivault kek-id v1\0");
        ctx.update(raw);
        let id = format!("kek_{}", &super::hex(ctx.finish().as_ref())[..16]);
        Ok(Self { aead: LessSafeKey::new(unbound), id })
    }

    /// A fresh random key, returned with its base64 text so the caller can persist it.
    pub fn generate() -> Result<(Self, Zeroizing<String>), CryptoError> {
        let mut raw = Zeroizing::new([0u8; 32]);
        random_bytes(raw.as_mut())?;
        let text = Zeroizing::new(STANDARD.encode(raw.as_ref()));
        Ok((Self::from_bytes(raw.as_ref())?, text))
    }

    /// The fingerprint: `kek_` + 16 hex characters of a domain-separated SHA-256.
    pub fn id(&self) -> &str {
        &self.id
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterKey").field("id", &self.id).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_table() {
        let good = STANDARD.encode([7u8; 32]);
        let cases: &[(&str, bool)] = &[
            (&good, true),
            ("", false),
            ("not base64!!", false),
            (&STANDARD.encode([7u8; 31]), false),
            (&STANDARD.encode([7u8; 33]), false),
        ];
        for (input, ok) in cases {
            assert_eq!(MasterKey::from_base64(input).is_ok(), *ok, "{input}");
        }
    }

    #[test]
    fn id_is_stable_and_distinct() {
        let a = MasterKey::from_base64(&STANDARD.encode([1u8; 32])).unwrap();
        let b = MasterKey::from_base64(&STANDARD.encode([1u8; 32])).unwrap();
        let c = MasterKey::from_base64(&STANDARD.encode([2u8; 32])).unwrap();
        assert_eq!(a.id(), b.id());
        assert_ne!(a.id(), c.id());
        assert!(!format!("{a:?}").contains("0101"));
    }
}
