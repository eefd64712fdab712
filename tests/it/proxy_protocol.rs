//! Protocol behaviour: HTTP/2 on both sides, streaming, WebSockets, absolute-form requests,
//! tunnel mode, the CA commands and graceful shutdown.

use crate::proxy_curl::{curl, proxy_args, setup};
use crate::support::{SENTINEL, eventually, header, python, raw_exchange, run_client};

fn start(
    extra: &[&str],
) -> (crate::support::TestVault, crate::support::upstream::FakeUpstream, String, crate::support::ProxyProc) {
    let (v, up, token) = setup();
    let mut args = proxy_args(&up, &["api.example.com", "other.example.com"]);
    args.extend(extra.iter().map(|s| s.to_string()));
    let p = v.proxy(&args.iter().map(String::as_str).collect::<Vec<_>>());
    (v, up, token, p)
}

#[test]
fn http2_to_the_proxy_and_to_the_upstream() {
    let (v, up, token, p) = start(&[]);
    let (code, out, err) = curl(
        &p.url(&token),
        &v.ca_path(),
        &["--http2", "-w", "\nversion=%{http_version}", "https://api.example.com/v1/users"],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.ends_with("version=2"), "{out}");
    assert_eq!(up.last().version, "HTTP/2.0");
    let (code, out, _) = curl(
        &p.url(&token),
        &v.ca_path(),
        &["--http1.1", "-w", "\nversion=%{http_version}", "https://api.example.com/v1/users"],
    );
    assert_eq!(code, 0);
    assert!(out.ends_with("version=1.1"), "{out}");
}

#[test]
fn server_sent_events_arrive_event_by_event() {
    let (v, _up, token, p) = start(&[]);
    let script = r#"
import time, json, requests
t0 = time.time()
r = requests.get("https://api.example.com/sse/stream", stream=True, timeout=20)
times = [round(time.time() - t0, 3) for line in r.iter_lines() if line.startswith(b"data:")]
print(json.dumps(times))
"#;
    let mut cmd = python();
    cmd.args(["-c", script]).env("HTTPS_PROXY", p.url(&token)).env("REQUESTS_CA_BUNDLE", v.ca_path());
    let (code, out, err) = run_client(&mut cmd);
    assert_eq!(code, 0, "{err}");
    let times: Vec<f64> = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(times.len(), 5, "{out}");
    // The upstream sends one event every 150 ms: a buffering proxy would deliver them together.
    assert!(times[4] - times[0] >= 0.45, "events arrived together: {times:?}");
}

#[test]
fn websocket_upgrade_is_injected_and_spliced() {
    let (v, up, token, p) = start(&[]);
    let script = format!(
        r#"
import socket, ssl, base64, os
s = socket.create_connection(("127.0.0.1", {port}))
s.sendall(b"CONNECT api.example.com:443 HTTP/1.1\r\nHost: api.example.com:443\r\nProxy-Authorization: Bearer {token}\r\n\r\n")
head = b""
while b"\r\n\r\n" not in head:
    head += s.recv(1)
assert b" 200" in head.split(b"\r\n")[0], head
ctx = ssl.create_default_context(cafile={ca:?})
ctx.set_alpn_protocols(["http/1.1"])
t = ctx.wrap_socket(s, server_hostname="api.example.com")
key = base64.b64encode(os.urandom(16)).decode()
t.sendall(("GET /v1/users/ws HTTP/1.1\r\nHost: api.example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Key: " + key + "\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer placeholder\r\n\r\n").encode())
resp = b""
while b"\r\n\r\n" not in resp:
    resp += t.recv(1)
print(resp.split(b"\r\n")[0].decode())
t.sendall(b"ping-through-the-proxy")
got = b""
while len(got) < 22:
    got += t.recv(64)
print(got.decode())
"#,
        port = p.addr.port(),
        ca = v.ca_path()
    );
    let mut cmd = python();
    cmd.args(["-c", &script]);
    let (code, out, err) = run_client(&mut cmd);
    assert_eq!(code, 0, "{out} {err}");
    assert!(out.contains("101"), "{out}");
    assert!(out.contains("ping-through-the-proxy"), "{out}");
    let handshake = up.last();
    assert_eq!(handshake.path_and_query, "/v1/users/ws");
    assert_eq!(handshake.headers_named("authorization"), vec![format!("Bearer {SENTINEL}")]);
    assert_eq!(handshake.header("upgrade"), Some("websocket"));
}

#[test]
fn absolute_form_https_requests_work_like_axios_sends_them() {
    let (_v, up, token, p) = start(&[]);
    let req = format!(
        "GET https://api.example.com/v1/users/abs HTTP/1.1\r\nHost: api.example.com\r\nProxy-Authorization: Bearer {token}\r\nAuthorization: Bearer placeholder\r\nConnection: close\r\n\r\n"
    );
    let (status, _headers, body) = raw_exchange(p.addr, req.as_bytes());
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"ok\":true"), "{body}");
    assert_eq!(up.last().headers_named("authorization"), vec![format!("Bearer {SENTINEL}")]);
}

#[test]
fn unmatched_tunnel_splices_without_interception() {
    let (v, up, token, p) = start(&["--unmatched", "tunnel"]);
    // The client trusts only the upstream's own CA: this works only if the proxy did not intercept.
    let upstream_ca = up.ca_path.display().to_string();
    let (code, out, err) = curl(
        &p.url(&token),
        &upstream_ca,
        &["-H", "Authorization: Bearer agent-own", "https://other.example.com/anything"],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\"ok\":true"), "{out}");
    assert_eq!(up.last().headers_named("authorization"), vec!["Bearer agent-own"]);
    let ping = format!(
        "GET http://aivault.internal/ping HTTP/1.1\r\nHost: aivault.internal\r\nProxy-Authorization: Bearer {token}\r\n\r\n"
    );
    let (_, _, body) = raw_exchange(p.addr, ping.as_bytes());
    let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(doc["leaf_certificates_minted"], 0, "no certificate for a tunnelled host");
    // Capability hosts are still intercepted and injected.
    let (code, _, _) = curl(&p.url(&token), &v.ca_path(), &["https://api.example.com/v1/users"]);
    assert_eq!(code, 0);
    assert_eq!(up.last().headers_named("authorization"), vec![format!("Bearer {SENTINEL}")]);
    p.stop();
    let audit = v.json(&["audit"]);
    assert!(
        audit.as_array().unwrap().iter().any(|e| e["kind"] == "proxy.tunnel" && e["host"] == "other.example.com:443")
    );
}

#[test]
fn ca_commands() {
    let (v, up, token, p) = start(&[]);
    let path = v.ok(&["ca", "path"]);
    assert_eq!(path.lines().count(), 1);
    let pem = std::fs::read_to_string(path.trim()).unwrap();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"));
    assert_eq!(v.ok(&["ca", "export"]), pem);
    let bundle = v.ok(&["ca", "bundle"]);
    let bundle_text = std::fs::read_to_string(bundle.trim()).unwrap();
    assert!(bundle_text.ends_with(&pem));
    assert!(bundle_text.matches("BEGIN CERTIFICATE").count() > 1, "system roots are included");
    let dry = v.ok(&["ca", "trust", "--dry-run"]);
    assert!(dry.contains(path.trim()), "{dry}");
    let rotated = v.json(&["ca", "rotate"]);
    let new_pem = std::fs::read_to_string(path.trim()).unwrap();
    assert_ne!(pem, new_pem);
    assert!(rotated["fingerprint_sha256"].as_str().is_some());
    // The running proxy switches to the new root.
    eventually("the proxy to use the rotated CA", || {
        curl(&p.url(&token), path.trim(), &["https://api.example.com/v1/users"]).0 == 0
    });
    let _ = up;
}

#[test]
fn graceful_shutdown_finishes_in_flight_streams() {
    let (v, _up, token, p) = start(&[]);
    let mut cmd = std::process::Command::new("curl");
    cmd.args([
        "-sS",
        "-N",
        "--max-time",
        "20",
        "--proxy",
        &p.url(&token),
        "--cacert",
        &v.ca_path(),
        "https://api.example.com/sse/long",
    ]);
    cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    let client = cmd.spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(250));
    let addr = p.addr;
    let status = p.stop();
    assert!(status.success(), "{status:?}");
    let out = client.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.matches("data: event").count(), 5, "the stream was cut: {text}");
    assert!(std::net::TcpStream::connect(addr).is_err(), "the listener is closed");
    let _ = header;
}
