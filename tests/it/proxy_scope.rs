//! Agent context decides the credential; changes reach a running proxy; revocation cuts open
//! tunnels; `aivault run` wires a child up with nothing else.

use crate::proxy_curl::{curl, proxy_args, setup};
use crate::support::upstream::FakeUpstream;
use crate::support::{SENTINEL, TestVault, eventually, python};

#[test]
fn three_agents_three_scopes() {
    let up = FakeUpstream::start();
    let v = TestVault::new();
    v.ok(&["secrets", "create", "--name", "OPENAI_API_KEY", "--value", "sk-global", "--scope", "global"]);
    v.ok(&[
        "secrets",
        "create",
        "--name",
        "OPENAI_API_KEY",
        "--value",
        "sk-ws",
        "--scope",
        "workspace",
        "--workspace-id",
        "w1",
    ]);
    v.ok(&[
        "secrets",
        "create",
        "--name",
        "OPENAI_API_KEY",
        "--value",
        "sk-group",
        "--scope",
        "group",
        "--workspace-id",
        "w1",
        "--group-id",
        "g1",
    ]);
    let global = v.agent("global-agent", &[]);
    let ws = v.agent("ws-agent", &["--workspace-id", "w1"]);
    let group = v.agent("group-agent", &["--workspace-id", "w1", "--group-id", "g1"]);
    let other = v.agent("other-ws-agent", &["--workspace-id", "w2"]);
    let args = proxy_args(&up, &["api.openai.com"]);
    let p = v.proxy(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let ca = v.ca_path();
    for (token, want) in [(&global, "sk-global"), (&ws, "sk-ws"), (&group, "sk-group"), (&other, "sk-global")] {
        let (code, out, err) =
            curl(&p.url(token), &ca, &["-H", "Authorization: Bearer placeholder", "https://api.openai.com/v1/models"]);
        assert_eq!(code, 0, "{out} {err}");
        assert_eq!(up.last().headers_named("authorization"), vec![format!("Bearer {want}")]);
    }
    p.stop();
    let audit = v.json(&["audit", "--agent", "group-agent"]);
    assert_eq!(audit[0]["credential"], "openai@w1/g1");
    assert_eq!(audit[0]["workspace_id"], "w1");
    assert_eq!(audit[0]["group_id"], "g1");
}

#[test]
fn a_secret_created_while_the_proxy_runs_is_used_by_the_next_request() {
    let (v, up, token) = setup();
    let args = proxy_args(&up, &["api.openai.com"]);
    let p = v.proxy(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let ca = v.ca_path();
    let (code, _, _) = curl(&p.url(&token), &ca, &["-f", "https://api.openai.com/v1/models"]);
    assert_ne!(code, 0, "no OpenAI credential yet");
    let started = std::time::Instant::now();
    v.ok(&["secrets", "create", "--name", "OPENAI_API_KEY", "--value", "sk-live", "--scope", "global"]);
    eventually("the new secret to be used", || {
        let (code, _, _) = curl(&p.url(&token), &ca, &["-f", "https://api.openai.com/v1/models"]);
        code == 0
    });
    assert!(started.elapsed() < std::time::Duration::from_secs(3), "took {:?}", started.elapsed());
    assert_eq!(up.last().headers_named("authorization"), vec!["Bearer sk-live"]);
}

#[test]
fn revocation_reaches_an_open_tunnel() {
    let (v, up, token) = setup();
    let args = proxy_args(&up, &["api.example.com"]);
    let p = v.proxy(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let gate = v.dir.path().join("revoked");
    let script = format!(
        r#"
import os, time, requests
s = requests.Session()
r1 = s.get("https://api.example.com/v1/users/first", timeout=20)
print("first", r1.status_code, flush=True)
deadline = time.time() + 20
while not os.path.exists({gate:?}) and time.time() < deadline:
    time.sleep(0.05)
try:
    r2 = s.get("https://api.example.com/v1/users/second", timeout=20)
    print("second", r2.status_code, r2.headers.get("x-aivault-error"), flush=True)
except requests.exceptions.ProxyError as e:
    # The proxy closed the revoked agent's tunnel; a new CONNECT is refused with 407.
    print("second refused", "407" in str(e), flush=True)
"#,
        gate = gate.display().to_string()
    );
    let mut cmd = python();
    cmd.args(["-c", &script]);
    cmd.env("HTTPS_PROXY", p.url(&token)).env("REQUESTS_CA_BUNDLE", v.ca_path());
    cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    // Revoke only once the first answer is back (a revocation may cut a response in flight).
    let mut first = String::new();
    let mut reader = std::io::BufReader::new(child.stdout.take().unwrap());
    std::io::BufRead::read_line(&mut reader, &mut first).unwrap();
    assert!(first.contains("first 200"), "{first}");
    v.ok(&["agent", "revoke", "ci-agent"]);
    std::thread::sleep(std::time::Duration::from_millis(700));
    std::fs::write(&gate, b"").unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut reader, &mut rest).unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = format!("{first}{rest}");
    assert!(stdout.contains("second refused True"), "{stdout} {}", String::from_utf8_lossy(&out.stderr));
    assert!(!up.requests().iter().any(|r| r.path_and_query == "/v1/users/second"));
}

#[test]
fn run_wires_the_child_and_returns_its_status() {
    let (v, up, _token) = setup();
    let v = v
        .fresh_env()
        .with_env("AIVAULT_UPSTREAM_CA", up.ca_path.to_str().unwrap())
        .with_env("AIVAULT_RESOLVE", &up.resolve("api.example.com"))
        .with_env("SSL_CERT_FILE", "/inherited/should-be-replaced.pem");
    let out = v.ok(&[
        "run",
        "--",
        "curl",
        "-sS",
        "-H",
        "Authorization: Bearer placeholder",
        "https://api.example.com/v1/users",
    ]);
    assert!(out.contains("\"ok\":true"), "{out}");
    assert_eq!(up.last().headers_named("authorization"), vec![format!("Bearer {SENTINEL}")]);

    let env = v.ok(&["run", "--", "env"]);
    let bundle = v.home().join("ca-bundle.pem").display().to_string();
    for k in [
        "SSL_CERT_FILE",
        "REQUESTS_CA_BUNDLE",
        "CURL_CA_BUNDLE",
        "NODE_EXTRA_CA_CERTS",
        "GIT_SSL_CAINFO",
        "AWS_CA_BUNDLE",
        "PIP_CERT",
        "DENO_CERT",
        "CARGO_HTTP_CAINFO",
    ] {
        let lines: Vec<&str> = env.lines().filter(|l| l.starts_with(&format!("{k}="))).collect();
        assert_eq!(lines, vec![format!("{k}={bundle}")], "{k}");
    }
    for k in ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"] {
        let lines: Vec<&str> = env.lines().filter(|l| l.starts_with(&format!("{k}="))).collect();
        assert_eq!(lines.len(), 1, "{k}");
        assert!(lines[0].contains("http://agent:avt_") && lines[0].contains("@127.0.0.1:"), "{k}");
    }
    assert!(env.contains("NODE_USE_ENV_PROXY=1") && env.contains("NO_PROXY=") && env.contains("no_proxy="));
    assert!(!env.contains(SENTINEL));
    let bundle_text = std::fs::read_to_string(&bundle).unwrap();
    assert!(bundle_text.contains(&std::fs::read_to_string(v.home().join("ca.pem")).unwrap()));

    let status = v.cmd().args(["run", "--", "sh", "-c", "exit 7"]).output().unwrap().status;
    assert_eq!(status.code(), Some(7));
    // Sessions end with the child: only setup()'s agent is left in the store.
    assert_eq!(v.json(&["status"])["agents"], 1);
}

#[test]
fn run_uses_a_running_proxy_and_an_agents_context() {
    let up = FakeUpstream::start();
    let v = TestVault::new();
    v.ok(&["secrets", "create", "--name", "OPENAI_API_KEY", "--value", "sk-global"]);
    v.ok(&[
        "secrets",
        "create",
        "--name",
        "OPENAI_API_KEY",
        "--value",
        "sk-team",
        "--scope",
        "workspace",
        "--workspace-id",
        "team",
    ]);
    v.agent("team-bot", &["--workspace-id", "team"]);
    let args = proxy_args(&up, &["api.openai.com"]);
    let p = v.proxy(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let flags: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = |who: &[&str]| {
        let mut a = vec!["run"];
        a.extend_from_slice(who);
        a.extend_from_slice(&flags);
        a.extend(["--", "curl", "-sS", "https://api.openai.com/v1/models"]);
        v.cmd().args(&a).output().unwrap()
    };
    let out = run(&["--agent", "team-bot"]);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("\"ok\":true"), "{stdout} {stderr}");
    assert!(!stderr.contains("private proxy"), "same flags: the running proxy serves it: {stderr}");
    assert_eq!(up.last().headers_named("authorization"), vec!["Bearer sk-team"]);
    let out = run(&["--workspace-id", "other"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"ok\":true"));
    assert_eq!(up.last().headers_named("authorization"), vec!["Bearer sk-global"]);
    // Different flags are never ignored: a private proxy with them serves the command.
    let out = run(&["--agent", "team-bot", "--unmatched", "tunnel"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("starting a private proxy") && stderr.contains("--unmatched"), "{stderr}");
    let out = v.cmd().args(["run", "--", "curl", "-sS", "https://api.openai.com/v1/models"]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("--resolve"), "{}", String::from_utf8_lossy(&out.stderr));
    p.stop();
    let audit = v.json(&["audit", "--agent", "team-bot"]);
    assert!(audit.as_array().unwrap().iter().any(|e| e["kind"] == "proxy.request" && e["workspace_id"] == "team"));
    // run waits for the proxy to know its session instead of knocking until it does: no 407s.
    let all = v.json(&["audit", "--limit", "200"]);
    let knocks = all.as_array().unwrap().iter().filter(|e| e["outcome"] == "proxy_auth_required").count();
    assert_eq!(knocks, 0, "{all:#}");
}
