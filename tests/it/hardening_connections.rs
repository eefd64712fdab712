//! Connection floods are bounded in count and time: tunnels hold their slot, idle tunnels close,
//! silent sockets cannot keep agents out, one agent cannot take every slot, and revocation closes
//! what a revoked agent still holds open.

use crate::proxy_curl::{curl, proxy_args, setup};
use crate::support::{TestVault, python, run_client};

/// Python helpers the scenarios share: raw CONNECT tunnels through the proxy.
const HELPERS: &str = r#"
import socket, ssl, sys, time, base64, os
PORT, TOKEN, CA = int(sys.argv[1]), sys.argv[2], sys.argv[3]
def connect(token=TOKEN, host="api.example.com", timeout=10):
    s = socket.create_connection(("127.0.0.1", PORT), timeout=timeout)
    s.sendall(f"CONNECT {host}:443 HTTP/1.1\r\nHost: {host}:443\r\nProxy-Authorization: Bearer {token}\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        c = s.recv(1)
        if not c:
            return None, head
        head += c
    return s, head
def tunnel(token=TOKEN, alpn="http/1.1"):
    s, head = connect(token)
    assert s is not None and b" 200" in head.split(b"\r\n")[0], head
    ctx = ssl.create_default_context(cafile=CA)
    ctx.set_alpn_protocols([alpn])
    return ctx.wrap_socket(s, server_hostname="api.example.com")
def closed_within(sock, seconds):
    sock.settimeout(seconds)
    start = time.time()
    try:
        while True:
            if not sock.recv(4096):
                return time.time() - start
    except (ConnectionResetError, ssl.SSLError, OSError) as e:
        if isinstance(e, socket.timeout):
            return None
        return time.time() - start
"#;

fn scenario(v: &TestVault, p: &crate::support::ProxyProc, token: &str, body: &str) -> String {
    let script = format!("{HELPERS}\n{body}");
    let mut cmd = python();
    cmd.args(["-c", &script, &p.addr.port().to_string(), token, &v.ca_path()]);
    let (code, out, err) = run_client(&mut cmd);
    assert_eq!(code, 0, "{out}\n{err}\n{}", p.logs());
    out
}

#[test]
fn idle_intercepted_tunnels_close_on_both_protocols() {
    let (v, up, token) = setup();
    let mut args = proxy_args(&up, &["api.example.com"]);
    args.extend(["--idle-timeout".into(), "1".into()]);
    let p = v.proxy(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let out = scenario(
        &v,
        &p,
        &token,
        r#"
for alpn in ["http/1.1", "h2"]:
    t = tunnel(alpn=alpn)
    print(alpn, "closed after", closed_within(t, 8))
"#,
    );
    for alpn in ["http/1.1", "h2"] {
        let line = out.lines().find(|l| l.starts_with(alpn)).unwrap_or_default();
        let secs: f64 = line.rsplit(' ').next().and_then(|s| s.parse().ok()).unwrap_or(f64::MAX);
        assert!(secs < 4.0, "{alpn}: an idle tunnel stayed open: {out}");
    }
}

#[test]
fn tunnels_hold_their_slot_and_one_agent_cannot_take_them_all() {
    let (v, up, token) = setup();
    let other = v.agent("other-agent", &[]);
    let mut args = proxy_args(&up, &["api.example.com"]);
    args.extend(["--max-connections", "4", "--max-agent-connections", "2"].map(String::from));
    let p = v.proxy(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let out = scenario(
        &v,
        &p,
        &token,
        &format!(
            r#"
held = [tunnel(), tunnel()]
s, head = connect()
print("third:", head.split(b"\r\n")[0].decode(), b"too_many_connections" in head)
s.close()
time.sleep(0.5)
others = [tunnel("{other}"), tunnel("{other}")]
# Every slot is held by a tunnel now: a fifth socket is not served.
try:
    fifth, head = connect("{other}", timeout=1.5)
    print("fifth:", head)
except socket.timeout:
    print("fifth: not served")
for t in held:
    t.close()
time.sleep(0.5)
s, head = connect()
print("after close:", head.split(b"\r\n")[0].decode())
"#
        ),
    );
    assert!(out.contains("third: HTTP/1.1 429") && out.contains("third: HTTP/1.1 429 Too Many Requests True"), "{out}");
    assert!(out.contains("fifth: not served") || out.contains("fifth: b''"), "{out}");
    assert!(out.contains("after close: HTTP/1.1 200"), "{out}");
}

#[test]
fn silent_sockets_cannot_keep_agents_out() {
    let (v, up, token) = setup();
    let mut args = proxy_args(&up, &["api.example.com"]);
    args.extend(
        ["--max-connections", "64", "--max-pending-connections", "16", "--auth-timeout", "2"].map(String::from),
    );
    let p = v.proxy(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let mut silent: Vec<std::net::TcpStream> =
        (0..400).filter_map(|_| std::net::TcpStream::connect(p.addr).ok()).collect();
    assert!(silent.len() >= 300, "the flood could not even connect: {}", silent.len());
    let started = std::time::Instant::now();
    let (code, out, err) =
        curl(&p.url(&token), &v.ca_path(), &["--max-time", "10", "https://api.example.com/v1/users"]);
    assert_eq!(code, 0, "an agent was kept out by {} silent sockets: {err}", silent.len());
    assert!(out.contains("\"ok\":true"), "{out}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "took {:?}", started.elapsed());
    // Every silent socket is closed within the auth timeout (plus the time to reach it).
    std::thread::sleep(std::time::Duration::from_secs(4));
    let mut open = 0;
    for s in &mut silent {
        use std::io::Read as _;
        s.set_read_timeout(Some(std::time::Duration::from_millis(20))).ok();
        let mut b = [0u8; 1];
        let still_open = matches!(s.read(&mut b), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut);
        open += usize::from(still_open);
    }
    assert!(open <= 16, "{open} silent sockets are still open after the auth timeout");
}

#[test]
fn revocation_closes_open_tunnels_and_websockets() {
    let (v, up, token) = setup();
    let args = proxy_args(&up, &["api.example.com"]);
    let p = v.proxy(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let gate = v.dir.path().join("go");
    let done = v.dir.path().join("revoked");
    let body = format!(
        r#"
idle = tunnel()
ws = tunnel()
key = base64.b64encode(os.urandom(16)).decode()
ws.sendall(("GET /v1/users/ws HTTP/1.1\r\nHost: api.example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: " + key + "\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
resp = b""
while b"\r\n\r\n" not in resp:
    resp += ws.recv(1)
print("ws:", resp.split(b"\r\n")[0].decode(), flush=True)
open({gate:?}, "w").close()
while not os.path.exists({done:?}):
    time.sleep(0.02)
print("idle closed after", closed_within(idle, 5), flush=True)
print("ws closed after", closed_within(ws, 5), flush=True)
"#
    );
    let script = format!("{HELPERS}\n{body}");
    let mut cmd = python();
    cmd.args(["-c", &script, &p.addr.port().to_string(), &token, &v.ca_path()]);
    cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    let child = cmd.spawn().unwrap();
    crate::support::eventually("the websocket to open", || gate.exists());
    v.ok(&["agent", "revoke", "ci-agent"]);
    std::fs::write(&done, b"").unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("ws: HTTP/1.1 101"), "{stdout} {}", String::from_utf8_lossy(&out.stderr));
    for what in ["idle", "ws"] {
        let line = stdout.lines().find(|l| l.starts_with(&format!("{what} closed"))).unwrap_or_default();
        let secs: f64 = line.rsplit(' ').next().and_then(|s| s.parse().ok()).unwrap_or(f64::MAX);
        assert!(secs < 2.0, "{what} stayed open after revocation: {stdout}");
    }
}

/// `agent revoke` returns only once every running proxy refuses the token: the very next
/// request fails, every time.
#[test]
fn the_request_right_after_revoke_is_refused() {
    let (v, up, _) = setup();
    let args = proxy_args(&up, &["api.example.com"]);
    let p = v.proxy(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let ca = v.ca_path();
    for i in 0..5 {
        let name = format!("short-lived-{i}");
        let token = v.agent(&name, &[]);
        crate::support::eventually("the proxy to know the new agent", || {
            curl(&p.url(&token), &ca, &["-f", "https://api.example.com/v1/users"]).0 == 0
        });
        let out = v.run(&["agent", "revoke", &name]);
        assert!(out.status.success() && out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
        let (code, _, err) = curl(&p.url(&token), &ca, &["https://api.example.com/v1/users"]);
        assert_ne!(code, 0, "round {i}: the request right after revoke passed");
        assert!(err.contains("407"), "round {i}: {err}");
    }
}
