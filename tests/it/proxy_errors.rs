//! One test per error code in CONTRACT.md: status, JSON body and `x-aivault-error`.

use crate::proxy_curl::{curl, proxy_args, setup};
use crate::support::{SENTINEL, TestVault, header, raw_exchange};

fn connect_req(target: &str, token: Option<&str>) -> Vec<u8> {
    let auth = token.map(|t| format!("Proxy-Authorization: Bearer {t}\r\n")).unwrap_or_default();
    format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n{auth}\r\n").into_bytes()
}

fn assert_error(status: u16, headers: &[(String, String)], body: &str, want_status: u16, code: &str) {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(header(headers, "x-aivault-error"), Some(code), "{headers:?}");
    let json: serde_json::Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {body}"));
    assert_eq!(json["error"], code);
    assert!(json["message"].as_str().is_some_and(|m| !m.is_empty()));
    assert!(!body.contains(SENTINEL));
}

/// `curl -i` through the proxy: (status, headers, body) of the response inside the tunnel.
fn curl_i(url: &str, ca: &str, target: &str) -> (u16, Vec<(String, String)>, String) {
    let (_, out, err) = curl(url, ca, &["-i", target]);
    // curl -i prints the proxy's CONNECT answer first; the response inside the tunnel follows.
    let mut rest = out.as_str();
    let (mut head, mut body) = rest.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no response: {out} {err}"));
    while head.contains("Connection established") || (body.starts_with("HTTP/") && head.starts_with("HTTP/1.1 200")) {
        rest = body;
        (head, body) = rest.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no inner response: {out}"));
    }
    let mut lines = head.lines();
    let status = lines.next().and_then(|l| l.split_whitespace().nth(1)).and_then(|s| s.parse().ok()).unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers, body.to_owned())
}

#[test]
fn proxy_auth_required_407() {
    let (v, up, token) = setup();
    let args = proxy_args(&up, &["api.example.com"]);
    let p = v.proxy(&args.iter().map(String::as_str).collect::<Vec<_>>());
    for t in [None, Some("avt_wrong"), Some("")] {
        let (status, headers, body) = raw_exchange(p.addr, &connect_req("api.example.com:443", t));
        assert_error(status, &headers, &body, 407, "proxy_auth_required");
        assert!(header(&headers, "proxy-authenticate").is_some());
    }
    v.ok(&["agent", "revoke", "ci-agent"]);
    crate::support::eventually("revocation", || {
        raw_exchange(p.addr, &connect_req("api.example.com:443", Some(&token))).0 == 407
    });
}

#[test]
fn host_not_allowed_403() {
    let (v, up, token) = setup();
    let args = proxy_args(&up, &["api.example.com"]);
    let p = v.proxy(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let (status, headers, body) = raw_exchange(p.addr, &connect_req("unknown.example.net:443", Some(&token)));
    assert_error(status, &headers, &body, 403, "host_not_allowed");
    // Plain http:// to a capability host never carries the secret (capabilities mean https unless
    // created for an explicit :80).
    let (status, headers, body) = raw_exchange(
        p.addr,
        format!("GET http://api.example.com/v1/users HTTP/1.1\r\nHost: api.example.com\r\nProxy-Authorization: Bearer {token}\r\n\r\n").as_bytes(),
    );
    assert_error(status, &headers, &body, 403, "host_not_allowed");
    assert!(up.requests().is_empty());
    let (status, headers, body) = raw_exchange(
        p.addr,
        format!("GET http://unknown.example.net/x HTTP/1.1\r\nHost: unknown.example.net\r\nProxy-Authorization: Bearer {token}\r\n\r\n").as_bytes(),
    );
    assert_error(status, &headers, &body, 403, "host_not_allowed");
}

#[test]
fn capability_denied_403() {
    let (v, up, token) = setup();
    let args = proxy_args(&up, &["api.example.com"]);
    let p = v.proxy(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let ca = v.ca_path();
    for target in [
        "https://api.example.com/v1/orders",
        "https://api.example.com/v1/usersX",
        "https://api.example.com/v1/users/%2e%2e/admin",
    ] {
        let (status, headers, body) = curl_i(&p.url(&token), &ca, target);
        assert_error(status, &headers, &body, 403, "capability_denied");
    }
    assert!(up.requests().is_empty(), "nothing may reach the upstream");
    // The operator sees each refusal in the proxy's log, with its reason (never a value).
    let logs = p.logs();
    assert!(logs.contains("refused GET api.example.com for agent ci-agent: 403 capability_denied"), "{logs}");
    assert!(logs.contains("no capability allows GET /v1/orders") && !logs.contains(SENTINEL), "{logs}");
}

#[test]
fn refusal_floods_are_logged_at_most_twenty_lines_a_second() {
    let (v, up, token) = setup();
    let args = proxy_args(&up, &["api.example.com"]);
    let p = v.proxy(&args.iter().map(String::as_str).collect::<Vec<_>>());
    for _ in 0..60 {
        raw_exchange(p.addr, &connect_req("unknown.example.net:443", Some(&token)));
    }
    std::thread::sleep(std::time::Duration::from_millis(1100));
    raw_exchange(p.addr, &connect_req("unknown.example.net:443", Some(&token)));
    let logs = p.logs();
    let lines = logs.matches("refused CONNECT unknown.example.net for agent ci-agent: 403 host_not_allowed").count();
    assert!((2..=41).contains(&lines), "{lines} lines: rate-limited, not one per refusal");
    assert!(logs.contains("more refusals in the last second were not logged"), "{logs}");
}

#[test]
fn no_credential_403() {
    let (v, up, token) = setup();
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
    let args = proxy_args(&up, &["api.openai.com"]);
    let p = v.proxy(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let (status, headers, body) = curl_i(&p.url(&token), &v.ca_path(), "https://api.openai.com/v1/models");
    assert_error(status, &headers, &body, 403, "no_credential");
}

#[test]
fn credential_unavailable_502() {
    let (v, up, token) = setup();
    // An OAuth2 credential whose token document lacks its client_id cannot be used.
    let id = v.secret("OAUTH_JSON", r#"{"refresh_token":"r"}"#, &[]);
    v.ok(&[
        "credential",
        "create",
        "o",
        "--provider",
        "my-oauth",
        "--secret-ref",
        &format!("vault:secret:{id}"),
        "--auth",
        "oauth2",
        "--token-endpoint",
        "https://auth.example.com/token",
        "--host",
        "oauth-api.example.com",
    ]);
    v.ok(&["capability", "create", "my-oauth/all", "--credential", "o", "--method", "GET", "--path", "/"]);
    let args = proxy_args(&up, &["oauth-api.example.com"]);
    let p = v.proxy(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let (status, headers, body) = curl_i(&p.url(&token), &v.ca_path(), "https://oauth-api.example.com/me");
    assert_error(status, &headers, &body, 502, "credential_unavailable");
}

#[test]
fn destination_blocked_403() {
    let v = TestVault::new();
    let id = v.secret("LOCAL_KEY", SENTINEL, &[]);
    v.ok(&[
        "credential",
        "create",
        "local",
        "--provider",
        "local",
        "--secret-ref",
        &format!("vault:secret:{id}"),
        "--auth",
        "header",
        "--host",
        "localhost:9443",
    ]);
    v.ok(&["capability", "create", "local/all", "--credential", "local", "--method", "GET", "--path", "/"]);
    let token = v.agent("a", &[]);
    let p = v.proxy(&[]);
    let (status, headers, body) = curl_i(&p.url(&token), &v.ca_path(), "https://localhost:9443/admin");
    assert_error(status, &headers, &body, 403, "destination_blocked");
}

#[test]
fn upstream_error_502_and_timeout_504() {
    let (v, _up, token) = setup();
    // A port with nothing listening.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    // A listener that accepts and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_addr = silent.local_addr().unwrap();
    let _hold = std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in silent.incoming().take(4).flatten() {
            held.push(s);
        }
        std::thread::sleep(std::time::Duration::from_secs(30));
    });
    let p = v.proxy(&["--resolve", &format!("api.example.com:443:{closed}")]);
    let (status, headers, body) = curl_i(&p.url(&token), &v.ca_path(), "https://api.example.com/v1/users");
    assert_error(status, &headers, &body, 502, "upstream_error");
    drop(p);
    let p = v.proxy(&["--resolve", &format!("api.example.com:443:{silent_addr}"), "--connect-timeout", "1"]);
    let (status, headers, body) = curl_i(&p.url(&token), &v.ca_path(), "https://api.example.com/v1/users");
    assert_error(status, &headers, &body, 504, "upstream_timeout");
}
