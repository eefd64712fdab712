//! `aivault invoke` through the request pipeline, against the fake upstream.

use crate::support::TestVault;
use crate::support::upstream::FakeUpstream;

#[test]
fn seed_002_invoke_lines_reach_the_upstream_with_the_real_key() {
    let up = FakeUpstream::start();
    let v = TestVault::new()
        .with_env("AIVAULT_UPSTREAM_CA", up.ca_path.to_str().unwrap())
        .with_env("AIVAULT_RESOLVE", &up.resolve("api.example.com"));
    let id = v.secret("MY_CUSTOM_KEY", "custom-real-key", &["--scope", "global"]);
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
    let body = v.ok(&["invoke", "my-api/users", "--method", "GET"]);
    assert!(body.contains("\"ok\":true"), "{body}");
    let seen = up.last();
    assert_eq!(seen.path_and_query, "/v1/users");
    assert_eq!(seen.header("authorization"), Some("Bearer custom-real-key"));
    let body = v.ok(&["invoke", "my-api/orders", "--method", "GET", "--path", "/v1/orders?status=active"]);
    assert!(body.contains("/v1/orders?status=active"), "{body}");
    v.ok(&[
        "invoke",
        "my-api/users",
        "--method",
        "POST",
        "--header",
        "Authorization: Bearer placeholder",
        "--header",
        "X-Trace: 7",
        "--body",
        "{\"a\":1}",
    ]);
    let seen = up.last();
    assert_eq!(seen.headers_named("authorization"), vec!["Bearer custom-real-key"]);
    assert_eq!(seen.header("x-trace"), Some("7"));
    assert_eq!(seen.body, b"{\"a\":1}");
    let audit = v.json(&["audit", "--capability", "my-api/users"]);
    assert_eq!(audit[0]["kind"], "proxy.request");
    assert_eq!(audit[0]["status"], 200);
    assert!(!audit.to_string().contains("custom-real-key"));
}
