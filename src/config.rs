//! Resolved runtime configuration. The only reader of the process environment (besides `run` and
//! `service::external`, which build a child's environment).

use std::path::{Path, PathBuf};
use std::time::Duration;

use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// Where the master key comes from.
#[derive(Clone)]
pub enum KeySource {
    /// `AIVAULT_MASTER_KEY`, base64 of 32 bytes.
    Env(Zeroizing<String>),
    /// `<home>/master.key`, created on first use with mode 0600.
    File(PathBuf),
}

/// Everything a command needs to find and open the vault.
#[derive(Clone)]
pub struct Config {
    pub home: PathBuf,
    pub key: KeySource,
    /// How long to wait for another aivault process to release the store.
    pub lock_wait: Duration,
    /// Where the state lives: `--store`, else `AIVAULT_STORE_URL`, else `<home>/vault.redb`.
    pub store: crate::store::Location,
}

impl Config {
    /// `--home` flag, else `AIVAULT_HOME`, else `$XDG_DATA_HOME/aivault`, else
    /// `~/.local/share/aivault`.
    pub fn resolve(home_flag: Option<&Path>, store_flag: Option<&str>) -> Result<Config> {
        let home = match home_flag {
            Some(h) => h.to_owned(),
            None => match non_empty_env("AIVAULT_HOME") {
                Some(h) => PathBuf::from(h),
                None => match non_empty_env("XDG_DATA_HOME") {
                    Some(x) => PathBuf::from(x).join("aivault"),
                    None => {
                        let user_home = non_empty_env("HOME").ok_or_else(|| {
                            Error::invalid("cannot find a data directory: set --home, AIVAULT_HOME or HOME")
                        })?;
                        PathBuf::from(user_home).join(".local/share/aivault")
                    }
                },
            },
        };
        let key = match non_empty_env("AIVAULT_MASTER_KEY") {
            Some(k) => KeySource::Env(Zeroizing::new(k)),
            None => KeySource::File(home.join("master.key")),
        };
        let store = match store_flag.map(str::to_owned).or_else(|| non_empty_env("AIVAULT_STORE_URL")) {
            Some(text) => match crate::store::Location::parse(&text) {
                crate::store::Location::Postgres(url, _) => {
                    crate::store::Location::Postgres(with_rootcert(url), passfile())
                }
                file => file,
            },
            None => crate::store::Location::File(home.join("vault.redb")),
        };
        Ok(Config { home, key, lock_wait: Duration::from_secs(10), store })
    }

    /// A config for `home` with the default key file and redb store (tests, tools).
    pub fn for_home(home: &Path) -> Config {
        Config {
            home: home.to_owned(),
            key: KeySource::File(home.join("master.key")),
            lock_wait: Duration::from_secs(10),
            store: crate::store::Location::File(home.join("vault.redb")),
        }
    }

    /// The libpq passfile (`PGPASSFILE`, else `~/.pgpass`) for database URLs without a password.
    pub fn passfile(&self) -> Option<PathBuf> {
        passfile()
    }

    /// Where the proxy spills audit records it cannot write yet (0600).
    pub fn spill_path(&self) -> PathBuf {
        self.home.join("vault.audit-spill")
    }
}

/// The log filter for long-running commands: `AIVAULT_LOG` (e.g. `info`, `aivault=debug`), default `warn`.
/// Adds PGSSLROOTCERT to a database URL that names no `sslrootcert` itself.
fn with_rootcert(url: Zeroizing<String>) -> Zeroizing<String> {
    match non_empty_env("PGSSLROOTCERT") {
        Some(root) if !url.contains("sslrootcert=") => {
            let sep = if url.contains('?') { '&' } else { '?' };
            Zeroizing::new(format!("{}{sep}sslrootcert={}", url.as_str(), crate::percent::encode(root)))
        }
        _ => url,
    }
}

/// What an agent's own commands (`aivault proposal create` under `run`) reach the proxy with:
/// the proxy URL (`HTTPS_PROXY`) and the CA bundle (`SSL_CERT_FILE`) that `run` set.
pub fn agent_proxy_env() -> (Option<String>, Option<String>) {
    let first = |names: &[&str]| names.iter().find_map(|n| non_empty_env(n));
    (first(&["HTTPS_PROXY", "https_proxy"]), first(&["SSL_CERT_FILE", "CURL_CA_BUNDLE"]))
}

fn passfile() -> Option<PathBuf> {
    non_empty_env("PGPASSFILE")
        .map(PathBuf::from)
        .or_else(|| non_empty_env("HOME").map(|h| PathBuf::from(h).join(".pgpass")))
}

/// `COLUMNS`, when the shell exports a usable width.
pub fn columns() -> Option<usize> {
    std::env::var("COLUMNS").ok()?.trim().parse().ok().filter(|w| *w >= 20)
}

pub fn log_filter() -> String {
    non_empty_env("AIVAULT_LOG").unwrap_or_else(|| "warn".to_owned())
}

/// The system's trusted roots as one PEM file, if the platform has one.
pub fn system_roots_file() -> Option<PathBuf> {
    [
        "/etc/ssl/certs/ca-certificates.crt",
        "/etc/pki/tls/certs/ca-bundle.crt",
        "/etc/ssl/ca-bundle.pem",
        "/etc/ssl/cert.pem",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.is_file())
}

fn non_empty_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// One of the named variables, the first that is set and non-empty (`AIVAULT_UPSTREAM_PROXY`, or
/// the standard `HTTPS_PROXY`/`https_proxy`/`NO_PROXY` with `--upstream-proxy-from-env`).
pub fn first_env(names: &[&str]) -> Option<String> {
    names.iter().find_map(|n| non_empty_env(n))
}

/// Environment values the proxy command reads (`AIVAULT_UPSTREAM_CA`, `AIVAULT_RESOLVE`).
pub fn env_list(name: &str, sep: char) -> Vec<String> {
    non_empty_env(name)
        .map(|v| v.split(sep).map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect())
        .unwrap_or_default()
}
