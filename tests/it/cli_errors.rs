//! Every bad input from issue 2: one-line error, non-zero exit, nothing changed.

use crate::support::TestVault;

#[test]
fn bad_input_table() {
    let v = TestVault::new();
    let id = v.secret("OPENAI_API_KEY", "sk-1", &[]);
    let plain = v.secret("PLAIN", "p", &[]);
    let pinned_ref = format!("vault:secret:{id}");
    let plain_ref = format!("vault:secret:{plain}");
    let missing_file = v.dir.path().join("nope.txt");
    let missing = missing_file.to_str().unwrap();
    let cases: Vec<(&str, Vec<&str>, i32, &str)> = vec![
        (
            "unknown scope",
            vec!["secrets", "create", "--name", "A", "--value", "1", "--scope", "team"],
            2,
            "unknown scope 'team'",
        ),
        (
            "workspace id missing",
            vec!["secrets", "create", "--name", "A", "--value", "1", "--scope", "workspace"],
            2,
            "--workspace-id",
        ),
        (
            "group without workspace",
            vec!["secrets", "create", "--name", "A", "--value", "1", "--scope", "group", "--group-id", "g"],
            2,
            "--workspace-id",
        ),
        ("duplicate name", vec!["secrets", "create", "--name", "OPENAI_API_KEY", "--value", "1"], 4, "already exists"),
        (
            "malformed ref",
            vec![
                "credential",
                "create",
                "c",
                "--provider",
                "p",
                "--secret-ref",
                "secret:abc",
                "--auth",
                "header",
                "--host",
                "a.com",
            ],
            2,
            "malformed secret reference",
        ),
        (
            "unknown secret",
            vec![
                "credential",
                "create",
                "c",
                "--provider",
                "p",
                "--secret-ref",
                "vault:secret:sec_000000000000000000000000",
                "--auth",
                "header",
                "--host",
                "a.com",
            ],
            3,
            "not found",
        ),
        ("unknown credential", vec!["credential", "delete", "nope"], 3, "credential 'nope' not found"),
        ("unknown capability", vec!["capability", "describe", "nope/x"], 3, "capability 'nope/x' not found"),
        (
            "unknown capability bind",
            vec!["capability", "bind", "--capability", "nope/x", "--secret-ref", &plain_ref],
            3,
            "not found",
        ),
        (
            "custom provider needs auth",
            vec!["credential", "create", "c", "--provider", "my-api", "--secret-ref", &plain_ref, "--host", "a.com"],
            2,
            "--auth",
        ),
        ("empty value", vec!["secrets", "create", "--name", "A", "--value", ""], 2, "empty"),
        (
            "invalid template",
            vec![
                "credential",
                "create",
                "c",
                "--provider",
                "p",
                "--secret-ref",
                &plain_ref,
                "--auth",
                "header",
                "--value-template",
                "Bearer none",
                "--host",
                "a.com",
            ],
            2,
            "placeholder",
        ),
        (
            "template with newline",
            vec![
                "credential",
                "create",
                "c",
                "--provider",
                "p",
                "--secret-ref",
                &plain_ref,
                "--auth",
                "header",
                "--value-template",
                "{{secret}}\r\nX: y",
                "--host",
                "a.com",
            ],
            2,
            "line break",
        ),
        (
            "pinned mismatch",
            vec![
                "credential",
                "create",
                "c",
                "--provider",
                "my-api",
                "--secret-ref",
                &pinned_ref,
                "--auth",
                "header",
                "--host",
                "a.com",
            ],
            5,
            "pinned to provider openai",
        ),
        (
            "pinned mismatch registry",
            vec!["credential", "create", "c", "--provider", "anthropic", "--secret-ref", &pinned_ref],
            5,
            "pinned to provider openai",
        ),
        (
            "unreadable value file",
            vec!["secrets", "create", "--name", "A", "--value-file", missing],
            2,
            "cannot read value file",
        ),
        (
            "unknown auth",
            vec![
                "credential",
                "create",
                "c",
                "--provider",
                "p",
                "--secret-ref",
                &plain_ref,
                "--auth",
                "hmac",
                "--host",
                "a.com",
            ],
            2,
            "unknown --auth",
        ),
        (
            "bad host",
            vec![
                "credential",
                "create",
                "c",
                "--provider",
                "p",
                "--secret-ref",
                &plain_ref,
                "--auth",
                "header",
                "--host",
                "*.com",
            ],
            2,
            "host",
        ),
        (
            "bad path prefix",
            vec![
                "capability",
                "create",
                "x/y",
                "--provider",
                "p",
                "--method",
                "GET",
                "--path",
                "v1",
                "--host",
                "a.com",
            ],
            2,
            "path prefix",
        ),
        (
            "registry capability id",
            vec![
                "capability",
                "create",
                "openai/models",
                "--provider",
                "p",
                "--method",
                "GET",
                "--path",
                "/",
                "--host",
                "a.com",
            ],
            4,
            "registry capability",
        ),
        ("bad since", vec!["audit", "--since", "yesterday"], 2, "--since"),
        ("no update fields", vec!["secrets", "update", "--id", &plain], 2, "nothing to update"),
        ("rename pinned", vec!["secrets", "update", "--id", &id, "--name", "OTHER"], 2, "pinned"),
        (
            "attach across workspaces",
            vec!["secrets", "attach-group", "--id", &plain, "--workspace-id", "w", "--group-id", "bad id"],
            2,
            "invalid group id",
        ),
    ];
    for (name, args, code, needle) in cases {
        let before = v.state();
        let (got, err) = v.fails(&args);
        assert_eq!(got, code, "{name}: {err}");
        assert!(err.contains(needle), "{name}: {err:?} lacks {needle:?}");
        assert_eq!(v.state(), before, "{name} changed the vault");
    }
}

#[test]
fn clap_usage_errors_exit_2() {
    let v = TestVault::new();
    let out = v.run(&["secrets", "create", "--value", "x"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn corrupted_and_foreign_store_files_are_refused() {
    let v = TestVault::file_only();
    std::fs::create_dir_all(v.home()).unwrap();
    std::fs::write(v.home().join("vault.redb"), b"garbage that is certainly not a redb database file....").unwrap();
    std::fs::write(v.home().join("master.key"), "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=").unwrap();
    let (code, err) = v.fails(&["secrets", "list"]);
    assert_eq!(code, 7, "{err}");
    assert!(err.contains("not an aivault store"), "{err}");
}

#[test]
fn wrong_master_key_is_refused_without_change() {
    let v = TestVault::new();
    v.secret("A", "1", &[]);
    std::fs::write(v.home().join("master.key"), "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=").unwrap();
    let (code, err) = v.fails(&["secrets", "create", "--name", "B", "--value", "2"]);
    assert_eq!(code, 6);
    assert!(err.contains("wrong master key"), "{err}");
    let (_, err) = v.fails(&["status"]);
    assert!(err.contains("wrong master key"), "{err}");
}

#[test]
fn a_vault_without_its_key_file_is_not_reinitialised() {
    let v = TestVault::new();
    v.secret("A", "1", &[]);
    std::fs::remove_file(v.home().join("master.key")).unwrap();
    let (_, err) = v.fails(&["secrets", "list"]);
    assert!(err.contains("master key") && err.contains("missing"), "{err}");
    assert!(!v.home().join("master.key").exists());
}

/// `--json` everywhere: the proxy's ready line and `ca export` are one JSON document each.
#[test]
fn proxy_and_ca_export_speak_json() {
    use std::io::BufRead as _;
    let v = TestVault::new();
    let exported = v.json(&["ca", "export"]);
    assert!(exported["pem"].as_str().unwrap().starts_with("-----BEGIN CERTIFICATE-----"), "{exported}");
    let file = v.dir.path().join("ca-copy.pem");
    let written = v.json(&["ca", "export", "--out", file.to_str().unwrap()]);
    assert_eq!(written["written_to"], file.display().to_string());
    assert_eq!(std::fs::read_to_string(&file).unwrap(), exported["pem"].as_str().unwrap());

    let mut cmd = v.std_cmd();
    cmd.args(["--json", "proxy", "--listen", "127.0.0.1:0", "--console-listen", "127.0.0.1:0"]);
    let mut child = cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::null()).spawn().unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let ready: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|_| panic!("not one JSON line: {line}"));
    assert!(ready["listening"].as_str().unwrap().starts_with("127.0.0.1:"), "{ready}");
    assert!(ready["console"].as_str().unwrap().starts_with("http://127.0.0.1:"), "{ready}");
}
