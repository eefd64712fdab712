//! `aivault invoke` through the request pipeline, against the fake upstream.

use crate::support::TestVault;
use crate::support::upstream::FakeUpstream;

#[test]
fn seed_002_invoke_lines_reach_the_upstream_with_the_real_key() {
    let up = FakeUpstream::start();
    let v = TestVault::new()
        .with_env("AIVAULT_UPSTREAM_CA", up.ca_path.to_str().unwrap())
        .with_env("AIVAULT_RESOLVE", &up.resolve("api.example.com"));
    crate::cli_capabilities::custom_provider(&v, "custom-real-key");
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
