//! Proposals end to end without a browser: an agent asks at https://aivault.local through the
//! proxy with curl, a person decides with the CLI (and with plain HTTP against the console for
//! the link, CSRF and origin rules); the agent's next request carries the new credential.

use crate::proxy_curl::{curl, proxy_args};
use crate::support::upstream::FakeUpstream;
use crate::support::{ProxyProc, TestVault, eventually, run_client};

pub const ASK_URL: &str = "https://aivault.local/v1/proposals";

/// A vault whose registry knows OpenAI (no secret yet), two agents, and a proxy with a console.
pub struct World {
    pub v: TestVault,
    pub up: FakeUpstream,
    pub token: String,
    pub other: String,
    pub p: ProxyProc,
}

pub fn world() -> World {
    let up = FakeUpstream::start();
    let v = TestVault::new();
    let token = v.agent("bot", &["--workspace-id", "acme"]);
    let other = v.agent("intruder", &["--workspace-id", "acme"]);
    let args = proxy_args(&up, &["api.openai.com", "api-staging.example.com", "auth.example.com"]);
    let p = v.proxy(&args.iter().map(String::as_str).collect::<Vec<_>>());
    World { v, up, token, other, p }
}

impl World {
    /// Sends `method url` as `token` through the proxy; returns (HTTP status, body).
    pub fn agent_call(&self, token: &str, method: &str, url: &str, body: Option<&str>) -> (u16, String) {
        let mut args = vec!["-X", method, "-w", "\n%{http_code}", url];
        if let Some(b) = body {
            args.extend(["-H", "content-type: application/json", "--data-binary", b]);
        }
        let (code, out, err) = curl(&self.p.url(token), &self.v.ca_path(), &args);
        if code != 0 {
            // A refused CONNECT: curl reports the tunnel's status on stderr.
            return (0, err);
        }
        let (body, status) = out.rsplit_once('\n').unwrap();
        (status.parse().unwrap(), body.to_owned())
    }

    pub fn ask(&self, body: &str) -> (u16, serde_json::Value) {
        let (status, text) = self.agent_call(&self.token, "POST", ASK_URL, Some(body));
        (status, serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}")))
    }

    pub fn status_of(&self, token: &str, id: &str) -> (u16, serde_json::Value) {
        let (status, text) = self.agent_call(token, "GET", &format!("{ASK_URL}/{id}"), None);
        (status, serde_json::from_str(&text).unwrap())
    }

    /// An OpenAI call as the agent: (status, the Authorization the upstream saw).
    pub fn openai(&self) -> (u16, Option<String>) {
        let before = self.up.requests().len();
        let (status, _) = self.agent_call(&self.token, "GET", "https://api.openai.com/v1/responses/r1", None);
        let seen = self.up.requests();
        let auth =
            (seen.len() > before).then(|| seen.last().unwrap().header("authorization").map(str::to_owned)).flatten();
        (status, auth)
    }

    /// A fresh one-time review link.
    pub fn link(&self, id: &str) -> String {
        self.v.json(&["proposal", "link", id])["review_url"].as_str().expect("review_url").to_owned()
    }
}

pub const OPENAI_SLOT: &str = r#"{"credentials": [{"action": "set", "key": "OPENAI_API_KEY", "description": "OpenAI API key",
    "obtain": "https://platform.openai.com/api-keys", "obtain_instructions": "Create a project key with read access"}],
    "message": "I need to read responses"}"#;

#[test]
fn an_agent_asks_and_the_cli_approves_into_its_scope() {
    let w = world();
    let (status, _) = w.openai();
    assert_eq!(status, 403, "no_credential before the proposal");
    let (status, created) = w.ask(OPENAI_SLOT);
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["status"], "pending");
    let console = w.p.console.clone().unwrap();
    assert_eq!(created["approval_url"], format!("{console}/proposals/{id}"));
    assert!(w.p.logs().contains(&id), "the proxy log names the proposal for the operator");

    assert_eq!(w.status_of(&w.token, &id), (200, serde_json::json!({"id": id, "status": "pending"})));
    let (status, body) = w.status_of(&w.other, &id);
    assert_eq!(status, 404, "another agent cannot even see it: {body}");
    let listed = w.v.json(&["proposal", "list"]);
    assert_eq!(listed[0]["id"], id.as_str());
    assert_eq!(listed[0]["agent"], "bot");
    assert_eq!(listed[0]["workspace_id"], "acme");

    let (code, err) = w.v.fails(&["proposal", "approve", &id]);
    assert_ne!(code, 0);
    assert!(err.contains("OPENAI_API_KEY") && err.contains("nothing was changed"), "{err}");
    assert_eq!(w.v.json(&["secrets", "list"]).as_array().unwrap().len(), 0, "a refused approval stores nothing");

    let done = w.v.json(&["proposal", "approve", &id, "--value", "OPENAI_API_KEY=sk_test_SENTINEL_cli"]);
    assert_eq!(done["status"], "approved");
    let secrets = w.v.json(&["secrets", "list"]);
    assert_eq!(secrets[0]["name"], "OPENAI_API_KEY");
    assert_eq!(secrets[0]["workspace_id"], "acme", "lands in the agent's scope");
    assert_eq!(secrets[0]["pinned_provider"], "openai", "registry names pin and provision");
    assert_eq!(w.status_of(&w.token, &id).1["status"], "approved");
    eventually("the proxy injects the approved key", || {
        w.openai() == (200, Some("Bearer sk_test_SENTINEL_cli".into()))
    });
    let (code, err) = w.v.fails(&["proposal", "approve", &id, "--value", "OPENAI_API_KEY=again"]);
    assert_ne!(code, 0);
    assert!(err.contains("already approved"), "{err}");

    let kinds: Vec<String> =
        w.v.json(&["audit", "--limit", "50"])
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["kind"].as_str().unwrap().to_owned())
            .collect();
    for k in ["proposal.create", "proposal.approve", "secret.create"] {
        assert!(kinds.iter().any(|x| x == k), "{k} in {kinds:?}");
    }
}

#[test]
fn bad_proposals_are_400_naming_the_field_and_store_nothing() {
    let w = world();
    for (body, field) in [
        ("{not json", "body"),
        (r#"{"credentials": [{"key": "stripe_key"}]}"#, "credentials[0].key"),
        (r#"{"credentials": [{"key": "A"}, {"key": "A"}]}"#, "credentials[1].key"),
        (r#"{"credentials": [{"key": "A", "action": "rename"}]}"#, "credentials[0].action"),
        (r#"{"credentials": [{"key": "A", "type": "ldap"}]}"#, "credentials[0].type"),
        (r#"{"credentials": [{"action": "delete", "key": "NOT_THERE"}]}"#, "credentials[0].key"),
    ] {
        let (status, doc) = w.ask(body);
        assert_eq!(status, 400, "{body}: {doc}");
        assert_eq!(doc["error"], "invalid_proposal");
        assert_eq!(doc["field"], field, "{body}: {doc}");
    }
    let huge = format!(r#"{{"message": "{}", "credentials": [{{"key": "A"}}]}}"#, "x".repeat(70 * 1024));
    let (status, doc) = w.ask(&huge);
    assert_eq!((status, doc["field"].as_str()), (400, Some("body")));
    assert_eq!(w.v.json(&["proposal", "list", "--all"]).as_array().unwrap().len(), 0);
    let (status, _) = w.agent_call(&w.token, "GET", "https://aivault.local/v1/secrets", None);
    assert_eq!(status, 404, "the reserved host serves proposals only");
}

#[test]
fn reject_delete_and_an_agent_supplied_value() {
    let w = world();
    // Reject: nothing stored.
    let (_, p) = w.ask(OPENAI_SLOT);
    let id = p["id"].as_str().unwrap();
    let rejected = w.v.json(&["proposal", "reject", id, "--reason", "not now"]);
    assert_eq!(rejected["status"], "rejected");
    assert_eq!(w.status_of(&w.token, id).1["status"], "rejected");
    assert_eq!(w.v.json(&["secrets", "list"]).as_array().unwrap().len(), 0);

    // The agent supplies the value; the person confirms it.
    let (_, p) = w.ask(r#"{"credentials": [{"key": "OPENAI_API_KEY", "value": "sk_agent_made_SENTINEL"}]}"#);
    let id = p["id"].as_str().unwrap();
    let shown = w.v.ok(&["proposal", "show", id]);
    assert!(shown.contains("agent supplied a value") && !shown.contains("sk_agent_made"), "{shown}");
    w.v.ok(&["proposal", "approve", id]);
    eventually("the agent's own value is injected", || {
        w.openai() == (200, Some("Bearer sk_agent_made_SENTINEL".into()))
    });

    // Delete: the page and CLI warn what stops working; approval removes it.
    let (status, p) = w.ask(r#"{"credentials": [{"action": "delete", "key": "OPENAI_API_KEY"}], "message": "done"}"#);
    assert_eq!(status, 201, "{p}");
    let id = p["id"].as_str().unwrap();
    let shown = w.v.json(&["proposal", "show", id]);
    let warning = shown["credentials"][0]["warnings"][0].as_str().unwrap();
    assert!(warning.contains("credential_unavailable"), "{warning}");
    w.v.ok(&["proposal", "approve", id]);
    assert_eq!(w.v.json(&["secrets", "list"]).as_array().unwrap().len(), 0);
    eventually("the deleted key is no longer injected", || w.openai().0 == 403);
    w.v.assert_not_on_disk("sk_agent_made_SENTINEL");
}

#[test]
fn a_requested_capability_gets_its_own_credential_and_works_after_approval() {
    let w = world();
    let body = r#"{"credentials": [{"key": "ACME_TOKEN", "description": "Acme token"}],
        "capabilities": [{"id": "acme/read", "host": "api-staging.example.com", "methods": ["GET"], "paths": ["/v2/acme"],
                          "secret": "ACME_TOKEN", "auth": {"type": "header", "header_name": "x-acme-key", "value_template": "{{secret}}"}}]}"#;
    let (status, p) = w.ask(body);
    assert_eq!(status, 201, "{p}");
    let id = p["id"].as_str().unwrap();
    let shown = w.v.ok(&["proposal", "show", id]);
    assert!(
        shown.contains("capability acme/read: GET api-staging.example.com /v2/acme (header auth with ACME_TOKEN)"),
        "{shown}"
    );
    let done = w.v.json(&["proposal", "approve", id, "--value", "ACME_TOKEN=acme-SENTINEL-9"]);
    assert_eq!(done["capabilities_created"][0], "acme/read");
    eventually("the requested capability serves", || {
        let before = w.up.requests().len();
        let (status, _) = w.agent_call(&w.token, "GET", "https://api-staging.example.com/v2/acme/x", None);
        status == 200 && w.up.requests().len() > before && w.up.last().header("x-acme-key") == Some("acme-SENTINEL-9")
    });
}

#[test]
fn pending_proposals_per_agent_are_capped() {
    let w = world();
    for i in 0..8 {
        let (status, doc) = w.ask(&format!(r#"{{"credentials": [{{"key": "K{i}"}}]}}"#));
        assert_eq!(status, 201, "{doc}");
    }
    let (status, doc) = w.ask(r#"{"credentials": [{"key": "ONE_MORE"}]}"#);
    assert_eq!((status, doc["error"].as_str()), (429, Some("too_many_proposals")), "{doc}");
}

#[test]
fn agents_under_run_ask_with_proposal_create() {
    let w = world();
    // Outside the data directory: `run` hides that from the agent.
    let file = w.v.home().parent().unwrap().join("ask.json");
    std::fs::write(&file, OPENAI_SLOT).unwrap();
    let mut cmd = w.v.std_cmd();
    cmd.args(["run", "--agent", "bot"])
        .args(proxy_args(&w.up, &["api.openai.com", "api-staging.example.com", "auth.example.com"]));
    cmd.args(["--", env!("CARGO_BIN_EXE_aivault"), "--json", "proposal", "create", "--file"]);
    cmd.arg(&file);
    let (code, out, err) = run_client(&mut cmd);
    assert_eq!(code, 0, "{out}{err}");
    assert!(!err.contains("private proxy"), "run reuses the proxy whose console the agent's link names: {err}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|_| panic!("{out}{err}"));
    assert_eq!(doc["status"], "pending");
    let listed = w.v.json(&["proposal", "list"]);
    assert_eq!(listed[0]["agent"], "bot", "the proposal belongs to the running agent, not the operator");
}

/// Plain HTTP to the console (reqwest-free: curl).
fn console_get(url: &str, jar: &std::path::Path) -> (u16, String) {
    let mut c = std::process::Command::new("curl");
    c.args([
        "-sS",
        "--noproxy",
        "*",
        "-c",
        jar.to_str().unwrap(),
        "-b",
        jar.to_str().unwrap(),
        "-w",
        "\n%{http_code}",
        url,
    ]);
    let (_, out, _) = run_client(&mut c);
    let (body, status) = out.rsplit_once('\n').unwrap();
    (status.parse().unwrap(), body.to_owned())
}

fn console_post(url: &str, jar: &std::path::Path, form: &str, extra: &[&str]) -> (u16, String) {
    let mut c = std::process::Command::new("curl");
    c.args(["-sS", "--noproxy", "*", "-b", jar.to_str().unwrap(), "-w", "\n%{http_code}", "--data", form])
        .args(extra)
        .arg(url);
    let (_, out, _) = run_client(&mut c);
    let (body, status) = out.rsplit_once('\n').unwrap();
    (status.parse().unwrap(), body.to_owned())
}

fn csrf_of(page: &str) -> String {
    page.split("name=\"csrf\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_owned()
}

#[test]
fn console_links_are_one_time_and_forms_need_their_token_and_origin() {
    let w = world();
    let (_, p) = w.ask(OPENAI_SLOT);
    let id = p["id"].as_str().unwrap().to_owned();
    let console = w.p.console.clone().unwrap();
    let jar = w.v.home().join("jar");
    let page_url = format!("{console}/proposals/{id}");
    let (status, page) = console_get(&page_url, &jar);
    assert_eq!(status, 403, "the approval_url alone opens nothing");
    assert!(page.contains(&format!("aivault proposal link {id}")), "{page}");

    let link = w.link(&id);
    let (status, hop) = console_get(&link, &jar);
    assert_eq!(status, 200);
    assert!(hop.contains("http-equiv=\"refresh\""), "{hop}");
    let (status, _) = console_get(&link, &w.v.home().join("jar2"));
    assert_eq!(status, 403, "a replayed link is refused");
    let (status, page) = console_get(&page_url, &jar);
    assert_eq!(status, 200);
    assert!(page.contains("OPENAI_API_KEY") && page.contains("I need to read responses"));
    let csrf = csrf_of(&page);

    let form = "decision=allow&value%3AOPENAI_API_KEY=sk_console_SENTINEL";
    let (status, _) = console_post(&format!("{page_url}/decide"), &jar, &format!("csrf=forged&{form}"), &[]);
    assert_eq!(status, 403, "a forged CSRF token is refused");
    let (status, _) = console_post(
        &format!("{page_url}/decide"),
        &jar,
        &format!("csrf={csrf}&{form}"),
        &["-H", "Origin: http://evil.example"],
    );
    assert_eq!(status, 403, "a cross-origin POST is refused");
    let (status, _) =
        console_post(&format!("{page_url}/decide"), &w.v.home().join("nojar"), &format!("csrf={csrf}&{form}"), &[]);
    assert_eq!(status, 403, "no session, no decision");
    let mut rebound = std::process::Command::new("curl");
    rebound.args([
        "-sS",
        "--noproxy",
        "*",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-H",
        "Host: attacker.example",
        &page_url,
    ]);
    assert_eq!(run_client(&mut rebound).1, "421", "a foreign Host header (DNS rebinding) is refused");
    assert_eq!(w.v.json(&["secrets", "list"]).as_array().unwrap().len(), 0, "none of that stored anything");

    let (status, done) = console_post(&format!("{page_url}/decide"), &jar, &format!("csrf={csrf}&{form}"), &[]);
    assert_eq!(status, 200, "{done}");
    assert!(done.contains("Approved") && !done.contains("sk_console_SENTINEL"), "{done}");
    eventually("the console's approval reaches the proxy", || {
        w.openai() == (200, Some("Bearer sk_console_SENTINEL".into()))
    });
    let (status, after) = console_get(&page_url, &jar);
    assert!(status == 403 && !after.contains("sk_console_SENTINEL"), "the session ended with the decision");

    // Where the value must never appear.
    let audit = w.v.ok(&["--json", "audit", "--limit", "100"]);
    assert!(!audit.contains("sk_console_SENTINEL"));
    assert!(!w.p.logs().contains("sk_console_SENTINEL"));
    w.v.assert_not_on_disk("sk_console_SENTINEL");
}

#[test]
fn the_console_refuses_a_non_loopback_address_unless_named_and_secrets_reveal_is_audited() {
    let v = TestVault::new();
    let (code, err) = v.fails(&["proposal", "show", "prp_000000000000000000000000"]);
    assert_ne!(code, 0);
    assert!(err.contains("not found"), "{err}");
    let id = v.secret("PLAIN", "reveal-me-SENTINEL", &[]);
    assert_eq!(v.ok(&["secrets", "reveal", "--id", &id]).trim(), "reveal-me-SENTINEL");
    let listed = v.json(&["secrets", "list", "--reveal"]);
    assert_eq!(listed[0]["value"], "reveal-me-SENTINEL");
    let reveals =
        v.json(&["audit", "--limit", "20"]).as_array().unwrap().iter().filter(|e| e["kind"] == "secret.reveal").count();
    assert_eq!(reveals, 2, "each reveal is a security event");
    // Only an address named on the command line may be non-loopback.
    let env_only = v.cmd().args(["console"]).env("AIVAULT_CONSOLE_LISTEN", "0.0.0.0:0").output().unwrap();
    assert!(!env_only.status.success());
    let err = String::from_utf8_lossy(&env_only.stderr);
    assert!(err.contains("not a loopback address") && err.contains("--console-listen"), "{err}");
    let mut console = v.std_cmd();
    console.args(["console", "--listen", "0.0.0.0:0"]).stdout(std::process::Stdio::piped());
    let mut child = console.spawn().unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut line).unwrap();
    assert!(line.contains("console on http://127.0.0.1:"), "{line}");
    let _ = child.kill();
    let _ = child.wait();
}
