//! `aivault env`: the variables `aivault run` would set, for a shell to export.
//!
//! A session agent is minted for the context asked for (as `run` does), so the printed proxy URL
//! carries a token that works at once; unlike `run`'s, this session lives until it is revoked
//! (`aivault agent revoke ID`, printed with the variables). Nothing here starts a proxy: the
//! address is the running proxy's (`proxy.json`), else the default one, with a warning.

use std::net::SocketAddr;

use serde::Serialize;

use super::{Session, running_proxy};
use crate::config::Config;
use crate::error::Result;
use crate::scope::Context;

/// What `aivault env` was asked for.
pub struct EnvRequest {
    pub agent: Option<String>,
    pub ctx: Context,
    /// Where the proxy listens when none is running yet.
    pub fallback: SocketAddr,
}

/// The variables, in the order a shell should apply them.
#[derive(Serialize)]
pub struct EnvOutput {
    /// The session agent's id (revoke it to end the token).
    pub session: String,
    pub proxy: String,
    /// `false` when no running proxy answered: start `aivault proxy --listen <proxy>`.
    pub proxy_running: bool,
    pub set: Vec<(String, String)>,
    /// Real keys in the current environment that the agent must not inherit.
    pub unset: Vec<String>,
}

pub fn env(cfg: &Config, req: &EnvRequest) -> Result<EnvOutput> {
    let session = Session::start(cfg, req.agent.as_deref(), &req.ctx, "env")?;
    let running = running_proxy(&cfg.home, &session.token).map(|(addr, _)| addr);
    let addr = running.unwrap_or(req.fallback);
    // Placeholders already replace the usable ones; the other real keys are unset.
    let unset = session.inherited_keys().into_iter().filter(|n| !session.usable.contains(n)).collect();
    Ok(EnvOutput {
        proxy: addr.to_string(),
        proxy_running: running.is_some(),
        set: session.env(addr),
        unset,
        session: session.id,
    })
}

/// Shell syntaxes `aivault env --format` prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Sh,
    Fish,
    Dotenv,
}

/// Renders `out` for a shell; values are single-quoted so nothing in them is expanded.
pub fn render(out: &EnvOutput, format: Format) -> String {
    let mut text = String::new();
    let comment = format!(
        "# aivault session {} via proxy {}; end it with: aivault agent revoke {}\n",
        out.session, out.proxy, out.session
    );
    text.push_str(&comment);
    for (k, v) in &out.set {
        let line = match format {
            Format::Sh => format!("export {k}={}\n", sh_quote(v)),
            Format::Fish => format!("set -gx {k} {}\n", fish_quote(v)),
            Format::Dotenv => format!("{k}={}\n", sh_quote(v)),
        };
        text.push_str(&line);
    }
    for k in &out.unset {
        let line = match format {
            Format::Sh => format!("unset {k}\n"),
            Format::Fish => format!("set -e {k}\n"),
            // A dotenv file cannot unset: an empty value keeps the real key out.
            Format::Dotenv => format!("{k}=\n"),
        };
        text.push_str(&line);
    }
    text
}

fn sh_quote(v: &str) -> String {
    format!("'{}'", v.replace('\'', r"'\''"))
}

fn fish_quote(v: &str) -> String {
    format!("'{}'", v.replace('\\', r"\\").replace('\'', r"\'"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_format_quotes_so_nothing_expands() {
        let out = EnvOutput {
            session: "agt_1".into(),
            proxy: "127.0.0.1:8787".into(),
            proxy_running: true,
            set: vec![("A".into(), "x'$HOME".into())],
            unset: vec!["OPENAI_API_KEY".into()],
        };
        let cases = [
            (Format::Sh, "export A='x'\\''$HOME'\n", "unset OPENAI_API_KEY\n"),
            (Format::Fish, "set -gx A 'x\\'$HOME'\n", "set -e OPENAI_API_KEY\n"),
            (Format::Dotenv, "A='x'\\''$HOME'\n", "OPENAI_API_KEY=\n"),
        ];
        for (format, set, unset) in cases {
            let text = render(&out, format);
            assert!(text.starts_with("# aivault session agt_1"), "{text}");
            assert!(text.contains(set), "{format:?}: {text}");
            assert!(text.ends_with(unset), "{format:?}: {text}");
        }
    }
}
