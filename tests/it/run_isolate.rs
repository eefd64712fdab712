//! `aivault run --isolate`: the command's only network is the proxy. Clients that ignore
//! HTTPS_PROXY (Node's fetch without NODE_USE_ENV_PROXY, a raw Python socket) reach nothing, not
//! even a server on the host's loopback, while the same request through the proxy works.

use crate::proxy_curl::{proxy_args, setup};
use crate::support::{SENTINEL, node};

#[test]
fn only_the_proxy_is_reachable_from_an_isolated_command() {
    let (v, up, _) = setup();
    let upstream_port = up.addr.port();
    let args = proxy_args(&up, &["api.example.com"]);
    let node_bin = node().get_program().to_owned();
    let script = format!(
        r#"
        curl -sS -m 10 https://api.example.com/v1/users >/dev/null && echo "proxy: ok"
        curl -s -m 5 -k https://127.0.0.1:{upstream_port}/v1/users >/dev/null || echo "direct loopback: refused"
        python3 -c 'import socket
try:
    socket.create_connection(("127.0.0.1", {upstream_port}), timeout=3); print("raw: connected")
except OSError as e: print("raw loopback:", e.errno)
try:
    socket.create_connection(("192.0.2.1", 443), timeout=3); print("raw: connected")
except OSError as e: print("raw public:", e.errno)'
        env -u NODE_USE_ENV_PROXY -u HTTPS_PROXY -u https_proxy {node} -e '
          fetch("https://api.example.com/v1/users").then(() => console.log("node: reached"),
            e => console.log("node direct:", e.cause ? e.cause.code : e.message))'
        "#,
        node = node_bin.to_string_lossy()
    );
    // Through a private proxy and through a running one.
    for running in [false, true] {
        let p = running.then(|| v.proxy(&args.iter().map(String::as_str).collect::<Vec<_>>()));
        let before = up.seen.lock().unwrap().len();
        let mut a = vec!["run", "--isolate"];
        a.extend(args.iter().map(String::as_str));
        a.extend(["--", "sh", "-c", &script]);
        let out = v.run(&a);
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "{stdout}\n{stderr}");
        assert!(stdout.contains("proxy: ok"), "{stdout}\n{stderr}");
        assert!(stdout.contains("direct loopback: refused"), "{stdout}");
        assert!(stdout.contains("raw loopback: 111"), "ECONNREFUSED inside the namespace: {stdout}");
        assert!(stdout.contains("raw public: 101"), "ENETUNREACH: {stdout}");
        assert!(stdout.contains("node direct:") && !stdout.contains("node: reached"), "{stdout}");
        // Exactly one request arrived upstream: the one through the proxy, with the key.
        let seen = up.seen.lock().unwrap();
        assert_eq!(seen.len(), before + 1, "{stdout}");
        assert!(seen.last().unwrap().headers.iter().any(|(_, val)| val.contains(SENTINEL)));
        drop(seen);
        if let Some(p) = p {
            p.stop();
        }
    }
    // --isolate needs the sandbox.
    let (code, err) = v.fails(&["run", "--isolate", "--sandbox", "off", "--", "true"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--isolate needs the sandbox"), "{err}");
}

/// Where user namespaces are refused, --isolate refuses to start the command (never runs it with
/// the network it asked to be cut off from).
#[test]
fn isolate_refuses_where_namespaces_are_not_available() {
    let (v, _up, _) = setup();
    let bin = assert_cmd::cargo::cargo_bin("aivault").display().to_string();
    let inner =
        format!("echo 0 > /proc/sys/user/max_user_namespaces && exec {bin} run --isolate -- sh -c 'echo started'");
    let base = v.std_cmd();
    let mut cmd = std::process::Command::new("unshare");
    cmd.args(["--user", "--map-root-user", "sh", "-c", &inner]);
    cmd.env_clear().envs(base.get_envs().filter_map(|(k, val)| Some((k, val?))));
    cmd.env("PATH", std::env::var("PATH").unwrap_or_default());
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(126), "{stderr}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("started"));
    assert!(stderr.contains("--isolate: cannot give the command a network of its own"), "{stderr}");
}
