//! `aivault limit set | list | remove`: rate limits and budgets.

use clap::{Args, Subcommand};

use super::render::{self, Out};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::policy::limit::Per;
use crate::service::Vault;
use crate::service::limits::LimitTarget;

#[derive(Subcommand, Debug)]
pub enum LimitCmd {
    /// Limit requests through a capability, a credential or an agent (replaces an existing limit).
    Set {
        #[command(flatten)]
        target: TargetArgs,
        /// At most N requests per period, in bursts of up to N (429 rate_limited with Retry-After).
        #[arg(long, value_name = "N/PERIOD")]
        rate: Option<String>,
        /// At most N requests per calendar period (429 budget_exhausted until it resets).
        #[arg(long, value_name = "N/PERIOD")]
        budget: Option<String>,
        /// When the budget is used up: refuse (429 budget_exhausted) or ask (hold each further
        /// request for `aivault approval allow`).
        #[arg(long, value_parser = ["refuse", "ask"], default_value = "refuse")]
        on_exhaust: String,
    },
    /// List limits.
    List,
    /// Remove the limit on a target.
    Remove {
        #[command(flatten)]
        target: TargetArgs,
    },
}

#[derive(Args, Debug)]
#[group(required = true, multiple = false)]
pub struct TargetArgs {
    /// The capability (e.g. openai/chat).
    #[arg(long)]
    capability: Option<String>,
    /// The credential (e.g. openai, openai@team).
    #[arg(long)]
    credential: Option<String>,
    /// The agent, by name.
    #[arg(long)]
    agent: Option<String>,
}

impl TargetArgs {
    fn target(&self) -> Result<LimitTarget> {
        match (&self.capability, &self.credential, &self.agent) {
            (Some(c), None, None) => Ok(LimitTarget::Capability(c.clone())),
            (None, Some(c), None) => Ok(LimitTarget::Credential(c.clone())),
            (None, None, Some(a)) => Ok(LimitTarget::Agent(a.clone())),
            _ => Err(Error::invalid("pass exactly one of --capability, --credential or --agent")),
        }
    }
}

fn per(flag: &str, text: Option<&String>) -> Result<Option<Per>> {
    text.map(|t| Per::parse(t).map_err(|e| Error::invalid(format!("{flag}: {e}")))).transpose()
}

pub fn run(cfg: &Config, out: Out, cmd: LimitCmd) -> Result<()> {
    match cmd {
        LimitCmd::Set { target, rate, budget, on_exhaust } => {
            let (rate, budget) = (per("--rate", rate.as_ref())?, per("--budget", budget.as_ref())?);
            let info = Vault::open(cfg)?.limit_set(&target.target()?, rate, budget, on_exhaust == "ask")?;
            out.show(&info, false, || {
                let what = [
                    info.rate.as_ref().map(|r| format!("rate {r}")),
                    info.budget.as_ref().map(|b| format!("budget {b}")),
                ];
                let what: Vec<String> = what.into_iter().flatten().collect();
                render::line(&format!("Limit set on {}: {}", info.target, what.join(", ")));
            });
        }
        LimitCmd::List => {
            let list = Vault::open(cfg)?.limit_list()?;
            out.show(&list, false, || {
                if list.is_empty() {
                    render::line("No limits. Set one with `aivault limit set --capability ID --rate 60/min`.");
                    return;
                }
                let rows: Vec<Vec<String>> = list
                    .iter()
                    .map(|l| {
                        vec![
                            l.target.clone(),
                            l.rate.clone().unwrap_or_else(|| "-".into()),
                            l.budget.clone().unwrap_or_else(|| "-".into()),
                            l.on_exhaust.to_owned(),
                        ]
                    })
                    .collect();
                render::table(&["TARGET", "RATE", "BUDGET", "WHEN EXHAUSTED"], &rows);
            });
        }
        LimitCmd::Remove { target } => {
            let target = target.target()?;
            Vault::open(cfg)?.limit_remove(&target)?;
            out.show(&serde_json::json!({ "removed": target.key() }), false, || {
                render::line(&format!("Limit removed from {}", target.key()));
            });
        }
    }
    Ok(())
}
