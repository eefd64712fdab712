//! The README blocks run verbatim (the quickstart brings its own stand-in upstream).

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
    let v = TestVault::new();
    let bin_dir = assert_cmd::cargo::cargo_bin("aivault").parent().unwrap().to_path_buf();
    // `cargo test` has built the example already; a `cargo` shim runs that build instead of a
    // release build from scratch. Everything else in the block runs as written.
    let example = bin_dir.join("examples").join("echo_upstream");
    assert!(example.exists(), "cargo test builds examples: {}", example.display());
    let shims = v.dir.path().join("shims");
    std::fs::create_dir_all(&shims).unwrap();
    let shim = shims.join("cargo");
    std::fs::write(
        &shim,
        format!(
            "#!/bin/sh\n[ \"$*\" = \"${{*#run --release -q --example echo_upstream -- }}\" ] && {{ echo \"unexpected: cargo $*\" >&2; exit 97; }}\nshift 6\nexec {} \"$@\"\n",
            example.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&shim, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut cmd = std::process::Command::new("bash");
    cmd.args(["-euo", "pipefail", "-c", script]).current_dir(env!("CARGO_MANIFEST_DIR"));
    cmd.env_clear()
        .env("PATH", format!("{}:{}:{}", shims.display(), bin_dir.display(), std::env::var("PATH").unwrap_or_default()))
        .env("HOME", v.dir.path())
        .env("TMPDIR", v.dir.path());
    for (k, val) in &v.env {
        cmd.env(k, val);
    }
    let (code, out, err) = run_client(&mut cmd);
    assert_eq!(code, 0, "README quickstart failed:\n{out}\n{err}");
    assert!(out.contains("Credential auto-provisioned: openai (17 capabilities enabled)"), "{out}");
    assert!(out.contains("the agent holds OPENAI_API_KEY=aivault-placeholder"), "{out}");
    // What the stand-in upstream printed: the real keys arrived.
    assert!(out.contains("echo_upstream received GET /v1/models"), "{out}");
    assert!(out.contains("authorization: Bearer sk-your-key"), "{out}");
    assert!(
        out.contains("echo_upstream received GET /v1/users") && out.contains("authorization: Bearer my-key"),
        "{out}"
    );
    // What the agent saw of the echo: masked.
    let agent_saw: Vec<&str> = out.lines().filter(|l| l.starts_with("{\"headers\"")).collect();
    assert_eq!(agent_saw.len(), 2, "{out}");
    for line in agent_saw {
        assert!(
            line.contains("\"authorization\":\"Bearer *") && !line.contains("sk-your-key") && !line.contains("my-key"),
            "{line}"
        );
    }
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
