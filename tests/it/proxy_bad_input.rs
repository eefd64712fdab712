//! Hostile or broken input: each gets the right status or a clean close, never a panic or a
//! leak, and the proxy keeps serving everyone else.

use std::io::{Read as _, Write as _};
use std::time::Duration;

use crate::proxy_curl::{curl, proxy_args, setup};
use crate::support::{SENTINEL, python, raw_exchange, run_client};

fn start(
    extra: &[&str],
) -> (crate::support::TestVault, crate::support::upstream::FakeUpstream, String, crate::support::ProxyProc) {
    let (v, up, token) = setup();
    let mut args = proxy_args(&up, &["api.example.com"]);
    args.extend(extra.iter().map(|s| s.to_string()));
    let p = v.proxy(&args.iter().map(String::as_str).collect::<Vec<_>>());
    (v, up, token, p)
}

fn still_serving(v: &crate::support::TestVault, p: &crate::support::ProxyProc, token: &str) {
    let (code, out, err) = curl(&p.url(token), &v.ca_path(), &["https://api.example.com/v1/users"]);
    assert_eq!(code, 0, "the proxy stopped serving: {out} {err}\n{}", p.logs());
}

#[test]
fn malformed_connect_targets() {
    let (v, _up, token, p) = start(&[]);
    let auth = format!("Proxy-Authorization: Bearer {token}\r\n");
    let cases: Vec<(String, u16)> = vec![
        (format!("CONNECT api.example.com HTTP/1.1\r\nHost: api.example.com\r\n{auth}\r\n"), 400),
        (format!("CONNECT api.example.com:notaport HTTP/1.1\r\nHost: x\r\n{auth}\r\n"), 400),
        (format!("CONNECT bad_host!:443 HTTP/1.1\r\nHost: x\r\n{auth}\r\n"), 400),
        (format!("CONNECT [::1]:443 HTTP/1.1\r\nHost: [::1]:443\r\n{auth}\r\n"), 403),
        (format!("CONNECT 169.254.169.254:80 HTTP/1.1\r\nHost: x\r\n{auth}\r\n"), 403),
        ("GET /relative HTTP/1.1\r\nHost: x\r\n\r\n".to_owned(), 400),
    ];
    for (req, want) in cases {
        let (status, _, body) = raw_exchange(p.addr, req.as_bytes());
        assert_eq!(status, want, "{req:?} -> {body}");
    }
    still_serving(&v, &p, &token);
}

#[test]
fn http_1_0_connect_is_accepted() {
    let (v, _up, token, p) = start(&[]);
    let req = format!("CONNECT api.example.com:443 HTTP/1.0\r\nProxy-Authorization: Bearer {token}\r\n\r\n");
    let mut s = std::net::TcpStream::connect(p.addr).unwrap();
    s.write_all(req.as_bytes()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 128];
    let n = s.read(&mut buf).unwrap();
    let head = String::from_utf8_lossy(&buf[..n]);
    assert!(head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"), "{head}");
    still_serving(&v, &p, &token);
}

#[test]
fn oversized_headers_are_refused() {
    let (v, _up, token, p) = start(&["--max-header-bytes", "16384"]);
    let big = "x".repeat(64 * 1024);
    let req =
        format!("CONNECT api.example.com:443 HTTP/1.1\r\nProxy-Authorization: Bearer {token}\r\nX-Big: {big}\r\n\r\n");
    let (status, _, _) = raw_exchange(p.addr, req.as_bytes());
    assert_eq!(status, 431);
    still_serving(&v, &p, &token);
}

#[test]
fn request_smuggling_shapes_are_refused() {
    let (v, up, token, p) = start(&[]);
    let auth = format!("Proxy-Authorization: Bearer {token}\r\n");
    let duplicate_cl = format!(
        "POST https://api.example.com/v1/users HTTP/1.1\r\nHost: api.example.com\r\n{auth}Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"
    );
    let (status, _, _) = raw_exchange(p.addr, duplicate_cl.as_bytes());
    assert_eq!(status, 400);
    // Content-Length and Transfer-Encoding together: either refused, or framed by chunked encoding
    // alone; in no case does a smuggled second request reach the upstream.
    let smuggle = format!(
        "POST https://api.example.com/v1/users HTTP/1.1\r\nHost: api.example.com\r\n{auth}Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET https://api.example.com/v1/users/smuggled HTTP/1.1\r\nHost: api.example.com\r\n\r\n"
    );
    let _ = raw_exchange(p.addr, smuggle.as_bytes());
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !up.requests().iter().any(|r| r.path_and_query.contains("smuggled")),
        "a smuggled request reached the upstream"
    );
    still_serving(&v, &p, &token);
}

#[test]
fn tls_without_sni_works_and_mismatched_sni_or_host_is_refused() {
    let (v, up, token, p) = start(&[]);
    let script = format!(
        r#"
import socket, ssl
def tunnel():
    s = socket.create_connection(("127.0.0.1", {port}))
    s.sendall(b"CONNECT api.example.com:443 HTTP/1.1\r\nHost: api.example.com:443\r\nProxy-Authorization: Bearer {token}\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)
    return s
def get(t, host):
    t.sendall(("GET /v1/users/tls HTTP/1.1\r\nHost: " + host + "\r\nConnection: close\r\n\r\n").encode())
    data = b""
    while True:
        chunk = t.recv(4096)
        if not chunk:
            break
        data += chunk
    return data.split(b"\r\n")[0].decode()
ctx = ssl.create_default_context(cafile={ca:?})
ctx.check_hostname = False
print("no-sni", get(ctx.wrap_socket(tunnel(), server_hostname=None), "api.example.com"))
strict = ssl.create_default_context(cafile={ca:?})
try:
    strict.wrap_socket(tunnel(), server_hostname="evil.example.com")
    print("sni-mismatch accepted")
except Exception as e:
    print("sni-mismatch refused")
print("host-mismatch", get(strict.wrap_socket(tunnel(), server_hostname="api.example.com"), "evil.example.com"))
"#,
        port = p.addr.port(),
        ca = v.ca_path()
    );
    let mut cmd = python();
    cmd.args(["-c", &script]);
    let (code, out, err) = run_client(&mut cmd);
    assert_eq!(code, 0, "{out} {err}");
    assert!(out.contains("no-sni HTTP/1.1 200"), "{out}");
    assert!(out.contains("sni-mismatch refused"), "{out}");
    assert!(out.contains("host-mismatch HTTP/1.1 421"), "{out}");
    assert_eq!(up.requests().iter().filter(|r| r.path_and_query == "/v1/users/tls").count(), 1);
    still_serving(&v, &p, &token);
}

#[test]
fn silent_clients_are_dropped_and_others_keep_working() {
    let (v, _up, token, p) = start(&["--idle-timeout", "1"]);
    let mut silent = std::net::TcpStream::connect(p.addr).unwrap();
    let mut half = std::net::TcpStream::connect(p.addr).unwrap();
    half.write_all(b"CONNECT api.exam").unwrap();
    still_serving(&v, &p, &token);
    std::thread::sleep(Duration::from_millis(2500));
    silent.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    half.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut buf = [0u8; 64];
    assert!(matches!(silent.read(&mut buf), Ok(0) | Err(_)), "an idle client must be closed");
    assert!(matches!(half.read(&mut buf), Ok(0)), "a client that stalls mid-request must be closed");
    still_serving(&v, &p, &token);
}

#[test]
fn an_upstream_that_resets_gets_502_and_nothing_leaks() {
    let (v, _up, token) = setup();
    let resetter = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = resetter.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in resetter.incoming().flatten() {
            drop(s);
        }
    });
    let p = v.proxy(&["--resolve", &format!("api.example.com:443:{addr}")]);
    let (_, out, _) = curl(&p.url(&token), &v.ca_path(), &["-i", "https://api.example.com/v1/users"]);
    assert!(out.contains("502") && out.contains("upstream_error"), "{out}");
    assert!(!out.contains(SENTINEL));
    assert!(!p.logs().contains(SENTINEL));
}

#[test]
fn idle_spliced_tunnels_are_closed() {
    let (v, up, token) = setup();
    let p = v.proxy(&[
        "--unmatched",
        "tunnel",
        "--resolve",
        &up.resolve("other.example.com"),
        "--tunnel-idle-timeout",
        "1",
    ]);
    let mut s = std::net::TcpStream::connect(p.addr).unwrap();
    s.write_all(
        format!("CONNECT other.example.com:443 HTTP/1.1\r\nProxy-Authorization: Bearer {token}\r\n\r\n").as_bytes(),
    )
    .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(6))).unwrap();
    let mut buf = [0u8; 256];
    let n = s.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).contains(" 200"), "{}", String::from_utf8_lossy(&buf[..n]));
    let started = std::time::Instant::now();
    assert!(matches!(s.read(&mut buf), Ok(0)), "the silent tunnel must be closed");
    assert!(started.elapsed() < Duration::from_secs(5));
    p.stop();
    let audit = v.json(&["audit"]);
    assert!(
        audit.as_array().unwrap().iter().any(|e| e["kind"] == "proxy.tunnel" && e["outcome"] == "idle_timeout"),
        "{audit}"
    );
}
