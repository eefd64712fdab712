//! The approval page in a real browser (Debian's headless Chromium through chromedriver): an
//! agent under `aivault run` is refused, asks, a person allows in the page, and the agent's next
//! request carries the new credential; then Deny, delete, an agent-supplied value, and OAuth by
//! paste and by Connect with a provider preset. Screenshots land in `target/console-screenshots/`.

use std::io::BufRead as _;
use std::path::PathBuf;

use crate::proposals::{OPENAI_SLOT, World, world};
use crate::proxy_curl::proxy_args;
use crate::support::{eventually, python, run_client};

fn shots_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/console-screenshots")
}

/// Runs one browser scenario; returns what the script saw. Screenshots go to `shots_dir()/shots`.
fn drive(scenario: &str, shots: &str, link: &str, args: &[&str]) -> serde_json::Value {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/it/console_browser.py");
    let mut c = python();
    c.arg(script).arg(scenario).arg(link).arg(shots_dir().join(shots)).args(args);
    c.env("HOME", std::env::temp_dir());
    let (code, out, err) = run_client(&mut c);
    assert_eq!(code, 0, "browser scenario {scenario} failed:\n{out}\n{err}");
    serde_json::from_str(out.lines().last().unwrap_or("")).unwrap_or_else(|_| panic!("{out}\n{err}"))
}

fn ask_id(w: &World, body: &str) -> String {
    let (status, doc) = w.ask(body);
    assert_eq!(status, 201, "{doc}");
    doc["id"].as_str().unwrap().to_owned()
}

/// The agent: refused first, asks, polls until approved, then calls again (all under `run`).
const AGENT: &str = r#"
import json, sys, time, requests
url = "https://api.openai.com/v1/responses/r1"
first = requests.get(url)
print(json.dumps({"first": first.status_code, "code": first.headers.get("x-aivault-error")}), flush=True)
asked = requests.post("https://aivault.local/v1/proposals", data=sys.argv[1]).json()
print(json.dumps(asked), flush=True)
for _ in range(600):
    status = requests.get("https://aivault.local/v1/proposals/" + asked["id"]).json()["status"]
    if status != "pending":
        break
    time.sleep(0.1)
again = requests.get(url)
print(json.dumps({"status": status, "again": again.status_code}), flush=True)
"#;

#[test]
fn an_agent_under_run_asks_and_a_person_allows_in_the_browser() {
    let w = world();
    let mut cmd = w.v.std_cmd();
    cmd.args(["run", "--agent", "bot"])
        .args(proxy_args(&w.up, &["api.openai.com", "api-staging.example.com", "auth.example.com"]));
    cmd.arg("--").arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".tools/venv/bin/python"));
    cmd.args(["-c", AGENT, OPENAI_SLOT]);
    let mut agent = cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    let mut lines = std::io::BufReader::new(agent.stdout.take().unwrap()).lines();
    let first: serde_json::Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(first, serde_json::json!({"first": 403, "code": "no_credential"}));
    let asked: serde_json::Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    let id = asked["id"].as_str().unwrap().to_owned();
    assert_eq!(asked["approval_url"], format!("{}/proposals/{id}", w.p.console.as_ref().unwrap()));

    // A half-filled form is refused with the missing slot named, and changes nothing…
    let second = ask_id(&w, r#"{"credentials": [{"key": "FIRST_KEY"}, {"key": "SECOND_KEY"}]}"#);
    let seen = drive("half", "half-filled", &w.link(&second), &["FIRST_KEY=first-SENTINEL"]);
    assert!(seen["refused"].as_str().unwrap().contains("SECOND_KEY"), "{seen}");
    assert!(!seen["refused_html"].as_str().unwrap().contains("first-SENTINEL"), "a typed value is never echoed back");
    assert_eq!(seen["h1"], "Denied");
    assert_eq!(w.v.json(&["proposal", "show", &second])["status"], "rejected");

    // …the full one is stored, and the waiting agent goes on.
    let seen = drive("allow", "new-key", &w.link(&id), &["OPENAI_API_KEY=sk-browser-SENTINEL-1"]);
    assert_eq!(seen["title"], "Review request · aivault");
    assert_eq!(seen["h1"], "Allowed", "{}", seen["html"]);
    assert!(seen["width_390"].as_u64().unwrap() <= 390, "no horizontal scrolling at 390 px: {}", seen["width_390"]);
    let last: serde_json::Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(last, serde_json::json!({"status": "approved", "again": 200}));
    assert!(agent.wait().unwrap().success());
    assert_eq!(w.up.last().header("authorization"), Some("Bearer sk-browser-SENTINEL-1"));
    for html in [&seen["html"], &seen["after_html"]] {
        assert!(!html.as_str().unwrap().contains("sk-browser-SENTINEL-1"), "no value in any page after approval");
    }
    for shot in ["approval-page-1280.png", "approval-page-390.png"] {
        assert!(std::fs::metadata(shots_dir().join("new-key").join(shot)).unwrap().len() > 10_000, "{shot}");
    }
    assert!(!w.p.logs().contains("sk-browser-SENTINEL-1") && !w.p.logs().contains("first-SENTINEL"));
    assert!(!w.v.ok(&["--json", "audit", "--limit", "200"]).contains("SENTINEL-1"));
    w.v.assert_not_on_disk("sk-browser-SENTINEL-1");
}

#[test]
fn deny_delete_and_an_agent_supplied_value_in_the_browser() {
    let w = world();
    let id = ask_id(&w, OPENAI_SLOT);
    assert_eq!(drive("deny", "deny", &w.link(&id), &[])["h1"], "Denied");
    assert_eq!(w.status_of(&w.token, &id).1["status"], "rejected");
    assert_eq!(w.v.json(&["secrets", "list"]).as_array().unwrap().len(), 0, "Deny stores nothing");

    let id = ask_id(
        &w,
        r#"{"credentials": [{"key": "OPENAI_API_KEY", "value": "sk-agent-SENTINEL-2", "description": "made during setup"}]}"#,
    );
    let seen = drive("confirm", "agent-value", &w.link(&id), &["OPENAI_API_KEY"]);
    assert_eq!((seen["masked"].as_bool(), seen["revealed"].as_bool()), (Some(true), Some(true)), "{seen}");
    assert_eq!(seen["shown_value"], "sk-agent-SENTINEL-2", "the person sees what the agent supplied");
    assert_eq!(seen["h1"], "Allowed");
    assert!(!seen["after_html"].as_str().unwrap().contains("sk-agent-SENTINEL-2"));
    eventually("the confirmed value is injected", || w.openai() == (200, Some("Bearer sk-agent-SENTINEL-2".into())));

    let id = ask_id(
        &w,
        r#"{"credentials": [{"action": "delete", "key": "OPENAI_API_KEY"}], "message": "no longer needed"}"#,
    );
    let seen = drive("allow", "delete", &w.link(&id), &[]);
    assert_eq!(seen["h1"], "Allowed");
    assert_eq!(w.v.json(&["secrets", "list"]).as_array().unwrap().len(), 0);
    eventually("the deleted key is gone", || w.openai().0 == 403);
}

const OAUTH_CAP: &str = r#""capabilities": [{"id": "my-oauth/api", "host": "oauth-api.example.com", "methods": ["GET"],
    "paths": ["/oauth-api"], "secret": "MY_OAUTH", "auth": {"type": "oauth2"}}]"#;

fn oauth_world() -> World {
    let mut w = world();
    w.up.oauth.lock().unwrap().refresh_tokens.insert("rt-0".into());
    // The OAuth API host needs mapping too.
    let args = proxy_args(&w.up, &["api.openai.com", "auth.example.com", "oauth-api.example.com"]);
    w.p = w.v.proxy(&args.iter().map(String::as_str).collect::<Vec<_>>());
    w
}

fn oauth_api(w: &World) -> u16 {
    w.agent_call(&w.token, "GET", "https://oauth-api.example.com/oauth-api/me", None).0
}

#[test]
fn an_oauth_slot_by_paste_is_validated_against_the_token_server() {
    let w = oauth_world();
    let body = format!(
        r#"{{"credentials": [{{"key": "MY_OAUTH", "type": "oauth", "description": "Example OAuth",
            "oauth": {{"token_url": "https://auth.example.com/oauth/token"}}}}], {OAUTH_CAP}}}"#
    );
    let id = ask_id(&w, &body);
    assert_eq!(oauth_api(&w), 0, "the host is unknown before approval");
    let seen = drive(
        "paste",
        "oauth-paste",
        &w.link(&id),
        &["MY_OAUTH", "https://auth.example.com/oauth/token", "aivault-client", "client-secret-xyz", "rt-0"],
    );
    assert!(seen["notice"].as_str().unwrap().contains("Tokens checked"), "{seen}");
    assert_eq!(seen["h1"], "Allowed", "{}", seen["html"]);
    assert_eq!(w.up.oauth.lock().unwrap().token_calls, 1, "the pasted refresh token was validated by one refresh");
    eventually("the pasted tokens are used", || oauth_api(&w) == 200);
    assert!(!w.p.logs().contains("rt-0\"") && !w.v.ok(&["--json", "audit"]).contains("client-secret-xyz"));
}

#[test]
fn an_oauth_slot_by_connect_with_a_preset_runs_pkce_in_the_browser() {
    let w = oauth_world();
    let body = format!(
        r#"{{"credentials": [{{"key": "MY_OAUTH", "type": "oauth", "description": "Example OAuth",
            "oauth": {{"authorization_url": "https://auth.example.com/oauth/authorize",
                       "token_url": "https://auth.example.com/oauth/token", "scopes": "read"}}}}], {OAUTH_CAP}}}"#
    );
    let id = ask_id(&w, &body);
    let seen = drive(
        "connect",
        "oauth-connect",
        &w.link(&id),
        &[
            "MY_OAUTH",
            "GitHub",
            "https://auth.example.com/oauth/authorize",
            "https://auth.example.com/oauth/token",
            "aivault-client",
            "client-secret-xyz",
            "auth.example.com",
            &w.up.addr.to_string(),
        ],
    );
    assert_eq!(
        seen["prefilled"],
        serde_json::json!({
            "authorization_url": "https://github.com/login/oauth/authorize",
            "token_url": "https://github.com/login/oauth/access_token",
            "client_auth": "form",
            "scopes": "read",
        }),
        "choosing the GitHub preset prefilled the URLs and the client-auth method"
    );
    assert_eq!(seen["connected"], "Connected", "{seen}");
    assert!(seen["connected_page"].as_str().unwrap().contains("tokens are ready"));
    assert_eq!(seen["h1"], "Allowed", "{}", seen["html"]);
    let form = w.up.oauth.lock().unwrap().last_token_form.clone();
    assert!(form.contains("grant_type=authorization_code") && form.contains("code_verifier="), "{form}");
    eventually("the connected tokens are used", || oauth_api(&w) == 200);
}

#[test]
fn oauth_connect_browser_opens_the_credentials_connect_page() {
    let up = crate::support::upstream::FakeUpstream::start();
    let v = crate::support::TestVault::new();
    let id = v.secret("MY_OAUTH", r#"{"client_id": "old-client"}"#, &[]);
    v.ok(&[
        "credential",
        "create",
        "my-oauth",
        "--provider",
        "my-oauth",
        "--secret-ref",
        &id,
        "--auth",
        "oauth2",
        "--token-endpoint",
        "https://auth.example.com/oauth/token",
        "--host",
        "oauth-api.example.com",
    ]);
    v.ok(&[
        "capability",
        "create",
        "my-oauth/api",
        "--credential",
        "my-oauth",
        "--method",
        "GET",
        "--path",
        "/oauth-api",
    ]);
    let token = v.agent("a", &[]);
    let (code, err) = v.fails(&["oauth", "connect", "my-oauth", "--browser", "--no-browser"]);
    assert!(code != 0 && err.contains("no console is running"), "{err}");
    let args = proxy_args(&up, &["auth.example.com", "oauth-api.example.com"]);
    let p = v.proxy(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let link = v.json(&["oauth", "connect", "my-oauth", "--browser", "--no-browser"])["connect_url"]
        .as_str()
        .unwrap()
        .to_owned();
    let seen = drive(
        "credential",
        "credential-connect",
        &link,
        &[
            "my-oauth",
            "GitHub",
            "https://auth.example.com/oauth/authorize",
            "aivault-client",
            "client-secret-xyz",
            "auth.example.com",
            &up.addr.to_string(),
        ],
    );
    assert_eq!(seen["prefilled"]["authorization_url"], "https://github.com/login/oauth/authorize", "{seen}");
    assert_eq!(seen["prefilled"]["token_url_kept"], true, "the credential's token endpoint cannot be moved");
    assert_eq!(seen["h1"], "Connected", "{}", seen["html"]);
    assert!(seen["html"].as_str().unwrap().contains("are stored"));
    let (code, out, _) =
        crate::proxy_curl::curl(&p.url(&token), &v.ca_path(), &["-i", "https://oauth-api.example.com/oauth-api/me"]);
    assert!(code == 0 && out.contains(" 200"), "{out}");
    assert_eq!(up.oauth.lock().unwrap().token_calls, 1, "only the code exchange");
    let kinds = v.ok(&["--json", "audit", "--limit", "20"]);
    assert!(kinds.contains("connected with PKCE in the console") && !kinds.contains("client-secret-xyz"), "{kinds}");
}
