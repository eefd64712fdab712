//! Seed 002 (custom providers) management parts, and capability listing.

use crate::support::TestVault;

/// Seed 002, steps 1-3: a secret, a header credential and two capabilities for api.example.com.
pub fn custom_provider(v: &TestVault, value: &str) -> String {
    let id = v.secret("MY_CUSTOM_KEY", value, &["--scope", "global"]);
    let r = format!("vault:secret:{id}");
    v.ok(&[
        "credential",
        "create",
        "my-api",
        "--provider",
        "my-api",
        "--secret-ref",
        &r,
        "--auth",
        "header",
        "--header-name",
        "authorization",
        "--value-template",
        "Bearer {{secret}}",
        "--host",
        "api.example.com",
    ]);
    v.ok(&[
        "capability",
        "create",
        "my-api/users",
        "--provider",
        "my-api",
        "--credential",
        "my-api",
        "--method",
        "GET",
        "--method",
        "POST",
        "--path",
        "/v1/users",
        "--host",
        "api.example.com",
    ]);
    v.ok(&[
        "capability",
        "create",
        "my-api/orders",
        "--provider",
        "my-api",
        "--credential",
        "my-api",
        "--method",
        "GET",
        "--path",
        "/v1/orders",
        "--host",
        "api.example.com",
    ]);
    id
}

#[test]
fn seed_002_steps_and_listing() {
    let v = TestVault::new();
    custom_provider(&v, "...");
    let list = v.json(&["capability", "list"]);
    let users = list.as_array().unwrap().iter().find(|c| c["id"] == "my-api/users").unwrap();
    assert_eq!(users["status"], "ready");
    assert_eq!(users["methods"], serde_json::json!(["GET", "POST"]));
    let openai = list.as_array().unwrap().iter().find(|c| c["id"] == "openai/models").unwrap();
    assert_eq!(openai["status"], "available");
    let human = v.ok(&["capability", "list"]);
    assert!(human.contains("Ready: 2") && !human.contains("Available"), "{human}");
    assert!(human.contains("more are available from the registry") && human.contains("--all"), "{human}");
    let all = v.ok(&["capability", "list", "--all"]);
    assert!(all.contains("Ready: 2") && all.contains("Available"), "{all}");
    // Long method, path and host lists are cut with a count (the AWS host lists made lines ~590
    // columns wide); `--json` and `-v` still show them whole. In a 100-column terminal the full
    // registry's tables fit; piped without COLUMNS, rows are not cut.
    for key in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "OPENAI_API_KEY", "SHOPIFY_ACCESS_TOKEN"] {
        v.ok(&["secrets", "create", "--name", key, "--value", "x"]);
    }
    for args in [&["capability", "list", "--all"][..], &["credential", "list"][..]] {
        let out = v.cmd().args(args).env("COLUMNS", "100").output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let widest = text.lines().map(|l| l.chars().count()).max().unwrap_or(0);
        assert!(widest <= 100, "{args:?} is {widest} columns wide:\n{text}");
        assert!(text.contains(" more"), "{text}");
    }
    let piped = v.ok(&["capability", "list", "--all"]);
    assert!(piped.contains("bedrock-runtime.us-east-1.amazonaws.com +33 more"), "{piped}");
    let d = v.json(&["capability", "describe", "my-api/orders"]);
    assert_eq!(d["example"], "aivault invoke my-api/orders");
    assert_eq!(d["credentials"], serde_json::json!(["my-api (global)"]));
    v.ok(&["capability", "delete", "my-api/orders"]);
    let (code, _) = v.fails(&["capability", "describe", "my-api/orders"]);
    assert_eq!(code, 3);
    let (_, err) = v.fails(&["capability", "delete", "openai/models"]);
    assert!(err.contains("compiled into the registry"), "{err}");
}

#[test]
fn policy_check_on_invoke_says_why() {
    let v = TestVault::new();
    custom_provider(&v, "...");
    assert_eq!(v.json(&["invoke", "my-api/users", "--method", "GET", "--dry-run"])["allowed"], true);
    let (code, err) = v.fails(&["invoke", "my-api/orders", "--method", "POST", "--dry-run"]);
    assert_eq!(code, 5);
    assert!(err.contains("capability_denied") && err.contains("no capability allows POST"), "{err}");
    let (_, err) = v.fails(&["invoke", "my-api/users", "--method", "GET", "--path", "/v1/usersX", "--dry-run"]);
    assert!(err.contains("/v1/usersX"), "{err}");
    let (_, err) = v.fails(&["invoke", "my-api/users", "--method", "GET", "--path", "/v1/users/../admin", "--dry-run"]);
    assert!(err.contains("dot segment"), "{err}");
    let (_, err) = v.fails(&["invoke", "my-api/users", "--dry-run"]);
    assert!(err.contains("pass --method"), "{err}");
    let (code, err) = v.fails(&["invoke", "openai/models", "--dry-run"]);
    assert_eq!(code, 5);
    assert!(err.contains("no_credential") && err.contains("no credential"), "{err}");
}
