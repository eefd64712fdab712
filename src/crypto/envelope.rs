//! Envelope encryption: a fresh AES-256-GCM data key per sealed value, wrapped by the master key.
//!
//! The same associated data binds both layers, so a wrapped key or a ciphertext moved to another
//! record (another secret id, version, scope or pinned provider) no longer opens.

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use zeroize::Zeroizing;

use super::{CryptoError, MasterKey, random_bytes};
use crate::secret::{Sealed, SecretBytes};

/// Seals `plaintext` under a new random data key.
pub fn seal(master: &MasterKey, aad: &[u8], plaintext: &[u8]) -> Result<Sealed, CryptoError> {
    let mut dek = Zeroizing::new([0u8; 32]);
    random_bytes(dek.as_mut())?;
    let dek_key = aead_key(dek.as_ref())?;
    let ciphertext = seal_with(&dek_key, aad, plaintext)?;
    let wrapped_dek = seal_with(&master.aead, aad, dek.as_ref())?;
    Ok(Sealed { kek_id: master.id().to_owned(), wrapped_dek, ciphertext })
}

/// Opens a sealed value. Fails if the master key, the associated data or any byte differs.
pub fn open(master: &MasterKey, aad: &[u8], sealed: &Sealed) -> Result<SecretBytes, CryptoError> {
    check_key(master, sealed)?;
    let dek = Zeroizing::new(open_with(&master.aead, aad, &sealed.wrapped_dek)?);
    let dek_key = aead_key(&dek)?;
    Ok(SecretBytes::new(open_with(&dek_key, aad, &sealed.ciphertext)?))
}

/// Re-wraps the data key of `sealed` from `old` to `new` without touching the ciphertext.
pub fn rewrap(old: &MasterKey, new: &MasterKey, aad: &[u8], sealed: &Sealed) -> Result<Sealed, CryptoError> {
    check_key(old, sealed)?;
    let dek = Zeroizing::new(open_with(&old.aead, aad, &sealed.wrapped_dek)?);
    // Prove the data key still opens the value before committing to the new wrapping.
    let _ = open_with(&aead_key(&dek)?, aad, &sealed.ciphertext)?;
    let wrapped_dek = seal_with(&new.aead, aad, &dek)?;
    Ok(Sealed { kek_id: new.id().to_owned(), wrapped_dek, ciphertext: sealed.ciphertext.clone() })
}

fn check_key(master: &MasterKey, sealed: &Sealed) -> Result<(), CryptoError> {
    if sealed.kek_id != master.id() {
        return Err(CryptoError::ForeignKey { expected: master.id().to_owned(), found: sealed.kek_id.clone() });
    }
    Ok(())
}

fn aead_key(raw: &[u8]) -> Result<LessSafeKey, CryptoError> {
    UnboundKey::new(&AES_256_GCM, raw).map(LessSafeKey::new).map_err(|_| CryptoError::OpenFailed)
}

fn seal_with(key: &LessSafeKey, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let mut nonce = [0u8; NONCE_LEN];
    random_bytes(&mut nonce)?;
    let mut buf = Vec::with_capacity(NONCE_LEN + plaintext.len() + AES_256_GCM.tag_len());
    buf.extend_from_slice(&nonce);
    let mut body = plaintext.to_vec();
    let tag = key
        .seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), &mut body)
        .map_err(|_| CryptoError::OpenFailed)?;
    buf.extend_from_slice(&body);
    buf.extend_from_slice(tag.as_ref());
    zeroize::Zeroize::zeroize(&mut body);
    Ok(buf)
}

fn open_with(key: &LessSafeKey, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
    if sealed.len() < NONCE_LEN + AES_256_GCM.tag_len() {
        return Err(CryptoError::OpenFailed);
    }
    let (nonce, body) = sealed.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| CryptoError::OpenFailed)?;
    let mut buf = body.to_vec();
    match key.open_in_place(nonce, Aad::from(aad), &mut buf) {
        Ok(plain) => {
            let len = plain.len();
            buf.truncate(len);
            Ok(buf)
        }
        Err(_) => {
            zeroize::Zeroize::zeroize(&mut buf);
            Err(CryptoError::OpenFailed)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> MasterKey {
        use base64::Engine as _;
        MasterKey::from_base64(&base64::engine::general_purpose::STANDARD.encode([b; 32])).unwrap()
    }

    #[test]
    fn round_trip_and_fresh_data_keys() {
        let k = key(1);
        let a = seal(&k, b"aad", b"sk-SENTINEL").unwrap();
        let b = seal(&k, b"aad", b"sk-SENTINEL").unwrap();
        assert_ne!(a.wrapped_dek, b.wrapped_dek);
        assert_ne!(a.ciphertext, b.ciphertext);
        assert_eq!(open(&k, b"aad", &a).unwrap().expose(), b"sk-SENTINEL");
        assert!(!a.ciphertext.windows(8).any(|w| w == b"SENTINEL"));
    }

    #[test]
    fn tamper_table() {
        let k = key(1);
        let sealed = seal(&k, b"secret:a:1:-", b"value").unwrap();
        let mut flipped_ct = sealed.clone();
        let last = flipped_ct.ciphertext.len() - 1;
        flipped_ct.ciphertext[last] ^= 1;
        let mut flipped_dek = sealed.clone();
        flipped_dek.wrapped_dek[12] ^= 1;
        let other = seal(&k, b"secret:b:1:-", b"other").unwrap();
        let mut swapped = sealed.clone();
        swapped.ciphertext = other.ciphertext.clone();
        let mut truncated = sealed.clone();
        truncated.ciphertext.truncate(5);
        let cases: Vec<(&str, &MasterKey, &[u8], &Sealed)> = vec![
            ("other aad", &k, b"secret:a:2:-", &sealed),
            ("flipped ciphertext", &k, b"secret:a:1:-", &flipped_ct),
            ("flipped wrapped key", &k, b"secret:a:1:-", &flipped_dek),
            ("ciphertext from another record", &k, b"secret:a:1:-", &swapped),
            ("truncated", &k, b"secret:a:1:-", &truncated),
        ];
        for (name, key, aad, s) in cases {
            assert_eq!(open(key, aad, s).unwrap_err(), CryptoError::OpenFailed, "{name}");
        }
        assert!(matches!(open(&key(2), b"secret:a:1:-", &sealed), Err(CryptoError::ForeignKey { .. })));
    }

    #[test]
    fn rewrap_moves_to_new_key() {
        let (old, new) = (key(1), key(2));
        let sealed = seal(&old, b"x", b"value").unwrap();
        let moved = rewrap(&old, &new, b"x", &sealed).unwrap();
        assert_eq!(moved.ciphertext, sealed.ciphertext);
        assert_eq!(open(&new, b"x", &moved).unwrap().expose(), b"value");
        assert!(open(&old, b"x", &moved).is_err());
    }
}
