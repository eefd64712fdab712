//! `--allow-destination`: private destinations the operator names pass the guard, in intercept and
//! tunnel mode; everything else private stays refused, and the refusal names the flag.

use crate::proxy_curl::curl;
use crate::support::upstream::FakeUpstream;
use crate::support::{SENTINEL, TestVault};

#[test]
fn named_private_destinations_pass_the_guard_in_both_modes() {
    let up = FakeUpstream::start();
    let port = up.addr.port();
    let v = TestVault::new();
    crate::proxy_curl::serve_sentinel_at(&v, "mirror", &format!("localhost:{port}"));
    let token = v.agent("a", &[]);
    let ca = v.ca_path();
    let intercepted = format!("https://localhost:{port}/simple/six/");
    let tunnelled = format!("https://localhost:{port}/tunnelled");
    let upstream_ca = up.ca_path.display().to_string();

    // Without the flag: refused, and the message names it.
    let p = v.proxy(&["--upstream-ca", &upstream_ca]);
    let (_, out, _) = curl(&p.url(&token), &ca, &["-s", &intercepted]);
    assert!(out.contains("destination_blocked") && out.contains("--allow-destination"), "{out}");
    p.stop();

    // A range that does not contain the address changes nothing.
    let p = v.proxy(&["--upstream-ca", &upstream_ca, "--allow-destination", "10.0.0.0/8"]);
    let (_, out, _) = curl(&p.url(&token), &ca, &["-s", &intercepted]);
    assert!(out.contains("destination_blocked"), "{out}");
    p.stop();

    // Intercepted, allowed by range: the credential is injected.
    let p = v.proxy(&["--upstream-ca", &upstream_ca, "--allow-destination", "127.0.0.0/8"]);
    let (code, out, err) = curl(&p.url(&token), &ca, &["-sS", "-f", &intercepted]);
    assert_eq!(code, 0, "{out} {err}");
    assert!(up.last().headers.iter().any(|(_, v)| v.contains(SENTINEL)), "the credential arrived");
    p.stop();

    // Tunnelled (--unmatched tunnel, another port so no capability names it), allowed by host:
    // the agent's TLS goes end to end to the upstream.
    v.ok(&["capability", "delete", "mirror/all"]);
    let p = v.proxy(&["--unmatched", "tunnel"]);
    let (_, out, _) = curl(&p.url(&token), &upstream_ca, &["-s", "-o", "/dev/null", "-w", "%{http_code}", &tunnelled]);
    assert_eq!(out.trim(), "000", "tunnel refused without the flag: {out}");
    p.stop();
    let p = v.proxy(&["--unmatched", "tunnel", "--allow-destination", "localhost"]);
    let (code, out, err) = curl(&p.url(&token), &upstream_ca, &["-sS", "-f", &tunnelled]);
    assert_eq!(code, 0, "{out} {err}");
    assert_eq!(up.last().path_and_query, "/tunnelled");
    p.stop();
    let audit = v.json(&["audit", "--limit", "50"]);
    let kinds: Vec<String> =
        audit.as_array().unwrap().iter().map(|e| format!("{} {}", e["kind"], e["outcome"])).collect();
    assert!(kinds.iter().any(|k| k == "\"proxy.connect\" \"destination_blocked\""), "{kinds:?}");
}
