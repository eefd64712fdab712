//! curl through the proxy: injection, placeholders replaced, the contract's error codes.

use crate::support::upstream::FakeUpstream;
use crate::support::{SENTINEL, TestVault, run_client};

/// A vault with a custom provider on api.example.com and an agent; returns (vault, upstream, token).
pub fn setup() -> (TestVault, FakeUpstream, String) {
    setup_in(TestVault::new())
}

/// `setup` in a given vault (a redb-only one for tests of the file).
pub fn setup_in(v: TestVault) -> (TestVault, FakeUpstream, String) {
    let up = FakeUpstream::start();
    let id = v.secret("MY_CUSTOM_KEY", SENTINEL, &[]);
    v.ok(&[
        "credential",
        "create",
        "my-api",
        "--provider",
        "my-api",
        "--secret-ref",
        &format!("vault:secret:{id}"),
        "--auth",
        "header",
        "--host",
        "api.example.com",
    ]);
    v.ok(&[
        "capability",
        "create",
        "my-api/users",
        "--provider",
        "my-api",
        "--method",
        "GET",
        "--method",
        "POST",
        "--path",
        "/v1/users",
        "--path",
        "/sse",
        "--host",
        "api.example.com",
    ]);
    let token = v.agent("ci-agent", &[]);
    (v, up, token)
}

/// A header credential for the secret named MY_KEY and a capability for GET /v1/users on
/// api.example.com (whatever holds the value: sealed, or an external source).
/// A header credential `name` for `host` (a `localhost:PORT` upstream the guard refuses unless
/// told otherwise) holding the sentinel, and the capability `name/all` (GET anywhere on it).
pub fn serve_sentinel_at(v: &TestVault, name: &str, host: &str) {
    let id = v.secret(&format!("{}_KEY", name.to_ascii_uppercase()), SENTINEL, &[]);
    v.ok(&["credential", "create", name, "--provider", name, "--secret-ref", &id, "--auth", "header", "--host", host]);
    v.ok(&["capability", "create", &format!("{name}/all"), "--credential", name, "--method", "GET", "--path", "/"]);
}

pub fn serve_my_key(v: &TestVault) {
    v.ok(&[
        "credential",
        "create",
        "my-api",
        "--provider",
        "my-api",
        "--secret-ref",
        "name:MY_KEY",
        "--auth",
        "header",
        "--host",
        "api.example.com",
    ]);
    v.ok(&[
        "capability",
        "create",
        "my-api/users",
        "--provider",
        "my-api",
        "--method",
        "GET",
        "--path",
        "/v1/users",
        "--host",
        "api.example.com",
    ]);
}

pub fn proxy_args(up: &FakeUpstream, hosts: &[&str]) -> Vec<String> {
    let mut args = vec!["--upstream-ca".to_owned(), up.ca_path.display().to_string()];
    for h in hosts {
        args.push("--resolve".into());
        args.push(up.resolve(h));
    }
    args
}

pub fn curl(proxy_url: &str, ca: &str, extra: &[&str]) -> (i32, String, String) {
    let mut c = std::process::Command::new("curl");
    c.args(["-sS", "--max-time", "20", "--proxy", proxy_url, "--cacert", ca]).args(extra);
    c.env_remove("HTTPS_PROXY").env_remove("https_proxy").env_remove("NO_PROXY").env_remove("no_proxy");
    run_client(&mut c)
}

#[test]
fn curl_gets_the_real_key_and_the_placeholder_is_gone() {
    let (v, up, token) = setup();
    let args = proxy_args(&up, &["api.example.com"]);
    let p = v.proxy(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let ca = v.ca_path();
    let (code, out, err) = curl(
        &p.url(&token),
        &ca,
        &[
            "-H",
            "Authorization: Bearer sk-placeholder",
            "-H",
            "X-Api-Key: junk",
            "-H",
            "X-Trace: 1",
            "https://api.example.com/v1/users?page=2",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\"ok\":true"), "{out}");
    assert!(!out.contains(SENTINEL));
    let seen = up.last();
    assert_eq!(seen.path_and_query, "/v1/users?page=2");
    assert_eq!(seen.headers_named("authorization"), vec![format!("Bearer {SENTINEL}")]);
    assert!(seen.header("x-api-key").is_none());
    assert!(seen.header("proxy-authorization").is_none());
    assert_eq!(seen.header("x-trace"), Some("1"));
    assert_eq!(seen.authority, "api.example.com");
    assert_eq!(seen.version, "HTTP/2.0", "the upstream offered h2, so the pooled client used it");
    p.stop();
    let audit = v.json(&["audit", "--agent", "ci-agent"]);
    let rec = audit.as_array().unwrap().iter().find(|e| e["kind"] == "proxy.request").expect("request audited");
    assert_eq!(rec["capability"], "my-api/users");
    assert_eq!(rec["credential"], "my-api");
    assert_eq!(rec["status"], 200);
    assert_eq!(rec["path"], "/v1/users");
    assert!(rec["bytes_out"].as_u64().unwrap() > 0);
    assert!(!audit.to_string().contains(SENTINEL));
    assert!(!p_logs_contains_secret(&v));
}

fn p_logs_contains_secret(v: &TestVault) -> bool {
    std::fs::read_dir(v.dir.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".stderr"))
        .any(|e| std::fs::read_to_string(e.path()).unwrap_or_default().contains(SENTINEL))
}

#[test]
fn an_upstream_echo_of_the_credential_is_masked() {
    let (v, up, token) = setup();
    let args = proxy_args(&up, &["api.example.com"]);
    let p = v.proxy(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let (code, out, err) = curl(&p.url(&token), &v.ca_path(), &["-i", "https://api.example.com/v1/users/echo"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        up.last().header("authorization"),
        Some(format!("Bearer {SENTINEL}").as_str()),
        "the upstream got the real key"
    );
    assert!(!out.contains(SENTINEL), "the agent must not see the echoed key: {out}");
    let mask = "*".repeat(SENTINEL.len());
    assert!(out.contains(&format!("you sent: Bearer {mask}")), "{out}");
    assert!(out.to_ascii_lowercase().contains(&format!("x-echo: bearer {mask}")), "{out}");
    // invoke goes through the same pipeline.
    let v2 = v
        .fresh_env()
        .with_env("AIVAULT_UPSTREAM_CA", up.ca_path.to_str().unwrap())
        .with_env("AIVAULT_RESOLVE", &up.resolve("api.example.com"));
    let body = v2.ok(&["invoke", "my-api/users", "--method", "GET", "--path", "/v1/users/echo"]);
    assert!(!body.contains(SENTINEL) && body.contains(&mask), "{body}");
}
