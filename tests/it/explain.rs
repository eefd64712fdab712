//! `aivault explain`: the proxy's decision for a request, without sending it, for three agents in
//! three scopes; the same answer the proxy then gives.

use crate::proxy_curl::{curl, proxy_args};
use crate::support::upstream::FakeUpstream;
use crate::support::{SENTINEL, TestVault};

#[test]
fn explain_matches_what_the_proxy_does_for_three_agents_in_three_scopes() {
    let up = FakeUpstream::start();
    let v = TestVault::new();
    v.ok(&["secrets", "create", "--name", "OPENAI_API_KEY", "--value", SENTINEL]);
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
    let tokens = [
        ("global-agent", v.agent("global-agent", &[]), "global", "openai"),
        ("ws-agent", v.agent("ws-agent", &["--workspace-id", "w1"]), "workspace", "openai@w1"),
        ("group-agent", v.agent("group-agent", &["--workspace-id", "w1", "--group-id", "g1"]), "group", "openai@w1/g1"),
    ];
    let url = "https://api.openai.com/v1/models";
    for (agent, _, level, credential) in &tokens {
        let e = v.json(&["explain", "--agent", agent, "GET", url]);
        assert_eq!(e["allowed"], true, "{e}");
        assert_eq!(e["level"], *level, "{e}");
        assert_eq!(e["credential"], *credential, "{e}");
        assert_eq!(e["strategy"], "header", "{e}");
        assert!(e["capability"].as_str().unwrap().starts_with("openai/"), "{e}");
        assert!(e["code"].is_null());
        assert!(e["injects"].as_array().unwrap().iter().any(|h| h == "authorization"), "{e}");
        assert!(!e.to_string().contains(SENTINEL) && !e.to_string().contains("sk-ws"), "never a value: {e}");
    }
    let human = v.ok(&["explain", "--agent", "group-agent", "GET", url]);
    assert!(human.contains("allowed") && human.contains("openai@w1/g1") && human.contains("group level"), "{human}");

    // Refusals carry the proxy's code.
    for (args, code) in [
        (vec!["explain", "GET", "https://evil.example.net/"], "host_not_allowed"),
        (vec!["explain", "DELETE", "https://api.openai.com/v1/models"], "capability_denied"),
        (vec!["explain", "GET", "http://api.openai.com:443/v1/models"], "cleartext_not_allowed"),
        (vec!["explain", "POST", "https://api.anthropic.com/v1/messages"], "no_credential"),
    ] {
        let e = v.json(&args);
        assert_eq!(e["allowed"], false, "{e}");
        assert_eq!(e["code"], code, "{e}");
    }

    // The proxy agrees with each explanation.
    let args = proxy_args(&up, &["api.openai.com"]);
    let p = v.proxy(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let ca = v.ca_path();
    for (_, token, _, _) in &tokens {
        let (code, _, err) = curl(&p.url(token), &ca, &["-f", url]);
        assert_eq!(code, 0, "{err}");
    }
    let seen: Vec<String> = up.requests().iter().map(|r| r.header("authorization").unwrap_or("").to_owned()).collect();
    assert_eq!(seen, vec![format!("Bearer {SENTINEL}"), "Bearer sk-ws".to_owned(), "Bearer sk-group".to_owned()]);
}
