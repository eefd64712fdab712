//! How scope resolution picks a credential: run with `cargo run --example resolve`.
//!
//! Three credentials for one provider (global, a workspace, a group) and three callers.

use aivault::scope::{Context, CredentialCandidate, Resolved, Scope, resolve};

fn main() {
    let global = Scope::Global;
    let staging = Scope::Workspace { workspace_id: "staging".into() };
    let team = Scope::Group { workspace_id: "staging".into(), group_id: "team-a".into() };
    let creds = [
        CredentialCandidate {
            id: "openai",
            scope: &global,
            secret_ids: vec!["sec_global"],
            exact_host: true,
            manual: false,
        },
        CredentialCandidate {
            id: "openai@staging",
            scope: &staging,
            secret_ids: vec!["sec_ws"],
            exact_host: true,
            manual: false,
        },
        CredentialCandidate {
            id: "openai@staging/team-a",
            scope: &team,
            secret_ids: vec!["sec_group"],
            exact_host: true,
            manual: false,
        },
    ];
    let callers = [
        Context::global(),
        Context::new(Some("staging"), None).unwrap_or_default(),
        Context::new(Some("staging"), Some("team-a")).unwrap_or_default(),
        Context::new(Some("prod"), Some("team-b")).unwrap_or_default(),
    ];
    for ctx in &callers {
        let who = ctx.to_string();
        match resolve(ctx, &[], &creds, &|_| false) {
            Ok(Resolved::Credential { id, level }) => println!("{who:<22} -> {id} ({level} level)"),
            Ok(Resolved::Binding { secret_id, level }) => println!("{who:<22} -> binding {secret_id} ({level})"),
            Err(e) => println!("{who:<22} -> {e}"),
        }
    }
}
