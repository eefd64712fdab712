//! `aivault agent ...` and `aivault ca ...`

use std::path::PathBuf;

use clap::Subcommand;

use super::render::{self, Out};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::scope::Context;
use crate::service::Vault;

#[derive(Subcommand, Debug)]
pub enum AgentCmd {
    /// Create an agent identity; its token is printed once.
    Create {
        /// The agent's name (what audit records and `run --agent` use).
        name: String,
        /// The workspace whose secrets the agent reads (after its group's, before global ones).
        #[arg(long)]
        workspace_id: Option<String>,
        /// The group (inside the workspace) whose secrets come first.
        #[arg(long)]
        group_id: Option<String>,
        /// Let the agent use only this capability, or every capability of a provider with
        /// PROVIDER/* (repeatable; without it: everything its scope resolves).
        #[arg(long = "allow", value_name = "CAPABILITY|PROVIDER/*")]
        grants: Vec<String>,
    },
    /// List agents (tokens are never shown again).
    List,
    /// Let an agent use more capabilities (an agent with grants uses only those).
    Grant {
        /// The agent's name.
        name: String,
        /// A capability id or PROVIDER/* (repeatable).
        #[arg(required = true)]
        grants: Vec<String>,
    },
    /// Take grants away from an agent (with none left it uses everything its scope resolves).
    Ungrant {
        /// The agent's name.
        name: String,
        /// A capability id or PROVIDER/* (repeatable).
        #[arg(required = true)]
        grants: Vec<String>,
    },
    /// Revoke an agent: its token stops working at the next request, even in open tunnels.
    Revoke {
        /// The agent's name (or id).
        name: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum CaCmd {
    /// Print the path of the CA certificate (PEM).
    Path,
    /// Print the CA certificate (PEM), or write it to a file.
    Export {
        /// Write the certificate to this file instead of printing it.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Write the system roots plus the aivault CA to one PEM file and print its path.
    Bundle,
    /// Install the CA into the system trust store (prints the commands with --dry-run).
    Trust {
        /// Print what would be installed into the system trust store, change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Replace the CA with a new one (clients must trust the new certificate).
    Rotate,
}

pub fn run_agent(cfg: &Config, out: Out, cmd: AgentCmd) -> Result<()> {
    match cmd {
        AgentCmd::Grant { name, grants } => {
            let info = Vault::open(cfg)?.agent_grants(&name, &grants, true)?;
            out.show(&info, false, || {
                render::line(&format!("Agent {} may use: {}", info.name, info.grants.join(", ")))
            });
        }
        AgentCmd::Ungrant { name, grants } => {
            let info = Vault::open(cfg)?.agent_grants(&name, &grants, false)?;
            let now = if info.grants.is_empty() {
                "everything its scope resolves".to_owned()
            } else {
                info.grants.join(", ")
            };
            out.show(&info, false, || render::line(&format!("Agent {} may use: {now}", info.name)));
        }
        AgentCmd::Create { name, workspace_id, group_id, grants } => {
            let ctx = Context::new(workspace_id.as_deref(), group_id.as_deref())?;
            let created = Vault::open(cfg)?.agent_create(&name, ctx, false, &grants)?;
            let doc = serde_json::json!({
                "id": created.info.id,
                "name": created.info.name,
                "workspace_id": created.info.workspace_id,
                "group_id": created.info.group_id,
                "grants": created.info.grants,
                "token": created.token.expose(),
            });
            if out.json {
                out.json(&doc);
            } else {
                render::line(&format!("Agent created: {} ({})", created.info.name, created.info.id));
                render::line(&format!("Token (shown once): {}", created.token.expose()));
                render::line(&format!("Use: HTTPS_PROXY=http://agent:{}@127.0.0.1:8787", created.token.expose()));
            }
        }
        AgentCmd::List => {
            let list = Vault::open(cfg)?.agents_list()?;
            out.show(&list, false, || {
                if list.is_empty() {
                    render::line("No agents. Create one with `aivault agent create NAME`.");
                    return;
                }
                let rows: Vec<Vec<String>> = list
                    .iter()
                    .map(|a| {
                        vec![
                            a.name.clone(),
                            a.id.clone(),
                            a.workspace_id.clone().unwrap_or_else(|| "-".into()),
                            a.group_id.clone().unwrap_or_else(|| "-".into()),
                            a.status.to_owned(),
                            if a.grants.is_empty() { "(all)".to_owned() } else { a.grants.join(", ") },
                        ]
                    })
                    .collect();
                render::table(&["NAME", "ID", "WORKSPACE", "GROUP", "STATUS", "MAY USE"], &rows);
            });
        }
        AgentCmd::Revoke { name } => {
            let (info, generation) = {
                let vault = Vault::open(cfg)?;
                let info = vault.agent_revoke(&name)?;
                (info, vault.generation()?)
            };
            // Return only once every running proxy (announced in this data directory) refuses the token.
            let behind = crate::service::proxies::wait_for(&cfg.home, generation, std::time::Duration::from_secs(3));
            out.show(&info, false, || render::line(&format!("Agent revoked: {}", info.name)));
            if !behind.is_empty() {
                render::eprint_line(&format!(
                    "warning: the proxy at {} did not confirm the revocation within 3 s; it applies it within a second of reading the change",
                    behind.join(", ")
                ));
            }
        }
    }
    Ok(())
}

pub fn run_ca(cfg: &Config, out: Out, cmd: CaCmd) -> Result<()> {
    let vault = Vault::open(cfg)?;
    match cmd {
        CaCmd::Path => {
            vault.ca_material()?;
            let path = vault.ca_cert_path().display().to_string();
            out.show(&serde_json::json!({ "path": path }), false, || render::line(&path));
        }
        CaCmd::Export { out: file } => {
            let pem = vault.ca_material()?.cert_pem;
            if let Some(path) = &file {
                std::fs::write(path, &pem).map_err(Error::io(format!("cannot write {}", path.display())))?;
            }
            let doc = serde_json::json!({
                "pem": pem,
                "written_to": file.as_ref().map(|p| p.display().to_string()),
            });
            out.show(&doc, false, || match &file {
                Some(path) => render::line(&format!("CA certificate written to {}", path.display())),
                None => render::raw(pem.as_bytes()),
            });
        }
        CaCmd::Bundle => {
            vault.ca_material()?;
            let path = vault.ca_bundle_path().display().to_string();
            out.show(&serde_json::json!({ "path": path }), false, || render::line(&path));
        }
        CaCmd::Trust { dry_run } => {
            let commands = vault.ca_trust_commands()?;
            if dry_run || out.json {
                out.show(&commands, false, || commands.iter().for_each(|c| render::line(&c.join(" "))));
                return Ok(());
            }
            crate::service::ca::run_trust_commands(&commands)?;
            render::line("The aivault CA is now trusted system-wide.");
        }
        CaCmd::Rotate => {
            let info = vault.ca_rotate()?;
            out.show(&info, false, || {
                render::line(&format!("CA rotated: {} (sha256 {})", info.common_name, info.fingerprint_sha256));
                render::line(&format!("Trust the new certificate: {}", info.path));
            });
        }
    }
    Ok(())
}
