//! Masking the agent cannot switch off: an upstream that reflects the credential in any common
//! encoding, compressed with any coding (whatever the agent asked for), or in a trailer, never
//! hands it to the agent.

use crate::proxy_clients::client_env;
use crate::proxy_curl::{curl, proxy_args, setup};
use crate::support::reflect::{CODINGS, ENCODINGS, encode};
use crate::support::{SENTINEL, python, run_client};

/// A real client (Python requests, which asks for gzip and decodes it) fetches every encoding
/// under every coding.
#[test]
fn reflected_in_any_encoding_and_any_coding_the_agent_sees_only_stars() {
    let (v, up, token) = setup();
    let args = proxy_args(&up, &["api.example.com"]);
    let p = v.proxy(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let script = r#"
import json, sys, requests
out = {}
s = requests.Session()
for enc in sys.argv[1].split(","):
    for ce in sys.argv[2].split(","):
        r = s.get(f"https://api.example.com/v1/users/reflect?enc={enc}&ce={ce}",
                  headers={"Accept-Encoding": "gzip, deflate, br, zstd"}, timeout=20)
        out[f"{enc}/{ce}"] = {"status": r.status_code, "ce": r.headers.get("content-encoding"),
                               "echo": r.headers.get("x-echo"), "text": r.text}
print(json.dumps(out))
"#;
    let mut cmd = python();
    cmd.args(["-c", script, &ENCODINGS.join(","), &CODINGS.join(",")]);
    client_env(&mut cmd, &p.url(&token), &v.ca_path());
    let (code, out, err) = run_client(&mut cmd);
    assert_eq!(code, 0, "{out}\n{err}");
    let got: serde_json::Value = serde_json::from_str(&out).unwrap();
    for enc in ENCODINGS {
        let secret = encode(enc, SENTINEL).to_ascii_lowercase();
        for ce in CODINGS {
            let r = &got[format!("{enc}/{ce}")];
            assert_eq!(r["status"], 200, "{enc}/{ce}: {r}");
            assert!(r["ce"].is_null(), "{enc}/{ce}: the agent receives identity: {r}");
            let text = r["text"].as_str().unwrap().to_ascii_lowercase();
            let echo = r["echo"].as_str().unwrap_or("").to_ascii_lowercase();
            assert!(text.starts_with("you sent: <") && text.contains("*****"), "{enc}/{ce}: {r}");
            assert!(!text.contains(&secret) && !echo.contains(&secret), "{enc}/{ce} leaked: {r}");
            // Not even a recognisable half of it.
            assert!(!text.contains(&secret[..secret.len() / 2]), "{enc}/{ce} leaked a part: {r}");
        }
    }
    // The proxy, not the agent, chose the upstream's encoding.
    for r in up.requests() {
        assert_eq!(r.headers_named("accept-encoding"), vec!["identity"], "{}", r.path_and_query);
    }
}

#[test]
fn a_coding_the_proxy_cannot_read_is_refused_not_passed_through() {
    let (v, up, token) = setup();
    let args = proxy_args(&up, &["api.example.com"]);
    let p = v.proxy(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let (code, out, err) =
        curl(&p.url(&token), &v.ca_path(), &["-i", "https://api.example.com/v1/users/reflect?enc=raw&ce=compress"]);
    assert_eq!(code, 0, "{err}");
    // After the CONNECT's own 200, the response inside the tunnel.
    assert!(out.contains("\r\n\r\nHTTP/1.1 502") || out.contains("\r\n\r\nHTTP/2 502"), "{out}");
    assert!(out.contains("x-aivault-error: unsupported_encoding"), "{out}");
    assert!(!out.contains(SENTINEL), "{out}");
}

/// HTTP/2 on both sides: the echo travels in a trailer.
#[test]
fn trailers_are_masked() {
    let (v, up, token) = setup();
    let args = proxy_args(&up, &["api.example.com"]);
    let p = v.proxy(&args.iter().map(String::as_str).collect::<Vec<_>>());
    for enc in ["raw", "base64", "hex"] {
        let url = format!("https://api.example.com/v1/users/reflect?enc={enc}&at=trailer");
        let (code, out, err) =
            curl(&p.url(&token), &v.ca_path(), &["--http2", "-sS", "-D", "-", "-o", "/dev/null", &url]);
        assert_eq!(code, 0, "{err}");
        let secret = encode(enc, SENTINEL).to_ascii_lowercase();
        let lower = out.to_ascii_lowercase();
        assert!(lower.contains("\r\n\r\nhttp/2 200"), "{out}");
        assert!(lower.matches("x-echo: ").count() == 2, "header and trailer both arrive: {out}");
        assert!(!lower.contains(&secret), "{enc} leaked in a header or trailer: {out}");
    }
    assert_eq!(up.last().version, "HTTP/2.0");
}
