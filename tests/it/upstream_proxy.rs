//! `--upstream-proxy`: aivault behind a corporate egress proxy (a real tinyproxy, started here).
//! Intercepted requests still get the credential injected; tunnelled ones go end to end; the
//! egress proxy sees every CONNECT; its credentials are sent and never shown.

use std::process::{Child, Stdio};

use crate::proxy_curl::curl;
use crate::support::upstream::FakeUpstream;
use crate::support::{SENTINEL, TestVault, eventually};

struct Tinyproxy {
    child: Child,
    port: u16,
    log: std::path::PathBuf,
}

impl Drop for Tinyproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Tinyproxy {
    fn start(dir: &std::path::Path) -> Tinyproxy {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let conf = dir.join("tinyproxy.conf");
        let log = dir.join("tinyproxy.log");
        std::fs::write(
            &conf,
            format!(
                "Port {port}\nListen 127.0.0.1\nTimeout 60\nLogLevel Connect\nMaxClients 50\n\
                 BasicAuth alice s3cret-proxy-pass\nAllow 127.0.0.1\n"
            ),
        )
        .unwrap();
        let out = std::fs::File::create(&log).unwrap();
        let child = std::process::Command::new("tinyproxy")
            .args(["-d", "-c"])
            .arg(&conf)
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .stdin(Stdio::null())
            .spawn()
            .expect("tinyproxy (Debian's tinyproxy package; scripts/test installs it)");
        eventually("tinyproxy to listen", || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
        Tinyproxy { child, port, log }
    }

    fn connects(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("Request") && l.contains("CONNECT "))
            .map(str::to_owned)
            .collect()
    }
}

#[test]
fn intercepted_and_tunnelled_traffic_goes_through_the_egress_proxy() {
    let up = FakeUpstream::start();
    let port = up.addr.port();
    let v = TestVault::new();
    let tiny = Tinyproxy::start(v.dir.path());
    crate::proxy_curl::serve_sentinel_at(&v, "egress", &format!("localhost:{port}"));
    let token = v.agent("a", &[]);
    let ca = v.ca_path();
    let upstream_ca = up.ca_path.display().to_string();
    let via = format!("http://alice:s3cret-proxy-pass@127.0.0.1:{}", tiny.port);

    // Intercepted: TLS to the upstream runs inside tinyproxy's CONNECT; the key is injected.
    let p = v.proxy(&["--upstream-ca", &upstream_ca, "--upstream-proxy", &via]);
    let (code, out, err) = curl(&p.url(&token), &ca, &["-sS", "-f", &format!("https://localhost:{port}/v1/users")]);
    assert_eq!(code, 0, "{out} {err}\n{}", p.logs());
    assert!(up.last().headers.iter().any(|(_, v)| v.contains(SENTINEL)), "the credential arrived");
    assert!(tiny.connects().iter().any(|l| l.contains(&format!("CONNECT localhost:{port}"))), "{:?}", tiny.connects());
    assert!(!p.logs().contains("s3cret-proxy-pass"));
    p.stop();
    let proxy_json = std::fs::read_to_string(v.home().join("proxy.json")).unwrap_or_default();
    assert!(!proxy_json.contains("s3cret-proxy-pass"), "{proxy_json}");

    // Tunnelled (no capability names the host): the agent's own TLS, end to end, through it.
    v.ok(&["capability", "delete", "egress/all"]);
    let before = tiny.connects().len();
    let p = v.proxy(&["--unmatched", "tunnel", "--upstream-proxy", &via]);
    let (code, out, err) =
        curl(&p.url(&token), &upstream_ca, &["-sS", "-f", &format!("https://localhost:{port}/tunnelled")]);
    assert_eq!(code, 0, "{out} {err}");
    assert_eq!(up.last().path_and_query, "/tunnelled");
    assert_eq!(tiny.connects().len(), before + 1);
    p.stop();

    // Wrong proxy credentials: a clear 502 that names the fix, and no password in it.
    v.ok(&["capability", "create", "egress/all", "--credential", "egress", "--method", "GET", "--path", "/"]);
    let bad = format!("http://alice:wrong@127.0.0.1:{}", tiny.port);
    let p = v.proxy(&["--upstream-ca", &upstream_ca, "--upstream-proxy", &bad]);
    let (_, out, _) = curl(&p.url(&token), &ca, &["-s", &format!("https://localhost:{port}/v1/users")]);
    assert!(out.contains("upstream_error") && out.contains("requires authentication"), "{out}");
    assert!(!out.contains("wrong"), "{out}");
    p.stop();

    // Hosts in --upstream-no-proxy connect directly (here: refused by the guard, as direct
    // connections to loopback are).
    let p = v.proxy(&["--upstream-ca", &upstream_ca, "--upstream-proxy", &via, "--upstream-no-proxy", "localhost"]);
    let (_, out, _) = curl(&p.url(&token), &ca, &["-s", &format!("https://localhost:{port}/v1/users")]);
    assert!(out.contains("destination_blocked"), "{out}");
    p.stop();
}
