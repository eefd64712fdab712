//! Seed 001 (secrets) and 004 (scopes), run as written.

use crate::support::{SENTINEL, TestVault};

#[test]
fn seed_001_create_and_list_lines_run_as_written() {
    let v = TestVault::new();
    let out = v.ok(&["secrets", "create", "--name", "OPENAI_API_KEY", "--value", "sk-...", "--scope", "global"]);
    assert!(out.contains("Secret created: OPENAI_API_KEY (pinned to provider: openai)"), "{out}");
    assert!(out.contains("Credential auto-provisioned: openai (17 capabilities enabled)"), "{out}");
    let out = v.ok(&["secrets", "create", "--name", "MY_CUSTOM_KEY", "--value", "...", "--scope", "global"]);
    assert!(out.contains("Secret created: MY_CUSTOM_KEY") && !out.contains("pinned"), "{out}");
    v.ok(&[
        "secrets",
        "create",
        "--name",
        "OPENAI_API_KEY",
        "--value",
        "sk-...",
        "--scope",
        "workspace",
        "--workspace-id",
        "my-workspace",
    ]);
    v.ok(&[
        "secrets",
        "create",
        "--name",
        "OPENAI_API_KEY",
        "--value",
        "sk-...",
        "--scope",
        "group",
        "--workspace-id",
        "my-workspace",
        "--group-id",
        "my-group",
    ]);
    let fresh = TestVault::new();
    let out = fresh.ok(&[
        "secrets",
        "create",
        "--name",
        "OPENAI_API_KEY",
        "--value",
        "sk-...",
        "--scope",
        "global",
        "--alias",
        "openai",
        "--alias",
        "gpt-key",
    ]);
    assert!(out.contains("pinned to provider: openai"));
    let list = fresh.json(&["secrets", "list"]);
    assert_eq!(list[0]["aliases"], serde_json::json!(["openai", "gpt-key"]));

    let all = v.ok(&["secrets", "list"]);
    assert!(all.contains("OPENAI_API_KEY") && all.contains("group:my-workspace/my-group"), "{all}");
    let global = v.json(&["secrets", "list", "--scope", "global"]);
    assert_eq!(global.as_array().unwrap().len(), 2);
    let ws = v.json(&["secrets", "list", "--scope", "workspace", "--workspace-id", "my-workspace"]);
    assert_eq!(ws.as_array().unwrap().len(), 1);
    assert!(
        v.json(&["secrets", "list", "--scope", "workspace", "--workspace-id", "my-ws"]).as_array().unwrap().is_empty()
    );
    let verbose: serde_json::Value = serde_json::from_str(&v.ok(&["secrets", "list", "-v"])).unwrap();
    assert_eq!(verbose.as_array().unwrap().len(), 4);
    assert!(verbose[0]["ref"].as_str().unwrap().starts_with("vault:secret:"));
}

#[test]
fn create_json_has_the_contract_fields() {
    let v = TestVault::new();
    let j = v.json(&["secrets", "create", "--name", "OPENAI_API_KEY", "--value", SENTINEL, "--scope", "global"]);
    let id = j["id"].as_str().unwrap();
    assert_eq!(j["ref"], format!("vault:secret:{id}"));
    assert_eq!(j["name"], "OPENAI_API_KEY");
    assert_eq!(j["scope"], "global");
    assert_eq!(j["pinned_provider"], "openai");
    assert_eq!(j["provisioned"][0]["credential"], "openai");
    assert!(!j.to_string().contains(SENTINEL));
}

#[test]
fn multi_secret_provider_waits_then_provisions() {
    let v = TestVault::new();
    let out = v.ok(&["secrets", "create", "--name", "TRELLO_API_KEY", "--value", "k", "--scope", "global"]);
    assert!(out.contains("Waiting for TRELLO_TOKEN to complete trello credential"), "{out}");
    assert!(v.json(&["credential", "list"]).as_array().unwrap().is_empty());
    let out = v.ok(&["secrets", "create", "--name", "TRELLO_TOKEN", "--value", "t", "--scope", "global"]);
    assert!(out.contains("Credential auto-provisioned: trello (5 capabilities enabled)"), "{out}");
    let creds = v.json(&["credential", "list"]);
    assert_eq!(creds[0]["auth"], "multi-query");
    assert_eq!(creds[0]["secrets"].as_array().unwrap().len(), 2);
}

#[test]
fn seed_001_update_rotate_delete_attach_import() {
    let v = TestVault::new();
    let id = v.secret("MY_KEY", "v1", &[]);
    let out = v.ok(&["secrets", "update", "--id", &id, "--name", "NEW_NAME"]);
    assert!(out.contains("NEW_NAME"));
    v.ok(&["secrets", "update", "--id", &id, "--alias", "new-alias"]);
    assert_eq!(v.json(&["secrets", "list"])[0]["aliases"], serde_json::json!(["new-alias"]));
    v.ok(&["secrets", "update", "--id", &id, "--clear-aliases"]);
    assert_eq!(v.json(&["secrets", "list"])[0]["aliases"], serde_json::json!([]));

    let out = v.ok(&["secrets", "rotate", "--id", &id, "--value", "new-value"]);
    assert!(out.contains("version 2"), "{out}");
    let audit = v.json(&["audit"]);
    assert!(audit.as_array().unwrap().iter().any(|e| e["kind"] == "secret.rotate" && e["secret_id"] == id.as_str()));

    v.ok(&["secrets", "attach-group", "--id", &id, "--workspace-id", "my-workspace", "--group-id", "my-group"]);
    assert_eq!(v.json(&["secrets", "list"])[0]["attached_groups"], serde_json::json!(["my-workspace/my-group"]));
    v.ok(&["secrets", "detach-group", "--id", &id, "--workspace-id", "my-workspace", "--group-id", "my-group"]);
    assert_eq!(v.json(&["secrets", "list"])[0]["attached_groups"], serde_json::json!([]));

    v.ok(&["secrets", "delete", "--id", &id]);
    assert!(v.json(&["secrets", "list"]).as_array().unwrap().is_empty());
    // The name is free again: no tombstone.
    v.secret("NEW_NAME", "again", &[]);

    let out = v.ok(&[
        "secrets",
        "import",
        "--entry",
        "OPENAI_API_KEY=sk-...",
        "--entry",
        "ANTHROPIC_API_KEY=sk-ant-...",
        "--entry",
        "GITHUB_TOKEN=ghp-...",
        "--scope",
        "global",
    ]);
    assert!(out.contains("Imported: 3 created, 0 rotated, 0 failed"), "{out}");
    assert!(out.contains("Credential auto-provisioned: anthropic"), "{out}");
    let again =
        v.json(&["secrets", "import", "--entry", "OPENAI_API_KEY=sk-2", "--entry", "EXTRA=x", "--scope", "global"]);
    assert_eq!((again["created"].as_u64(), again["rotated"].as_u64()), (Some(1), Some(1)));
}

#[test]
fn import_reports_every_failure_and_changes_nothing() {
    let v = TestVault::new();
    let before = v.state();
    let out = v.run(&[
        "secrets",
        "import",
        "--entry",
        "GOOD=1",
        "--entry",
        "EMPTY=",
        "--entry",
        "bad name=2",
        "--scope",
        "global",
    ]);
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("Failed: EMPTY (empty value)"), "{stdout}");
    assert!(stdout.contains("Failed: bad name"), "{stdout}");
    assert!(stdout.contains("2 failed; nothing was imported"), "{stdout}");
    assert_eq!(v.state(), before);
}

#[test]
fn delete_removes_dependent_credentials_and_bindings() {
    let v = TestVault::new();
    let id = v.secret("OPENAI_API_KEY", "sk-1", &[]);
    let other = v.secret("OPENAI_API_KEY", "sk-2", &["--scope", "workspace", "--workspace-id", "w"]);
    v.ok(&[
        "capability",
        "bind",
        "--capability",
        "openai/models",
        "--secret-ref",
        &format!("vault:secret:{id}"),
        "--scope",
        "global",
    ]);
    let d = v.json(&["secrets", "delete", "--id", &id]);
    assert_eq!(d["removed_credentials"], serde_json::json!(["openai"]));
    assert_eq!(d["removed_bindings"].as_array().unwrap().len(), 1);
    let creds = v.json(&["credential", "list"]);
    assert_eq!(creds.as_array().unwrap().len(), 1);
    assert_eq!(creds[0]["secrets"][0]["ref"], format!("vault:secret:{other}"));
    let out = v.ok(&["secrets", "create", "--name", "OPENAI_API_KEY", "--value", "sk-3", "--scope", "global"]);
    assert!(out.contains("Credential auto-provisioned: openai"));
}

#[test]
fn values_never_reach_disk_or_output() {
    let v = TestVault::new();
    let id = v.secret("OPENAI_API_KEY", SENTINEL, &[]);
    let file = v.dir.path().join("value.txt");
    std::fs::write(&file, format!("{SENTINEL}-file\n")).unwrap();
    v.ok(&["secrets", "create", "--name", "FROM_FILE", "--value-file", file.to_str().unwrap()]);
    std::fs::remove_file(&file).unwrap();
    let out = v
        .cmd()
        .args(["secrets", "create", "--name", "FROM_STDIN", "--value", "-"])
        .write_stdin(format!("{SENTINEL}-stdin\n"))
        .output()
        .unwrap();
    assert!(out.status.success());
    v.ok(&["secrets", "rotate", "--id", &id, "--value", &format!("{SENTINEL}-rotated")]);
    v.ok(&["secrets", "import", "--entry", &format!("IMPORTED={SENTINEL}-import")]);
    let mut all_output = String::new();
    for args in [
        &["secrets", "list", "-v"][..],
        &["credential", "list", "-v"],
        &["capability", "list", "-v"],
        &["audit", "--json"],
        &["status", "--json"],
        &["capability", "describe", "openai/models"],
    ] {
        all_output.push_str(&v.ok(args));
    }
    assert!(!all_output.contains(SENTINEL));
    v.assert_not_on_disk(SENTINEL);
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: std::path::PathBuf| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(v.home()), 0o700);
    if v.store_url.is_none() {
        assert_eq!(mode(v.home().join("vault.redb")), 0o600);
    }
    assert_eq!(mode(v.home().join("master.key")), 0o600);
}

#[test]
fn seed_004_scopes_and_bindings() {
    let v = TestVault::new();
    v.ok(&["secrets", "create", "--name", "OPENAI_API_KEY", "--value", "...", "--scope", "global"]);
    v.ok(&[
        "secrets",
        "create",
        "--name",
        "OPENAI_API_KEY",
        "--value",
        "...",
        "--scope",
        "workspace",
        "--workspace-id",
        "my-workspace",
    ]);
    let gid = v.secret(
        "OPENAI_API_KEY",
        "...",
        &["--scope", "group", "--workspace-id", "my-workspace", "--group-id", "my-group"],
    );
    v.ok(&["secrets", "attach-group", "--id", &gid, "--workspace-id", "my-workspace", "--group-id", "my-group"]);
    v.ok(&["secrets", "detach-group", "--id", &gid, "--workspace-id", "my-workspace", "--group-id", "my-group"]);
    let id = v.secret("OPENAI_KEY_B", "...", &[]);
    v.ok(&[
        "credential",
        "create",
        "my-openai-staging",
        "--provider",
        "openai",
        "--secret-ref",
        &format!("vault:secret:{id}"),
        "--workspace-id",
        "staging",
    ]);
    v.ok(&[
        "capability",
        "bind",
        "--capability",
        "openai/chat-completions",
        "--secret-ref",
        &format!("vault:secret:{id}"),
        "--scope",
        "workspace",
        "--workspace-id",
        "my-workspace",
    ]);
    let check = |ws: Option<&str>, g: Option<&str>| {
        let mut args =
            vec!["invoke", "openai/chat-completions", "--body", "{\"model\":\"gpt-5.2\",\"messages\":[]}", "--dry-run"];
        if let Some(w) = ws {
            args.extend(["--workspace-id", w]);
        }
        if let Some(g) = g {
            args.extend(["--group-id", g]);
        }
        v.json(&args)["credential"].as_str().unwrap().to_owned()
    };
    assert_eq!(check(Some("my-workspace"), Some("my-group")), "openai@my-workspace/my-group");
    assert!(check(Some("my-workspace"), None).starts_with("binding:openai/chat-completions"));
    assert_eq!(check(Some("staging"), None), "my-openai-staging");
    assert_eq!(check(Some("other"), None), "openai");
    assert_eq!(check(None, None), "openai");
    let b = v.json(&["capability", "bindings", "--capability", "openai/chat-completions"]);
    assert_eq!(b[0]["scope"], "workspace");
    v.ok(&[
        "capability",
        "unbind",
        "--capability",
        "openai/chat-completions",
        "--scope",
        "workspace",
        "--workspace-id",
        "my-workspace",
    ]);
    assert_eq!(check(Some("my-workspace"), None), "openai@my-workspace");
}

#[test]
fn rotate_master_rewraps_and_the_next_process_can_read() {
    let v = TestVault::new();
    let id = v.secret("OPENAI_API_KEY", SENTINEL, &[]);
    let old_key = std::fs::read_to_string(v.home().join("master.key")).unwrap();
    let r = v.json(&["rotate-master"]);
    assert_eq!(r["secrets_rewrapped"], 1);
    let new_key = std::fs::read_to_string(v.home().join("master.key")).unwrap();
    assert_ne!(old_key, new_key);
    assert!(!v.home().join("master.key.next").exists());
    // A new process opens with the new key and still decrypts (dry-run resolves and decrypts).
    let plan = v.json(&["invoke", "openai/models", "--dry-run"]);
    assert_eq!(plan["credential"], "openai");
    v.ok(&["secrets", "rotate", "--id", &id, "--value", "x"]);
    // The old key no longer opens the vault.
    let with_old = TestVault::beside(&v).with_env("AIVAULT_MASTER_KEY", old_key.trim());
    let out = with_old.cmd().env("AIVAULT_HOME", v.home()).args(["secrets", "list"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("wrong master key"));
    v.assert_not_on_disk(SENTINEL);
}

#[test]
fn env_master_key_and_rotation_with_new_key() {
    use base64::Engine as _;
    let k1 = base64::engine::general_purpose::STANDARD.encode([1u8; 32]);
    let k2 = base64::engine::general_purpose::STANDARD.encode([2u8; 32]);
    let v = TestVault::new().with_env("AIVAULT_MASTER_KEY", &k1);
    v.secret("OPENAI_API_KEY", "sk-1", &[]);
    assert!(!v.home().join("master.key").exists());
    let (code, err) = v.fails(&["rotate-master"]);
    assert_eq!(code, 2);
    assert!(err.contains("--new-key"), "{err}");
    v.ok(&["rotate-master", "--new-key", &k2]);
    let (_, err) = v.fails(&["secrets", "list"]);
    assert!(err.contains("wrong master key"), "{err}");
    let v2 = v.fresh_env().with_env("AIVAULT_MASTER_KEY", &k2);
    assert_eq!(v2.json(&["invoke", "openai/models", "--dry-run"])["credential"], "openai");
}
