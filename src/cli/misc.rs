//! `status`, `rotate-master`, `audit`, `completions`, and upstream flags shared by `invoke` and `proxy`.

use std::path::PathBuf;

use clap::{Args, CommandFactory};

use super::render::{self, Out};
use crate::audit::AuditQuery;
use crate::config::{self, Config};
use crate::error::{Error, Result};
use crate::service::Vault;

#[derive(Args, Debug)]
pub struct RotateMasterArgs {
    /// The new key (base64 of 32 bytes). Generated when the key lives in master.key.
    #[arg(long)]
    pub new_key: Option<String>,
}

#[derive(Args, Debug)]
pub struct AuditArgs {
    /// How many records (default 100).
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
    /// Only records since a time: 90s, 15m, 2h, 7d or an RFC 3339 timestamp.
    #[arg(long)]
    pub since: Option<String>,
    /// Only records of this agent.
    #[arg(long)]
    pub agent: Option<String>,
    /// Only records of this capability.
    #[arg(long)]
    pub capability: Option<String>,
}

#[derive(Args, Debug)]
pub struct CompletionsArgs {
    /// The shell to print completions for.
    pub shell: clap_complete::Shell,
}

/// Where upstream connections go and whom they trust (testing and private deployments).
#[derive(Args, Debug, Default, Clone)]
pub struct UpstreamArgs {
    /// Extra trusted root for upstream servers, PEM (repeatable; env AIVAULT_UPSTREAM_CA, ':'-separated).
    #[arg(long = "upstream-ca")]
    pub upstream_ca: Vec<PathBuf>,
    /// HOST:PORT:ADDR:PORT, like curl's --connect-to (repeatable; env AIVAULT_RESOLVE, ','-separated).
    #[arg(long = "resolve")]
    pub resolve: Vec<String>,
    /// Let the proxy connect to this private range or host, which the destination guard refuses
    /// otherwise: CIDR (10.20.0.0/16), address, host or *.domain (repeatable; env
    /// AIVAULT_ALLOW_DESTINATION, ','-separated). Applies to intercepted and tunnelled traffic.
    #[arg(long = "allow-destination", value_name = "CIDR|HOST")]
    pub allow_destination: Vec<String>,
    /// Send every upstream connection through this HTTP proxy (CONNECT), e.g. a corporate egress
    /// proxy: http://[USER:PASS@]HOST:PORT (env AIVAULT_UPSTREAM_PROXY).
    #[arg(long = "upstream-proxy", value_name = "URL")]
    pub upstream_proxy: Option<String>,
    /// Hosts that bypass --upstream-proxy: comma-separated hosts, .domain suffixes, * for all
    /// (env AIVAULT_UPSTREAM_NO_PROXY).
    #[arg(long = "upstream-no-proxy", value_name = "LIST")]
    pub upstream_no_proxy: Option<String>,
    /// Take the upstream proxy from this process's own HTTPS_PROXY and NO_PROXY (opt-in: these
    /// usually describe how this shell reaches the internet, not how agents should).
    #[arg(long = "upstream-proxy-from-env", conflicts_with = "upstream_proxy")]
    pub upstream_proxy_from_env: bool,
}

impl UpstreamArgs {
    pub fn resolve(&self) -> Result<crate::proxy::upstream::UpstreamConfig> {
        let mut cas = self.upstream_ca.clone();
        cas.extend(config::env_list("AIVAULT_UPSTREAM_CA", ':').into_iter().map(PathBuf::from));
        let mut maps = self.resolve.clone();
        maps.extend(config::env_list("AIVAULT_RESOLVE", ','));
        let mut cfg = crate::proxy::upstream::UpstreamConfig::new(&cas, &maps)?;
        let mut allow = self.allow_destination.clone();
        allow.extend(config::env_list("AIVAULT_ALLOW_DESTINATION", ','));
        for entry in allow {
            cfg.allow.push(crate::proxy::guard::Allowed::parse(&entry).map_err(|e| Error::invalid(e.to_string()))?);
        }
        let (url, no_proxy) = if self.upstream_proxy_from_env {
            (
                config::first_env(&["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"]),
                config::first_env(&["NO_PROXY", "no_proxy"]),
            )
        } else {
            (
                self.upstream_proxy.clone().or_else(|| config::first_env(&["AIVAULT_UPSTREAM_PROXY"])),
                self.upstream_no_proxy.clone().or_else(|| config::first_env(&["AIVAULT_UPSTREAM_NO_PROXY"])),
            )
        };
        if let Some(url) = url {
            let via = crate::proxy::upstream_proxy::UpstreamProxy::parse(&url, no_proxy.as_deref().unwrap_or(""))
                .map_err(|e| Error::invalid(e.to_string()))?;
            cfg.via = Some(via);
        }
        Ok(cfg)
    }
}

pub fn status(cfg: &Config, out: Out) -> Result<()> {
    let s = Vault::open(cfg)?.status()?;
    out.show(&s, false, || {
        render::line(&format!("home:        {}", s.home));
        render::line(&format!("store:       {} (schema {})", s.store, s.schema_version));
        render::line(&format!("master key:  {} ({})", s.key_id, s.key_source));
        render::line(&format!("secrets:     {}", s.secrets));
        render::line(&format!("credentials: {}", s.credentials));
        render::line(&format!(
            "capabilities: {} custom, {} registry providers",
            s.custom_capabilities, s.registry_providers
        ));
        render::line(&format!("agents:      {}", s.agents));
    });
    Ok(())
}

pub fn rotate_master(cfg: &Config, out: Out, args: &RotateMasterArgs) -> Result<()> {
    let mut vault = Vault::open(cfg)?;
    let r = vault.rotate_master(cfg, args.new_key.as_deref())?;
    out.show(&r, false, || {
        render::line(&format!(
            "Master key rotated: {} -> {} ({} secrets re-wrapped); new key {}",
            r.old_key_id, r.new_key_id, r.secrets_rewrapped, r.key_location
        ));
    });
    Ok(())
}

pub fn audit(cfg: &Config, out: Out, args: &AuditArgs) -> Result<()> {
    let since_ms = match &args.since {
        Some(s) => Some(
            crate::time::parse_since(s, crate::time::now_ms())
                .ok_or_else(|| Error::invalid(format!("--since '{s}': use 90s, 15m, 2h, 7d or an RFC 3339 time")))?,
        ),
        None => None,
    };
    let q = AuditQuery { limit: args.limit, since_ms, agent: args.agent.clone(), capability: args.capability.clone() };
    let events = Vault::open(cfg)?.audit(&q)?;
    out.show(&events, false, || {
        if events.is_empty() {
            render::line("No audit records match.");
            return;
        }
        let rows: Vec<Vec<String>> = events
            .iter()
            .map(|e| {
                let mut what = match (&e.method, &e.host) {
                    (Some(m), Some(h)) => format!("{m} {h}{}", e.path.as_deref().unwrap_or("")),
                    _ => e.detail.clone().unwrap_or_default(),
                };
                if let Some(n) = e.count {
                    let last = e.last_ts_ms.map(crate::time::rfc3339).unwrap_or_default();
                    what = format!("{what} (x{n}, last {last})");
                }
                // The refusal code next to the status says why.
                let status = match (e.status, e.outcome.as_deref()) {
                    (Some(s), Some(o)) if o != "ok" => format!("{s} {o}"),
                    (Some(s), _) => s.to_string(),
                    (None, Some(o)) => o.to_owned(),
                    (None, None) => "-".into(),
                };
                vec![
                    crate::time::rfc3339(e.ts_ms),
                    e.kind.clone(),
                    e.agent.clone().unwrap_or_else(|| "-".into()),
                    e.capability.clone().or_else(|| e.credential.clone()).unwrap_or_else(|| "-".into()),
                    status,
                    what,
                ]
            })
            .collect();
        render::table(&["TIME", "EVENT", "AGENT", "CAPABILITY", "STATUS", "DETAIL"], &rows);
    });
    Ok(())
}

pub fn completions(args: &CompletionsArgs) {
    let mut cmd = super::Cli::command();
    let mut buf = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "aivault", &mut buf);
    render::raw(&buf);
}

/// `aivault explain`
#[derive(Args, Debug)]
pub struct ExplainArgs {
    /// Decide as this agent (its workspace and group).
    #[arg(long, conflicts_with_all = ["workspace_id", "group_id"])]
    pub agent: Option<String>,
    /// Decide for this workspace (without an agent).
    #[arg(long)]
    pub workspace_id: Option<String>,
    /// Decide for this group of the workspace.
    #[arg(long, requires = "workspace_id")]
    pub group_id: Option<String>,
    /// The request method (GET, POST, ...).
    pub method: String,
    /// The request URL, e.g. https://api.openai.com/v1/models.
    pub url: String,
}

pub fn explain(cfg: &Config, out: Out, args: &ExplainArgs) -> Result<()> {
    let ctx = crate::scope::Context::new(args.workspace_id.as_deref(), args.group_id.as_deref())?;
    let e = Vault::open(cfg)?.explain(args.agent.as_deref(), ctx, &args.method, &args.url)?;
    out.show(&e, false, || {
        let who = match &e.agent {
            Some(a) => format!("agent {a} ({})", e.context),
            None => e.context.clone(),
        };
        render::line(&format!("{} {} for {who}", e.method, args.url));
        if e.allowed {
            render::line(&format!(
                "  allowed: capability {}, credential {} ({} level), strategy {}{}",
                e.capability.as_deref().unwrap_or("-"),
                e.credential.as_deref().unwrap_or("-"),
                e.level.as_deref().unwrap_or("-"),
                e.strategy.as_deref().unwrap_or("-"),
                if e.injects.is_empty() { String::new() } else { format!(" (writes {})", e.injects.join(", ")) },
            ));
        } else {
            render::line(&format!("  refused: {} - {}", e.code.unwrap_or("-"), e.message.as_deref().unwrap_or("")));
        }
        if !e.considered.is_empty() {
            render::line("  capabilities that allow it, most specific first:");
            for c in &e.considered {
                let mark = if c.chosen { "*" } else { " " };
                render::line(&format!("  {mark} {} (prefix {}): {}", c.capability, c.prefix, c.outcome));
            }
        }
    });
    Ok(())
}
