//! The published AWS SigV4 test suite (tests/fixtures/sigv4, Apache-2.0), plus the S3 payload
//! cases the suite lacks.

use std::path::{Path, PathBuf};

use super::*;

struct Case {
    name: String,
    method: String,
    path: String,
    query: Option<String>,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn parse(dir: &Path) -> Case {
    let raw = std::fs::read(dir.join("request.txt")).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = match text.find("\n\n") {
        Some(i) => (&text[..i], text.as_bytes()[i + 2..].to_vec()),
        None => (text.as_str(), Vec::new()),
    };
    let mut lines = head.lines();
    let request_line = lines.next().unwrap();
    let method = request_line.split(' ').next().unwrap().to_owned();
    let target = request_line[method.len() + 1..request_line.rfind(" HTTP/").unwrap()].to_owned();
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_owned(), Some(q.to_owned())),
        None => (target, None),
    };
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in lines {
        if line.starts_with(' ') || line.starts_with('\t') {
            // obs-fold continuation: join with one space.
            if let Some(last) = headers.last_mut() {
                last.1.push(' ');
                last.1.push_str(line.trim());
            }
            continue;
        }
        let (k, v) = line.split_once(':').unwrap();
        headers.push((k.to_ascii_lowercase(), v.to_owned()));
    }
    Case { name: dir.file_name().unwrap().to_string_lossy().into_owned(), method, path, query, headers, body }
}

fn fixtures() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sigv4/v4");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root).unwrap().map(|e| e.unwrap().path()).collect();
    dirs.sort();
    dirs
}

fn read(dir: &Path, file: &str) -> Option<String> {
    std::fs::read_to_string(dir.join(file)).ok().map(|t| t.trim_end_matches('\n').to_owned())
}

#[test]
fn published_suite_canonical_request_string_to_sign_and_signature() {
    let mut checked = 0;
    for dir in fixtures() {
        let mut case = parse(&dir);
        let context: Option<serde_json::Value> = read(&dir, "context.json").map(|t| serde_json::from_str(&t).unwrap());
        let (settings, date_time, region, service, akid, secret, token, omit_token, sign_body) = match &context {
            Some(c) => (
                Settings { normalize_path: c["normalize"].as_bool().unwrap(), double_encode: false },
                "20150830T123600Z".to_owned(),
                c["region"].as_str().unwrap().to_owned(),
                c["service"].as_str().unwrap().to_owned(),
                c["credentials"]["access_key_id"].as_str().unwrap().to_owned(),
                c["credentials"]["secret_access_key"].as_str().unwrap().to_owned(),
                c["credentials"]["token"].as_str().map(str::to_owned),
                c["omit_session_token"].as_bool().unwrap_or(false),
                c["sign_body"].as_bool().unwrap_or(false),
            ),
            // The two smithy cases without context: AWS's non-S3 regime, fixed 2021 signing time.
            None => (
                Settings { normalize_path: true, double_encode: true },
                "20210511T154045Z".to_owned(),
                "us-east-2".to_owned(),
                "lambda".to_owned(),
                "ANOTREAL".to_owned(),
                "notrealrnrELgWzOk3IfjzDKtFBhDby".to_owned(),
                None,
                false,
                false,
            ),
        };
        case.headers.retain(|(k, _)| k != "x-amz-date");
        case.headers.push(("x-amz-date".into(), date_time.clone()));
        if let (Some(t), false) = (&token, omit_token) {
            case.headers.push(("x-amz-security-token".into(), t.clone()));
        }
        let payload = sha256_hex(&case.body);
        if sign_body {
            case.headers.push(("x-amz-content-sha256".into(), payload.clone()));
        }
        let req =
            Request { method: &case.method, path: &case.path, query: case.query.as_deref(), headers: &case.headers };
        let creds = Credentials { access_key_id: &akid, secret_access_key: &secret, session_token: token.as_deref() };
        let signed = sign(&req, settings, &payload, &date_time, &region, &service, &creds);
        let want_creq = read(&dir, "header-canonical-request.txt").unwrap();
        assert_eq!(signed.canonical_request, want_creq, "canonical request of {}", case.name);
        if let Some(sts) = read(&dir, "header-string-to-sign.txt") {
            assert_eq!(signed.string_to_sign, sts, "string to sign of {}", case.name);
        }
        if let Some(sig) = read(&dir, "header-signature.txt") {
            assert_eq!(signed.signature, sig.trim(), "signature of {}", case.name);
            let signed_req = read(&dir, "header-signed-request.txt").unwrap();
            assert!(signed_req.contains(&signed.authorization), "{}: {}", case.name, signed.authorization);
        }
        checked += 1;
    }
    assert_eq!(checked, 40, "every published case ran");
}

#[test]
fn s3_regime_keeps_the_wire_path_and_other_services_double_encode() {
    let s3 = Settings::for_service("s3");
    let lambda = Settings::for_service("lambda");
    assert_eq!(canonical_uri("/bucket/my%20file%20%C3%BC.txt", s3), "/bucket/my%20file%20%C3%BC.txt");
    assert_eq!(canonical_uri("/a//b/../c", s3), "/a//b/../c");
    assert_eq!(
        canonical_uri("/model/anthropic.claude-v1%3A0/invoke", lambda),
        "/model/anthropic.claude-v1%253A0/invoke"
    );
    assert_eq!(canonical_uri("/a//b/../c", lambda), "/a/c");
    assert_eq!(canonical_uri("", lambda), "/");
}

#[test]
fn helpers_table() {
    assert_eq!(region_from_host("bedrock-runtime.us-west-2.amazonaws.com"), Some("us-west-2"));
    assert_eq!(region_from_host("bucket.s3.eu-central-1.amazonaws.com"), Some("eu-central-1"));
    assert_eq!(region_from_host("bucket.s3.amazonaws.com"), None);
    assert_eq!(region_from_host("sts.amazonaws.com"), None);
    assert_eq!(region_from_host("s3.us-gov-west-1.amazonaws.com"), Some("us-gov-west-1"));
    assert_eq!(
        strip_presign(Some("X-Amz-Algorithm=AWS4&prefix=a&X-Amz-Signature=abc&x-amz-credential=z")).as_deref(),
        Some("prefix=a")
    );
    assert_eq!(strip_presign(Some("X-Amz-Date=1")), None);
    assert_eq!(amz_date(1_440_938_160), "20150830T123600Z");
    assert_eq!(canonical_query(Some("b=2&a=1&a=0&c")), "a=0&a=1&b=2&c=");
    assert_eq!(canonical_query(Some("k=a+b%2f&%e1%88%b4=x")), "%E1%88%B4=x&k=a%2Bb%2F");
    let creds = Credentials { access_key_id: "AKID", secret_access_key: "SENTINEL-secret", session_token: None };
    assert!(!format!("{creds:?}").contains("SENTINEL"));
}
