//! Seed 000 (credentials), every example as written.

use crate::support::TestVault;

#[test]
fn seed_000_every_create_example_runs() {
    let v = TestVault::new();
    let plain = format!("vault:secret:{}", v.secret("MY_CUSTOM_KEY", "...", &[]));
    let dd = format!("vault:secret:{}", v.secret("DD_KEYS", r#"{"api_key":"a","app_key":"b"}"#, &[]));
    let shop = format!("vault:secret:{}", v.secret("SHOP_TOKEN", "shpat_x", &[]));
    let spotify = format!(
        "vault:secret:{}",
        v.secret("SPOTIFY_JSON", r#"{"client_id":"c","client_secret":"s","refresh_token":"r"}"#, &[])
    );
    let aws =
        format!("vault:secret:{}", v.secret("AWS_JSON", r#"{"access_key_id":"AKID","secret_access_key":"s"}"#, &[]));
    let examples: Vec<Vec<&str>> = vec![
        vec![
            "credential",
            "create",
            "my-api",
            "--provider",
            "my-api",
            "--secret-ref",
            &plain,
            "--auth",
            "header",
            "--host",
            "api.example.com",
        ],
        vec![
            "credential",
            "create",
            "my-api-2",
            "--provider",
            "my-api",
            "--secret-ref",
            &plain,
            "--auth",
            "header",
            "--header-name",
            "x-api-key",
            "--value-template",
            "{{secret}}",
            "--host",
            "api.example.com",
        ],
        vec![
            "credential",
            "create",
            "my-api-3",
            "--provider",
            "my-api",
            "--secret-ref",
            &plain,
            "--auth",
            "query",
            "--query-param",
            "api_key",
            "--host",
            "api.example.com",
        ],
        vec![
            "credential",
            "create",
            "my-shopify",
            "--provider",
            "shopify",
            "--secret-ref",
            &shop,
            "--host",
            "my-store.myshopify.com",
        ],
        vec![
            "credential",
            "create",
            "my-datadog",
            "--provider",
            "my-datadog",
            "--secret-ref",
            &dd,
            "--auth",
            "multi-header",
            "--auth-header",
            "DD-API-KEY={{api_key}}",
            "--auth-header",
            "DD-APPLICATION-KEY={{app_key}}",
            "--host",
            "api.datadoghq.com",
        ],
        vec![
            "credential",
            "create",
            "my-spotify",
            "--provider",
            "spotify",
            "--secret-ref",
            &spotify,
            "--auth",
            "oauth2",
            "--grant-type",
            "refresh_token",
            "--token-endpoint",
            "https://accounts.spotify.com/api/token",
            "--host",
            "api.spotify.com",
        ],
        vec![
            "credential",
            "create",
            "my-bedrock",
            "--provider",
            "aws-bedrock",
            "--secret-ref",
            &aws,
            "--auth",
            "aws-sigv4",
            "--aws-service",
            "bedrock-runtime",
            "--aws-region",
            "us-east-1",
            "--host",
            "bedrock-runtime.us-east-1.amazonaws.com",
        ],
        vec![
            "credential",
            "create",
            "my-api-staging",
            "--provider",
            "my-api",
            "--secret-ref",
            &plain,
            "--auth",
            "header",
            "--host",
            "api-staging.example.com",
            "--workspace-id",
            "staging",
        ],
    ];
    for args in &examples {
        v.ok(args);
    }
    let list = v.ok(&["credential", "list"]);
    assert!(list.contains("my-shopify") && list.contains("my-store.myshopify.com"), "{list}");
    let verbose: serde_json::Value = serde_json::from_str(&v.ok(&["credential", "list", "-v"])).unwrap();
    let find = |id: &str| verbose.as_array().unwrap().iter().find(|c| c["id"] == id).unwrap().clone();
    assert_eq!(find("my-bedrock")["config"]["aws_sigv4"]["service"], "bedrock");
    assert_eq!(find("my-shopify")["auth"], "header");
    assert_eq!(find("my-api-staging")["workspace_id"], "staging");
    assert_eq!(find("my-datadog")["auth"], "multi-header");
    v.ok(&["credential", "delete", "my-api-3"]);
    assert_eq!(v.json(&["credential", "list"]).as_array().unwrap().len(), examples.len() - 1);
}

#[test]
fn registry_hosts_can_only_narrow_and_auth_is_inherited() {
    let v = TestVault::new();
    let shop = format!("vault:secret:{}", v.secret("SHOP_TOKEN", "shpat_x", &[]));
    let (code, err) =
        v.fails(&["credential", "create", "s", "--provider", "shopify", "--secret-ref", &shop, "--host", "evil.com"]);
    assert_eq!(code, 2);
    assert!(err.contains("outside provider shopify"), "{err}");
    let (_, err) = v.fails(&[
        "credential",
        "create",
        "s",
        "--provider",
        "shopify",
        "--secret-ref",
        &shop,
        "--host",
        "a.b.myshopify.com",
    ]);
    assert!(err.contains("outside"), "{err}");
    let (_, err) =
        v.fails(&["credential", "create", "s", "--provider", "shopify", "--secret-ref", &shop, "--auth", "query"]);
    assert!(err.contains("cannot change it"), "{err}");
    let (_, err) = v.fails(&[
        "credential",
        "create",
        "s",
        "--provider",
        "shopify",
        "--secret-ref",
        &shop,
        "--header-name",
        "x",
        "--host",
        "a.myshopify.com",
    ]);
    assert!(err.contains("compiled in"), "{err}");
}

#[test]
fn credential_templates_need_the_fields_the_secret_provides() {
    let v = TestVault::new();
    let plain = format!("vault:secret:{}", v.secret("PLAIN", "just-a-string", &[]));
    let (_, err) = v.fails(&[
        "credential",
        "create",
        "dd",
        "--provider",
        "dd",
        "--secret-ref",
        &plain,
        "--auth",
        "multi-header",
        "--auth-header",
        "DD-API-KEY={{api_key}}",
        "--host",
        "api.datadoghq.com",
    ]);
    assert!(err.contains("api_key"), "{err}");
}

/// `--secret-ref` takes what `secrets list` shows (a bare id) or a name; Basic takes `user:pass`.
#[test]
fn secret_refs_by_id_or_name_and_basic_user_pass() {
    let up = crate::support::upstream::FakeUpstream::start();
    let v = TestVault::new();
    let id = v.secret("MY_BASIC", "alice:s3cret-SENTINEL", &[]);
    v.ok(&[
        "credential",
        "create",
        "my-basic",
        "--provider",
        "my-basic",
        "--secret-ref",
        &id,
        "--auth",
        "basic",
        "--host",
        "api.example.com",
    ]);
    v.secret("TEAM_KEY", "team-key-1", &["--scope", "workspace", "--workspace-id", "team"]);
    v.ok(&[
        "credential",
        "create",
        "team-cred",
        "--provider",
        "team",
        "--secret-ref",
        "name:TEAM_KEY",
        "--auth",
        "header",
        "--host",
        "api-staging.example.com",
        "--workspace-id",
        "team",
    ]);
    let (code, err) = v.fails(&[
        "credential",
        "create",
        "global-cred",
        "--provider",
        "team",
        "--secret-ref",
        "name:TEAM_KEY",
        "--auth",
        "header",
        "--host",
        "api-staging.example.com",
    ]);
    assert_eq!(code, 3, "a workspace secret is not readable from global: {err}");
    v.ok(&[
        "capability",
        "create",
        "my-basic/all",
        "--provider",
        "my-basic",
        "--credential",
        "my-basic",
        "--method",
        "GET",
        "--path",
        "/v1",
    ]);
    let token = v.agent("basic-agent", &[]);
    let args = crate::proxy_curl::proxy_args(&up, &["api.example.com"]);
    let p = v.proxy(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let (code, _, err) = crate::proxy_curl::curl(&p.url(&token), &v.ca_path(), &["-f", "https://api.example.com/v1/x"]);
    assert_eq!(code, 0, "{err}");
    use base64::Engine as _;
    let want = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("alice:s3cret-SENTINEL"));
    assert_eq!(up.last().headers_named("authorization"), vec![want]);
}
