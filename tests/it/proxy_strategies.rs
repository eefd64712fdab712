//! One test per auth strategy, through the proxy with curl: the agent sends a placeholder, the
//! upstream receives exactly the injected credential.

use crate::proxy_curl::{curl, proxy_args};
use crate::support::TestVault;
use crate::support::upstream::FakeUpstream;

struct Case {
    secrets: Vec<(&'static str, &'static str)>,
    host: &'static str,
    request: &'static str,
    headers: Vec<&'static str>,
    check: fn(&crate::support::upstream::Recorded),
}

fn run(case: Case) {
    let up = FakeUpstream::start();
    let v = TestVault::new();
    for (name, value) in &case.secrets {
        v.ok(&["secrets", "create", "--name", name, "--value", value]);
    }
    let token = v.agent("a", &[]);
    let args = proxy_args(&up, &[case.host]);
    let p = v.proxy(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let mut extra: Vec<&str> = Vec::new();
    for h in &case.headers {
        extra.extend(["-H", h]);
    }
    extra.push(case.request);
    let (code, out, err) = curl(&p.url(&token), &v.ca_path(), &extra);
    assert_eq!(code, 0, "{err} {out}");
    assert!(out.contains("\"ok\":true"), "{out}");
    (case.check)(&up.last());
}

#[test]
fn header_openai() {
    run(Case {
        secrets: vec![("OPENAI_API_KEY", "sk-real-openai")],
        host: "api.openai.com",
        request: "https://api.openai.com/v1/models",
        headers: vec!["Authorization: Bearer sk-placeholder"],
        check: |r| assert_eq!(r.headers_named("authorization"), vec!["Bearer sk-real-openai"]),
    });
}

#[test]
fn query_gemini() {
    run(Case {
        secrets: vec![("GEMINI_API_KEY", "AIza real/key")],
        host: "generativelanguage.googleapis.com",
        request: "https://generativelanguage.googleapis.com/v1beta/models?key=placeholder&alt=json",
        headers: vec![],
        check: |r| assert_eq!(r.path_and_query, "/v1beta/models?alt=json&key=AIza%20real%2Fkey"),
    });
}

#[test]
fn path_telegram() {
    run(Case {
        secrets: vec![("TELEGRAM_BOT_TOKEN", "123456:REAL-token")],
        host: "api.telegram.org",
        request: "https://api.telegram.org/botPLACEHOLDER/getMe",
        headers: vec![],
        check: |r| assert_eq!(r.path_and_query, "/bot123456:REAL-token/getMe"),
    });
}

#[test]
fn basic_twilio_two_secrets() {
    run(Case {
        secrets: vec![("TWILIO_ACCOUNT_SID", "AC123"), ("TWILIO_AUTH_TOKEN", "tok456")],
        host: "api.twilio.com",
        request: "https://api.twilio.com/2010-04-01/Accounts/AC123/Messages.json",
        headers: vec!["Authorization: Basic cGxhY2Vob2xkZXI6eA=="],
        // base64("AC123:tok456")
        check: |r| assert_eq!(r.headers_named("authorization"), vec!["Basic QUMxMjM6dG9rNDU2"]),
    });
}

#[test]
fn multi_header_datadog() {
    run(Case {
        secrets: vec![("DATADOG_API_KEY", "dd-api"), ("DATADOG_APP_KEY", "dd-app")],
        host: "api.datadoghq.com",
        request: "https://api.datadoghq.com/api/v1/query?query=avg:cpu",
        headers: vec!["DD-API-KEY: placeholder"],
        check: |r| {
            assert_eq!(r.headers_named("dd-api-key"), vec!["dd-api"]);
            assert_eq!(r.headers_named("dd-application-key"), vec!["dd-app"]);
        },
    });
}

#[test]
fn multi_query_trello() {
    run(Case {
        secrets: vec![("TRELLO_API_KEY", "tk"), ("TRELLO_TOKEN", "tt")],
        host: "api.trello.com",
        request: "https://api.trello.com/1/boards/abc?token=placeholder&fields=name",
        headers: vec![],
        check: |r| assert_eq!(r.path_and_query, "/1/boards/abc?fields=name&key=tk&token=tt"),
    });
}
