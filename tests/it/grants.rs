//! Per-agent grants: an agent with grants uses only those capabilities; one without keeps using
//! everything its scope resolves.

use crate::proxy_curl::{curl, proxy_args, setup};
use crate::support::{SENTINEL, eventually};

#[test]
fn an_agent_with_grants_uses_only_those() {
    let (v, up, open_token) = setup();
    v.ok(&["secrets", "create", "--name", "OPENAI_API_KEY", "--value", "sk-openai-real"]);
    let created = v.json(&["agent", "create", "narrow", "--allow", "openai/*"]);
    assert_eq!(created["grants"], serde_json::json!(["openai/*"]));
    let token = created["token"].as_str().unwrap().to_owned();
    let args = proxy_args(&up, &["api.example.com", "api.openai.com"]);
    let p = v.proxy(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let ca = v.ca_path();

    let (code, _, err) = curl(&p.url(&token), &ca, &["-f", "https://api.openai.com/v1/models"]);
    assert_eq!(code, 0, "{err}");
    let (_, out, _) = curl(&p.url(&token), &ca, &["-i", "https://api.example.com/v1/users"]);
    assert!(out.contains(" 403") && out.contains("x-aivault-error: capability_not_granted"), "{out}");
    assert!(!up.requests().iter().any(|r| r.path_and_query == "/v1/users"), "nothing reached the upstream");
    // An agent without grants is unaffected.
    let (code, _, err) = curl(&p.url(&open_token), &ca, &["-f", "https://api.example.com/v1/users"]);
    assert_eq!(code, 0, "{err}");

    let e = v.json(&["explain", "--agent", "narrow", "GET", "https://api.example.com/v1/users"]);
    assert_eq!((e["allowed"].as_bool(), e["code"].as_str()), (Some(false), Some("capability_not_granted")), "{e}");

    v.ok(&["agent", "grant", "narrow", "my-api/users"]);
    eventually("the grant to reach the proxy", || {
        curl(&p.url(&token), &ca, &["-f", "https://api.example.com/v1/users"]).0 == 0
    });
    assert_eq!(up.last().headers_named("authorization"), vec![format!("Bearer {SENTINEL}")]);
    v.ok(&["agent", "ungrant", "narrow", "openai/*"]);
    eventually("the ungrant to reach the proxy", || {
        let (_, out, _) = curl(&p.url(&token), &ca, &["-i", "https://api.openai.com/v1/models"]);
        out.contains("capability_not_granted")
    });
    let list = v.ok(&["agent", "list"]);
    assert!(list.contains("MAY USE") && list.contains("my-api/users") && list.contains("(all)"), "{list}");

    let (code, err) = v.fails(&["agent", "create", "typo", "--allow", "opeani/*"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no such capability or provider"), "{err}");
}

/// Placeholders are inert elsewhere: a placeholder-looking value sent to a host no capability
/// names (tunnelled) reaches it untouched, and a capability that cannot get a credential refuses
/// rather than sending the placeholder.
#[test]
fn placeholders_are_inert_where_nothing_is_injected() {
    let (v, up, token) = setup();
    let mut args = proxy_args(&up, &["api.example.com", "other.example.com"]);
    args.extend(["--unmatched".into(), "tunnel".into()]);
    let p = v.proxy(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let mut c = std::process::Command::new("curl");
    c.args(["-sS", "--max-time", "20", "--proxy", &p.url(&token), "--cacert", up.ca_path.to_str().unwrap()])
        .args(["-H", "Authorization: Bearer aivault-placeholder", "https://other.example.com/v1/anything"])
        .env_remove("HTTPS_PROXY");
    let (code, out, err) = crate::support::run_client(&mut c);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\"ok\":true"), "{out}");
    assert_eq!(up.last().headers_named("authorization"), vec!["Bearer aivault-placeholder"], "passed untouched");
    // A provider capability with no credential never sends the agent's placeholder.
    let before = up.requests().len();
    let (_, out, _) = curl(
        &p.url(&token),
        &v.ca_path(),
        &["-i", "-H", "Authorization: Bearer aivault-placeholder", "https://api.openai.com/v1/models"],
    );
    assert!(
        out.contains("no_credential") || out.contains("host_not_allowed") || out.contains("Could not resolve"),
        "{out}"
    );
    assert_eq!(up.requests().len(), before);
}
