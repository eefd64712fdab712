//! AWS SigV4 end to end: boto3 with placeholder keys, through the proxy, to an endpoint that
//! recomputes each signature with botocore using the real key.

use std::io::BufRead as _;
use std::process::{Child, Stdio};

use crate::support::{ProxyProc, TestVault, python, run_client};

const REAL_AKID: &str = "AKIAREALKEY000000001";
const REAL_SECRET: &str = "real/Secret+Key/SENTINEL-aws-0000000000000";
const HOSTS: &[&str] = &[
    "aivault-test.s3.amazonaws.com",
    "s3.amazonaws.com",
    "sts.amazonaws.com",
    "sts.us-east-1.amazonaws.com",
    "bedrock-runtime.us-east-1.amazonaws.com",
    "aivault-test.s3.us-east-1.amazonaws.com",
    "sts.ap-south-1.amazonaws.com",
    "aivault-test.s3.ap-south-1.amazonaws.com",
    "bedrock-runtime.ca-west-1.amazonaws.com",
];

struct Verifier {
    child: Child,
    port: u16,
    ca_path: std::path::PathBuf,
    log: std::path::PathBuf,
}

impl Drop for Verifier {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_verifier(dir: &std::path::Path, token: Option<&str>) -> Verifier {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, "aws verifier CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let names: Vec<String> = HOSTS
        .iter()
        .map(|h| h.to_string())
        .chain(["*.s3.amazonaws.com".to_string(), "*.s3.us-east-1.amazonaws.com".to_string()])
        .collect();
    let cert = rcgen::CertificateParams::new(names).unwrap().signed_by(&key, &issuer).unwrap();
    let (ca_path, cert_path, key_path) = (dir.join("aws-ca.pem"), dir.join("aws-cert.pem"), dir.join("aws-key.pem"));
    std::fs::write(&ca_path, ca.pem()).unwrap();
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    let script = dir.join("aws_verifier.py");
    std::fs::write(&script, include_str!("aws_verifier.py")).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let log = dir.join("aws-verifier.log");
    let mut cmd = python();
    cmd.arg(&script).args([
        &port.to_string(),
        cert_path.to_str().unwrap(),
        key_path.to_str().unwrap(),
        REAL_AKID,
        REAL_SECRET,
    ]);
    cmd.arg(log.to_str().unwrap()).arg(token.unwrap_or(""));
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready");
    Verifier { child, port, ca_path, log }
}

/// A proxy that reaches every host in `HOSTS` at the verifier and trusts its CA.
fn proxy_to(vault: &TestVault, verifier: &Verifier) -> ProxyProc {
    let mut args = vec!["--upstream-ca".to_owned(), verifier.ca_path.display().to_string()];
    for h in HOSTS {
        args.push("--resolve".into());
        args.push(format!("{h}:443:127.0.0.1:{}", verifier.port));
    }
    vault.proxy(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// Runs a boto3 `script` through the proxy with `token`, trusting the vault's CA bundle.
fn boto3(vault: &TestVault, p: &ProxyProc, token: &str, script: &str) -> (i32, String, String) {
    let mut cmd = python();
    cmd.args(["-c", script])
        .env("HTTPS_PROXY", p.url(token))
        .env("AWS_CA_BUNDLE", vault.home().join("ca-bundle.pem"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("HOME", vault.dir.path());
    vault.ca_path();
    run_client(&mut cmd)
}

fn records(v: &Verifier) -> Vec<serde_json::Value> {
    std::fs::read_to_string(&v.log).unwrap_or_default().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn boto3_through_proxy(session_token: Option<&str>) {
    let vault = TestVault::new();
    let verifier = start_verifier(vault.dir.path(), session_token);
    vault.ok(&["secrets", "create", "--name", "AWS_ACCESS_KEY_ID", "--value", REAL_AKID]);
    let out = vault.ok(&["secrets", "create", "--name", "AWS_SECRET_ACCESS_KEY", "--value", REAL_SECRET]);
    for p in ["aws-bedrock", "aws-s3", "aws-sts"] {
        assert!(out.contains(&format!("Credential auto-provisioned: {p}")), "{out}");
    }
    if let Some(t) = session_token {
        let out = vault.ok(&["secrets", "create", "--name", "AWS_SESSION_TOKEN", "--value", t]);
        assert!(out.contains("Credential updated: aws-s3"), "{out}");
    }
    let token = vault.agent("boto", &[]);
    let p = proxy_to(&vault, &verifier);
    let script = r#"
import json, boto3
from botocore.config import Config
s = boto3.session.Session(aws_access_key_id="AKIDPLACEHOLDER", aws_secret_access_key="placeholder-secret",
                          aws_session_token="placeholder-token", region_name="us-east-1")
s3 = s.client("s3", config=Config(s3={"addressing_style": "virtual"}))
key = "dir/my file ü (1).txt"
s3.put_object(Bucket="aivault-test", Key=key, Body=b"hello through aivault")
got = s3.get_object(Bucket="aivault-test", Key=key)["Body"].read()
print("s3", got.decode())
print("sts", s.client("sts").get_caller_identity()["Account"])
br = s.client("bedrock-runtime")
resp = br.invoke_model(modelId="anthropic.claude-3-haiku-20240307-v1:0", contentType="application/json",
                       accept="application/json", body=json.dumps({"prompt": "hi", "max_tokens": 5}))
print("bedrock", json.loads(resp["body"].read())["completion"])
"#;
    let (code, out, err) = boto3(&vault, &p, &token, script);
    let recs = records(&verifier);
    assert_eq!(code, 0, "boto3 failed:\n{out}\n{err}\nverifier saw: {recs:#?}");
    assert!(out.contains("s3 hello through aivault"), "{out}");
    assert!(out.contains("sts 123456789012"), "{out}");
    assert!(out.contains("bedrock signed correctly"), "{out}");
    assert!(recs.len() >= 4, "{recs:#?}");
    for r in &recs {
        assert_eq!(r["ok"], true, "signature mismatch: {r:#}");
    }
    let put = recs.iter().find(|r| r["method"] == "PUT").unwrap();
    assert!(put["path"].as_str().unwrap().contains("my%20file%20%C3%BC%20%281%29.txt"), "{put:#}");
    let bedrock = recs.iter().find(|r| r["service"] == "bedrock").unwrap();
    assert!(bedrock["path"].as_str().unwrap().contains("v1%3A0"), "{bedrock:#}");
    assert!(!out.contains("SENTINEL") && !err.contains("SENTINEL"));
    assert!(!p.logs().contains("SENTINEL"));
}

/// Regions beyond the first seven: every commercial region is a registry host, and the signature
/// is made for the region in the host name.
#[test]
fn every_commercial_region_is_served_and_signed_for_its_own_region() {
    let vault = TestVault::new();
    let verifier = start_verifier(vault.dir.path(), None);
    vault.ok(&["secrets", "create", "--name", "AWS_ACCESS_KEY_ID", "--value", REAL_AKID]);
    vault.ok(&["secrets", "create", "--name", "AWS_SECRET_ACCESS_KEY", "--value", REAL_SECRET]);
    let token = vault.agent("boto", &[]);
    let p = proxy_to(&vault, &verifier);
    let script = r#"
import json, boto3
from botocore.config import Config
s = boto3.session.Session(aws_access_key_id="AKIDPLACEHOLDER", aws_secret_access_key="placeholder-secret",
                          region_name="ap-south-1")
print("sts", s.client("sts", endpoint_url="https://sts.ap-south-1.amazonaws.com").get_caller_identity()["Account"])
s3 = s.client("s3", config=Config(s3={"addressing_style": "virtual"}))
s3.put_object(Bucket="aivault-test", Key="k.txt", Body=b"mumbai")
print("s3", s3.get_object(Bucket="aivault-test", Key="k.txt")["Body"].read().decode())
br = boto3.session.Session(aws_access_key_id="AKIDPLACEHOLDER", aws_secret_access_key="placeholder-secret",
                           region_name="ca-west-1").client("bedrock-runtime")
resp = br.invoke_model(modelId="m", contentType="application/json", accept="application/json", body=b"{}")
print("bedrock", json.loads(resp["body"].read())["completion"])
"#;
    let (code, out, err) = boto3(&vault, &p, &token, script);
    let recs = records(&verifier);
    assert_eq!(code, 0, "boto3 failed:\n{out}\n{err}\nverifier saw: {recs:#?}");
    assert!(out.contains("sts 123456789012") && out.contains("s3 mumbai"), "{out}");
    assert!(out.contains("bedrock signed correctly"), "{out}");
    for r in &recs {
        assert_eq!(r["ok"], true, "signature mismatch: {r:#}");
        let want = if r["host"].as_str().unwrap().contains("ca-west-1") { "ca-west-1" } else { "ap-south-1" };
        assert_eq!(r["region"], want, "{r:#}");
    }
    assert!(recs.len() >= 4, "{recs:#?}");
}

#[test]
fn boto3_s3_sts_and_bedrock_are_re_signed_with_the_real_key() {
    boto3_through_proxy(None);
}

#[test]
fn session_tokens_are_added_and_signed() {
    boto3_through_proxy(Some("FwoGZXIvYXdzEreal-session-token"));
}

#[test]
fn signed_chunk_uploads_and_oversized_bodies_get_clear_errors() {
    let vault = TestVault::new();
    let verifier = start_verifier(vault.dir.path(), None);
    vault.ok(&["secrets", "create", "--name", "AWS_ACCESS_KEY_ID", "--value", REAL_AKID]);
    vault.ok(&["secrets", "create", "--name", "AWS_SECRET_ACCESS_KEY", "--value", REAL_SECRET]);
    let token = vault.agent("boto", &[]);
    let resolve: Vec<String> = HOSTS.iter().map(|h| format!("{h}:443:127.0.0.1:{}", verifier.port)).collect();
    let mut args = vec![
        "--upstream-ca".to_owned(),
        verifier.ca_path.display().to_string(),
        "--sigv4-max-body-bytes".into(),
        "64".into(),
    ];
    for r in &resolve {
        args.extend(["--resolve".to_owned(), r.clone()]);
    }
    let p = vault.proxy(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let ca = vault.ca_path();
    let (_, out, _) = crate::proxy_curl::curl(
        &p.url(&token),
        &ca,
        &[
            "-i",
            "-X",
            "PUT",
            "-H",
            "x-amz-content-sha256: STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
            "--data-binary",
            "x",
            "https://aivault-test.s3.amazonaws.com/k",
        ],
    );
    assert!(out.contains(" 400") && out.contains("unsupported_payload_signing"), "{out}");
    let big = "y".repeat(1000);
    let (_, out, _) = crate::proxy_curl::curl(
        &p.url(&token),
        &ca,
        &["-i", "-X", "POST", "--data-binary", &big, "https://bedrock-runtime.us-east-1.amazonaws.com/model/m/invoke"],
    );
    assert!(out.contains(" 413") && out.contains("request_too_large"), "{out}");
    assert!(records(&verifier).is_empty(), "refused requests must not reach AWS");
    // Small bodies under the limit are hashed and signed.
    let (_, out, _) = crate::proxy_curl::curl(
        &p.url(&token),
        &ca,
        &["-i", "-X", "POST", "--data-binary", "{}", "https://bedrock-runtime.us-east-1.amazonaws.com/model/m/invoke"],
    );
    assert!(out.contains("signed correctly"), "{out}");
    assert_eq!(records(&verifier)[0]["ok"], true);
}

/// Custom credentials on hosts that registry providers also name: the capability that can be
/// served wins, while the registry providers stay unprovisioned (issue: match, then resolve).
#[test]
fn custom_aws_credentials_win_over_unprovisioned_registry_providers() {
    let vault = TestVault::new();
    let verifier = start_verifier(vault.dir.path(), None);
    let keys = format!(r#"{{"access_key_id":"{REAL_AKID}","secret_access_key":"{REAL_SECRET}"}}"#);
    let secret = vault.json(&["secrets", "create", "--name", "MY_AWS_KEYS", "--value", &keys]);
    let secret_ref = secret["ref"].as_str().unwrap().to_owned();
    for (id, service, host, method) in [
        ("my-sts", "sts", "sts.us-east-1.amazonaws.com", "POST"),
        ("my-s3", "s3", "aivault-test.s3.us-east-1.amazonaws.com", "PUT"),
        ("my-bedrock", "bedrock-runtime", "bedrock-runtime.us-east-1.amazonaws.com", "POST"),
    ] {
        vault.ok(&[
            "credential",
            "create",
            id,
            "--provider",
            id,
            "--secret-ref",
            &secret_ref,
            "--auth",
            "aws-sigv4",
            "--aws-service",
            service,
            "--aws-region",
            "us-east-1",
            "--host",
            host,
        ]);
        let mut cap = vec!["capability", "create", &*Box::leak(format!("{id}/all").into_boxed_str()), "--provider", id];
        cap.extend(["--credential", id, "--method", method, "--method", "GET", "--path", "/"]);
        vault.ok(&cap);
    }
    let token = vault.agent("boto", &[]);
    let p = proxy_to(&vault, &verifier);
    let script = r#"
import json, boto3
from botocore.config import Config
s = boto3.session.Session(aws_access_key_id="AKIDPLACEHOLDER", aws_secret_access_key="placeholder-secret",
                          region_name="us-east-1")
print("sts", s.client("sts", endpoint_url="https://sts.us-east-1.amazonaws.com").get_caller_identity()["Account"])
s3 = s.client("s3", endpoint_url="https://s3.us-east-1.amazonaws.com", config=Config(s3={"addressing_style": "virtual"}))
s3.put_object(Bucket="aivault-test", Key="k.txt", Body=b"custom wins")
br = s.client("bedrock-runtime")
resp = br.invoke_model(modelId="m", contentType="application/json", accept="application/json", body=b"{}")
print("bedrock", json.loads(resp["body"].read())["completion"])
"#;
    let (code, out, err) = boto3(&vault, &p, &token, script);
    let recs = records(&verifier);
    assert_eq!(
        code,
        0,
        "boto3 failed:\n{out}\n{err}\nverifier saw: {recs:#?}\naudit: {}",
        vault.ok(&["audit", "--limit", "5"])
    );
    assert!(out.contains("sts 123456789012") && out.contains("bedrock signed correctly"), "{out}");
    assert!(recs.len() >= 3 && recs.iter().all(|r| r["ok"] == true), "{recs:#?}");
    p.stop();
    let p = proxy_to(&vault, &verifier);
    let audit = vault.json(&["audit", "--agent", "boto"]);
    for id in ["my-sts", "my-s3", "my-bedrock"] {
        assert!(
            audit.as_array().unwrap().iter().any(|e| e["credential"] == id && e["outcome"] == "ok"),
            "{id} served nothing: {audit:#}"
        );
    }

    // Once the registry credential is provisioned and the custom one is gone, the registry wins.
    vault.ok(&["credential", "delete", "my-sts"]);
    vault.ok(&["secrets", "create", "--name", "AWS_ACCESS_KEY_ID", "--value", REAL_AKID]);
    vault.ok(&["secrets", "create", "--name", "AWS_SECRET_ACCESS_KEY", "--value", REAL_SECRET]);
    crate::support::eventually("the registry credential to serve sts", || {
        let (code, _, _) = run_client(&mut {
            let mut c = python();
            c.args(["-c", "import boto3; print(boto3.client('sts', region_name='us-east-1', endpoint_url='https://sts.us-east-1.amazonaws.com', aws_access_key_id='x', aws_secret_access_key='y').get_caller_identity()['Account'])"])
                .env("HTTPS_PROXY", p.url(&token))
                .env("AWS_CA_BUNDLE", vault.home().join("ca-bundle.pem"))
                .env("AWS_EC2_METADATA_DISABLED", "true")
                .env("HOME", vault.dir.path());
            c
        });
        code == 0
    });
    crate::support::eventually("the audit record of the registry credential", || {
        let audit = vault.json(&["audit", "--agent", "boto", "--limit", "5"]);
        audit.as_array().unwrap().iter().any(|e| e["credential"] == "aws-sts" && e["outcome"] == "ok")
    });
}
