//! `aivault store copy`: move a whole vault (sealed) between backends.

use clap::Subcommand;

use super::render::{self, Out};
use crate::config::Config;
use crate::error::Result;
use crate::store::Location;

#[derive(Subcommand, Debug)]
pub enum StoreCmd {
    /// Copy everything (secrets, credentials, capabilities, agents, proposals, the CA, the audit
    /// log), sealed, into another store in one transaction on the target.
    Copy {
        /// The target: a PostgreSQL URL (postgres://user@host/db) or a redb file path.
        #[arg(long, value_name = "URL")]
        to: String,
        /// Replace what a non-empty target holds (refused without it).
        #[arg(long)]
        force: bool,
    },
}

pub fn run(cfg: &Config, out: Out, cmd: StoreCmd) -> Result<()> {
    match cmd {
        StoreCmd::Copy { to, force } => {
            let target = match Location::parse(&to) {
                Location::Postgres(url, _) => match &cfg.store {
                    Location::Postgres(_, passfile) => Location::Postgres(url, passfile.clone()),
                    Location::File(_) => Location::Postgres(url, cfg.passfile()),
                },
                file => file,
            };
            let copied = crate::service::store_copy(cfg, &target, force)?;
            let doc = serde_json::json!({
                "from": cfg.store.to_string(),
                "to": target.to_string(),
                "records": copied.records,
                "audit_records": copied.audit_records,
            });
            out.show(&doc, false, || {
                render::line(&format!(
                    "Copied {} records and {} audit records from {} to {}.",
                    copied.records, copied.audit_records, cfg.store, target
                ));
                render::line(
                    "Values stay sealed: open the copy with the same master key (AIVAULT_MASTER_KEY or this master.key).",
                );
            });
        }
    }
    Ok(())
}
