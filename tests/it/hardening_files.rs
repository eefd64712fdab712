//! Damaged or hostile files are errors, never panics, never a silent new vault.

use crate::proxy_curl::{curl, proxy_args};
use crate::support::{SENTINEL, TestVault};

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// A vault with a few records, and its store bytes.
fn vault_with_records() -> (TestVault, Vec<u8>) {
    // These tests are about the redb file itself.
    let v = TestVault::file_only();
    for i in 0..20 {
        v.ok(&["secrets", "create", "--name", &format!("KEY_{i}"), "--value", &format!("{SENTINEL}-{i}")]);
    }
    v.ok(&["secrets", "create", "--name", "OPENAI_API_KEY", "--value", SENTINEL]);
    let bytes = std::fs::read(v.home().join("vault.redb")).unwrap();
    (v, bytes)
}

#[test]
fn truncated_or_bit_flipped_stores_are_reported_not_panicked_on() {
    let (v, good) = vault_with_records();
    let mut variants: Vec<(String, Vec<u8>)> = Vec::new();
    for cut in [1, 100, 512, 4096, good.len() / 2, good.len() - 1] {
        variants.push((format!("truncated to {cut}"), good[..cut.min(good.len())].to_vec()));
    }
    let step = (good.len() / 48).max(1);
    for at in (0..good.len()).step_by(step) {
        let mut bad = good.clone();
        bad[at] ^= 0x5a;
        variants.push((format!("byte {at} flipped"), bad));
    }
    let mut damaged = 0;
    for (name, bytes) in &variants {
        let copy = TestVault::file_only();
        copy_dir(&v.home(), &copy.home());
        std::fs::write(copy.home().join("vault.redb"), bytes).unwrap();
        for args in [&["secrets", "list"][..], &["credential", "list"], &["audit"]] {
            let out = copy.run(args);
            let stderr = String::from_utf8_lossy(&out.stderr);
            let code = out.status.code().unwrap_or(-1);
            assert_ne!(code, 101, "{name}: aivault {args:?} panicked: {stderr}");
            assert!(!stderr.contains("panicked"), "{name}: {stderr}");
            assert!(!stderr.contains(SENTINEL), "{name}: {stderr}");
            if code != 0 {
                assert_eq!(stderr.trim_end().lines().count(), 1, "{name}: one line: {stderr}");
                assert!(stderr.starts_with("error: "), "{name}: {stderr}");
                if code == 9 {
                    damaged += 1;
                    assert!(stderr.contains("the vault file is damaged"), "{name}: {stderr}");
                } else {
                    // A flip can also land in a key id or a sealed value: a clear crypto error.
                    assert!([6, 7].contains(&code), "{name}: exit {code}: {stderr}");
                }
            }
        }
    }
    assert!(damaged > 0, "no variant was reported as damaged");
}

#[test]
fn an_empty_store_is_refused_not_reinitialised() {
    let (v, _) = vault_with_records();
    std::fs::write(v.home().join("vault.redb"), b"").unwrap();
    let (code, err) = v.fails(&["secrets", "list"]);
    assert_eq!(code, 9, "{err}");
    assert!(err.contains("damaged") && err.contains("empty"), "{err}");
    assert_eq!(std::fs::metadata(v.home().join("vault.redb")).unwrap().len(), 0, "left as it was");
}

#[test]
fn a_running_proxy_keeps_its_last_good_snapshot_and_logs_once() {
    let (v, up, token) = crate::proxy_curl::setup_in(TestVault::file_only());
    let args = proxy_args(&up, &["api.example.com"]);
    let p = v.proxy(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let ca = v.ca_path();
    let (code, _, err) = curl(&p.url(&token), &ca, &["-f", "https://api.example.com/v1/users"]);
    assert_eq!(code, 0, "{err}");
    let store = v.home().join("vault.redb");
    let mut bytes = std::fs::read(&store).unwrap();
    bytes.truncate(bytes.len() / 3);
    std::fs::write(&store, &bytes).unwrap();
    // A change elsewhere: the proxy tries to reload and finds the file damaged.
    std::fs::write(v.home().join("vault.generation"), b"999999").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let (code, _, err) = curl(&p.url(&token), &ca, &["-f", "https://api.example.com/v1/users"]);
    assert_eq!(code, 0, "the proxy stopped serving: {err}\n{}", p.logs());
    std::thread::sleep(std::time::Duration::from_millis(500));
    let logs = p.logs();
    assert_eq!(logs.matches("cannot reload the vault").count(), 1, "{logs}");
    assert!(!logs.contains("panicked"), "{logs}");
    assert_eq!(up.last().headers_named("authorization"), vec![format!("Bearer {SENTINEL}")]);
}

#[test]
fn values_have_a_size_limit() {
    let v = TestVault::new();
    let started = std::time::Instant::now();
    let (code, err) = v.fails(&["secrets", "create", "--name", "BIG", "--value-file", "/dev/zero"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("larger than 1048576 bytes") && err.contains("--max-value-bytes"), "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    let file = v.dir.path().join("big.pem");
    std::fs::write(&file, vec![b'k'; 1_500_000]).unwrap();
    let file = file.to_str().unwrap();
    let (code, _) = v.fails(&["secrets", "create", "--name", "BIG", "--value-file", file]);
    assert_eq!(code, 2);
    v.ok(&["secrets", "create", "--name", "BIG", "--value-file", file, "--max-value-bytes", "2000000"]);
    assert_eq!(v.json(&["secrets", "list"]).as_array().unwrap().len(), 1);
}

#[test]
fn an_abandoned_rotation_key_is_discarded() {
    let (v, _) = vault_with_records();
    let next = v.home().join("master.key.next");
    std::fs::write(&next, "S0tLS0tLS0tLS0tLS0tLS0tLS0tLS0tLS0tLS0tLS0s=").unwrap();
    v.ok(&["secrets", "list"]);
    assert!(!next.exists(), "the unused master.key.next was left behind");
}

#[test]
fn permission_errors_say_so() {
    let (v, _) = vault_with_records();
    let home = v.home();
    let root = nix_is_root();
    let mut cmd = if root {
        let mut c = std::process::Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"]).arg(assert_cmd::cargo::cargo_bin("aivault"));
        c
    } else {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(home.join("vault.redb"), std::fs::Permissions::from_mode(0o000)).unwrap();
        std::process::Command::new(assert_cmd::cargo::cargo_bin("aivault"))
    };
    cmd.args(["--home", home.to_str().unwrap(), "secrets", "list"]).env_clear();
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.to_ascii_lowercase().contains("permission denied"), "{stderr}");
    assert!(!stderr.contains("not an aivault store"), "{stderr}");
}

fn nix_is_root() -> bool {
    std::process::Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0\n")).unwrap_or(false)
}
