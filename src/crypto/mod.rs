//! All cryptography lives here (ring only): the master key, envelope sealing, random ids and
//! token hashing.
//!
//! Architecture invariant: errors from this module are opaque. They never say anything about
//! key material or plaintext beyond "this did not open".

mod envelope;
mod master;

pub use envelope::{open, rewrap, seal};
pub use master::MasterKey;

use ring::rand::{SecureRandom, SystemRandom};

/// Why a cryptographic operation failed. Deliberately coarse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    #[error("the master key is not valid base64 of 32 bytes")]
    BadMasterKey,
    #[error("a sealed value could not be opened (wrong master key or tampered record)")]
    OpenFailed,
    #[error("the system random number generator failed")]
    Rng,
    #[error("a sealed value was made with master key {found}, not the current key {expected}")]
    ForeignKey { expected: String, found: String },
}

/// Fills `buf` with cryptographically secure random bytes.
pub fn random_bytes(buf: &mut [u8]) -> Result<(), CryptoError> {
    SystemRandom::new().fill(buf).map_err(|_| CryptoError::Rng)
}

/// A random identifier: `prefix` followed by 24 lowercase hex characters (96 bits).
pub fn random_id(prefix: &str) -> Result<String, CryptoError> {
    let mut raw = [0u8; 12];
    random_bytes(&mut raw)?;
    Ok(format!("{prefix}{}", hex(&raw)))
}

/// A random bearer token: `prefix` followed by 43 base64url characters (256 bits).
pub fn random_token(prefix: &str) -> Result<String, CryptoError> {
    use base64::Engine as _;
    let mut raw = [0u8; 32];
    random_bytes(&mut raw)?;
    Ok(format!("{prefix}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)))
}

/// SHA-256 of `data` as lowercase hex. Used to store agent tokens without storing them.
pub fn sha256_hex(data: &[u8]) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, data).as_ref())
}

/// Constant-time equality for digests and tokens.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_tokens_are_unique_and_shaped() {
        let a = random_id("sec_").unwrap();
        let b = random_id("sec_").unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 4 + 24);
        let t = random_token("avt_").unwrap();
        assert_eq!(t.len(), 4 + 43);
    }

    #[test]
    fn constant_time_eq_matches_eq() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
