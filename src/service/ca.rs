//! The CA's persistence: created on first use, key sealed with the master key, rotation, and
//! the PEM files clients trust (`ca.pem`, and `ca-bundle.pem` with the system roots).

use std::path::PathBuf;

use serde::Serialize;

use super::keys::write_private;
use super::{Vault, record};
use crate::audit::AuditEvent;
use crate::crypto;
use crate::error::{Error, Result};
use crate::secret::SecretBytes;
use crate::store::CaRow;
use crate::time::{now_ms, rfc3339};

/// The root as the proxy needs it. The key is plaintext in memory only.
pub struct CaMaterial {
    pub cert_pem: String,
    pub key_pkcs8: SecretBytes,
    pub common_name: String,
}

#[derive(Debug, Serialize)]
pub struct CaInfo {
    pub path: String,
    pub common_name: String,
    pub fingerprint_sha256: String,
    pub created_at: String,
}

impl Vault {
    /// `$AIVAULT_HOME/ca.pem`.
    pub fn ca_cert_path(&self) -> PathBuf {
        self.home.join("ca.pem")
    }

    /// `$AIVAULT_HOME/ca-bundle.pem`.
    pub fn ca_bundle_path(&self) -> PathBuf {
        self.home.join("ca-bundle.pem")
    }

    /// Loads the root, creating it on first use, and makes sure `ca.pem` matches it.
    pub fn ca_material(&self) -> Result<CaMaterial> {
        let row = match self.store.read(|tx| tx.get::<CaRow>("root"))? {
            Some(row) => row,
            None => self.store.write(|tx| {
                if let Some(existing) = tx.get::<CaRow>("root")? {
                    return Ok(existing);
                }
                let row = self.new_root()?;
                tx.put("root", &row)?;
                record(tx, AuditEvent::new("ca.create").detail(row.common_name.clone()))?;
                Ok::<_, Error>(row)
            })?,
        };
        self.write_ca_files(&row.cert_pem)?;
        let key = crypto::open(&self.key, crate::CA_KEY_AAD, &row.sealed_key)?;
        Ok(CaMaterial { cert_pem: row.cert_pem, key_pkcs8: key, common_name: row.common_name })
    }

    fn new_root(&self) -> Result<CaRow> {
        let label = crypto::random_id("")?;
        let root = crate::ca::generate_root(&label[..8])?;
        let sealed_key = crypto::seal(&self.key, crate::CA_KEY_AAD, root.key_pkcs8.expose())?;
        Ok(CaRow { cert_pem: root.cert_pem, common_name: root.common_name, sealed_key, created_ms: now_ms() })
    }

    /// Replaces the root. Clients must trust the new `ca.pem`; running proxies switch on reload.
    pub fn ca_rotate(&self) -> Result<CaInfo> {
        let row = self.store.write(|tx| {
            let row = self.new_root()?;
            tx.put("root", &row)?;
            record(tx, AuditEvent::new("ca.rotate").detail(row.common_name.clone()))?;
            Ok::<_, Error>(row)
        })?;
        self.write_ca_files(&row.cert_pem)?;
        self.ca_info()
    }

    pub fn ca_info(&self) -> Result<CaInfo> {
        let material = self.ca_material()?;
        let row = self
            .store
            .read(|tx| tx.get::<CaRow>("root"))?
            .ok_or_else(|| Error::Internal("the CA row vanished while loading it".into()))?;
        use rustls::pki_types::{CertificateDer, pem::PemObject as _};
        let der = CertificateDer::from_pem_slice(material.cert_pem.as_bytes())
            .map_err(|e| Error::Ca(crate::ca::CaError::BadKey(e.to_string())))?;
        Ok(CaInfo {
            path: self.ca_cert_path().display().to_string(),
            common_name: material.common_name,
            fingerprint_sha256: crypto::sha256_hex(der.as_ref()),
            created_at: rfc3339(row.created_ms),
        })
    }

    fn write_ca_files(&self, cert_pem: &str) -> Result<()> {
        let path = self.ca_cert_path();
        if std::fs::read_to_string(&path).ok().as_deref() != Some(cert_pem) {
            write_private(&path, cert_pem.as_bytes(), false)?;
        }
        let mut bundle = String::new();
        if let Some(system) = crate::config::system_roots_file().filter(|p| *p != self.ca_bundle_path()) {
            bundle.push_str(&std::fs::read_to_string(&system).unwrap_or_default());
            if !bundle.ends_with('\n') {
                bundle.push('\n');
            }
        }
        bundle.push_str(cert_pem);
        let bundle_path = self.ca_bundle_path();
        if std::fs::read_to_string(&bundle_path).ok().as_deref() != Some(bundle.as_str()) {
            write_private(&bundle_path, bundle.as_bytes(), false)?;
        }
        Ok(())
    }
}

impl Vault {
    /// What `aivault ca trust` runs to trust this vault's CA system-wide (`--dry-run` prints it).
    pub fn ca_trust_commands(&self) -> Result<Vec<Vec<String>>> {
        self.ca_material()?;
        let commands = trust_commands(&self.ca_cert_path());
        if commands.is_empty() {
            return Err(Error::invalid(
                "no known system trust store here; trust `aivault ca path` in your client, or use `aivault run`",
            ));
        }
        Ok(commands)
    }
}

/// Runs the trust-store commands in order; the first that fails stops the rest.
pub fn run_trust_commands(commands: &[Vec<String>]) -> Result<()> {
    for c in commands {
        let Some((program, args)) = c.split_first() else { continue };
        let status = std::process::Command::new(program)
            .args(args)
            .status()
            .map_err(Error::io(format!("cannot run {program}")))?;
        if !status.success() {
            return Err(Error::Io {
                what: format!("`{}` failed ({status})", c.join(" ")),
                source: std::io::Error::other("the trust store was not changed; try again with sudo"),
            });
        }
    }
    Ok(())
}

/// The commands that install `cert` into this system's trust store (empty: none known).
fn trust_commands(cert: &std::path::Path) -> Vec<Vec<String>> {
    let cert = cert.display().to_string();
    if std::path::Path::new("/usr/sbin/update-ca-certificates").exists() {
        vec![
            vec![
                "install".into(),
                "-m".into(),
                "0644".into(),
                cert,
                "/usr/local/share/ca-certificates/aivault.crt".into(),
            ],
            vec!["update-ca-certificates".into()],
        ]
    } else if std::path::Path::new("/usr/bin/update-ca-trust").exists() {
        vec![
            vec![
                "install".into(),
                "-m".into(),
                "0644".into(),
                cert,
                "/etc/pki/ca-trust/source/anchors/aivault.pem".into(),
            ],
            vec!["update-ca-trust".into(), "extract".into()],
        ]
    } else if std::path::Path::new("/usr/bin/security").exists() {
        vec![vec![
            "security".into(),
            "add-trusted-cert".into(),
            "-d".into(),
            "-r".into(),
            "trustRoot".into(),
            "-k".into(),
            "/Library/Keychains/System.keychain".into(),
            cert,
        ]]
    } else {
        vec![]
    }
}
