//! Table-driven checks of proposal parsing: every refusal names its field.

use super::*;

fn field_of(body: &str) -> String {
    match parse(body.as_bytes()) {
        Ok(_) => panic!("accepted: {body}"),
        Err(e) => e.field,
    }
}

#[test]
fn refusals_name_the_field() {
    let cases: &[(&str, &str)] = &[
        ("not json", "body"),
        ("[]", "body"),
        ("{}", "credentials"),
        (r#"{"credentials": [{"key": "stripe_key"}]}"#, "credentials[0].key"),
        (r#"{"credentials": [{"key": ""}]}"#, "credentials[0].key"),
        (r#"{"credentials": [{"description": "x"}]}"#, "credentials[0].key"),
        (r#"{"credentials": [{"key": "A"}, {"key": "A"}]}"#, "credentials[1].key"),
        (r#"{"credentials": [{"key": "A", "action": "upsert"}]}"#, "credentials[0].action"),
        (r#"{"credentials": [{"key": "A", "type": "magic"}]}"#, "credentials[0].type"),
        (r#"{"credentials": [{"key": "A", "colour": "red"}]}"#, "credentials[0].colour"),
        (r#"{"credentials": [{"key": "A", "type": "oauth"}]}"#, "credentials[0].oauth"),
        (r#"{"credentials": [{"key": "A", "type": "oauth", "oauth": {}}]}"#, "credentials[0].oauth.token_url"),
        (
            r#"{"credentials": [{"key": "A", "type": "oauth", "oauth": {"token_url": "ftp://x"}}]}"#,
            "credentials[0].oauth.token_url",
        ),
        (r#"{"credentials": [{"key": "A", "obtain": "javascript:alert(1)"}]}"#, "credentials[0].obtain"),
        (r#"{"credentials": [{"key": "A", "value": ""}]}"#, "credentials[0].value"),
        (r#"{"credentials": [{"key": "A", "value": 7}]}"#, "credentials[0].value"),
        (r#"{"credentials": [{"key": "A", "action": "delete", "value": "v"}]}"#, "credentials[0]"),
        (r#"{"credentials": [{"key": "A"}], "extra": 1}"#, "extra"),
        (r#"{"credentials": [{"key": "A"}], "message": 5}"#, "message"),
        (r#"{"capabilities": [{"id": "Acme", "host": "a.test", "secret": "A"}]}"#, "capabilities[0].id"),
        (r#"{"capabilities": [{"id": "acme/read", "secret": "A"}]}"#, "capabilities[0].host"),
        (r#"{"capabilities": [{"id": "acme/read", "host": "a.test"}]}"#, "capabilities[0].secret"),
        (
            r#"{"capabilities": [{"id": "acme/read", "host": "a.test", "secret": "A", "auth": {"type": "sigv5"}}]}"#,
            "capabilities[0].auth.type",
        ),
        (
            r#"{"credentials": [{"key": "A", "action": "delete"}],
                "capabilities": [{"id": "acme/read", "host": "a.test", "secret": "A"}]}"#,
            "capabilities[0].secret",
        ),
        (
            r#"{"credentials": [{"key": "A", "type": "oauth", "oauth": {"token_url": "https://t.test/token"}}],
                "capabilities": [{"id": "acme/read", "host": "a.test", "secret": "A"}]}"#,
            "capabilities[0].auth.type",
        ),
        (r#"{"capabilities": [{"id": "acme/read", "host": "*", "secret": "A"}]}"#, "capabilities[0].hosts[0]"),
    ];
    for (body, field) in cases {
        assert_eq!(field_of(body), *field, "{body}");
    }
}

#[test]
fn seed_examples_parse() {
    let seeds = [
        r#"{"credentials": [{"action": "set", "key": "STRIPE_KEY", "description": "Stripe API key",
            "obtain": "https://dashboard.stripe.com/apikeys",
            "obtain_instructions": "Developers > API Keys > Reveal test key"}]}"#,
        r#"{"credentials": [{"action": "set", "key": "GENERATED_TOKEN", "description": "Token generated during setup",
            "value": "tok_abc123"}]}"#,
        r#"{"credentials": [{"action": "set", "key": "GITHUB", "type": "oauth", "description": "GitHub OAuth",
            "oauth": {"authorization_url": "https://github.com/login/oauth/authorize",
                      "token_url": "https://github.com/login/oauth/access_token", "scopes": "repo user"},
            "obtain_instructions": "Register an OAuth app at github.com/settings/developers"}]}"#,
        r#"{"credentials": [{ "action": "delete", "key": "OLD_API_KEY" }], "message": "Remove unused API key"}"#,
    ];
    let parsed: Vec<Parsed> = seeds.iter().map(|s| parse(s.as_bytes()).unwrap()).collect();
    assert!(parsed[0].slots[0].needs_value());
    assert_eq!(parsed[1].values.len(), 1);
    assert!(parsed[1].slots[0].agent_value && !parsed[1].slots[0].needs_value());
    let oauth = parsed[2].slots[0].oauth.as_ref().unwrap();
    assert_eq!(oauth.scopes, ["repo", "user"]);
    assert!(oauth.authorization_url.is_some());
    assert_eq!(parsed[3].slots[0].action, Action::Delete);
    assert_eq!(parsed[3].message.as_deref(), Some("Remove unused API key"));
}

#[test]
fn a_supplied_value_is_never_in_the_stored_slot_or_an_error() {
    let sentinel = "SENTINEL-proposal-value-93f1";
    let ok = format!(r#"{{"credentials": [{{"key": "A", "value": "{sentinel}"}}]}}"#);
    let p = parse(ok.as_bytes()).unwrap();
    assert!(!serde_json::to_string(&p.slots).unwrap().contains(sentinel));
    assert!(!format!("{:?}", p.values.first().map(|(_, v)| v)).contains(sentinel));
    let refused = format!(r#"{{"credentials": [{{"key": "{sentinel}", "value": "{sentinel}"}}]}}"#);
    let e = parse(refused.as_bytes()).err().unwrap();
    assert_eq!(e.field, "credentials[0].key");
    // The key is echoed (it is a name, not a value), but a value never is.
    let refused = format!(r#"{{"credentials": [{{"key": "A", "type": "oauth", "value": "{sentinel}"}}]}}"#);
    assert!(!parse(refused.as_bytes()).err().unwrap().to_string().contains(sentinel));
}

#[test]
fn size_limits() {
    let big = format!(r#"{{"message": "{}", "credentials": [{{"key": "A"}}]}}"#, "x".repeat(MAX_BODY_BYTES));
    assert_eq!(field_of(&big), "body");
    let many: Vec<String> = (0..=MAX_SLOTS).map(|i| format!(r#"{{"key": "K{i}"}}"#)).collect();
    assert_eq!(field_of(&format!(r#"{{"credentials": [{}]}}"#, many.join(","))), "credentials");
}
