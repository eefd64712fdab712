//! `aivault proposal list | show | link | approve | reject | create`: what agents asked for, and
//! the person's decision, in the terminal (the console page does the same in a browser).

use std::path::PathBuf;

use clap::Subcommand;

use super::render::{self, Out};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::secret::SecretBytes;
use crate::service::Vault;
use crate::service::proposals::ProposalView;

#[derive(Subcommand, Debug)]
pub enum ProposalCmd {
    /// List pending proposals (--all: decided ones too).
    List {
        /// Include approved, rejected and expired proposals.
        #[arg(long)]
        all: bool,
    },
    /// Show one proposal: who asked, every slot and capability, what approving would change.
    Show {
        /// The proposal id (prp_...).
        id: String,
    },
    /// Print a one-time link that opens the proposal's approval page in the console.
    Link {
        /// The proposal id.
        id: String,
    },
    /// Apply every change of the proposal in one transaction.
    Approve {
        /// The proposal id.
        id: String,
        /// A value for a static `set` slot (repeatable): KEY=VALUE. Replaces a value the agent supplied.
        #[arg(long = "value", value_name = "KEY=VALUE")]
        values: Vec<String>,
        /// A value read from a file (repeatable): KEY=PATH.
        #[arg(long = "value-file", value_name = "KEY=PATH")]
        value_files: Vec<String>,
    },
    /// Refuse the proposal; nothing is stored.
    Reject {
        /// The proposal id.
        id: String,
        /// Why, recorded with the decision.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Raise a proposal as the agent (under `aivault run`: uses the session's proxy and token).
    Create {
        /// The proposal JSON (as an agent would POST to https://aivault.local/v1/proposals).
        #[arg(long, value_name = "PATH")]
        file: PathBuf,
    },
}

pub fn run(cfg: &Config, out: Out, cmd: ProposalCmd) -> Result<()> {
    match cmd {
        ProposalCmd::List { all } => {
            let list = Vault::open(cfg)?.proposal_list(all)?;
            out.show(&list, false, || {
                if list.is_empty() {
                    render::line("No proposals are waiting (agents raise them at https://aivault.local/v1/proposals).");
                    return;
                }
                let rows: Vec<Vec<String>> = list
                    .iter()
                    .map(|p| {
                        let keys: Vec<String> = p
                            .credentials
                            .iter()
                            .map(|s| {
                                format!(
                                    "{}{}",
                                    if s.slot.action == crate::proposal::Action::Delete { "-" } else { "" },
                                    s.slot.key
                                )
                            })
                            .collect();
                        vec![
                            p.id.clone(),
                            p.status.to_owned(),
                            p.agent.clone(),
                            keys.join(" "),
                            p.capabilities.len().to_string(),
                            p.created_at.clone(),
                        ]
                    })
                    .collect();
                render::table(&["ID", "STATUS", "AGENT", "SLOTS", "CAPS", "CREATED"], &rows);
            });
        }
        ProposalCmd::Show { id } => {
            let p = Vault::open(cfg)?.proposal_show(&id)?;
            out.show(&p, false, || describe(&p));
        }
        ProposalCmd::Link { id } => {
            let vault = Vault::open(cfg)?;
            let token = vault.proposal_link(&id)?;
            let base = crate::service::proxies::console_url(cfg.home.as_path());
            let url = base.as_ref().map(|b| format!("{b}/review/{token}"));
            let doc = serde_json::json!({ "id": id, "review_url": url, "expires_in_s": crate::service::proposals::LINK_TTL_MS / 1000 });
            out.show(&doc, false, || match &url {
                Some(u) => {
                    render::line(&format!("Open this link once to review {id} (valid 30 min):"));
                    render::line(u);
                }
                None => render::line(
                    "No console is running: start `aivault proxy` (it serves one) or `aivault console`, then run this again.",
                ),
            });
        }
        ProposalCmd::Approve { id, values, value_files } => {
            let mut given: Vec<(String, SecretBytes)> = Vec::new();
            for v in values {
                let (k, val) = v
                    .split_once('=')
                    .ok_or_else(|| Error::invalid(format!("--value '{}' must be KEY=VALUE", key_of(&v))))?;
                given.push((k.to_owned(), SecretBytes::new(val.as_bytes().to_vec())));
            }
            for f in value_files {
                let (k, path) = f.split_once('=').ok_or_else(|| Error::invalid("--value-file must be KEY=PATH"))?;
                let value = super::read_value(None, Some(PathBuf::from(path)), super::MAX_VALUE_BYTES)?;
                given.push((k.to_owned(), value));
            }
            let done = Vault::open(cfg)?.proposal_approve(&id, &given, "cli")?;
            out.show(&done, false, || {
                render::line(&format!("Approved {id}."));
                for s in &done.secrets_set {
                    render::line(&format!("  secret set: {s}"));
                }
                for s in &done.secrets_deleted {
                    render::line(&format!("  secret deleted: {s}"));
                }
                for c in &done.capabilities_created {
                    render::line(&format!("  capability created: {c}"));
                }
                for w in &done.warnings {
                    render::line(&format!("  warning: {w}"));
                }
            });
        }
        ProposalCmd::Reject { id, reason } => {
            let p = Vault::open(cfg)?.proposal_reject(&id, reason, "cli")?;
            out.show(&p, false, || render::line(&format!("Rejected {}; nothing was stored.", p.id)));
        }
        ProposalCmd::Create { file } => {
            let body = std::fs::read(&file)
                .map_err(|e| Error::invalid(format!("cannot read proposal file {}: {e}", file.display())))?;
            let (status, reply) =
                crate::proxy::agent_client::request("POST", "https://aivault.local/v1/proposals", &body)?;
            let doc: serde_json::Value = serde_json::from_slice(&reply)
                .map_err(|_| Error::Network(format!("the proxy answered {status} without JSON")))?;
            if !(200..300).contains(&status) {
                let code = doc["error"].as_str().unwrap_or("error");
                let msg = doc["message"].as_str().unwrap_or("");
                return Err(Error::invalid(format!("the proxy refused the proposal ({status} {code}): {msg}")));
            }
            out.show(&doc, false, || {
                render::line(&format!(
                    "Proposal {} is {}.",
                    doc["id"].as_str().unwrap_or("?"),
                    doc["status"].as_str().unwrap_or("?")
                ));
                if let Some(u) = doc["approval_url"].as_str() {
                    render::line(&format!("Ask a person to review it at {u}"));
                }
            });
        }
    }
    Ok(())
}

/// The key part of a malformed `KEY=VALUE` (never the value).
fn key_of(arg: &str) -> String {
    arg.chars().take_while(|c| *c != '=').take(64).collect()
}

fn describe(p: &ProposalView) {
    render::line(&format!("Proposal {} ({})", p.id, p.status));
    let scope = render::scope_text(p.scope, &p.workspace_id, &p.group_id);
    render::line(&format!(
        "  from agent {} (lands in {scope}), raised {}, expires {}",
        p.agent, p.created_at, p.expires_at
    ));
    if let Some(m) = &p.message {
        render::line(&format!("  message: {m}"));
    }
    for s in &p.credentials {
        let what = match (s.slot.action, s.kind, s.staged) {
            (crate::proposal::Action::Delete, _, _) => "delete".to_owned(),
            (_, "oauth", true) => "set (oauth, tokens ready)".to_owned(),
            (_, "oauth", false) => "set (oauth: connect or paste on the approval page)".to_owned(),
            (_, _, true) => "set (agent supplied a value: confirm it)".to_owned(),
            _ => "set (needs --value)".to_owned(),
        };
        render::line(&format!("  slot {}: {what}", s.slot.key));
        if let Some(d) = &s.slot.description {
            render::line(&format!("    {d}"));
        }
        if let Some(o) = &s.slot.obtain {
            render::line(&format!("    obtain at {o}"));
        }
        if let Some(i) = &s.slot.obtain_instructions {
            render::line(&format!("    {i}"));
        }
        if s.exists == Some(false) {
            render::line("    warning: no such secret any more");
        }
        for w in &s.warnings {
            render::line(&format!("    warning: {w}"));
        }
    }
    for c in &p.capabilities {
        let methods = if c.methods.is_empty() { "any method".to_owned() } else { c.methods.join(",") };
        let paths = if c.paths.is_empty() { "/".to_owned() } else { c.paths.join(",") };
        render::line(&format!(
            "  capability {}: {methods} {} {paths} ({} auth with {})",
            c.id,
            c.hosts.join(","),
            c.auth.kind,
            c.secret
        ));
    }
    if p.status == "pending" {
        render::line(&format!(
            "Approve with `aivault proposal approve {} [--value KEY=VALUE]...`, or open `aivault proposal link {}`.",
            p.id, p.id
        ));
    }
}
