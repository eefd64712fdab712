//! Running proxies announce themselves, so a management command can wait until every proxy has
//! loaded its change (`agent revoke` returns only when the revoked token is refused everywhere).
//!
//! Each proxy keeps `<home>/proxies/<pid>-<port>.json` (0600, in a 0700 directory) holding the
//! management generation of the snapshot it serves, rewritten after every swap and removed on
//! shutdown. A file whose process is gone is ignored (and cleaned up).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// What a running proxy says about itself.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Announcement {
    pub pid: u32,
    pub listen: String,
    pub generation: u64,
}

fn dir(home: &Path) -> PathBuf {
    home.join("proxies")
}

fn file(home: &Path, a: &Announcement) -> PathBuf {
    let port = a.listen.rsplit(':').next().unwrap_or("0");
    dir(home).join(format!("{}-{port}.json", a.pid))
}

/// Writes (or rewrites) this proxy's announcement.
pub fn announce(home: &Path, a: &Announcement) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    let d = dir(home);
    if !d.exists() {
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&d)
            .or_else(|e| if e.kind() == std::io::ErrorKind::AlreadyExists { Ok(()) } else { Err(e) })?;
    }
    let text =
        serde_json::to_vec(a).map_err(|e| Error::Internal(format!("a proxy announcement does not encode: {e}")))?;
    super::keys::write_private(&file(home, a), &text, false)
}

/// Removes this proxy's announcement (on shutdown).
pub fn withdraw(home: &Path, a: &Announcement) {
    let _ = std::fs::remove_file(file(home, a));
}

/// The announcements of proxies that are still running (stale files are removed).
pub fn running(home: &Path) -> Vec<Announcement> {
    let Ok(entries) = std::fs::read_dir(dir(home)) else { return Vec::new() };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(bytes) = std::fs::read(&path) else { continue };
        match serde_json::from_slice::<Announcement>(&bytes) {
            Ok(a) if crate::sandbox::process_exists(a.pid) => out.push(a),
            Ok(_) => {
                let _ = std::fs::remove_file(&path);
            }
            // Being rewritten right now: the next read sees it whole.
            Err(_) => {}
        }
    }
    out
}

/// Waits until every running proxy serves `generation` or later; returns the listen addresses
/// of those that did not within `timeout`.
pub fn wait_for(home: &Path, generation: u64, timeout: Duration) -> Vec<String> {
    let deadline = Instant::now() + timeout;
    loop {
        let behind: Vec<String> =
            running(home).into_iter().filter(|a| a.generation < generation).map(|a| a.listen).collect();
        if behind.is_empty() || Instant::now() >= deadline {
            return behind;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What a running console says about itself (`<home>/console.json`), so proxies without a
/// console of their own (the one `aivault run` embeds) can still hand out approval links.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
struct ConsoleAnnouncement {
    pid: u32,
    url: String,
}

/// Records that this process serves the console at `url`.
pub fn announce_console(home: &Path, url: &str) -> Result<()> {
    let a = ConsoleAnnouncement { pid: std::process::id(), url: url.to_owned() };
    let text =
        serde_json::to_vec(&a).map_err(|e| Error::Internal(format!("a proxy announcement does not encode: {e}")))?;
    super::keys::write_private(&home.join("console.json"), &text, false)
}

/// Removes this process's console announcement (only if it is still ours).
pub fn withdraw_console(home: &Path) {
    let path = home.join("console.json");
    let ours = std::fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice::<ConsoleAnnouncement>(&b).ok())
        .is_some_and(|a| a.pid == std::process::id());
    if ours {
        let _ = std::fs::remove_file(path);
    }
}

/// The URL of a running console, if any.
pub fn console_url(home: &Path) -> Option<String> {
    let bytes = std::fs::read(home.join("console.json")).ok()?;
    let a: ConsoleAnnouncement = serde_json::from_slice(&bytes).ok()?;
    crate::sandbox::process_exists(a.pid).then_some(a.url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announcements_of_live_proxies_are_waited_for_and_stale_ones_dropped() {
        let home = tempfile::tempdir().unwrap();
        let me = Announcement { pid: std::process::id(), listen: "127.0.0.1:1".into(), generation: 3 };
        announce(home.path(), &me).unwrap();
        let dead = Announcement { pid: u32::MAX / 2, listen: "127.0.0.1:2".into(), generation: 0 };
        announce(home.path(), &dead).unwrap();
        assert_eq!(running(home.path()), vec![me.clone()]);
        assert!(wait_for(home.path(), 3, Duration::from_millis(10)).is_empty());
        assert_eq!(wait_for(home.path(), 4, Duration::from_millis(50)), vec!["127.0.0.1:1".to_owned()]);
        withdraw(home.path(), &me);
        assert!(running(home.path()).is_empty());
    }
}
