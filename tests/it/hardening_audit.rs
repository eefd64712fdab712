//! An agent cannot wipe the audit trail: floods of refusals are folded into counted records,
//! security events are never evicted by request records, and completed requests say so.

use crate::proxy_curl::{curl, proxy_args, setup};
use crate::support::{python, run_client};

#[test]
fn a_flood_of_refusals_is_counted_not_recorded_one_by_one() {
    let (v, up, token) = setup();
    let args = proxy_args(&up, &["api.example.com"]);
    let p = v.proxy(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let flood = 1500;
    let script = format!(
        r#"
import socket
s = socket.create_connection(("127.0.0.1", {port}))
f = s.makefile("rb")
for i in range({flood}):
    s.sendall(b"CONNECT evil.example.net:443 HTTP/1.1\r\nHost: evil.example.net:443\r\nProxy-Authorization: Bearer {token}\r\n\r\n")
    status = f.readline()
    assert b" 403 " in status, status
    length = 0
    while True:
        line = f.readline()
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
        if line in (b"\r\n", b""):
            break
    f.read(length)
print("sent", {flood})
"#,
        port = p.addr.port()
    );
    let mut cmd = python();
    cmd.args(["-c", &script]);
    let (code, out, err) = run_client(&mut cmd);
    assert_eq!(code, 0, "{out}\n{err}");
    let (code, _, err) = curl(&p.url(&token), &v.ca_path(), &["-f", "https://api.example.com/v1/users"]);
    assert_eq!(code, 0, "{err}");
    p.stop();

    let all = v.json(&["audit", "--limit", "100000"]);
    let events = all.as_array().unwrap();
    let refusals: Vec<&serde_json::Value> = events.iter().filter(|e| e["outcome"] == "host_not_allowed").collect();
    let represented: u64 = refusals.iter().map(|e| e["count"].as_u64().unwrap_or(1)).sum();
    assert_eq!(represented, flood, "every refusal is accounted for");
    assert!(refusals.len() < 200, "{} records for {flood} identical refusals", refusals.len());
    assert!(refusals.iter().any(|e| e["count"].as_u64().unwrap_or(0) > 1), "folded records carry a count");
    assert!(events.iter().any(|e| e["kind"] == "vault.init"), "security events stay");
    let ok: Vec<&serde_json::Value> = events.iter().filter(|e| e["kind"] == "proxy.request").collect();
    assert_eq!(ok.len(), 1, "{ok:?}");
    assert_eq!(ok[0]["outcome"], "ok", "a completed request is not 'client_closed': {}", ok[0]);
    let table = v.ok(&["audit", "--limit", "5"]);
    assert!(table.contains("200") || table.contains("403 host_not_allowed"), "{table}");
}
