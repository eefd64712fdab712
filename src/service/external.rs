//! Fetching external secrets (`source::Source`): run the command or read the file, keep the value
//! in memory (zeroized on drop) for the source's TTL, never past it. A failing source is an error
//! that names the source, never a stale value.
//!
//! The child of an `exec` source gets this process's environment minus every `AIVAULT_*` and
//! database password variable, and at most 10 s.

use std::collections::HashMap;
use std::io::Read as _;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use crate::secret::SecretBytes;
use crate::source::Source;

/// Largest value a source may produce.
const MAX_VALUE: u64 = 1024 * 1024;
/// Longest an `exec` source may run.
const EXEC_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a file source's modification time is checked between TTL expiries.
const FILE_CHECK: Duration = Duration::from_secs(1);

/// Why a source gave no value. Never carries the value (or any of its output).
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("cannot start it: {0}")]
    Start(std::io::Error),
    #[error("cannot wait for it: {0}")]
    Wait(std::io::Error),
    #[error("its output could not be read")]
    Output,
    #[error("it did not finish within {} s", EXEC_TIMEOUT.as_secs())]
    Timeout,
    #[error("it exited with status {0}")]
    Status(i32),
    #[error("it was killed by a signal")]
    Signal,
    #[error("the value is larger than {MAX_VALUE} bytes")]
    TooLarge,
    #[error("it produced an empty value")]
    Empty,
}

struct Entry {
    source: Source,
    value: SecretBytes,
    fetched: Instant,
    mtime: Option<SystemTime>,
    checked: Instant,
}

/// Values fetched from external sources, by secret id; shared by every snapshot of a process.
#[derive(Default)]
pub struct ExternalCache {
    entries: Mutex<HashMap<String, Entry>>,
}

impl ExternalCache {
    /// The value of `secret_id` from `source`: cached while fresh, fetched otherwise.
    pub fn get(&self, secret_id: &str, source: &Source) -> Result<SecretBytes, FetchError> {
        let ttl = Duration::from_secs(source.ttl_secs());
        {
            let mut map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(e) = map.get_mut(secret_id) {
                let mut fresh = e.source == *source && e.fetched.elapsed() < ttl;
                if fresh {
                    if let Source::File { path, .. } = source {
                        if e.checked.elapsed() >= FILE_CHECK {
                            e.checked = Instant::now();
                            fresh = modified(path) == e.mtime;
                        }
                    }
                }
                if fresh {
                    return Ok(e.value.clone());
                }
            }
            // Never serve a value past its TTL, even if the fetch below fails.
            map.remove(secret_id);
        }
        let mtime = match source {
            Source::File { path, .. } => modified(path),
            Source::Exec { .. } => None,
        };
        let value = fetch_blocking(source)?;
        let now = Instant::now();
        let entry = Entry { source: source.clone(), value: value.clone(), fetched: now, mtime, checked: now };
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).insert(secret_id.to_owned(), entry);
        Ok(value)
    }
}

fn modified(path: &std::path::Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Fetches, moving off the async workers when called from a multi-threaded runtime.
fn fetch_blocking(source: &Source) -> Result<SecretBytes, FetchError> {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(|| fetch(source))
        }
        _ => fetch(source),
    }
}

/// Reads the value once (no cache).
pub fn fetch(source: &Source) -> Result<SecretBytes, FetchError> {
    let mut value = match source {
        Source::File { path, .. } => {
            let read = |source| FetchError::Read { path: path.display().to_string(), source };
            let f = std::fs::File::open(path).map_err(read)?;
            let mut buf = SecretBytes::new(Vec::new());
            f.take(MAX_VALUE + 1).read_to_end(buf.as_mut_vec()).map_err(read)?;
            buf
        }
        Source::Exec { command, .. } => run(command)?,
    };
    if value.expose().len() as u64 > MAX_VALUE {
        return Err(FetchError::TooLarge);
    }
    value.trim_trailing_newlines();
    if value.is_empty() {
        return Err(FetchError::Empty);
    }
    Ok(value)
}

fn run(command: &str) -> Result<SecretBytes, FetchError> {
    let mut cmd = std::process::Command::new("sh");
    cmd.arg("-c").arg(command);
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().into_owned();
        if k.starts_with("AIVAULT_") || k == "PGPASSWORD" {
            cmd.env_remove(k);
        }
    }
    cmd.stdin(std::process::Stdio::null()).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::null());
    let mut child = cmd.spawn().map_err(FetchError::Start)?;
    let mut out = child.stdout.take().ok_or(FetchError::Output)?;
    let reader = std::thread::spawn(move || {
        let mut buf = SecretBytes::new(Vec::new());
        let r = (&mut out).take(MAX_VALUE + 1).read_to_end(buf.as_mut_vec());
        r.map(|_| buf)
    });
    let deadline = Instant::now() + EXEC_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(FetchError::Timeout);
            }
            Err(e) => return Err(FetchError::Wait(e)),
        }
    };
    let value = reader.join().map_err(|_| FetchError::Output)?.map_err(|_| FetchError::Output)?;
    if !status.success() {
        return Err(status.code().map_or(FetchError::Signal, FetchError::Status));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exec(command: &str, ttl_secs: u64) -> Source {
        Source::Exec { command: command.into(), ttl_secs }
    }

    #[test]
    fn exec_and_file_values_are_cached_for_the_ttl_and_never_past_it() {
        let dir = tempfile::tempdir().unwrap();
        let counter = dir.path().join("n");
        let cache = ExternalCache::default();
        let src = exec(&format!("echo x >> {0}; printf 'value-%s\\n' $(wc -l < {0})", counter.display()), 60);
        assert_eq!(cache.get("s1", &src).unwrap().expose(), b"value-1");
        assert_eq!(cache.get("s1", &src).unwrap().expose(), b"value-1", "cached");
        let short = exec(&format!("echo x >> {0}; printf 'value-%s' $(wc -l < {0})", counter.display()), 0);
        assert_eq!(cache.get("s1", &short).unwrap().expose(), b"value-2", "a changed source or TTL 0 refetches");

        let file = dir.path().join("secret");
        std::fs::write(&file, "first\n").unwrap();
        let fsrc = Source::File { path: file.clone(), ttl_secs: 60 };
        assert_eq!(cache.get("s2", &fsrc).unwrap().expose(), b"first");
        std::fs::write(&file, "second").unwrap();
        let later = std::time::SystemTime::now() + Duration::from_secs(5);
        std::fs::File::options().write(true).open(&file).unwrap().set_modified(later).unwrap();
        std::thread::sleep(FILE_CHECK);
        assert_eq!(cache.get("s2", &fsrc).unwrap().expose(), b"second", "a changed file is re-read");
        std::fs::remove_file(&file).unwrap();
        std::thread::sleep(FILE_CHECK);
        assert!(cache.get("s2", &fsrc).is_err(), "a removed file fails closed");
    }

    #[test]
    fn failures_name_the_problem_not_the_value() {
        assert_eq!(fetch(&exec("exit 3", 1)).unwrap_err().to_string(), "it exited with status 3");
        assert_eq!(fetch(&exec("true", 1)).unwrap_err().to_string(), "it produced an empty value");
        let e = fetch(&exec("echo SENTINEL-out; exit 1", 1)).unwrap_err();
        let shown = format!("{e} {e:?}");
        assert!(!shown.contains("SENTINEL"), "{shown}");
    }
}
