//! Requests the agent shapes to slip past policy: cleartext, path tricks, routing overrides,
//! lowercase methods.

use std::io::{Read as _, Write as _};

use crate::proxy_curl::{curl, proxy_args, setup};
use crate::support::{SENTINEL, header, raw_exchange};

/// A plain TCP server that records every byte anyone sends it.
fn plaintext_upstream() -> (std::net::SocketAddr, std::sync::Arc<std::sync::Mutex<Vec<u8>>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let seen = seen2.clone();
            std::thread::spawn(move || {
                let mut s = stream;
                let _ = s.set_read_timeout(Some(std::time::Duration::from_millis(500)));
                let mut buf = [0u8; 4096];
                if let Ok(n) = s.read(&mut buf) {
                    seen.lock().unwrap().extend_from_slice(&buf[..n]);
                }
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
            });
        }
    });
    (addr, seen)
}

#[test]
fn a_credential_is_never_sent_in_cleartext_unless_the_capability_allows_http() {
    let (v, _up, token) = setup();
    let (plain, seen) = plaintext_upstream();
    let resolve = format!("api.example.com:443:{plain}");
    let resolve80 = format!("api.example.com:80:{plain}");
    let p = v.proxy(&["--resolve", &resolve, "--resolve", &resolve80]);
    for url in ["http://api.example.com:443/v1/users", "http://api.example.com/v1/users"] {
        let req = format!(
            "GET {url} HTTP/1.1\r\nHost: api.example.com\r\nProxy-Authorization: Bearer {token}\r\nConnection: close\r\n\r\n"
        );
        let (status, headers, body) = raw_exchange(p.addr, req.as_bytes());
        assert!(status == 403, "{url}: {status} {body}");
        let code = header(&headers, "x-aivault-error").unwrap_or("");
        assert!(["cleartext_not_allowed", "host_not_allowed"].contains(&code), "{url}: {code} {body}");
        assert!(!body.contains(SENTINEL));
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert!(seen.lock().unwrap().is_empty(), "the plaintext upstream was contacted");

    // The operator can opt a capability in, explicitly.
    v.ok(&[
        "capability",
        "create",
        "my-api/plain",
        "--provider",
        "my-api",
        "--credential",
        "my-api",
        "--method",
        "GET",
        "--path",
        "/v1/plain",
        "--allow-http",
    ]);
    let described = v.json(&["capability", "list"]);
    let plain_cap = described.as_array().unwrap().iter().find(|c| c["id"] == "my-api/plain").unwrap().clone();
    assert_eq!(plain_cap["allow_http"], true);
    crate::support::eventually("the proxy to see the new capability", || {
        let req = format!(
            "GET http://api.example.com:443/v1/plain HTTP/1.1\r\nHost: api.example.com\r\nProxy-Authorization: Bearer {token}\r\nConnection: close\r\n\r\n"
        );
        raw_exchange(p.addr, req.as_bytes()).0 == 200
    });
    let sent = String::from_utf8_lossy(&seen.lock().unwrap()).into_owned();
    assert!(sent.contains(&format!("Bearer {SENTINEL}")), "{sent}");
}

#[test]
fn path_tricks_are_refused_before_matching() {
    let (v, up, token) = setup();
    let args = proxy_args(&up, &["api.example.com"]);
    let p = v.proxy(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let ca = v.ca_path();
    for path in [
        "/v1/users/..;/admin",
        "/v1/users/.;/admin",
        "/v1/users;x=1/../admin",
        "/v1/users/%3b/admin",
        "/v1/users/.../admin",
        "/v1/users/%c0%ae%c0%ae/admin",
        "/v1/users/%e0%80%ae%e0%80%ae/admin",
        "/v1/users/..%5cadmin",
        "/v1/users/%2e%2e/admin",
    ] {
        let url = format!("https://api.example.com{path}");
        let (code, out, err) = curl(&p.url(&token), &ca, &["--path-as-is", "-i", &url]);
        assert_eq!(code, 0, "{path}: {err}");
        assert!(out.contains("x-aivault-error: capability_denied"), "{path}: {out}");
    }
    assert!(up.requests().is_empty(), "a tricked path reached the upstream: {:?}", up.requests());
}

#[test]
fn routing_overrides_are_stripped_and_methods_are_canonical() {
    let (v, up, token) = setup();
    let args = proxy_args(&up, &["api.example.com"]);
    let p = v.proxy(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let mut extra = vec!["-sS".to_owned(), "-X".to_owned(), "get".to_owned()];
    let overrides = [
        "X-HTTP-Method-Override: DELETE",
        "X-HTTP-Method: DELETE",
        "X-Method-Override: DELETE",
        "X-Original-URL: /admin",
        "X-Rewrite-URL: /admin",
        "X-Forwarded-Host: evil.example.net",
        "X-Forwarded-Prefix: /admin",
        "X-Forwarded-Proto: http",
        "Forwarded: host=evil.example.net",
        "X-Trace: kept",
    ];
    for h in overrides {
        extra.push("-H".into());
        extra.push(h.into());
    }
    extra.push("https://api.example.com/v1/users".into());
    let (code, out, err) = curl(&p.url(&token), &v.ca_path(), &extra.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\"ok\":true"), "{out}");
    let seen = up.last();
    assert_eq!(seen.method, "GET", "the method is sent in canonical case");
    for h in overrides.iter().filter(|h| !h.starts_with("X-Trace")) {
        let name = h.split(':').next().unwrap().to_ascii_lowercase();
        assert!(seen.header(&name).is_none(), "{name} reached the upstream");
    }
    assert_eq!(seen.header("x-trace"), Some("kept"));
    assert_eq!(seen.headers_named("authorization"), vec![format!("Bearer {SENTINEL}")]);
}

/// A per-tenant provider (Shopify) never provisions a credential for every tenant: nothing until
/// the store is named, then only that store.
#[test]
fn per_tenant_providers_inject_only_into_the_named_tenant() {
    let up = crate::support::upstream::FakeUpstream::start();
    let v = crate::support::TestVault::new();
    let out = v.ok(&["secrets", "create", "--name", "SHOPIFY_ACCESS_TOKEN", "--value", SENTINEL]);
    assert!(out.contains("No credential provisioned") && out.contains("--host"), "{out}");
    assert!(v.json(&["credential", "list"]).as_array().unwrap().is_empty());
    let id = v.json(&["secrets", "list"])[0]["id"].as_str().unwrap().to_owned();
    v.ok(&["secrets", "delete", "--id", &id]);
    let created = v.json(&[
        "secrets",
        "create",
        "--name",
        "SHOPIFY_ACCESS_TOKEN",
        "--value",
        SENTINEL,
        "--host",
        "my-store.myshopify.com",
    ]);
    assert_eq!(created["provisioned"][0]["credential"], "shopify", "{created}");
    let creds = v.json(&["credential", "list"]);
    assert_eq!(creds[0]["hosts"], serde_json::json!(["my-store.myshopify.com"]), "{creds}");

    let token = v.agent("shop-agent", &[]);
    let args = proxy_args(&up, &["my-store.myshopify.com", "other-store.myshopify.com"]);
    let p = v.proxy(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let ca = v.ca_path();
    let (code, out, err) = curl(&p.url(&token), &ca, &["-sS", "https://my-store.myshopify.com/admin/api/shop.json"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\"ok\":true"), "{out}");
    assert_eq!(up.last().header("x-shopify-access-token"), Some(SENTINEL));
    let before = up.requests().len();
    let (_, out, _) = curl(&p.url(&token), &ca, &["-i", "https://other-store.myshopify.com/admin/api/shop.json"]);
    assert!(out.contains("x-aivault-error: no_credential"), "another tenant gets nothing: {out}");
    assert_eq!(up.requests().len(), before, "nothing reached the other tenant");

    // --host narrows only registry secrets.
    let (code, err) = v.fails(&["secrets", "create", "--name", "MY_KEY", "--value", "x", "--host", "a.example.com"]);
    assert_eq!(code, 2, "{err}");
    let (code, err) = v.fails(&[
        "secrets",
        "create",
        "--name",
        "SHOPIFY_ACCESS_TOKEN",
        "--value",
        "y",
        "--scope",
        "workspace",
        "--workspace-id",
        "w",
        "--host",
        "evil.example.net",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("outside provider shopify"), "{err}");
}

/// A registry credential that injects into a wildcard of tenants says so when it is provisioned.
#[test]
fn wildcard_provisioning_warns_loudly() {
    let v = crate::support::TestVault::new();
    v.ok(&["secrets", "create", "--name", "AWS_ACCESS_KEY_ID", "--value", "AKIAEXAMPLEEXAMPLE"]);
    let out = v.run(&["secrets", "create", "--name", "AWS_SECRET_ACCESS_KEY", "--value", "secret-example-123"]);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("warning:") && stderr.contains("*.s3.amazonaws.com") && stderr.contains("--host"),
        "{stderr}"
    );
    let json = v.json(&[
        "secrets",
        "create",
        "--name",
        "AWS_SECRET_ACCESS_KEY",
        "--value",
        "s2-example-123",
        "--scope",
        "workspace",
        "--workspace-id",
        "w2",
    ]);
    assert!(json["waiting"].as_array().is_some_and(|w| !w.is_empty()), "{json}");
}

/// Seed 000's "Per-tenant host override (Shopify)" lines, as written: the named store gets its
/// token, every other store gets nothing injected.
#[test]
fn seed_000_shopify_lines_run_as_written() {
    let up = crate::support::upstream::FakeUpstream::start();
    let v = crate::support::TestVault::new();
    let id = v.json(&["secrets", "create", "--name", "SHOPIFY_ACCESS_TOKEN", "--value", SENTINEL])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let secret_ref = format!("vault:secret:{id}");
    v.ok(&[
        "credential",
        "create",
        "my-shopify",
        "--provider",
        "shopify",
        "--secret-ref",
        &secret_ref,
        "--host",
        "my-store.myshopify.com",
    ]);
    let token = v.agent("shop-agent", &[]);
    let args = proxy_args(&up, &["my-store.myshopify.com", "other-store.myshopify.com"]);
    let p = v.proxy(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let ca = v.ca_path();
    let (code, out, err) = curl(&p.url(&token), &ca, &["-sS", "https://my-store.myshopify.com/admin/api/shop.json"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\"ok\":true"), "{out}");
    assert_eq!(up.last().header("x-shopify-access-token"), Some(SENTINEL));
    let (_, out, _) = curl(&p.url(&token), &ca, &["-i", "https://other-store.myshopify.com/admin/api/shop.json"]);
    assert!(out.contains("x-aivault-error: no_credential"), "{out}");
    assert_eq!(up.requests().len(), 1);
}
