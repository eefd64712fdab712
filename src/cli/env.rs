//! `aivault env`: print what `aivault run` would set, for `eval "$(aivault env ...)"`.

use std::net::SocketAddr;

use clap::{Args, ValueEnum};

use super::render::{self, Out};
use crate::config::Config;
use crate::error::Result;
use crate::run::env::{self, EnvRequest, Format};

/// `aivault env`
#[derive(Args, Debug)]
pub struct EnvArgs {
    #[command(flatten)]
    pub who: super::proxy::SessionArgs,
    /// Output syntax: sh (bash, zsh), fish, dotenv, or json (also with the global --json).
    #[arg(long, value_enum, default_value_t = FormatArg::Sh)]
    pub format: FormatArg,
    /// The proxy address to print when no proxy is running yet (start it there).
    #[arg(long, default_value = "127.0.0.1:8787")]
    pub proxy: SocketAddr,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    Sh,
    Fish,
    Dotenv,
    Json,
}

pub fn run(cfg: &Config, out: Out, args: EnvArgs) -> Result<()> {
    let (agent, ctx) = args.who.resolve()?;
    let req = EnvRequest { agent, ctx, fallback: args.proxy };
    let vars = env::env(cfg, &req)?;
    if !vars.proxy_running {
        render::eprint_line(&format!(
            "warning: no aivault proxy is running for this vault; start one with `aivault proxy --listen {}`",
            vars.proxy
        ));
    }
    if !vars.unset.is_empty() {
        render::eprint_line(&format!(
            "aivault: these are unset for the agent (the proxy injects the vault's value): {}",
            vars.unset.join(", ")
        ));
    }
    let format = match args.format {
        _ if out.json => None,
        FormatArg::Json => None,
        FormatArg::Sh => Some(Format::Sh),
        FormatArg::Fish => Some(Format::Fish),
        FormatArg::Dotenv => Some(Format::Dotenv),
    };
    match format {
        Some(f) => render::raw(env::render(&vars, f).as_bytes()),
        None => {
            let doc = serde_json::json!({
                "session": vars.session,
                "proxy": vars.proxy,
                "proxy_running": vars.proxy_running,
                "set": vars.set.iter().map(|(k, v)| (k.clone(), serde_json::Value::from(v.as_str()))).collect::<serde_json::Map<_, _>>(),
                "unset": vars.unset,
            });
            Out { json: true }.show(&doc, false, || {});
        }
    }
    Ok(())
}
