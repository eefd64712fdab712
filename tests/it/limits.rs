//! Rate limits and budgets: 429 with Retry-After (honoured by the openai SDK's retry), budgets
//! that survive snapshot reloads, and `explain` showing what is left.

use crate::proxy_clients::client_env;
use crate::proxy_curl::{curl, proxy_args};
use crate::support::upstream::FakeUpstream;
use crate::support::{TestVault, python, run_client};

#[test]
fn a_rate_limit_answers_429_with_retry_after_and_the_openai_sdk_waits_it_out() {
    let up = FakeUpstream::start();
    let v = TestVault::new();
    v.ok(&["secrets", "create", "--name", "OPENAI_API_KEY", "--value", "sk-real-limited"]);
    v.ok(&["limit", "set", "--credential", "openai", "--rate", "1/s"]);
    let token = v.agent("sdk", &[]);
    let args = proxy_args(&up, &["api.openai.com"]);
    let p = v.proxy(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let script = r#"
import time
from openai import OpenAI
client = OpenAI(api_key="sk-placeholder", max_retries=3)
start = time.time()
for i in range(3):
    raw = client.chat.completions.with_raw_response.create(model="m", messages=[{"role": "user", "content": "hi"}])
    print("status", raw.status_code, flush=True)
print("elapsed", round(time.time() - start, 1))
"#;
    let mut cmd = python();
    cmd.args(["-c", script]);
    client_env(&mut cmd, &p.url(&token), &v.ca_path());
    let (code, out, err) = run_client(&mut cmd);
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(out.matches("status 200").count(), 3, "{out}");
    let elapsed: f64 = out.lines().find_map(|l| l.strip_prefix("elapsed ")).unwrap().parse().unwrap();
    assert!(elapsed >= 1.5, "three requests at 1/s cannot take {elapsed} s");
    assert_eq!(up.requests().len(), 3, "refused attempts never reached the upstream");
    p.stop();
    let audit = v.json(&["audit", "--agent", "sdk", "--limit", "100"]);
    assert!(audit.as_array().unwrap().iter().any(|e| e["outcome"] == "rate_limited" && e["status"] == 429), "{audit}");
}

#[test]
fn a_budget_is_exhausted_until_its_window_ends_and_survives_reloads() {
    let up = FakeUpstream::start();
    let v = TestVault::new();
    v.ok(&["secrets", "create", "--name", "OPENAI_API_KEY", "--value", "sk-real-budget"]);
    let token = v.agent("budgeted", &[]);
    v.ok(&["limit", "set", "--agent", "budgeted", "--budget", "2/day"]);
    let list = v.json(&["limit", "list"]);
    assert_eq!(list[0]["target"], "agent:budgeted");
    assert_eq!(list[0]["budget"], "2/day");
    let args = proxy_args(&up, &["api.openai.com"]);
    let p = v.proxy(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let ca = v.ca_path();
    let url = "https://api.openai.com/v1/models";
    for _ in 0..2 {
        assert_eq!(curl(&p.url(&token), &ca, &["-f", url]).0, 0);
    }
    let (_, out, _) = curl(&p.url(&token), &ca, &["-i", url]);
    assert!(out.contains(" 429") && out.contains("x-aivault-error: budget_exhausted"), "{out}");
    let retry: u64 = out
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("retry-after: ").map(|v| v.trim().parse().unwrap()))
        .unwrap_or_else(|| panic!("no Retry-After: {out}"));
    assert!((1..=86_400).contains(&retry), "{retry}");

    // A reload (any management change) keeps the counter.
    v.ok(&["secrets", "create", "--name", "UNRELATED", "--value", "x"]);
    std::thread::sleep(std::time::Duration::from_millis(600));
    let (_, out, _) = curl(&p.url(&token), &ca, &["-i", url]);
    assert!(out.contains("budget_exhausted"), "the reload reset the budget: {out}");
    let e = v.json(&["explain", "--agent", "budgeted", "GET", url]);
    assert_eq!(e["limits"], serde_json::json!(["agent:budgeted: budget 2/day"]), "{e}");
    // Other agents are not affected.
    let other = v.agent("other", &[]);
    crate::support::eventually("the new agent", || curl(&p.url(&other), &ca, &["-f", url]).0 == 0);

    v.ok(&["limit", "remove", "--agent", "budgeted"]);
    crate::support::eventually("the removal to reach the proxy", || curl(&p.url(&token), &ca, &["-f", url]).0 == 0);
    let (code, err) = v.fails(&["limit", "set", "--agent", "budgeted", "--rate", "10/week"]);
    assert_eq!(code, 2, "{err}");
    let (code, err) = v.fails(&["limit", "set", "--capability", "nope/none", "--rate", "1/s"]);
    assert_eq!(code, 3, "{err}");
}

/// `--on-exhaust ask`: past the budget, requests are held for a person instead of refused.
#[test]
fn an_exhausted_budget_can_ask_a_person_instead_of_refusing() {
    let up = FakeUpstream::start();
    let v = TestVault::new();
    v.ok(&["secrets", "create", "--name", "OPENAI_API_KEY", "--value", "sk-real-ask"]);
    let token = v.agent("asker", &[]);
    v.ok(&["limit", "set", "--agent", "asker", "--budget", "1/day", "--on-exhaust", "ask"]);
    assert_eq!(v.json(&["limit", "list"])[0]["on_exhaust"], "ask");
    let args = proxy_args(&up, &["api.openai.com"]);
    let p = v.proxy(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let ca = v.ca_path();
    let url = "https://api.openai.com/v1/models";
    assert_eq!(curl(&p.url(&token), &ca, &["-f", url]).0, 0, "within the budget");
    let mut held = std::process::Command::new("curl");
    held.args(["-sS", "--max-time", "30", "--proxy", &p.url(&token), "--cacert", &ca, url])
        .env_remove("HTTPS_PROXY")
        .stdout(std::process::Stdio::piped());
    let child = held.spawn().unwrap();
    let mut id = String::new();
    crate::support::eventually("the over-budget request to be held", || {
        let list = v.json(&["approval", "list"]);
        list.as_array().and_then(|a| a.first()).map(|a| id = a["id"].as_str().unwrap().to_owned()).is_some()
    });
    assert_eq!(up.requests().len(), 1, "the held request has not gone out");
    v.ok(&["approval", "allow", &id]);
    let out = child.wait_with_output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"ok\":true"));
    assert_eq!(up.requests().len(), 2);
    let (code, err) = v.fails(&["limit", "set", "--agent", "asker", "--rate", "1/s", "--on-exhaust", "ask"]);
    assert_eq!(code, 2, "{err}");
}
