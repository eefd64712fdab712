//! Held requests: a capability with `--approval required` holds each request until a person
//! allows it from the CLI (while curl waits), denies it, or the timeout passes; "allow for N
//! minutes" covers the next requests.

use crate::proxy_curl::{curl, proxy_args, setup};
use crate::support::{SENTINEL, eventually};

fn held_request(v: &crate::support::TestVault, p: &crate::support::ProxyProc, token: &str) -> std::process::Child {
    let mut c = std::process::Command::new("curl");
    c.args(["-sS", "-i", "--max-time", "30", "--proxy", &p.url(token), "--cacert", &v.ca_path()])
        .arg("https://api.example.com/v1/held/1")
        .env_remove("HTTPS_PROXY")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    c.spawn().unwrap()
}

/// `my-api/held`: GET /v1/held on the setup() credential, every request held for approval.
fn held_capability(v: &crate::support::TestVault) {
    v.ok(&[
        "capability",
        "create",
        "my-api/held",
        "--provider",
        "my-api",
        "--credential",
        "my-api",
        "--method",
        "GET",
        "--path",
        "/v1/held",
        "--approval",
        "required",
    ]);
}

fn pending_id(v: &crate::support::TestVault) -> String {
    let mut id = String::new();
    eventually("the request to be held", || {
        let list = v.json(&["approval", "list"]);
        match list.as_array().and_then(|a| a.first()) {
            Some(a) => {
                id = a["id"].as_str().unwrap().to_owned();
                true
            }
            None => false,
        }
    });
    id
}

#[test]
fn a_held_request_is_allowed_from_the_cli_while_curl_waits() {
    let (v, up, token) = setup();
    held_capability(&v);
    let args = proxy_args(&up, &["api.example.com"]);
    let p = v.proxy(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let ca = v.ca_path();
    eventually("the proxy to know the capability", || {
        !v.json(&["capability", "list"]).to_string().is_empty()
            && v.json(&["explain", "--agent", "ci-agent", "GET", "https://api.example.com/v1/held/1"])["capability"]
                == "my-api/held"
    });

    // Allowed while curl waits.
    let child = held_request(&v, &p, &token);
    let id = pending_id(&v);
    assert!(
        !up.requests().iter().any(|r| r.path_and_query.starts_with("/v1/held")),
        "nothing goes out before the decision"
    );
    assert!(p.logs().contains(&format!("approval allow {id}")), "{}", p.logs());
    v.ok(&["approval", "allow", &id]);
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("\"ok\":true"), "{stdout}");
    assert_eq!(up.last().headers_named("authorization"), vec![format!("Bearer {SENTINEL}")]);

    // Denied.
    let child = held_request(&v, &p, &token);
    let id = pending_id(&v);
    v.ok(&["approval", "deny", &id, "--reason", "not today"]);
    let stdout = String::from_utf8_lossy(&child.wait_with_output().unwrap().stdout).into_owned();
    assert!(stdout.contains(" 403") && stdout.contains("approval_denied") && stdout.contains("not today"), "{stdout}");

    // Allowed for ten minutes: the next request is not held.
    let child = held_request(&v, &p, &token);
    let id = pending_id(&v);
    v.ok(&["approval", "allow", &id, "--for", "10"]);
    assert!(String::from_utf8_lossy(&child.wait_with_output().unwrap().stdout).contains("\"ok\":true"));
    eventually("the standing allowance", || {
        curl(&p.url(&token), &ca, &["-f", "https://api.example.com/v1/held/2"]).0 == 0
    });
    let all = v.json(&["approval", "list", "--all"]);
    let statuses: Vec<&str> = all.as_array().unwrap().iter().map(|a| a["status"].as_str().unwrap()).collect();
    assert_eq!(statuses.iter().filter(|s| **s == "allowed").count(), 2, "{all}");
    assert_eq!(statuses.iter().filter(|s| **s == "denied").count(), 1, "{all}");
    let (code, err) = v.fails(&["approval", "allow", &id]);
    assert_eq!(code, 4, "already decided: {err}");
}

#[test]
fn a_held_request_times_out() {
    let (v, up, token) = setup();
    held_capability(&v);
    let mut args = proxy_args(&up, &["api.example.com"]);
    args.extend(["--approval-timeout".into(), "1".into()]);
    let p = v.proxy(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let started = std::time::Instant::now();
    let (_, out, _) = curl(&p.url(&token), &v.ca_path(), &["-i", "https://api.example.com/v1/held/1"]);
    assert!(out.contains(" 403") && out.contains("approval_denied") && out.contains("no decision"), "{out}");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    assert!(!up.requests().iter().any(|r| r.path_and_query.starts_with("/v1/held")));
    eventually("the expiry to be recorded", || v.json(&["approval", "list", "--all"])[0]["status"] == "expired");
}
