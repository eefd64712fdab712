//! The two helper stages that put `aivault run`'s child into its namespaces.
//!
//! `run` (multi-threaded, so it cannot enter a user namespace itself) starts this binary as
//! **outer**: a fresh single-threaded process that unshares user + mount + PID namespaces, maps
//! the operator's uid/gid to root inside (so the next exec keeps its capabilities there) and
//! starts **init**, which is PID 1 of the new PID namespace. Init makes every mount private,
//! mounts a fresh `/proc` (only the child's processes are visible), replaces each hidden
//! directory by a read-only tmpfs holding only the kept public files, re-enters the working
//! directory through the new mounts, then unshares a nested user + mount namespace with the
//! operator's own uid/gid. The kernel locks mounts inherited into a namespace owned by another
//! user namespace, so the child cannot unmount the views to reveal what is under them. Init then
//! starts the child, reaps orphans and exits with the child's status; when it exits, the kernel
//! ends every process left in the namespace.
//!
//! Both stages die with their parent (`PR_SET_PDEATHSIG`) and block the terminal's SIGINT/SIGQUIT
//! so that Ctrl-C reaches the child (which receives a clean signal mask) and the stages wait for
//! it. Stage output goes straight to stderr: these processes run before and outside the CLI.

use std::ffi::OsString;
use std::os::unix::process::CommandExt as _;
use std::path::Path;

use nix::errno::Errno;
use nix::mount::{MsFlags, mount};
use nix::sched::{CloneFlags, unshare};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, sigprocmask};
use nix::sys::wait::{WaitStatus, waitpid};

use super::{Isolation, Plan};

/// argv[1] of the first helper stage.
pub const OUTER: &str = "__sandbox-outer";
/// argv[1] of the second helper stage (PID 1 of the child's namespace).
const INIT: &str = "__sandbox-init";

/// Why the child's view could not be built. Shown once on stderr; holds paths, never values.
#[derive(Debug, thiserror::Error)]
enum SandboxError {
    #[error("cannot {what}: {}", .errno.desc())]
    Sys { what: String, errno: Errno },
    #[error("cannot {what}: {source}")]
    Io { what: String, source: std::io::Error },
}

fn sys(what: impl Into<String>) -> impl FnOnce(Errno) -> SandboxError {
    let what = what.into();
    move |errno| SandboxError::Sys { what, errno }
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> SandboxError {
    let what = what.into();
    move |source| SandboxError::Io { what, source }
}

/// Exit status when the child could not be started (as `env` and shells use).
const CANNOT_START: i32 = 127;
/// Exit status when isolation was required and is not possible.
const CANNOT_ISOLATE: i32 = 126;

/// If this process was started as a helper stage, runs it and returns its exit status.
pub fn dispatch_helper() -> Option<i32> {
    let mut argv = std::env::args_os().skip(1);
    let stage = argv.next()?;
    let outer = match stage.to_str()? {
        OUTER => true,
        INIT => false,
        _ => return None,
    };
    let rest: Vec<OsString> = argv.collect();
    let Some((plan, program, args)) = parse(&rest) else {
        eprintln!("error: {} is internal to `aivault run`", stage.to_string_lossy());
        return Some(2);
    };
    Some(if outer { outer_stage(&plan, program, args) } else { init_stage(&plan, program, args) })
}

fn parse(rest: &[OsString]) -> Option<(Plan, &OsString, &[OsString])> {
    let (json, rest) = rest.split_first()?;
    let plan: Plan = serde_json::from_str(json.to_str()?).ok()?;
    let (program, args) = rest.split_first()?;
    Some((plan, program, args))
}

fn outer_stage(plan: &Plan, program: &OsString, args: &[OsString]) -> i32 {
    prepare_stage();
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => return unisolated(plan, program, args, &format!("cannot find this program: {e}")),
    };
    let mut flags = CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWPID;
    if plan.network.is_some() {
        flags |= CloneFlags::CLONE_NEWNET;
    }
    if let Err(e) = unshare(flags) {
        return unisolated(plan, program, args, &format!("user namespaces are not available: {}", e.desc()));
    }
    if let Err(e) = map_ids(0, plan.uid, 0, plan.gid) {
        // Half inside a namespace with no identity: never run the agent like this.
        eprintln!("error: cannot isolate the agent from the vault: {e}");
        return CANNOT_ISOLATE;
    }
    let Ok(json) = serde_json::to_string(plan) else { return CANNOT_ISOLATE };
    match std::process::Command::new(exe).arg(INIT).arg(json).arg(program).args(args).status() {
        Ok(status) => exit_code(status),
        Err(e) => {
            eprintln!("error: cannot start the sandbox: {e}");
            CANNOT_ISOLATE
        }
    }
}

fn init_stage(plan: &Plan, program: &OsString, args: &[OsString]) -> i32 {
    prepare_stage();
    if let Err(e) = build_view(plan) {
        return unisolated(plan, program, args, &e.to_string());
    }
    if plan.network.is_some() {
        if let Err(e) = super::net::loopback_up() {
            return unisolated(plan, program, args, &format!("cannot bring up loopback in the network namespace: {e}"));
        }
    }
    if let Err(e) = unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS) {
        return unisolated(plan, program, args, &format!("cannot lock the mounts: {}", e.desc()));
    }
    if let Err(e) = map_ids(plan.uid, 0, plan.gid, 0) {
        eprintln!("error: cannot isolate the agent from the vault: {e}");
        return CANNOT_ISOLATE;
    }
    // Threads only now: unshare(CLONE_NEWUSER) above needs a single-threaded process.
    if let Some(net) = &plan.network {
        if let Err(e) = super::net::relay_inside(net) {
            eprintln!("error: cannot relay 127.0.0.1:{} to the proxy inside the network namespace: {e}", net.port);
            return CANNOT_ISOLATE;
        }
    }
    let child = match std::process::Command::new(program).args(args).spawn() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: cannot start {}: {e}", program.to_string_lossy());
            return CANNOT_START;
        }
    };
    reap_until(child.id())
}

/// PID 1 of a namespace inherits every orphan: reap them all, return the child's status.
fn reap_until(child: u32) -> i32 {
    loop {
        match waitpid(None, None) {
            Ok(WaitStatus::Exited(pid, code)) if pid.as_raw() as u32 == child => return code,
            Ok(WaitStatus::Signaled(pid, sig, _)) if pid.as_raw() as u32 == child => return 128 + sig as i32,
            Ok(_) | Err(Errno::EINTR) => {}
            Err(_) => return 1,
        }
    }
}

/// The child's view of the filesystem: private mounts, its own `/proc`, hidden directories.
fn build_view(plan: &Plan) -> Result<(), SandboxError> {
    let none: Option<&str> = None;
    mount(none, "/", none, MsFlags::MS_REC | MsFlags::MS_PRIVATE, none).map_err(sys("make mounts private"))?;
    let quiet = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount(Some("proc"), "/proc", Some("proc"), quiet, none).map_err(sys("mount a private /proc"))?;
    for dir in &plan.hide {
        hide_dir(dir, &plan.keep, quiet)?;
    }
    let cwd = plan.cwd.as_deref().filter(|c| nix::unistd::chdir(*c).is_ok());
    if cwd.is_none() {
        nix::unistd::chdir("/").map_err(sys("change directory"))?;
    }
    Ok(())
}

/// Replaces `dir` by a read-only tmpfs that holds only the files named in `keep`.
fn hide_dir(dir: &Path, keep: &[String], quiet: MsFlags) -> Result<(), SandboxError> {
    let kept: Vec<(&String, Vec<u8>)> =
        keep.iter().filter_map(|n| Some((n, std::fs::read(dir.join(n)).ok()?))).collect();
    let what = dir.display();
    mount(Some("tmpfs"), dir, Some("tmpfs"), quiet, Some("mode=0755,size=16m")).map_err(sys(format!("hide {what}")))?;
    for (name, bytes) in kept {
        std::fs::write(dir.join(name), bytes).map_err(io(format!("populate {what}")))?;
    }
    let none: Option<&str> = None;
    mount(none, dir, none, MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | quiet, none)
        .map_err(sys(format!("make {what} read-only")))
}

/// Maps one uid and gid into the user namespace just entered.
fn map_ids(inside_uid: u32, outside_uid: u32, inside_gid: u32, outside_gid: u32) -> Result<(), SandboxError> {
    let write = |file: &str, text: String| {
        std::fs::write(format!("/proc/self/{file}"), text).map_err(io(format!("write {file}")))
    };
    match std::fs::write("/proc/self/setgroups", "deny") {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io("write setgroups")(e)),
        _ => {}
    }
    write("uid_map", format!("{inside_uid} {outside_uid} 1\n"))?;
    write("gid_map", format!("{inside_gid} {outside_gid} 1\n"))
}

/// Runs the child without namespace isolation (Auto), or refuses to (Require).
fn unisolated(plan: &Plan, program: &OsString, args: &[OsString], reason: &str) -> i32 {
    if plan.network.is_some() {
        eprintln!(
            "error: --isolate: cannot give the command a network of its own ({reason}); this needs unprivileged \
             user namespaces (sysctl kernel.unprivileged_userns_clone=1, or user.max_user_namespaces > 0)"
        );
        return CANNOT_ISOLATE;
    }
    if plan.isolation == Isolation::Require {
        eprintln!(
            "error: cannot isolate the agent from the vault ({reason}); run the agent as another user \
             (README: Security model) or pass --sandbox auto"
        );
        return CANNOT_ISOLATE;
    }
    eprintln!(
        "aivault: warning: the agent is not isolated from the vault's files here ({reason}); its environment \
         is scrubbed, but a process of your user can read the data directory. Run agents as another user \
         (README: Security model)."
    );
    let e = std::process::Command::new(program).args(args).exec();
    eprintln!("error: cannot start {}: {e}", program.to_string_lossy());
    CANNOT_START
}

fn prepare_stage() {
    let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
    let mut terminal = SigSet::empty();
    terminal.add(Signal::SIGINT);
    terminal.add(Signal::SIGQUIT);
    let _ = sigprocmask(SigmaskHow::SIG_BLOCK, Some(&terminal), None);
}

/// A child's exit status as a shell reports it (128 + signal when killed).
pub fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt as _;
    status.code().or_else(|| status.signal().map(|s| 128 + s)).unwrap_or(1)
}
