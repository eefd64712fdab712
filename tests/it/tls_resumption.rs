//! An agent that reconnects resumes its TLS session with the proxy (a stateless ticket, one key
//! for every host) instead of paying for a full handshake; the request after resuming is still
//! authorized, pinned to its host and injected.

use crate::proxy_curl::{proxy_args, setup};
use crate::support::{SENTINEL, python, run_client};

#[test]
fn a_reconnecting_agent_resumes_its_session() {
    let (v, up, token) = setup();
    let args = proxy_args(&up, &["api.example.com"]);
    let p = v.proxy(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let script = r#"
import socket, ssl, sys
port, token, ca = int(sys.argv[1]), sys.argv[2], sys.argv[3]
ctx = ssl.create_default_context(cafile=ca)
ctx.maximum_version = ssl.TLSVersion.TLSv1_3
def request(session):
    raw = socket.create_connection(("127.0.0.1", port))
    raw.sendall(f"CONNECT api.example.com:443 HTTP/1.1\r\nHost: api.example.com:443\r\nProxy-Authorization: Bearer {token}\r\n\r\n".encode())
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        head += raw.recv(1)
    assert head.startswith(b"HTTP/1.1 200"), head
    s = ctx.wrap_socket(raw, server_hostname="api.example.com", session=session)
    s.sendall(b"GET /v1/users HTTP/1.1\r\nHost: api.example.com\r\nConnection: close\r\n\r\n")
    body = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        body += chunk
    status = body.split(b"\r\n", 1)[0].decode()
    reused, session = s.session_reused, s.session
    s.close()
    return status, reused, session
status, reused, session = request(None)
print("first", status, reused)
status, reused, _ = request(session)
print("second", status, reused)
"#;
    let mut cmd = python();
    cmd.args(["-c", script, &p.addr.port().to_string(), &token, &v.ca_path()]);
    let (code, out, err) = run_client(&mut cmd);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("first HTTP/1.1 200 OK False"), "{out}");
    assert!(out.contains("second HTTP/1.1 200 OK True"), "the second connection resumed: {out}");
    assert!(up.last().headers.iter().any(|(_, val)| val.contains(SENTINEL)), "injected after resuming");
    p.stop();
}
