//! `/metrics` on the console listener (Prometheus text) and `--log-format json`.

use crate::proxy_curl::{curl, proxy_args, setup};
use crate::support::{SENTINEL, run_client};

fn get(url: &str) -> String {
    let mut c = std::process::Command::new("curl");
    c.args(["-sS", "--max-time", "10", url]).env_remove("HTTPS_PROXY").env_remove("HTTP_PROXY");
    run_client(&mut c).1
}

#[test]
fn metrics_count_requests_by_code_and_capability() {
    let (v, up, token) = setup();
    let mut args = proxy_args(&up, &["api.example.com"]);
    args.extend(["--log-format".to_owned(), "json".to_owned()]);
    let p = v.proxy(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let ca = v.ca_path();
    for _ in 0..2 {
        let (code, out, err) = curl(&p.url(&token), &ca, &["-sS", "-f", "https://api.example.com/v1/users"]);
        assert_eq!(code, 0, "{out} {err}");
    }
    let _ = curl(&p.url(&token), &ca, &["-s", "https://pypi.org/simple/"]);
    let console = p.console.clone().expect("the proxy serves a console");
    let text = get(&format!("{console}/metrics"));
    for line in [
        "aivault_requests_total{kind=\"request\",code=\"ok\",capability=\"my-api/users\"} 2",
        "aivault_requests_total{kind=\"connect\",code=\"host_not_allowed\",capability=\"-\"} 1",
        "aivault_request_duration_seconds_count 2",
        "# TYPE aivault_request_duration_seconds histogram",
        "aivault_request_duration_seconds_bucket{le=\"+Inf\"} 2",
        "# TYPE aivault_active_connections gauge",
        "aivault_leaf_certificates_minted_total 1",
        "aivault_audit_queue_depth ",
        "aivault_oauth_refreshes_total 0",
    ] {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }
    assert!(!text.contains(SENTINEL));

    // --log-format json: every stderr line is one JSON object; the refusal is one of them.
    let logs = p.logs();
    let lines: Vec<serde_json::Value> = logs
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(
        lines.iter().any(|l| l["code"] == "host_not_allowed" && l["level"] == "WARN" && l["agent"] == "ci-agent"),
        "{logs}"
    );
    assert!(!logs.contains(SENTINEL));
    p.stop();

    // A console without a proxy says where metrics are.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut console = v.std_cmd();
    console.args(["console", "--listen", &format!("127.0.0.1:{port}")]).stdout(std::process::Stdio::null());
    let mut child = console.spawn().unwrap();
    crate::support::eventually("the console to listen", || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
    let text = get(&format!("http://127.0.0.1:{port}/metrics"));
    let _ = child.kill();
    let _ = child.wait();
    assert!(text.contains("serves /metrics"), "{text}");
}

/// The proxy's two caches of decrypted material (opened credentials, compiled masking needles) fill
/// with the credentials it serves and are emptied by a vault change.
#[test]
fn the_caches_of_decrypted_material_show_on_metrics_and_empty_at_a_vault_change() {
    let (v, up, token) = setup();
    let p = v.proxy(&proxy_args(&up, &["api.example.com"]).iter().map(String::as_str).collect::<Vec<_>>());
    let ca = v.ca_path();
    let console = p.console.clone().expect("the proxy serves a console");
    let gauge = |name: &str| -> Option<u64> {
        let text = get(&format!("{console}/metrics"));
        text.lines().find_map(|l| l.strip_prefix(&format!("{name} ")).and_then(|n| n.trim().parse().ok()))
    };
    for _ in 0..3 {
        let (code, out, err) = curl(&p.url(&token), &ca, &["-sS", "-f", "https://api.example.com/v1/users"]);
        assert_eq!(code, 0, "{out} {err}");
    }
    assert_eq!(gauge("aivault_opened_secrets"), Some(1), "one credential served three requests");
    assert_eq!(gauge("aivault_masker_cache_entries"), Some(1));
    // Any change: the proxy reloads, and nothing opened from the previous vault is kept.
    v.agent("another-agent", &[]);
    crate::support::eventually("the caches empty after the reload", || {
        gauge("aivault_opened_secrets") == Some(0) && gauge("aivault_masker_cache_entries") == Some(0)
    });
    let (code, out, err) = curl(&p.url(&token), &ca, &["-sS", "-f", "https://api.example.com/v1/users"]);
    assert_eq!(code, 0, "{out} {err}");
    assert_eq!(gauge("aivault_opened_secrets"), Some(1));
    assert!(!get(&format!("{console}/metrics")).contains(SENTINEL));
    p.stop();
}
