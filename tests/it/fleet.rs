//! Fleet mode: two proxies (two data directories, as on two hosts) on one real PostgreSQL and one
//! master key. A change made through one host reaches the other's proxy within a second, a
//! revocation is refused by both, and both proxies' audit lands in one log.

use std::time::{Duration, Instant};

use crate::proxy_curl::{curl, proxy_args};
use crate::support::pg::Cluster;
use crate::support::upstream::FakeUpstream;
use crate::support::{ProxyProc, TestVault};

const KEY: &str = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";

struct Fleet {
    _cluster: Cluster,
    url: String,
    a: TestVault,
    b: TestVault,
    up: FakeUpstream,
    pa: ProxyProc,
    pb: ProxyProc,
}

fn fleet() -> Fleet {
    let cluster = Cluster::start();
    let url = cluster.database();
    let a = TestVault::on_postgres(url.clone()).with_env("AIVAULT_MASTER_KEY", KEY);
    let b = TestVault::on_postgres(url.clone()).with_env("AIVAULT_MASTER_KEY", KEY);
    let up = FakeUpstream::start();
    a.ok(&["secrets", "create", "--name", "MY_KEY", "--value", "v1-SENTINEL"]);
    crate::proxy_curl::serve_my_key(&a);
    let args = proxy_args(&up, &["api.example.com"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (pa, pb) = (a.proxy(&args), b.proxy(&args));
    Fleet { _cluster: cluster, url, a, b, up, pa, pb }
}

/// A GET through `p` as `token`: curl's exit code (0 when the upstream answered 2xx).
fn call(v: &TestVault, p: &ProxyProc, token: &str) -> i32 {
    curl(&p.url(token), &v.ca_path(), &["-f", "-o", "/dev/null", "https://api.example.com/v1/users"]).0
}

/// Stops `p` with SIGTERM and asserts it shut down cleanly: exit 0 and no panic in its log (the
/// audit writer's database client once panicked on a worker thread at every graceful stop).
fn stop_cleanly(p: ProxyProc) {
    let log = p.stderr_path.clone();
    let status = p.stop();
    let text = std::fs::read_to_string(log).unwrap_or_default();
    assert!(status.success(), "the proxy exited with {status}: {text}");
    assert!(!text.contains("panicked"), "the proxy panicked while stopping: {text}");
}

#[test]
fn two_proxies_share_secrets_revocations_and_one_audit_log() {
    let f = fleet();
    // One CA for the fleet: both proxies' leaves chain to the same root.
    assert_eq!(f.a.ok(&["ca", "export"]), f.b.ok(&["ca", "export"]));
    let t1 = f.a.agent("agent-1", &[]);
    let t2 = f.b.agent("agent-2", &[]);
    for (v, p, t) in [(&f.a, &f.pa, &t1), (&f.b, &f.pb, &t2), (&f.a, &f.pa, &t2), (&f.b, &f.pb, &t1)] {
        crate::support::eventually("a new agent is known to both proxies", || call(v, p, t) == 0);
    }
    assert_eq!(f.up.last().header("authorization"), Some("Bearer v1-SENTINEL"));

    // Rotated through host A; proxy B injects the new value within a second.
    let id = f.a.json(&["secrets", "list"])[0]["id"].as_str().unwrap().to_owned();
    let started = Instant::now();
    f.a.ok(&["secrets", "rotate", "--id", &id, "--value", "v2-SENTINEL"]);
    loop {
        assert_eq!(call(&f.b, &f.pb, &t2), 0);
        if f.up.last().header("authorization") == Some("Bearer v2-SENTINEL") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(1), "proxy B still injects the old value after 1 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    let propagation = started.elapsed();
    eprintln!("rotation reached proxy B in {propagation:?}");

    // Revoked through host B: refused by both at the next request.
    f.b.ok(&["agent", "revoke", "agent-1"]);
    crate::support::eventually("both proxies refuse the revoked agent", || {
        call(&f.a, &f.pa, &t1) != 0 && call(&f.b, &f.pb, &t1) != 0
    });
    assert_eq!(call(&f.a, &f.pa, &t2), 0, "the other agent still works");

    // Audit from both proxies is in one log, readable from either host.
    let (pa, pb) = (f.pa, f.pb);
    stop_cleanly(pa);
    stop_cleanly(pb);
    let audit = f.a.json(&["audit", "--limit", "500"]);
    let requests: Vec<&serde_json::Value> =
        audit.as_array().unwrap().iter().filter(|e| e["kind"] == "proxy.request").collect();
    for agent in ["agent-1", "agent-2"] {
        assert!(requests.iter().any(|e| e["agent"] == agent), "{agent} missing from the shared audit");
    }
    assert_eq!(f.a.ok(&["--json", "audit", "--limit", "500"]), f.b.ok(&["--json", "audit", "--limit", "500"]));
    let status = f.a.json(&["status"]);
    assert!(status["store"].as_str().unwrap().starts_with("postgres://postgres@127.0.0.1:"), "{status}");
    f.a.assert_not_on_disk("v2-SENTINEL");
}

#[test]
fn a_wrong_master_key_is_refused_and_a_stopped_database_is_named() {
    let cluster = Cluster::start();
    let url = cluster.database();
    let a = TestVault::on_postgres(url.clone()).with_env("AIVAULT_MASTER_KEY", KEY);
    a.ok(&["secrets", "create", "--name", "K", "--value", "x"]);
    let other_key = "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=";
    let b = TestVault::on_postgres(url).with_env("AIVAULT_MASTER_KEY", other_key);
    let (code, err) = b.fails(&["secrets", "list"]);
    assert_eq!(code, 6, "{err}");
    assert!(err.contains("wrong master key"), "{err}");
    cluster.stop();
    let (code, err) = a.fails(&["secrets", "list"]);
    assert_eq!(code, 7, "{err}");
    assert!(err.contains(&format!("postgres://postgres@127.0.0.1:{}/", cluster.port)), "names the database: {err}");
    assert!(!err.contains("password"), "{err}");
}

#[test]
fn fifty_concurrent_requests_across_two_proxies_cause_one_oauth_refresh() {
    let cluster = Cluster::start();
    let url = cluster.database();
    let a = TestVault::on_postgres(url.clone()).with_env("AIVAULT_MASTER_KEY", KEY);
    let b = TestVault::on_postgres(url.clone()).with_env("AIVAULT_MASTER_KEY", KEY);
    let up = FakeUpstream::start();
    up.oauth.lock().unwrap().refresh_tokens.insert("rt-0".into());
    let doc = r#"{"client_id": "aivault-client", "client_secret": "client-secret-xyz", "refresh_token": "rt-0"}"#;
    a.ok(&["secrets", "create", "--name", "MY_OAUTH", "--value", doc]);
    a.ok(&[
        "credential",
        "create",
        "my-oauth",
        "--provider",
        "my-oauth",
        "--secret-ref",
        "name:MY_OAUTH",
        "--auth",
        "oauth2",
        "--token-endpoint",
        "https://auth.example.com/oauth/token",
        "--host",
        "oauth-api.example.com",
    ]);
    a.ok(&[
        "capability",
        "create",
        "my-oauth/api",
        "--credential",
        "my-oauth",
        "--method",
        "GET",
        "--path",
        "/oauth-api",
    ]);
    let token = a.agent("a", &[]);
    let args = proxy_args(&up, &["auth.example.com", "oauth-api.example.com"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (pa, pb) = (a.proxy(&args), b.proxy(&args));
    let ca = a.ca_path();
    let urls = [pa.url(&token), pb.url(&token)];
    let handles: Vec<_> = (0..50)
        .map(|i| {
            let (proxy, ca) = (urls[i % 2].clone(), ca.clone());
            std::thread::spawn(move || {
                curl(&proxy, &ca, &["-f", "-o", "/dev/null", "https://oauth-api.example.com/oauth-api/me"]).0
            })
        })
        .collect();
    let codes: Vec<i32> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert!(codes.iter().all(|c| *c == 0), "{codes:?}");
    assert_eq!(up.oauth.lock().unwrap().token_calls, 1, "one refresh for the whole fleet");
}

#[test]
fn a_database_outage_keeps_proxies_serving_and_loses_no_audit_record() {
    let f = fleet();
    let token = f.a.agent("agent-1", &[]);
    // Count every request that reached the upstream (each is one proxy.request record).
    let mut sent = 0;
    crate::support::eventually("both proxies know the agent", || {
        let ok = [call(&f.a, &f.pa, &token) == 0, call(&f.b, &f.pb, &token) == 0];
        sent += ok.iter().filter(|x| **x).count();
        ok == [true, true]
    });
    let (ca_a, ca_b) = (f.a.ca_path(), f.b.ca_path());
    let get = |ca: &str, p: &ProxyProc| {
        curl(&p.url(&token), ca, &["-f", "-o", "/dev/null", "https://api.example.com/v1/users"]).0
    };
    f._cluster.stop();
    for _ in 0..10 {
        assert_eq!(get(&ca_a, &f.pa), 0, "proxy A serves from its snapshot while the database is down");
        assert_eq!(get(&ca_b, &f.pb), 0, "proxy B too");
        sent += 2;
        std::thread::sleep(Duration::from_millis(100));
    }
    let (code, err) = f.a.fails(&["secrets", "list"]);
    assert_eq!(code, 7, "management commands fail clearly while it is down: {err}");
    assert!(err.contains("postgres://postgres@127.0.0.1:"), "{err}");
    let logs = f.pa.logs();
    assert!(logs.matches("cannot reload the vault").count() <= 1, "said once, not per request: {logs}");
    f._cluster.restart();
    let counted = || {
        let audit = f.a.json(&["audit", "--agent", "agent-1", "--limit", "1000"]);
        audit.as_array().unwrap().iter().filter(|e| e["kind"] == "proxy.request").count()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while counted() < sent && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(counted(), sent, "every request made while the database was down is in the audit log");
}

#[test]
fn the_audit_writer_keeps_its_database_connection_between_batches() {
    let f = fleet();
    let token = f.a.agent("agent-1", &[]);
    crate::support::eventually("proxy A knows the agent", || call(&f.a, &f.pa, &token) == 0);
    // Sessions ever opened on this database (each query below opens one more itself).
    let sessions = || -> i64 {
        let mut c = postgres::Client::connect(&f.url, postgres::NoTls).unwrap();
        c.query_one("SELECT sessions FROM pg_stat_database WHERE datname = current_database()", &[]).unwrap().get(0)
    };
    // No CLI between the requests (every command opens a session of its own).
    let ca = f.a.ca_path();
    std::thread::sleep(Duration::from_millis(800));
    let before = sessions();
    // Six batches: the writer gathers for 100 ms after a record, then commits.
    for _ in 0..6 {
        let code = curl(&f.pa.url(&token), &ca, &["-f", "-o", "/dev/null", "https://api.example.com/v1/users"]).0;
        assert_eq!(code, 0);
        std::thread::sleep(Duration::from_millis(500));
    }
    let opened = sessions() - before - 1;
    assert!(opened <= 1, "{opened} database sessions were opened for six audit batches");
    let audit = f.a.json(&["audit", "--agent", "agent-1", "--limit", "100"]);
    let requests = audit.as_array().unwrap().iter().filter(|e| e["kind"] == "proxy.request").count();
    assert!(requests >= 7, "every request is in the log: {requests}");
}

#[test]
fn store_copy_moves_a_vault_to_postgres_and_back_sealed() {
    let cluster = Cluster::start();
    let file = TestVault::file_only().with_env("AIVAULT_MASTER_KEY", KEY);
    let id = file.secret("OPENAI_API_KEY", "sk-copy-SENTINEL", &[]);
    file.agent("copied-agent", &["--workspace-id", "w"]);
    let url = cluster.database();
    let copied = file.json(&["store", "copy", "--to", &url]);
    assert!(copied["records"].as_u64().unwrap() > 5, "{copied}");
    let (code, err) = file.fails(&["store", "copy", "--to", &url]);
    assert_eq!(code, 4, "a non-empty target is refused: {err}");
    assert!(err.contains("--force"), "{err}");
    file.ok(&["store", "copy", "--to", &url, "--force"]);

    let pg = TestVault::on_postgres(url.clone()).with_env("AIVAULT_MASTER_KEY", KEY);
    assert_eq!(pg.ok(&["secrets", "reveal", "--id", &id]).trim(), "sk-copy-SENTINEL", "values open with the same key");
    assert_eq!(pg.json(&["agent", "list"])[0]["name"], "copied-agent");
    assert_eq!(pg.json(&["invoke", "openai/models", "--dry-run"])["credential"], "openai");
    assert!(pg.ok(&["audit", "--limit", "100"]).contains("secret.create"), "the audit log came along");
    assert!(
        !String::from_utf8_lossy(&crate::support::pg::dump(&url)).contains("sk-copy-SENTINEL"),
        "sealed in the database"
    );

    // And back into a new redb file.
    let back = TestVault::file_only().with_env("AIVAULT_MASTER_KEY", KEY);
    std::fs::create_dir_all(back.home()).unwrap();
    let target = back.home().join("vault.redb");
    pg.ok(&["store", "copy", "--to", target.to_str().unwrap()]);
    assert_eq!(back.ok(&["secrets", "reveal", "--id", &id]).trim(), "sk-copy-SENTINEL");
    back.assert_not_on_disk("sk-copy-SENTINEL");
}

#[test]
fn sslmode_require_speaks_verified_tls_to_the_database() {
    let (cluster, ca) = Cluster::start_tls();
    let plain = cluster.database();
    let tls_url = format!("{}?sslmode=require", plain.replace("127.0.0.1", "localhost"));
    // Without the database's CA the certificate does not verify: refused, not downgraded.
    let unverified = TestVault::on_postgres(tls_url.clone()).with_env("AIVAULT_MASTER_KEY", KEY);
    let (code, err) = unverified.fails(&["secrets", "list"]);
    assert_eq!(code, 7, "{err}");
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    // With it (PGSSLROOTCERT, as libpq spells it), every connection is TLS.
    let v = TestVault::on_postgres(tls_url)
        .with_env("AIVAULT_MASTER_KEY", KEY)
        .with_env("PGSSLROOTCERT", ca.to_str().unwrap());
    v.ok(&["secrets", "create", "--name", "K", "--value", "over-tls"]);
    let p = v.proxy(&[]);
    let mut admin = postgres::Client::connect(&cluster.url("postgres"), postgres::NoTls).unwrap();
    let mut count = |ssl: bool| -> i64 {
        let sql = "SELECT count(*) FROM pg_stat_ssl JOIN pg_stat_activity USING (pid) \
                   WHERE application_name = 'aivault' AND ssl = $1";
        admin.query_one(sql, &[&ssl]).unwrap().get(0)
    };
    // The proxy's LISTEN connection is up shortly after it listens.
    crate::support::eventually("the proxy's database connection", || count(true) >= 1);
    assert_eq!(count(false), 0, "no aivault connection in plaintext");
    drop(p);
}
