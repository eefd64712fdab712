//! The agent's sandbox: what `aivault run` takes away from the child before it starts.
//!
//! Two layers, both decided here and nowhere else:
//! 1. **Environment.** Every `AIVAULT_*` variable (home, master key, store URL, log filter ...) and
//!    the database's own credential variables are removed from the child's environment.
//! 2. **Filesystem and processes** (Linux, unprivileged user namespaces). The child is started
//!    through two short helper stages of this same binary (`stage`), which put it in new user,
//!    mount and PID namespaces where the data directory is replaced by a read-only tmpfs holding
//!    only the public CA files, `/proc` shows only the child's own processes, and the mounts are
//!    locked (a nested user namespace), so the child cannot unmount them even as namespace root.
//!
//! 3. **Network** (`run --isolate`, see `net`): a network namespace with only loopback, where the
//!    proxy's port is relayed to the real proxy; nothing else is reachable.
//!
//! Where the kernel refuses namespaces, `Isolation::Auto` says so once on stderr and runs the child
//! with the environment layer only; `Isolation::Require` refuses to start it.
//!
//! Invariant: the child's environment and filesystem view are built only here; the `run` module
//! only says what to hide.

pub mod net;
mod stage;

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use stage::{dispatch_helper, exit_code};

/// How hard `run` tries to isolate the child from the vault.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Isolation {
    /// Isolate where the OS allows it; otherwise warn once and run with a scrubbed environment.
    #[default]
    Auto,
    /// Refuse to start the child unless it can be isolated.
    Require,
    /// Scrubbed environment only (the operator's explicit choice).
    Off,
}

/// What the child must not see, handed to the helper stages as one JSON argument.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Plan {
    pub isolation: Isolation,
    /// Directories replaced by an empty read-only view.
    pub hide: Vec<PathBuf>,
    /// File names (inside a hidden directory) that stay readable: public material only.
    pub keep: Vec<String>,
    /// The working directory to re-enter once the mounts are in place.
    pub cwd: Option<PathBuf>,
    pub uid: u32,
    pub gid: u32,
    /// `--isolate`: a network namespace whose only way out is the proxy.
    #[serde(default)]
    pub network: Option<net::NetPlan>,
}

impl Plan {
    /// A plan that hides `data_dir` (where the store and the master key file live), keeping the
    /// CA certificate and bundle the child's TLS clients are pointed at.
    pub fn hiding(data_dir: &Path, isolation: Isolation) -> Plan {
        let hide = std::fs::canonicalize(data_dir).unwrap_or_else(|_| data_dir.to_owned());
        Plan {
            isolation,
            hide: vec![hide],
            keep: vec!["ca.pem".into(), "ca-bundle.pem".into()],
            cwd: std::env::current_dir().ok(),
            uid: nix::unistd::getuid().as_raw(),
            gid: nix::unistd::getgid().as_raw(),
            network: None,
        }
    }
}

/// Environment variables the child never inherits: aivault's own, and the PostgreSQL client's
/// credentials (a fleet store's password must not reach the agent).
pub fn is_scrubbed(name: &str) -> bool {
    const PG: &[&str] = &["PGPASSWORD", "PGPASSFILE", "PGSERVICEFILE", "DATABASE_URL"];
    name.starts_with("AIVAULT_") || PG.contains(&name)
}

/// The names of the inherited variables that must be removed from the child.
pub fn scrubbed_vars() -> Vec<OsString> {
    std::env::vars_os().map(|(k, _)| k).filter(|k| k.to_str().is_none_or(is_scrubbed)).collect()
}

/// The command that starts `program args` under `plan` with the given extra variables set and
/// every scrubbed one removed. With `Isolation::Off` (or where the helper cannot be found) this
/// is the program itself; otherwise the first helper stage, which starts the program.
pub fn command(plan: &Plan, program: &str, args: &[String], env: &[(String, String)]) -> std::process::Command {
    let exe = std::env::current_exe().ok();
    let mut cmd = match (plan.isolation, exe, serde_json::to_string(plan)) {
        // Network isolation needs the helper stages: never start the program bare with it.
        (Isolation::Off, _, _) | (_, None, _) | (_, _, Err(_)) if plan.network.is_none() => {
            let mut c = std::process::Command::new(program);
            c.args(args);
            c
        }
        (_, Some(exe), Ok(json)) => {
            let mut c = std::process::Command::new(exe);
            c.arg(stage::OUTER).arg(json).arg(program).args(args);
            c
        }
        _ => {
            // Unreachable in practice (run refuses --isolate with --sandbox off); fail closed.
            let mut c = std::process::Command::new("false");
            c.env_clear();
            c
        }
    };
    for name in scrubbed_vars() {
        cmd.env_remove(name);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// Whether a process with this pid exists (signal 0; `EPERM` means it exists under another user).
pub fn process_exists(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else { return false };
    !matches!(nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None), Err(nix::errno::Errno::ESRCH))
}

/// Makes this process's memory, environment and `/proc` entries unreadable to other processes of
/// the same user (an agent that runs without namespace isolation cannot read the master key out
/// of a running proxy). Also disables core dumps, which would hold plaintext.
pub fn harden_self() {
    let _ = nix::sys::prctl::set_dumpable(false);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrubbed_names() {
        for (name, scrubbed) in [
            ("AIVAULT_MASTER_KEY", true),
            ("AIVAULT_HOME", true),
            ("AIVAULT_STORE_URL", true),
            ("AIVAULT_LOG", true),
            ("PGPASSWORD", true),
            ("PGPASSFILE", true),
            ("DATABASE_URL", true),
            ("HOME", false),
            ("PATH", false),
            ("aivault_home", false),
            ("MY_AIVAULT_X", false),
        ] {
            assert_eq!(is_scrubbed(name), scrubbed, "{name}");
        }
    }

    #[test]
    fn plan_round_trips_as_json() {
        let plan = Plan::hiding(Path::new("/nonexistent/aivault"), Isolation::Require);
        let text = serde_json::to_string(&plan).unwrap();
        let back: Plan = serde_json::from_str(&text).unwrap();
        assert_eq!(back.hide, vec![PathBuf::from("/nonexistent/aivault")]);
        assert_eq!(back.isolation, Isolation::Require);
        assert_eq!(back.keep, vec!["ca.pem", "ca-bundle.pem"]);
    }
}
