//! `aivault approval list | allow | deny`: decide on requests held by capabilities created with
//! `--approval required`.

use clap::Subcommand;

use super::render::{self, Out};
use crate::config::Config;
use crate::error::Result;
use crate::service::Vault;

#[derive(Subcommand, Debug)]
pub enum ApprovalCmd {
    /// List requests waiting for a decision (--all: decided ones too).
    List {
        /// Include allowed, denied and expired requests.
        #[arg(long)]
        all: bool,
    },
    /// Let a held request through.
    Allow {
        /// The approval id (from `approval list` or the proxy log).
        id: String,
        /// Also let this agent use this capability without asking for N minutes.
        #[arg(long = "for", value_name = "MINUTES")]
        for_minutes: Option<u64>,
    },
    /// Refuse a held request (the agent gets 403 approval_denied).
    Deny {
        /// The approval id.
        id: String,
        /// Why, shown to the agent.
        #[arg(long)]
        reason: Option<String>,
    },
}

pub fn run(cfg: &Config, out: Out, cmd: ApprovalCmd) -> Result<()> {
    match cmd {
        ApprovalCmd::List { all } => {
            let list = Vault::open(cfg)?.approval_list(all)?;
            out.show(&list, false, || {
                if list.is_empty() {
                    render::line("No requests are waiting for approval.");
                    return;
                }
                let rows: Vec<Vec<String>> = list
                    .iter()
                    .map(|a| {
                        vec![
                            a.id.clone(),
                            a.status.clone(),
                            a.agent.clone(),
                            a.capability.clone(),
                            format!("{} {}{}", a.method, a.host, a.path),
                            crate::time::rfc3339(a.created_ms),
                        ]
                    })
                    .collect();
                render::table(&["ID", "STATUS", "AGENT", "CAPABILITY", "REQUEST", "HELD SINCE"], &rows);
            });
        }
        ApprovalCmd::Allow { id, for_minutes } => {
            let a = Vault::open(cfg)?.approval_decide(&id, true, for_minutes, None)?;
            out.show(&a, false, || {
                let standing = for_minutes.map(|m| format!(" (and for {m} min)")).unwrap_or_default();
                render::line(&format!("Allowed {}: {} {}{}{standing}", a.id, a.method, a.host, a.path));
            });
        }
        ApprovalCmd::Deny { id, reason } => {
            let a = Vault::open(cfg)?.approval_decide(&id, false, None, reason)?;
            out.show(&a, false, || render::line(&format!("Denied {}: {} {}{}", a.id, a.method, a.host, a.path)));
        }
    }
    Ok(())
}
