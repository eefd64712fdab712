//! Test harness: a throwaway vault driving the real binary, and a fake HTTPS upstream.

pub mod upstream;

use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;
use serde_json::Value;

/// A sentinel secret value: any test that finds it outside an upstream's received request fails.
pub const SENTINEL: &str = "sk-SENTINEL-7f3a9c1e5b";

/// A vault in a temporary data directory.
pub struct TestVault {
    pub dir: tempfile::TempDir,
    pub env: Vec<(String, String)>,
}

impl TestVault {
    pub fn new() -> TestVault {
        TestVault { dir: tempfile::tempdir().expect("tempdir"), env: Vec::new() }
    }

    pub fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    pub fn with_env(mut self, k: &str, v: &str) -> TestVault {
        self.env.push((k.to_owned(), v.to_owned()));
        self
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::cargo_bin("aivault").expect("binary");
        c.env_clear();
        c.env("PATH", std::env::var("PATH").unwrap_or_default());
        c.env("HOME", self.dir.path());
        c.env("AIVAULT_HOME", self.home());
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    /// Runs `args` (split on whitespace, quotes not supported) and returns the output.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().expect("run aivault")
    }

    /// Runs and asserts success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "aivault {args:?} failed ({:?}):\nstdout: {}\nstderr: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs with `--json` and parses stdout.
    pub fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        let text = self.ok(&all);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("aivault {args:?} --json is not JSON ({e}): {text}"))
    }

    /// Runs, asserts failure with one `error:` line; returns (exit code, stderr).
    pub fn fails(&self, args: &[&str]) -> (i32, String) {
        let out = self.run(args);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            !out.status.success(),
            "aivault {args:?} unexpectedly succeeded: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert!(stderr.starts_with("error: "), "stderr should be one error line: {stderr:?}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "stderr should be one line: {stderr:?}");
        (out.status.code().unwrap_or(-1), stderr)
    }

    /// Creates a secret and returns its id.
    pub fn secret(&self, name: &str, value: &str, extra: &[&str]) -> String {
        let mut args = vec!["secrets", "create", "--name", name, "--value", value];
        args.extend_from_slice(extra);
        self.json(&args)["id"].as_str().expect("id").to_owned()
    }

    /// Everything a command could have changed, for "a failed command changes nothing".
    pub fn state(&self) -> String {
        let mut s = String::new();
        for args in [&["secrets", "list"][..], &["credential", "list"], &["capability", "bindings"]] {
            s.push_str(&self.json(args).to_string());
        }
        s
    }

    /// Asserts no file under the data directory contains `needle`.
    pub fn assert_not_on_disk(&self, needle: &str) {
        assert_not_in_dir(&self.home(), needle);
    }
}

pub fn assert_not_in_dir(dir: &Path, needle: &str) {
    for entry in walk(dir) {
        let bytes = std::fs::read(&entry).unwrap_or_default();
        assert!(
            !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
            "{} contains the secret value",
            entry.display()
        );
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() { out.extend(walk(&p)) } else { out.push(p) }
        }
    }
    out
}
