//! Read-only external secret sources: a value that lives in `pass` (a real gpg key made by the
//! test) or in a mounted file is fetched by the proxy, kept in memory for its TTL, picked up
//! after a change, and fails closed when the source fails. Nothing is written to the store.

use crate::proxy_curl::{curl, proxy_args, serve_my_key};
use crate::support::upstream::FakeUpstream;
use crate::support::{TestVault, eventually, run_client};

/// A password store with one entry, under `dir` (GNUPGHOME and PASSWORD_STORE_DIR there).
fn password_store(dir: &std::path::Path, entry: &str, value: &str) -> Vec<(String, String)> {
    let gnupg = dir.join("gnupg");
    std::fs::create_dir_all(&gnupg).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&gnupg, std::fs::Permissions::from_mode(0o700)).unwrap();
    let env = vec![
        ("GNUPGHOME".to_owned(), gnupg.display().to_string()),
        ("PASSWORD_STORE_DIR".to_owned(), dir.join("pass").display().to_string()),
        ("HOME".to_owned(), dir.display().to_string()),
    ];
    let sh = |script: &str| {
        let mut c = std::process::Command::new("sh");
        c.args(["-ec", script]).env_clear().env("PATH", std::env::var("PATH").unwrap_or_default());
        for (k, v) in &env {
            c.env(k, v);
        }
        let (code, out, err) = run_client(&mut c);
        assert_eq!(code, 0, "{script}: {out}{err}");
        out
    };
    sh(
        "gpg --batch --pinentry-mode loopback --passphrase '' --quick-gen-key 'aivault test <test@aivault.invalid>' default default never",
    );
    let fpr = sh("gpg --batch --list-keys --with-colons | awk -F: '/^fpr/ {print $10; exit}'");
    sh(&format!("pass init {}", fpr.trim()));
    sh(&format!("printf '%s\\n' '{value}' | pass insert -m {entry}"));
    env
}

fn pass_set(env: &[(String, String)], entry: &str, value: &str) {
    let mut c = std::process::Command::new("sh");
    c.args(["-ec", &format!("printf '%s\\n' '{value}' | pass insert -f -m {entry}")]).env_clear();
    c.env("PATH", std::env::var("PATH").unwrap_or_default());
    for (k, v) in env {
        c.env(k, v);
    }
    assert_eq!(run_client(&mut c).0, 0);
}

fn pass_rm(env: &[(String, String)], entry: &str) {
    let mut c = std::process::Command::new("pass");
    c.args(["rm", "-f", entry]).env_clear().env("PATH", std::env::var("PATH").unwrap_or_default());
    for (k, v) in env {
        c.env(k, v);
    }
    assert_eq!(run_client(&mut c).0, 0);
}

#[test]
fn a_secret_in_pass_is_injected_refreshed_after_its_ttl_and_fails_closed_when_removed() {
    let v = TestVault::new();
    let store = v.dir.path().join("password-store");
    let mut v = v;
    for (k, val) in password_store(&store, "api/my-key", "from-pass-SENTINEL-1") {
        v = v.with_env(&k, &val);
    }
    let env = v.env.clone();
    let up = FakeUpstream::start();
    let created = v.ok(&["secrets", "create", "--name", "MY_KEY", "--from-exec", "pass show api/my-key", "--ttl", "1"]);
    assert!(created.contains("value from exec: pass show api/my-key"), "{created}");
    serve_my_key(&v);
    let token = v.agent("a", &[]);
    let args = proxy_args(&up, &["api.example.com"]);
    let p = v.proxy(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let ca = v.ca_path();
    let get = || {
        curl(&p.url(&token), &ca, &["-s", "-o", "/dev/null", "-w", "%{http_code}", "https://api.example.com/v1/users"])
            .1
    };
    assert_eq!(get(), "200");
    assert_eq!(up.last().header("authorization"), Some("Bearer from-pass-SENTINEL-1"));

    let id = v.json(&["secrets", "list"])[0]["id"].as_str().unwrap().to_owned();
    let (code, err) = v.fails(&["secrets", "rotate", "--id", &id, "--value", "x"]);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("managed upstream"), "{err}");
    let (_, err) = v.fails(&["secrets", "update", "--id", &id, "--name", "OTHER"]);
    assert!(err.contains("managed upstream"), "{err}");

    pass_set(&env, "api/my-key", "from-pass-SENTINEL-2");
    eventually("the new value after the TTL", || {
        get() == "200" && up.last().header("authorization") == Some("Bearer from-pass-SENTINEL-2")
    });

    pass_rm(&env, "api/my-key");
    eventually("a removed entry fails closed", || get() == "502");
    let (_, out, _) = curl(&p.url(&token), &ca, &["-s", "-i", "https://api.example.com/v1/users"]);
    assert!(
        out.contains("credential_unavailable") && out.contains("exec: pass show api/my-key"),
        "names the source: {out}"
    );
    assert!(!out.contains("SENTINEL"), "{out}");
    for sentinel in ["from-pass-SENTINEL-1", "from-pass-SENTINEL-2"] {
        v.assert_not_on_disk(sentinel);
        assert!(!p.logs().contains(sentinel));
    }
}

#[test]
fn a_mounted_file_is_re_read_when_it_changes_and_its_source_scrubs_the_vault_env() {
    let v = TestVault::new();
    let up = FakeUpstream::start();
    let mounted = v.dir.path().join("mounted-secret");
    std::fs::write(&mounted, "file-SENTINEL-1\n").unwrap();
    v.ok(&["secrets", "create", "--name", "MY_KEY", "--from-file", mounted.to_str().unwrap(), "--ttl", "600"]);
    // An exec source never sees the vault's own variables (AIVAULT_HOME is set for every test vault).
    v.ok(&[
        "secrets",
        "create",
        "--name",
        "ENV_PROBE",
        "--from-exec",
        "printf '%s' \"probe-${AIVAULT_HOME:-scrubbed}\"",
    ]);
    assert_eq!(
        v.ok(&[
            "secrets",
            "reveal",
            "--id",
            v.json(&["secrets", "list"]).as_array().unwrap().iter().find(|s| s["name"] == "ENV_PROBE").unwrap()["id"]
                .as_str()
                .unwrap()
        ])
        .trim(),
        "probe-scrubbed"
    );
    serve_my_key(&v);
    let token = v.agent("a", &[]);
    let args = proxy_args(&up, &["api.example.com"]);
    let p = v.proxy(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let ca = v.ca_path();
    let get = || {
        curl(&p.url(&token), &ca, &["-s", "-o", "/dev/null", "-w", "%{http_code}", "https://api.example.com/v1/users"])
            .1
    };
    assert_eq!(get(), "200");
    assert_eq!(up.last().header("authorization"), Some("Bearer file-SENTINEL-1"));
    // A Kubernetes Secret volume swaps the file atomically: the long TTL does not delay the change.
    let next = v.dir.path().join("mounted-secret.new");
    std::fs::write(&next, "file-SENTINEL-2\n").unwrap();
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(3);
    std::fs::File::options().write(true).open(&next).unwrap().set_modified(later).unwrap();
    std::fs::rename(&next, &mounted).unwrap();
    eventually("the changed file", || {
        get() == "200" && up.last().header("authorization") == Some("Bearer file-SENTINEL-2")
    });
    std::fs::remove_file(&mounted).unwrap();
    eventually("a removed file fails closed", || get() == "502");
    v.assert_not_on_disk("file-SENTINEL-2");
}
