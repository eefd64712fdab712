//! The master key on disk and its rotation.
//!
//! Rotation is crash-safe: the new key is written to `master.key.next` first, every data key is
//! re-wrapped and the new key id recorded in one store transaction, and only then is
//! `master.key.next` renamed over `master.key`. If a crash leaves the store on the new key with
//! the rename not done, the next open finds `master.key.next`, sees that it matches the store,
//! and completes the rename.

use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::api::MasterRotated;
use super::{Vault, record, secret_aad};
use crate::audit::AuditEvent;
use crate::config::{Config, KeySource};
use crate::crypto::{self, CryptoError, MasterKey};
use crate::error::{Error, Result};
use crate::store::{CaRow, SecretRow};

/// Loads the master key, creating the key file for a brand-new vault.
pub(super) fn load(cfg: &Config, store_existed: bool) -> Result<(MasterKey, String)> {
    match &cfg.key {
        KeySource::Env(text) => {
            let key = MasterKey::from_base64(text).map_err(|_| {
                Error::invalid(
                    "AIVAULT_MASTER_KEY is not base64 of 32 bytes (generate one with `openssl rand -base64 32`)",
                )
            })?;
            Ok((key, "env AIVAULT_MASTER_KEY".to_owned()))
        }
        KeySource::File(path) => {
            let source = format!("file {}", path.display());
            if path.exists() {
                return Ok((read_key_file(path)?, source));
            }
            if store_existed && !next_path(path).exists() {
                return Err(Error::invalid(format!(
                    "the vault store exists but its master key {} is missing; restore the file or set AIVAULT_MASTER_KEY",
                    path.display()
                )));
            }
            if let Some(key) = promote_next(path)? {
                return Ok((key, source));
            }
            let (key, text) = MasterKey::generate()?;
            write_private(path, text.as_bytes(), true)?;
            Ok((key, source))
        }
    }
}

fn read_key_file(path: &Path) -> Result<MasterKey> {
    let text = zeroize::Zeroizing::new(
        std::fs::read_to_string(path).map_err(Error::io(format!("cannot read master key {}", path.display())))?,
    );
    let mode = std::fs::metadata(path)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    MasterKey::from_base64(&text)
        .map_err(|_| Error::invalid(format!("{} does not hold base64 of 32 bytes", path.display())))
}

fn next_path(path: &Path) -> PathBuf {
    path.with_extension("key.next")
}

/// If only `master.key.next` exists (crash between rename steps), promotes it.
fn promote_next(path: &Path) -> Result<Option<MasterKey>> {
    let next = next_path(path);
    if !next.exists() {
        return Ok(None);
    }
    let key = read_key_file(&next)?;
    std::fs::rename(&next, path)?;
    Ok(Some(key))
}

/// Called when the store's key id differs from `master.key`: completes an interrupted rotation
/// if `master.key.next` holds the key the store expects. Returns the key when it did.
pub(super) fn finish_interrupted_rotation(path: &Path, expected_id: &str) -> Result<Option<MasterKey>> {
    let next = next_path(path);
    if !next.exists() {
        return Ok(None);
    }
    let key = read_key_file(&next)?;
    if key.id() != expected_id {
        return Ok(None);
    }
    std::fs::rename(&next, path)?;
    sync_dir(path);
    Ok(Some(key))
}

/// Removes a `master.key.next` left by a rotation that never committed (the caller holds the
/// store lock and has checked that the store is still sealed under `master.key`).
pub(super) fn discard_abandoned_rotation(path: &Path) {
    let next = next_path(path);
    if next.exists() && std::fs::remove_file(&next).is_ok() {
        sync_dir(path);
    }
}

/// Writes `bytes` to `path` with mode 0600, via a temporary file and rename.
pub(crate) fn write_private(path: &Path, bytes: &[u8], create_new: bool) -> Result<()> {
    if create_new && path.exists() {
        return Err(Error::Conflict(format!("{} already exists", path.display())));
    }
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    {
        let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    sync_dir(path);
    Ok(())
}

fn sync_dir(path: &Path) {
    if let Some(dir) = path.parent() {
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
}

impl Vault {
    /// Re-wraps every data key (and the CA key) under a new master key, atomically.
    pub fn rotate_master(&mut self, cfg: &Config, new_key: Option<&str>) -> Result<MasterRotated> {
        let (new, text) = match new_key {
            Some(t) => {
                (MasterKey::from_base64(t).map_err(|_| Error::invalid("--new-key is not base64 of 32 bytes"))?, None)
            }
            None => {
                if matches!(cfg.key, KeySource::Env(_)) {
                    return Err(Error::invalid(
                        "the master key comes from AIVAULT_MASTER_KEY: pass --new-key <base64 of 32 bytes>, \
                         then set AIVAULT_MASTER_KEY to it",
                    ));
                }
                let (k, t) = MasterKey::generate()?;
                (k, Some(t))
            }
        };
        if new.id() == self.key.id() {
            return Err(Error::invalid("the new master key is the same as the current one"));
        }
        let key_location = match &cfg.key {
            KeySource::File(path) => {
                let bytes = match (&text, new_key) {
                    (Some(t), _) => t.as_bytes().to_vec(),
                    (None, Some(given)) => given.trim().as_bytes().to_vec(),
                    (None, None) => return Err(Error::invalid("no new key")),
                };
                write_private(&next_path(path), &bytes, false)?;
                format!("written to {}", path.display())
            }
            KeySource::Env(_) => "set AIVAULT_MASTER_KEY to the new key before the next command".to_owned(),
        };
        let old_id = self.key.id().to_owned();
        let count = self.store.write(|tx| -> Result<usize> {
            let rows = tx.list::<SecretRow>()?;
            for row in &rows {
                let sealed = crypto::rewrap(&self.key, &new, &secret_aad(row), &row.sealed).map_err(|e| match e {
                    CryptoError::OpenFailed => Error::Conflict(format!(
                        "secret {} does not open with the current key; rotation aborted, nothing changed",
                        row.id
                    )),
                    other => Error::from(other),
                })?;
                let mut updated = row.clone();
                updated.sealed = sealed;
                tx.put(&row.id, &updated)?;
            }
            if let Some(mut ca) = tx.get::<CaRow>("root")? {
                ca.sealed_key = crypto::rewrap(&self.key, &new, crate::CA_KEY_AAD, &ca.sealed_key)?;
                tx.put("root", &ca)?;
            }
            tx.set_meta("kek_id", new.id())?;
            record(tx, AuditEvent::new("vault.rotate_master").detail(format!("{old_id} -> {}", new.id())))?;
            Ok(rows.len())
        });
        let count = match count {
            Ok(c) => c,
            Err(e) => {
                if let KeySource::File(path) = &cfg.key {
                    let _ = std::fs::remove_file(next_path(path));
                }
                return Err(e);
            }
        };
        if let KeySource::File(path) = &cfg.key {
            std::fs::rename(next_path(path), path)?;
            sync_dir(path);
        }
        self.key = new;
        Ok(MasterRotated {
            old_key_id: old_id,
            new_key_id: self.key.id().to_owned(),
            secrets_rewrapped: count,
            key_location,
        })
    }
}
