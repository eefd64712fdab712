//! `aivault run` keeps a hostile child away from the vault: no aivault variable, no data
//! directory, no master key, no other process's memory or environment; and the proxy still works.

use crate::support::upstream::FakeUpstream;
use crate::support::{SENTINEL, TestVault};

/// The operator's master key, exported in the shell that runs `aivault run`.
const MASTER_KEY: &str = "S0tLS0tLS0tLS0tLS0tLS0tLS0tLS0tLS0tLS0tLS0s=";

/// Everything a hostile agent would try, one `name: result` line each.
const HOSTILE: &str = r#"
home="$1"; secret_id="$2"; aivault="$3"
echo "env-aivault: $(env | grep -c '^AIVAULT_')"
echo "env-key: $(env | grep -c "$4")"
echo "home-listing: $(ls -A "$home" | tr '\n' ' ')"
cat "$home/master.key" >/dev/null 2>&1 && echo "master-key: read" || echo "master-key: refused"
cat "$home/vault.redb" >/dev/null 2>&1 && echo "store: read" || echo "store: refused"
cat /proc/*/environ 2>/dev/null | tr '\0' '\n' | grep -c "$4" | sed 's/^/proc-environ-key: /'
ls /proc/*/root"$home"/vault.redb >/dev/null 2>&1 && echo "proc-root: read" || echo "proc-root: refused"
echo "processes: $(ls -d /proc/[0-9]* | wc -l)"
touch "$home/planted" 2>/dev/null && echo "write: ok" || echo "write: refused"
umount "$home" 2>/dev/null && echo "umount: ok" || echo "umount: refused"
unshare -Ur -m sh -c "umount '$home' 2>/dev/null && ls -A '$home'" | grep -q vault.redb && echo "nested-umount: ok" || echo "nested-umount: refused"
"$aivault" --home "$home" credential create evil --provider evil --secret-ref "vault:secret:$secret_id" \
  --auth header --host evil.example.net >/dev/null 2>&1 && echo "cli: ok" || echo "cli: refused"
echo "proxied: $(curl -sS --max-time 20 https://api.example.com/v1/users)"
"#;

/// A vault sealed under an exported master key, with one header credential for api.example.com.
fn hostile_vault() -> (TestVault, FakeUpstream, String) {
    let up = FakeUpstream::start();
    let v = TestVault::new().with_env("AIVAULT_MASTER_KEY", MASTER_KEY);
    let id = v.secret("MY_CUSTOM_KEY", SENTINEL, &[]);
    let secret_ref = format!("vault:secret:{id}");
    v.ok(&["credential", "create", "my-api", "--provider", "my-api", "--auth", "header", "--host", "api.example.com"]
        .into_iter()
        .chain(["--secret-ref", secret_ref.as_str()])
        .collect::<Vec<_>>());
    v.ok(&[
        "capability",
        "create",
        "my-api/users",
        "--provider",
        "my-api",
        "--credential",
        "my-api",
        "--method",
        "GET",
        "--path",
        "/v1/users",
    ]);
    let v = v
        .with_env("AIVAULT_UPSTREAM_CA", up.ca_path.to_str().unwrap())
        .with_env("AIVAULT_RESOLVE", &up.resolve("api.example.com"));
    (v, up, id)
}

fn lines(out: &str) -> std::collections::BTreeMap<String, String> {
    out.lines().filter_map(|l| l.split_once(": ")).map(|(k, v)| (k.to_owned(), v.trim().to_owned())).collect()
}

fn run_hostile(
    v: &TestVault,
    id: &str,
    extra: &[&str],
) -> (std::process::Output, std::collections::BTreeMap<String, String>) {
    let home = v.home().display().to_string();
    let bin = assert_cmd::cargo::cargo_bin("aivault").display().to_string();
    let mut args = vec!["run"];
    args.extend_from_slice(extra);
    args.extend(["--", "sh", "-c", HOSTILE, "hostile", &home, id, &bin, MASTER_KEY]);
    let out = v.cmd().args(&args).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    (out, lines(&stdout))
}

#[test]
fn a_hostile_child_cannot_reach_the_vault() {
    let (v, up, id) = hostile_vault();
    let before = v.state();
    let (out, got) = run_hostile(&v, &id, &["--sandbox", "require"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for (check, want) in [
        ("env-aivault", "0"),
        ("env-key", "0"),
        ("home-listing", "ca-bundle.pem ca.pem"),
        ("master-key", "refused"),
        ("store", "refused"),
        ("proc-environ-key", "0"),
        ("proc-root", "refused"),
        ("write", "refused"),
        ("umount", "refused"),
        ("nested-umount", "refused"),
        ("cli", "refused"),
    ] {
        assert_eq!(got.get(check).map(String::as_str), Some(want), "{check}: {stdout}\n{stderr}");
    }
    // Only the sandbox's init and the child's own processes are visible.
    let processes: usize = got["processes"].parse().unwrap();
    assert!(processes <= 6, "the child sees {processes} processes: {stdout}");
    // The proxy still serves the child, and the key reached only the upstream.
    assert!(got["proxied"].contains("\"ok\":true"), "{stdout}\n{stderr}");
    assert_eq!(up.last().headers_named("authorization"), vec![format!("Bearer {SENTINEL}")]);
    assert!(!stdout.contains(SENTINEL) && !stderr.contains(SENTINEL));
    assert!(!stdout.contains(MASTER_KEY) && !stderr.contains(MASTER_KEY));
    assert!(!stderr.contains("warning"), "{stderr}");
    assert_eq!(v.state(), before, "the child changed the vault");
    assert!(!v.home().join("planted").exists());
}

#[test]
fn sandbox_off_still_scrubs_the_environment() {
    let (v, _up, id) = hostile_vault();
    let (out, got) = run_hostile(&v, &id, &["--sandbox", "off"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(got["env-aivault"], "0", "{stdout}");
    assert_eq!(got["env-key"], "0", "{stdout}");
    // The operator chose no isolation: the data directory is visible, as documented.
    assert!(got["home-listing"].contains("vault.redb") || v.store_url.is_some(), "{stdout}");
    assert!(got["home-listing"].contains("ca.pem"), "{stdout}");
}

/// Inside a user namespace whose limit forbids nested namespaces, `run` cannot isolate: `auto`
/// warns once and runs the child, `require` refuses to start it.
#[test]
fn where_namespaces_are_refused_auto_warns_and_require_refuses() {
    let (v, _up, _) = hostile_vault();
    let limited = |mode: &str, script: &str| {
        let bin = assert_cmd::cargo::cargo_bin("aivault").display().to_string();
        let inner = format!(
            "echo 0 > /proc/sys/user/max_user_namespaces && exec {bin} run --sandbox {mode} -- sh -c '{script}'"
        );
        let mut c = v.std_cmd();
        c.env("PATH", std::env::var("PATH").unwrap_or_default());
        let mut cmd = std::process::Command::new("unshare");
        cmd.args(["--user", "--map-root-user", "sh", "-c", &inner]);
        cmd.env_clear().envs(c.get_envs().filter_map(|(k, v)| Some((k, v?))));
        cmd.output().unwrap()
    };
    let out = limited("auto", "env | grep -c ^AIVAULT_; exit 5");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "0");
    assert_eq!(stderr.matches("warning").count(), 1, "{stderr}");
    assert!(stderr.contains("Security model"), "{stderr}");

    let out = limited("require", "echo started");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(126), "{stderr}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("started"));
    assert!(stderr.starts_with("error: cannot isolate the agent from the vault"), "{stderr}");
}

/// SDKs get a placeholder key for each provider the agent can use; real keys exported in the
/// operator's shell do not reach the agent.
#[test]
fn run_sets_placeholders_and_removes_inherited_real_keys() {
    let up = FakeUpstream::start();
    let v = TestVault::new()
        .with_env("OPENAI_API_KEY", "sk-real-from-the-shell")
        .with_env("ANTHROPIC_API_KEY", "sk-ant-real-from-the-shell");
    v.ok(&["secrets", "create", "--name", "OPENAI_API_KEY", "--value", SENTINEL]);
    let v = v
        .with_env("AIVAULT_UPSTREAM_CA", up.ca_path.to_str().unwrap())
        .with_env("AIVAULT_RESOLVE", &up.resolve("api.openai.com"));
    let py = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools/venv/bin/python");
    let script = r#"
import os
from openai import OpenAI
print("openai-var", os.environ.get("OPENAI_API_KEY"))
print("anthropic-var", os.environ.get("ANTHROPIC_API_KEY"))
raw = OpenAI().models.with_raw_response.list()
print("status", raw.status_code)
"#;
    let out = v.cmd().args(["run", "--", py.to_str().unwrap(), "-c", script]).output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("openai-var aivault-placeholder"), "{stdout}");
    assert!(stdout.contains("anthropic-var None"), "{stdout}");
    assert!(stdout.contains("status 200"), "{stdout}");
    assert_eq!(stderr.matches("removed").count(), 1, "{stderr}");
    assert!(stderr.contains("ANTHROPIC_API_KEY") && stderr.contains("OPENAI_API_KEY"), "{stderr}");
    assert!(!stdout.contains("real-from-the-shell") && !stderr.contains("real-from-the-shell"));
    assert_eq!(up.last().headers_named("authorization"), vec![format!("Bearer {SENTINEL}")]);
}
