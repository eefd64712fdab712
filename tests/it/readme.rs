//! The README quickstart runs verbatim (with api.example.com pointed at the fake upstream).

use crate::support::upstream::FakeUpstream;
use crate::support::{TestVault, run_client};

#[test]
fn readme_quickstart_runs_as_written() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let block = readme
        .split("<!-- readme-quickstart:start -->")
        .nth(1)
        .and_then(|rest| rest.split("<!-- readme-quickstart:end -->").next())
        .expect("quickstart markers");
    let script = block.trim().trim_start_matches("```bash").trim_end_matches("```");
    let up = FakeUpstream::start();
    let v = TestVault::new();
    let bin_dir = assert_cmd::cargo::cargo_bin("aivault").parent().unwrap().to_path_buf();
    let mut cmd = std::process::Command::new("bash");
    cmd.args(["-euo", "pipefail", "-c", script]);
    cmd.env_clear()
        .env("PATH", format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default()))
        .env("HOME", v.dir.path())
        .env("TMPDIR", v.dir.path())
        .env("AIVAULT_RESOLVE", up.resolve("api.example.com"))
        .env("AIVAULT_UPSTREAM_CA", &up.ca_path);
    let (code, out, err) = run_client(&mut cmd);
    assert_eq!(code, 0, "README quickstart failed:\n{out}\n{err}");
    assert!(out.contains("Credential auto-provisioned: openai (17 capabilities enabled)"), "{out}");
    assert!(out.contains("\"ok\":true"), "{out}");
    assert_eq!(up.last().headers_named("authorization"), vec!["Bearer my-key"]);
    assert!(out.contains("secret.create"), "{out}");
}

#[test]
fn readme_policy_controls_run_as_written() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let block = readme
        .split("<!-- readme-policy:start -->")
        .nth(1)
        .and_then(|rest| rest.split("<!-- readme-policy:end -->").next())
        .expect("policy markers");
    let script = block.trim().trim_start_matches("```bash").trim_end_matches("```");
    let v = TestVault::new();
    let bin_dir = assert_cmd::cargo::cargo_bin("aivault").parent().unwrap().to_path_buf();
    let mut cmd = std::process::Command::new("bash");
    cmd.args(["-euo", "pipefail", "-c", script]);
    cmd.env_clear()
        .env("PATH", format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default()))
        .env("HOME", v.dir.path());
    let (code, out, err) = run_client(&mut cmd);
    assert_eq!(code, 0, "README policy block failed:\n{out}\n{err}");
    assert!(out.contains("Limit set on agent:support-bot: rate 2/s, budget 1000/day"), "{out}");
    assert!(out.contains("agent:support-bot") && out.contains("1000/day"), "{out}");
    assert!(out.contains("allowed: capability openai/"), "{out}");
    assert!(out.contains("\"code\": \"capability_not_granted\""), "{out}");
    assert!(out.contains("No requests are waiting for approval."), "{out}");
    assert!(!out.contains("sk-your-key"), "never a value: {out}");
}

#[test]
fn readme_let_the_agent_ask_runs_as_written() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let block = readme
        .split("<!-- readme-ask:start -->")
        .nth(1)
        .and_then(|rest| rest.split("<!-- readme-ask:end -->").next())
        .expect("ask markers");
    let script = block.trim().trim_start_matches("```bash").trim_end_matches("```");
    let v = TestVault::new();
    let bin_dir = assert_cmd::cargo::cargo_bin("aivault").parent().unwrap().to_path_buf();
    let mut cmd = std::process::Command::new("bash");
    cmd.args(["-euo", "pipefail", "-c", script]).current_dir(v.dir.path());
    cmd.env_clear()
        .env("PATH", format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default()))
        .env("HOME", v.dir.path());
    let (code, out, err) = run_client(&mut cmd);
    assert_eq!(code, 0, "README ask block failed:\n{out}\n{err}");
    assert!(out.contains("\"status\":\"pending\""), "{out}");
    assert!(out.contains("slot OPENAI_API_KEY: set (needs --value)"), "{out}");
    assert!(out.contains("Approved prp_"), "{out}");
    assert!(out.contains("secret set: OPENAI_API_KEY (created)"), "{out}");
    assert!(out.trim_end().ends_with("\"status\":\"approved\"}"), "{out}");
    assert!(!out.contains("sk-your-key") && !err.contains("sk-your-key"), "never a value: {out}{err}");
}
