//! `aivault secrets ...`

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::read_value;
use super::render::{self, Out, scope_text};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::scope::Scope;
use crate::secret::SecretBytes;
use crate::service::api::SecretCreated;
use crate::service::{SecretFilter, Vault};

#[derive(Subcommand, Debug)]
pub enum SecretsCmd {
    /// List secrets (metadata only; values are never shown).
    List {
        #[command(flatten)]
        scope: ScopeArgs,
        /// Full JSON detail.
        #[arg(short, long)]
        verbose: bool,
        /// Also print every value (operator only; each reveal is audited).
        #[arg(long)]
        reveal: bool,
    },
    /// Print one secret's value (operator only; audited). Agents can never reach this.
    Reveal {
        /// The secret id (sec_..., as `secrets list` prints it).
        #[arg(long)]
        id: String,
    },
    /// Create an encrypted secret. A name a registry provider claims pins the secret and provisions its credential.
    Create {
        /// The secret's name; one a registry provider claims (e.g. OPENAI_API_KEY) pins it and provisions the provider's credential.
        #[arg(long)]
        name: String,
        #[command(flatten)]
        value: ValueArgs,
        #[command(flatten)]
        scope: ScopeArgs,
        /// Another name for the secret (repeatable).
        #[arg(long = "alias")]
        aliases: Vec<String>,
        /// Provision the registry credential for this host only (repeatable; required for per-tenant
        /// providers such as Shopify: --host my-store.myshopify.com).
        #[arg(long = "host")]
        hosts: Vec<String>,
        /// Read-only, from outside the vault: a command whose output is the value (run by `sh -c`,
        /// e.g. 'pass show api/openai'); fetched by the proxy, never stored.
        #[arg(long, value_name = "COMMAND", conflicts_with_all = ["value", "value_file", "from_file"])]
        from_exec: Option<String>,
        /// Read-only, from outside the vault: a file whose contents are the value (e.g. a mounted
        /// Kubernetes Secret), re-read when it changes.
        #[arg(long, value_name = "PATH", conflicts_with_all = ["value", "value_file"])]
        from_file: Option<PathBuf>,
        /// Seconds a value fetched from --from-exec or --from-file is reused (never longer).
        #[arg(long, value_name = "SECONDS", default_value_t = crate::source::DEFAULT_TTL_SECS)]
        ttl: u64,
    },
    /// Rename a secret or change its aliases (use rotate to change the value).
    Update {
        /// The secret id (sec_...).
        #[arg(long)]
        id: String,
        /// A new name.
        #[arg(long)]
        name: Option<String>,
        /// Add an alias (repeatable).
        #[arg(long = "alias")]
        aliases: Vec<String>,
        /// Remove every alias first.
        #[arg(long)]
        clear_aliases: bool,
    },
    /// Replace a secret's value (fresh data key, new version).
    Rotate {
        /// The secret id (sec_...).
        #[arg(long)]
        id: String,
        #[command(flatten)]
        value: ValueArgs,
    },
    /// Revoke and delete a secret, with the credentials and bindings that depend on it.
    Delete {
        /// The secret id (sec_...).
        #[arg(long)]
        id: String,
    },
    /// Attach a secret to a group: credentials reading it count at that group's level.
    AttachGroup(GroupArgs),
    /// Detach a secret from a group.
    DetachGroup(GroupArgs),
    /// Import KEY=VALUE pairs, each handled like `create` (an existing name is rotated).
    Import {
        /// KEY=VALUE (repeatable).
        #[arg(long = "entry", required = true)]
        entries: Vec<String>,
        #[command(flatten)]
        scope: ScopeArgs,
    },
}

#[derive(Args, Debug)]
pub struct ValueArgs {
    /// The value, or '-' to read it from stdin.
    #[arg(long, allow_hyphen_values = true)]
    pub value: Option<String>,
    /// Read the value from a file.
    #[arg(long)]
    pub value_file: Option<PathBuf>,
    /// Largest value accepted, in bytes (a secret is rarely more than a few KiB).
    #[arg(long, default_value_t = super::MAX_VALUE_BYTES)]
    pub max_value_bytes: usize,
}

#[derive(Args, Debug, Default)]
pub struct ScopeArgs {
    /// global, workspace or group.
    #[arg(long)]
    pub scope: Option<String>,
    /// Workspace id (with --scope workspace or group).
    #[arg(long)]
    pub workspace_id: Option<String>,
    /// Group id within --workspace-id (with --scope group).
    #[arg(long)]
    pub group_id: Option<String>,
}

impl ScopeArgs {
    pub fn scope(&self) -> Result<Scope> {
        Ok(Scope::from_args(self.scope.as_deref(), self.workspace_id.as_deref(), self.group_id.as_deref())?)
    }

    fn filter(&self) -> Result<Option<Scope>> {
        if self.scope.is_none() && self.workspace_id.is_none() && self.group_id.is_none() {
            Ok(None)
        } else {
            self.scope().map(Some)
        }
    }
}

#[derive(Args, Debug)]
pub struct GroupArgs {
    /// The secret id (sec_...).
    #[arg(long)]
    pub id: String,
    /// The group's workspace.
    #[arg(long)]
    pub workspace_id: String,
    /// The group.
    #[arg(long)]
    pub group_id: String,
}

pub fn run(cfg: &Config, out: Out, cmd: SecretsCmd) -> Result<()> {
    match cmd {
        SecretsCmd::Reveal { id } => {
            let (info, value) = Vault::open(cfg)?.secret_reveal(&id)?;
            let text = String::from_utf8_lossy(value.expose()).into_owned();
            let text = zeroize::Zeroizing::new(text);
            let doc = serde_json::json!({ "id": info.id, "name": info.name, "value": text.as_str() });
            out.show(&doc, false, || render::line(&text));
        }
        SecretsCmd::List { scope, verbose: _, reveal: true } => {
            let filter = SecretFilter { scope: scope.filter()? };
            let vault = Vault::open(cfg)?;
            let mut docs = Vec::new();
            for s in vault.secrets_list(&filter)? {
                let (_, value) = vault.secret_reveal(&s.id)?;
                let text = zeroize::Zeroizing::new(String::from_utf8_lossy(value.expose()).into_owned());
                docs.push((s, text));
            }
            let json: Vec<serde_json::Value> = docs
                .iter()
                .map(|(s, v)| serde_json::json!({ "id": s.id, "name": s.name, "scope": scope_text(s.scope, &s.workspace_id, &s.group_id), "value": v.as_str() }))
                .collect();
            out.show(&json, false, || {
                let rows: Vec<Vec<String>> = docs
                    .iter()
                    .map(|(s, v)| {
                        vec![
                            s.name.clone(),
                            s.id.clone(),
                            scope_text(s.scope, &s.workspace_id, &s.group_id),
                            v.to_string(),
                        ]
                    })
                    .collect();
                render::table(&["NAME", "ID", "SCOPE", "VALUE"], &rows);
            });
        }
        SecretsCmd::List { scope, verbose, reveal: false } => {
            let filter = SecretFilter { scope: scope.filter()? };
            let list = Vault::open(cfg)?.secrets_list(&filter)?;
            out.show(&list, verbose, || {
                if list.is_empty() {
                    render::line("No secrets. Create one with `aivault secrets create --name NAME --value VALUE`.");
                    return;
                }
                let rows: Vec<Vec<String>> = list
                    .iter()
                    .map(|s| {
                        vec![
                            s.name.clone(),
                            s.id.clone(),
                            scope_text(s.scope, &s.workspace_id, &s.group_id),
                            s.pinned_provider.clone().unwrap_or_else(|| "-".into()),
                            s.version.to_string(),
                            if s.aliases.is_empty() { "-".into() } else { s.aliases.join(",") },
                        ]
                    })
                    .collect();
                render::table(&["NAME", "ID", "SCOPE", "PROVIDER", "VERSION", "ALIASES"], &rows);
            });
        }
        SecretsCmd::Create { name, value, scope, aliases, hosts, from_exec, from_file, ttl } => {
            let scope = scope.scope()?;
            let source = match (from_exec, from_file) {
                (Some(command), _) => Some(crate::source::Source::Exec { command, ttl_secs: ttl }),
                (None, Some(path)) => {
                    let path = std::path::absolute(&path)
                        .map_err(|e| Error::invalid(format!("bad --from-file {}: {e}", path.display())))?;
                    Some(crate::source::Source::File { path, ttl_secs: ttl })
                }
                (None, None) => None,
            };
            let vault = Vault::open(cfg)?;
            let created = match source {
                Some(source) => vault.secret_create_external(&name, source, scope, &aliases, &hosts)?,
                None => {
                    let value = read_value(value.value, value.value_file, value.max_value_bytes)?;
                    vault.secret_create(&name, value, scope, &aliases, &hosts)?
                }
            };
            out.show(&created, false, || print_created(&created));
            for w in &created.warnings {
                render::eprint_line(&format!("warning: {w}"));
            }
        }
        SecretsCmd::Update { id, name, aliases, clear_aliases } => {
            let info = Vault::open(cfg)?.secret_update(&id, name.as_deref(), &aliases, clear_aliases)?;
            out.show(&info, false, || {
                let aliases = if info.aliases.is_empty() { "none".to_owned() } else { info.aliases.join(", ") };
                render::line(&format!("Secret updated: {} (aliases: {aliases})", info.name));
            });
        }
        SecretsCmd::Rotate { id, value } => {
            let value = read_value(value.value, value.value_file, value.max_value_bytes)?;
            let info = Vault::open(cfg)?.secret_rotate(&id, value)?;
            out.show(&info, false, || {
                render::line(&format!("Secret rotated: {} (version {}, new data key)", info.name, info.version));
            });
        }
        SecretsCmd::Delete { id } => {
            let d = Vault::open(cfg)?.secret_delete(&id)?;
            out.show(&d, false, || {
                render::line(&format!("Secret deleted: {} ({})", d.name, d.id));
                for c in &d.removed_credentials {
                    render::line(&format!("Credential removed: {c}"));
                }
                for b in &d.removed_bindings {
                    render::line(&format!("Binding removed: {b}"));
                }
            });
        }
        SecretsCmd::AttachGroup(g) => attach(cfg, out, &g, true)?,
        SecretsCmd::DetachGroup(g) => attach(cfg, out, &g, false)?,
        SecretsCmd::Import { entries, scope } => {
            let scope = scope.scope()?;
            let mut parsed = Vec::new();
            for e in entries {
                let (k, v) = e.split_once('=').ok_or_else(|| {
                    let key = e.split('=').next().unwrap_or_default();
                    Error::invalid(format!("--entry for '{key}' must be KEY=VALUE"))
                })?;
                parsed.push((k.trim().to_owned(), SecretBytes::new(v.as_bytes().to_vec())));
            }
            let summary = Vault::open(cfg)?.secrets_import(parsed, scope)?;
            let failed = summary.failed;
            out.show(&summary, false, || {
                for e in &summary.entries {
                    print_created(e);
                }
                for f in &summary.failures {
                    render::line(&format!("Failed: {} ({})", f.name, f.error));
                }
                let note = if failed > 0 { "; nothing was imported" } else { "" };
                render::line(&format!(
                    "Imported: {} created, {} rotated, {} failed{note}",
                    summary.created, summary.rotated, summary.failed
                ));
            });
            if failed > 0 {
                return Err(Error::invalid(format!(
                    "{failed} import entries failed; fix them and run the import again"
                )));
            }
        }
    }
    Ok(())
}

fn attach(cfg: &Config, out: Out, g: &GroupArgs, attach: bool) -> Result<()> {
    let info = Vault::open(cfg)?.secret_attach(&g.id, &g.workspace_id, &g.group_id, attach)?;
    out.show(&info, false, || {
        let verb = if attach { "attached to" } else { "detached from" };
        render::line(&format!("Secret {} {verb} group {}/{}", info.name, g.workspace_id, g.group_id));
    });
    Ok(())
}

fn print_created(c: &SecretCreated) {
    let s = &c.secret;
    let verb = if c.action == "rotated" { "rotated" } else { "created" };
    match &s.pinned_provider {
        Some(p) => render::line(&format!("Secret {verb}: {} (pinned to provider: {p})", s.name)),
        None => render::line(&format!("Secret {verb}: {}", s.name)),
    }
    render::line(&format!("  ref: {}", s.reference));
    if let Some(source) = &s.source {
        render::line(&format!("  value from {source} (read-only; fetched when needed, never stored)"));
    }
    for p in &c.provisioned {
        let verb = if p.action == "updated" { "updated" } else { "auto-provisioned" };
        render::line(&format!("Credential {verb}: {} ({} capabilities enabled)", p.credential, p.capabilities));
    }
    for w in &c.waiting {
        match &w.reason {
            Some(reason) => render::line(&format!("No credential provisioned: {reason}")),
            None => {
                render::line(&format!("Waiting for {} to complete {} credential", w.missing.join(", "), w.provider))
            }
        }
    }
}
