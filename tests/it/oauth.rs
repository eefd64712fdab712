//! OAuth2 through the proxy against a fake authorization server on loopback.

use crate::proxy_curl::{curl, proxy_args};
use crate::support::upstream::{FakeUpstream, now_secs};
use crate::support::{TestVault, python, run_client};

const HOSTS: &[&str] = &["auth.example.com", "oauth-api.example.com"];

/// A vault with an OAuth2 credential for oauth-api.example.com whose token document is `doc`.
fn setup(doc: serde_json::Value, extra: &[&str]) -> (TestVault, FakeUpstream, String) {
    let up = FakeUpstream::start();
    up.oauth.lock().unwrap().refresh_tokens.insert("rt-0".into());
    let v = TestVault::new();
    let id = v.secret("MY_OAUTH", &doc.to_string(), &[]);
    let mut args = vec![
        "credential",
        "create",
        "my-oauth",
        "--provider",
        "my-oauth",
        "--secret-ref",
        &format!("vault:secret:{id}"),
        "--auth",
        "oauth2",
        "--token-endpoint",
        "https://auth.example.com/oauth/token",
        "--host",
        "oauth-api.example.com",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect::<Vec<_>>();
    args.extend(extra.iter().map(|s| s.to_string()));
    v.ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    v.ok(&[
        "capability",
        "create",
        "my-oauth/api",
        "--credential",
        "my-oauth",
        "--method",
        "GET",
        "--method",
        "POST",
        "--path",
        "/oauth-api",
    ]);
    let token = v.agent("a", &[]);
    (v, up, token)
}

fn doc(access: Option<&str>, expires_at: Option<u64>) -> serde_json::Value {
    let mut d = serde_json::json!({"client_id": "aivault-client", "client_secret": "client-secret-xyz", "refresh_token": "rt-0"});
    if let Some(a) = access {
        d["access_token"] = a.into();
    }
    if let Some(e) = expires_at {
        d["expires_at"] = e.into();
    }
    d
}

fn start_proxy(v: &TestVault, up: &FakeUpstream) -> crate::support::ProxyProc {
    let args = proxy_args(up, HOSTS);
    v.proxy(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

fn get(v: &TestVault, p: &crate::support::ProxyProc, token: &str, path: &str) -> (i32, String) {
    let (code, out, err) = curl(&p.url(token), &v.ca_path(), &["-i", &format!("https://oauth-api.example.com{path}")]);
    (code, format!("{out}{err}"))
}

#[test]
fn refreshes_when_the_token_is_about_to_expire_and_caches_it() {
    // Expires in 2 minutes: inside the 5-minute window, so the proxy refreshes first.
    let (v, up, token) = setup(doc(Some("at-stale"), Some(now_secs() + 120)), &[]);
    let p = start_proxy(&v, &up);
    let (_, out) = get(&v, &p, &token, "/oauth-api/me");
    assert!(out.contains(" 200"), "{out}");
    let sent = up.last().header("authorization").unwrap().to_owned();
    assert!(sent.starts_with("Bearer at-") && sent != "Bearer at-stale", "{sent}");
    let (_, out) = get(&v, &p, &token, "/oauth-api/me");
    assert!(out.contains(" 200"), "{out}");
    assert_eq!(up.oauth.lock().unwrap().token_calls, 1, "the refreshed token is reused");
    let form = up.oauth.lock().unwrap().last_token_form.clone();
    assert!(form.contains("grant_type=refresh_token") && form.contains("refresh_token=rt-0"), "{form}");
}

#[test]
fn fifty_concurrent_requests_cause_one_refresh() {
    let (v, up, token) = setup(doc(None, None), &[]);
    up.oauth.lock().unwrap().delay_ms = 300;
    let p = start_proxy(&v, &up);
    let script = r#"
import concurrent.futures, requests
def one(i):
    return requests.get(f"https://oauth-api.example.com/oauth-api/item/{i}", timeout=30).status_code
with concurrent.futures.ThreadPoolExecutor(max_workers=50) as pool:
    codes = list(pool.map(one, range(50)))
print(sorted(set(codes)), len(codes))
"#;
    let mut cmd = python();
    cmd.args(["-c", script]).env("HTTPS_PROXY", p.url(&token)).env("REQUESTS_CA_BUNDLE", v.ca_path());
    let (code, out, err) = run_client(&mut cmd);
    assert_eq!(code, 0, "{out} {err}");
    assert_eq!(out.trim(), "[200] 50");
    assert_eq!(up.oauth.lock().unwrap().token_calls, 1, "exactly one refresh for 50 waiting requests");
}

#[test]
fn an_upstream_401_forces_one_refresh_and_one_replay() {
    // The stored token looks valid for hours, but the server no longer accepts it.
    let (v, up, token) = setup(doc(Some("at-revoked"), Some(now_secs() + 7200)), &[]);
    let p = start_proxy(&v, &up);
    let (code, out, _) = curl(
        &p.url(&token),
        &v.ca_path(),
        &["-i", "-X", "POST", "--data-binary", "{\"replay\":true}", "https://oauth-api.example.com/oauth-api/items"],
    );
    assert_eq!(code, 0);
    assert!(out.contains(" 200"), "{out}");
    let calls: Vec<_> = up.requests().into_iter().filter(|r| r.path_and_query == "/oauth-api/items").collect();
    assert_eq!(calls.len(), 2, "one rejected attempt and one replay");
    assert_eq!(calls[0].header("authorization"), Some("Bearer at-revoked"));
    assert_ne!(calls[1].header("authorization"), Some("Bearer at-revoked"));
    assert_eq!(calls[1].body, b"{\"replay\":true}", "the body is replayed intact");
    assert_eq!(up.oauth.lock().unwrap().token_calls, 1);
}

#[test]
fn a_rotated_refresh_token_survives_a_proxy_restart() {
    let (v, up, token) = setup(doc(None, None), &[]);
    up.oauth.lock().unwrap().rotate_refresh_tokens = true;
    let p = start_proxy(&v, &up);
    assert!(get(&v, &p, &token, "/oauth-api/one").1.contains(" 200"));
    p.stop();
    {
        let mut o = up.oauth.lock().unwrap();
        assert!(!o.refresh_tokens.contains("rt-0"), "rt-0 was rotated away");
        o.access_tokens.clear();
    }
    let p = start_proxy(&v, &up);
    let (_, out) = get(&v, &p, &token, "/oauth-api/two");
    assert!(out.contains(" 200"), "the restarted proxy must refresh with the rotated token: {out}");
    assert_eq!(up.oauth.lock().unwrap().token_calls, 2);
    let audit = v.json(&["audit"]);
    assert!(audit.as_array().unwrap().iter().any(|e| e["kind"] == "oauth.tokens"));
    v.assert_not_on_disk("rt-2");
    v.assert_not_on_disk("client-secret-xyz");
}

#[test]
fn refresh_failures_reach_the_agent_with_their_oauth_code() {
    let mut bad = doc(None, None);
    bad["refresh_token"] = "rt-unknown".into();
    let (v, up, token) = setup(bad, &[]);
    let p = start_proxy(&v, &up);
    let (_, out) = get(&v, &p, &token, "/oauth-api/me");
    assert!(out.contains(" 502"), "{out}");
    assert!(out.contains("x-aivault-error: oauth_refresh_failed"), "{out}");
    assert!(out.contains("\"oauth_error\":\"invalid_grant\""), "{out}");
    assert!(!out.contains("rt-unknown") && !out.contains("client-secret-xyz"), "{out}");
    p.stop();
    let audit = v.json(&["audit"]);
    let rec = audit.as_array().unwrap().iter().find(|e| e["outcome"] == "oauth_refresh_failed").expect("audited");
    assert!(rec["detail"].as_str().unwrap().contains("invalid_grant"));
}

#[test]
fn client_credentials_grant_with_form_client_auth() {
    let d = serde_json::json!({"client_id": "aivault-client", "client_secret": "client-secret-xyz"});
    let (v, up, token) =
        setup(d, &["--grant-type", "client_credentials", "--client-auth", "form", "--oauth-scope", "read"]);
    let p = start_proxy(&v, &up);
    assert!(get(&v, &p, &token, "/oauth-api/me").1.contains(" 200"));
    let form = up.oauth.lock().unwrap().last_token_form.clone();
    assert!(
        form.contains("grant_type=client_credentials")
            && form.contains("client_secret=")
            && form.contains("scope=read"),
        "{form}"
    );
}

fn net_args(up: &FakeUpstream) -> Vec<String> {
    vec!["--upstream-ca".into(), up.ca_path.display().to_string(), "--resolve".into(), up.resolve("auth.example.com")]
}

#[test]
fn connect_runs_the_pkce_flow_and_stores_tokens() {
    use std::io::BufRead as _;
    let (v, up, token) =
        setup(serde_json::json!({"client_id": "aivault-client", "client_secret": "client-secret-xyz"}), &[]);
    let mut cmd = v.std_cmd();
    cmd.args([
        "oauth",
        "connect",
        "my-oauth",
        "--authorization-url",
        "https://auth.example.com/oauth/authorize",
        "--no-browser",
        "--timeout",
        "20",
    ]);
    cmd.args(net_args(&up));
    let mut child = cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut url = String::new();
    while !url.starts_with("https://") {
        url.clear();
        assert!(stdout.read_line(&mut url).unwrap() > 0, "connect printed no URL");
    }
    let url = url.trim().to_owned();
    assert!(
        url.contains("code_challenge_method=S256")
            && url.contains("state=")
            && url.contains("redirect_uri=http%3A%2F%2F127.0.0.1"),
        "{url}"
    );
    // The "browser": follow the provider's redirect back to the loopback listener.
    let mut browser = std::process::Command::new("curl");
    browser.args(["-sS", "-L", "--max-time", "20", "--noproxy", "*", "--cacert", up.ca_path.to_str().unwrap()]);
    browser.args(["--connect-to", &format!("auth.example.com:443:{}", up.addr), &url]);
    let (code, page, err) = run_client(&mut browser);
    assert_eq!(code, 0, "{err}");
    assert!(page.contains("aivault is connected"), "{page}");
    let status = child.wait().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    assert!(status.success(), "{rest}");
    assert!(rest.contains("OAuth tokens stored for my-oauth (with a refresh token"), "{rest}");
    let form = up.oauth.lock().unwrap().last_token_form.clone();
    assert!(form.contains("grant_type=authorization_code") && form.contains("code_verifier="), "{form}");
    // The proxy now uses the connected tokens without another refresh.
    let p = start_proxy(&v, &up);
    assert!(get(&v, &p, &token, "/oauth-api/me").1.contains(" 200"));
    assert_eq!(up.oauth.lock().unwrap().token_calls, 1, "only the code exchange");
}

#[test]
fn connect_ignores_a_redirect_with_the_wrong_state_and_keeps_waiting() {
    use std::io::BufRead as _;
    let (v, up, token) =
        setup(serde_json::json!({"client_id": "aivault-client", "client_secret": "client-secret-xyz"}), &[]);
    let mut cmd = v.std_cmd();
    cmd.args([
        "--json",
        "oauth",
        "connect",
        "my-oauth",
        "--authorization-url",
        "https://auth.example.com/oauth/authorize",
        "--no-browser",
        "--timeout",
        "20",
    ]);
    cmd.args(net_args(&up));
    let mut child = cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    // With --json the instructions go to stderr; stdout keeps the one JSON document.
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let (mut url, mut line) = (String::new(), String::new());
    while !line.contains("Waiting for the redirect on ") {
        line.clear();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "connect printed no instructions");
        if line.starts_with("https://") {
            url = line.trim().to_owned();
        }
    }
    let callback = line
        .split("Waiting for the redirect on ")
        .nth(1)
        .unwrap()
        .trim_end_matches(" ...\n")
        .trim_end_matches(" ...")
        .to_owned();
    let (_, page, _) = run_client(std::process::Command::new("curl").args([
        "-sS",
        "--noproxy",
        "*",
        &format!("{callback}?code=stolen&state=forged"),
    ]));
    assert!(page.contains("State mismatch") && page.contains("ignored"), "{page}");
    assert!(child.try_wait().unwrap().is_none(), "one forged redirect does not abort the connect");
    // The real redirect still completes it.
    let mut browser = std::process::Command::new("curl");
    browser.args(["-sS", "-L", "--max-time", "20", "--noproxy", "*", "--cacert", up.ca_path.to_str().unwrap()]);
    browser.args(["--connect-to", &format!("auth.example.com:443:{}", up.addr), &url]);
    let (code, page, err) = run_client(&mut browser);
    assert_eq!(code, 0, "{err}");
    assert!(page.contains("aivault is connected"), "{page}");
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is exactly one JSON document");
    assert_eq!(doc["refresh_token_stored"], true);
    assert_eq!(up.oauth.lock().unwrap().token_calls, 1, "the forged code was never exchanged");
    let p = start_proxy(&v, &up);
    assert!(get(&v, &p, &token, "/oauth-api/me").1.contains(" 200"));
}

#[test]
fn pasting_only_an_access_token_keeps_the_stored_refresh_token() {
    let (v, up, token) = setup(doc(None, None), &[]);
    let access = up.oauth.lock().unwrap().issue_access();
    let mut args = vec!["oauth".to_owned(), "paste".into(), "my-oauth".into(), "--access-token".into(), access];
    args.extend(["--expires-in".into(), "1".into()]);
    let out = v.ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(out.contains("with a refresh token"), "the stored refresh token was kept: {out}");
    // The pasted token expires at once: the proxy refreshes with the kept refresh token.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let p = start_proxy(&v, &up);
    assert!(get(&v, &p, &token, "/oauth-api/me").1.contains(" 200"));
    assert_eq!(up.oauth.lock().unwrap().token_calls, 1, "one refresh with rt-0, no no_refresh_token");
}

#[test]
fn paste_validates_the_refresh_token_first() {
    let (v, up, token) =
        setup(serde_json::json!({"client_id": "aivault-client", "client_secret": "client-secret-xyz"}), &[]);
    let before = v.json(&["secrets", "list"])[0]["version"].clone();
    let mut bad =
        vec!["oauth".to_owned(), "paste".into(), "my-oauth".into(), "--refresh-token".into(), "rt-forged".into()];
    bad.extend(net_args(&up));
    let (code, err) = v.fails(&bad.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, 5, "{err}");
    assert!(err.contains("refusing to store") && err.contains("invalid_grant"), "{err}");
    assert!(!err.contains("rt-forged"));
    assert_eq!(v.json(&["secrets", "list"])[0]["version"], before, "nothing was stored");
    let mut good = vec!["oauth".to_owned(), "paste".into(), "my-oauth".into(), "--refresh-token".into(), "rt-0".into()];
    good.extend(net_args(&up));
    let out = v.ok(&good.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(out.contains("OAuth tokens stored for my-oauth"), "{out}");
    let p = start_proxy(&v, &up);
    assert!(get(&v, &p, &token, "/oauth-api/me").1.contains(" 200"));
    assert_eq!(up.oauth.lock().unwrap().token_calls, 2, "one validation refresh, no refresh by the proxy");
}
