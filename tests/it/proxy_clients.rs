//! Real clients through the proxy with nothing but standard proxy and CA variables.

use crate::proxy_curl::{proxy_args, setup};
use crate::support::{SENTINEL, node, python, run_client};

pub fn client_env(cmd: &mut std::process::Command, proxy_url: &str, ca: &str) {
    for k in ["HTTPS_PROXY", "https_proxy"] {
        cmd.env(k, proxy_url);
    }
    for k in ["SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "NODE_EXTRA_CA_CERTS"] {
        cmd.env(k, ca);
    }
    cmd.env("NODE_USE_ENV_PROXY", "1");
}

#[test]
fn python_requests_and_httpx() {
    let (v, up, token) = setup();
    let args = proxy_args(&up, &["api.example.com"]);
    let p = v.proxy(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let ca = v.ca_path();
    let script = r#"
import requests, httpx
r = requests.get("https://api.example.com/v1/users/requests", headers={"Authorization": "Bearer placeholder"}, timeout=20)
print("requests", r.status_code, r.json()["ok"])
r = httpx.post("https://api.example.com/v1/users/httpx", json={"a": 1}, headers={"x-api-key": "placeholder"}, timeout=20)
print("httpx", r.status_code, r.json()["ok"])
"#;
    let mut cmd = python();
    cmd.args(["-c", script]);
    client_env(&mut cmd, &p.url(&token), &ca);
    let (code, out, err) = run_client(&mut cmd);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("requests 200 True") && out.contains("httpx 200 True"), "{out}");
    let seen = up.requests();
    let by_path = |p: &str| seen.iter().find(|r| r.path_and_query == p).unwrap_or_else(|| panic!("{p} not seen"));
    assert_eq!(by_path("/v1/users/requests").headers_named("authorization"), vec![format!("Bearer {SENTINEL}")]);
    let httpx_req = by_path("/v1/users/httpx");
    assert_eq!(httpx_req.headers_named("authorization"), vec![format!("Bearer {SENTINEL}")]);
    assert!(httpx_req.header("x-api-key").is_none());
    assert_eq!(httpx_req.body, br#"{"a":1}"#);
}

#[test]
fn openai_sdk_with_a_placeholder_key() {
    let (v, up, token) = setup();
    v.ok(&["secrets", "create", "--name", "OPENAI_API_KEY", "--value", "sk-real-from-vault", "--scope", "global"]);
    let args = proxy_args(&up, &["api.openai.com"]);
    let p = v.proxy(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let script = r#"
from openai import OpenAI
client = OpenAI(api_key="sk-placeholder-not-real")
raw = client.chat.completions.with_raw_response.create(model="gpt-5.2", messages=[{"role": "user", "content": "hi"}])
print("status", raw.status_code)
"#;
    let mut cmd = python();
    cmd.args(["-c", script]);
    client_env(&mut cmd, &p.url(&token), &v.ca_path());
    let (code, out, err) = run_client(&mut cmd);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("status 200"), "{out}");
    let seen = up.last();
    assert_eq!(seen.path_and_query, "/v1/chat/completions");
    assert_eq!(seen.headers_named("authorization"), vec!["Bearer sk-real-from-vault"]);
    assert!(String::from_utf8_lossy(&seen.body).contains("gpt-5.2"));
}

#[test]
fn node_24_fetch_with_env_proxy() {
    let (v, up, token) = setup();
    let args = proxy_args(&up, &["api.example.com"]);
    let p = v.proxy(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let script = r#"
const r = await fetch("https://api.example.com/v1/users/node", { headers: { authorization: "Bearer placeholder" } });
console.log("node", r.status, (await r.json()).ok);
"#;
    let mut cmd = node();
    cmd.args(["--input-type=module", "-e", script]);
    client_env(&mut cmd, &p.url(&token), &v.ca_path());
    let (code, out, err) = run_client(&mut cmd);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("node 200 true"), "{out}");
    assert_eq!(up.last().headers_named("authorization"), vec![format!("Bearer {SENTINEL}")]);
}
