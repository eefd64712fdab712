//! `aivault env`: a shell that evals its output talks through the proxy with placeholders only.

use crate::proxy_curl::proxy_args;
use crate::support::upstream::FakeUpstream;
use crate::support::{TestVault, run_client};

/// `sh -c SCRIPT` with the vault's environment and the aivault binary on PATH.
fn shell(v: &TestVault, script: &str, extra_env: &[(&str, &str)]) -> (i32, String, String) {
    let bin = assert_cmd::cargo::cargo_bin("aivault");
    let dir = bin.parent().unwrap().display().to_string();
    let mut c = std::process::Command::new("sh");
    c.arg("-c").arg(script).env_clear();
    c.env("PATH", format!("{dir}:{}", std::env::var("PATH").unwrap_or_default()));
    c.env("HOME", v.dir.path()).env("AIVAULT_HOME", v.home());
    for (k, val) in &v.env {
        c.env(k, val);
    }
    for (k, val) in extra_env {
        c.env(k, val);
    }
    run_client(&mut c)
}

#[test]
fn eval_env_wires_a_shell_like_run_and_keeps_real_keys_out() {
    let up = FakeUpstream::start();
    let v = TestVault::new();
    v.ok(&["secrets", "create", "--name", "OPENAI_API_KEY", "--value", "sk-team-vault"]);
    v.agent("team-bot", &[]);
    let args = proxy_args(&up, &["api.openai.com"]);
    let p = v.proxy(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let script = r#"eval "$(aivault env --agent team-bot)" || exit 9
        curl -sS --max-time 20 -H "Authorization: Bearer $OPENAI_API_KEY" https://api.openai.com/v1/models
        echo
        echo "openai=$OPENAI_API_KEY anthropic=${ANTHROPIC_API_KEY-unset}""#;
    let real = [("OPENAI_API_KEY", "sk-real-from-shell"), ("ANTHROPIC_API_KEY", "sk-ant-real-from-shell")];
    let (code, out, err) = shell(&v, script, &real);
    assert_eq!(code, 0, "{out} {err}");
    assert!(out.contains("\"ok\":true"), "{out} {err}");
    assert!(out.contains("openai=aivault-placeholder anthropic=unset"), "{out}");
    assert!(err.contains("ANTHROPIC_API_KEY"), "the removal is said once on stderr: {err}");
    assert_eq!(up.last().headers_named("authorization"), vec!["Bearer sk-team-vault"]);
    for (_, value) in real {
        assert!(!out.contains(value), "{out}");
    }

    // Every format names the same variables; json is one document.
    let doc = v.json(&["env", "--agent", "team-bot"]);
    assert_eq!(doc["proxy"], p.addr.to_string());
    assert_eq!(doc["proxy_running"], true);
    assert_eq!(doc["set"]["OPENAI_API_KEY"], "aivault-placeholder");
    assert_eq!(doc["set"]["NODE_USE_ENV_PROXY"], "1");
    assert!(doc["set"]["HTTPS_PROXY"].as_str().unwrap().contains(&p.addr.to_string()));
    let fish = v.ok(&["env", "--agent", "team-bot", "--format", "fish"]);
    assert!(fish.contains("set -gx HTTPS_PROXY 'http://agent:avt_"), "{fish}");
    let dotenv = v.ok(&["env", "--agent", "team-bot", "--format", "dotenv"]);
    assert!(dotenv.lines().any(|l| l.starts_with("SSL_CERT_FILE='")), "{dotenv}");

    // The session a shell got is an agent of its own, ended by revoking it.
    let session = doc["session"].as_str().unwrap().to_owned();
    v.ok(&["agent", "revoke", &session]);
    let proxy_url = doc["set"]["HTTPS_PROXY"].as_str().unwrap().to_owned();
    crate::support::eventually("the revoked session to be refused", || {
        let (_, out, _) = crate::proxy_curl::curl(
            &proxy_url,
            &v.ca_path(),
            &["-s", "-o", "/dev/null", "-w", "%{http_code}", "https://api.openai.com/v1/models"],
        );
        out.trim() == "407" || out.trim() == "000"
    });
    p.stop();
}

#[test]
fn env_without_a_running_proxy_says_where_to_start_one() {
    let v = TestVault::new();
    let out = v.run(&["env", "--workspace-id", "w1", "--proxy", "127.0.0.1:18999"]);
    assert!(out.status.success());
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(
        stdout.contains("export HTTPS_PROXY='http://agent:avt_") && stdout.contains("@127.0.0.1:18999'"),
        "{stdout}"
    );
    assert!(stderr.contains("aivault proxy --listen 127.0.0.1:18999"), "{stderr}");
}

#[test]
fn run_says_what_was_refused_when_the_command_exits() {
    let (v, up, _) = crate::proxy_curl::setup();
    let args = proxy_args(&up, &["api.openai.com"]);
    let script = "for i in 1 2 3; do curl -s -o /dev/null https://pypi.org/simple/six/; done; \
                  curl -s -o /dev/null https://api.openai.com/v1/models; exit 3";
    // Once with a private (embedded) proxy, once through a running one.
    for running in [false, true] {
        let p = running.then(|| v.proxy(&args.iter().map(String::as_str).collect::<Vec<_>>()));
        let mut a = vec!["run"];
        a.extend(args.iter().map(String::as_str));
        a.extend(["--", "sh", "-c", script]);
        let out = v.run(&a);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "the command's status passes through: {stderr}");
        assert!(stderr.contains("aivault: 4 requests refused during this command:"), "{stderr}");
        assert!(stderr.contains("  host_not_allowed pypi.org ×3 — add a capability"), "{stderr}");
        assert!(stderr.contains("no_credential api.openai.com ×1"), "{stderr}");
        if let Some(p) = p {
            p.stop();
        }
    }
    // A command that was refused nothing says nothing.
    let out = v.run(&["run", "--", "true"]);
    assert!(!String::from_utf8_lossy(&out.stderr).contains("refused"), "{}", String::from_utf8_lossy(&out.stderr));
}
