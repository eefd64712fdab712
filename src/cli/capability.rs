//! `aivault capability ...` and `aivault invoke`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::render::{self, Out, scope_text};
use super::secrets::ScopeArgs;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::scope::Context;
use crate::service::{CapabilitySpec, Vault};

#[derive(Subcommand, Debug)]
pub enum CapabilityCmd {
    /// Create a custom capability.
    Create {
        /// The new capability's id (provider/name).
        id: String,
        /// The provider (default: the credential's).
        #[arg(long)]
        provider: Option<String>,
        /// Use exactly this credential.
        #[arg(long)]
        credential: Option<String>,
        /// Allowed method (repeatable).
        #[arg(long = "method", required = true)]
        methods: Vec<String>,
        /// Allowed path prefix, matched on segment boundaries (repeatable).
        #[arg(long = "path", required = true)]
        paths: Vec<String>,
        /// Allowed host (repeatable; default: the credential's hosts).
        #[arg(long = "host")]
        hosts: Vec<String>,
        /// Also inject into plain http:// requests (sends the credential in cleartext; off by default).
        #[arg(long)]
        allow_http: bool,
        /// `required`: hold every request until a person allows it (`aivault approval allow ID`).
        #[arg(long, value_parser = ["required", "none"], default_value = "none")]
        approval: String,
    },
    /// List the ready capabilities (a credential serves them); --all adds the registry's
    /// available ones (no credential yet). --json always lists both.
    List {
        /// Full JSON detail.
        #[arg(short, long)]
        verbose: bool,
        /// Also list the available registry capabilities (store the provider's secret to enable).
        #[arg(long)]
        all: bool,
    },
    /// Show a capability's allow-list, auth, credentials and an example call.
    Describe {
        /// The capability id (provider/name).
        id: String,
    },
    /// Delete a custom capability.
    Delete {
        /// The capability id (provider/name).
        id: String,
    },
    /// Bind a capability to a specific secret at a scope.
    Bind {
        /// The capability id (provider/name).
        #[arg(long)]
        capability: String,
        /// The secret: vault:secret:ID, the bare id, or name:NAME.
        #[arg(long)]
        secret_ref: String,
        #[command(flatten)]
        scope: ScopeArgs,
    },
    /// Remove a binding.
    Unbind {
        /// The capability id (provider/name).
        #[arg(long)]
        capability: String,
        #[command(flatten)]
        scope: ScopeArgs,
    },
    /// List bindings.
    Bindings {
        /// Only this capability's bindings.
        #[arg(long)]
        capability: Option<String>,
        #[command(flatten)]
        scope: ScopeArgs,
        /// Full JSON detail.
        #[arg(short, long)]
        verbose: bool,
    },
}

/// `aivault invoke CAPABILITY ...`
#[derive(Args, Debug)]
pub struct InvokeArgs {
    /// The capability to call (provider/name).
    pub capability: String,
    /// HTTP method (default: the capability's only method).
    #[arg(long)]
    pub method: Option<String>,
    /// Path, optionally with ?query (default: the capability's only path prefix).
    #[arg(long)]
    pub path: Option<String>,
    /// Extra request header "Name: value" (repeatable).
    #[arg(long = "header")]
    pub headers: Vec<String>,
    /// Request body.
    #[arg(long, conflicts_with = "body_file")]
    pub body: Option<String>,
    /// Read the request body from a file.
    #[arg(long)]
    pub body_file: Option<PathBuf>,
    /// Resolve as a caller in this workspace.
    #[arg(long)]
    pub workspace_id: Option<String>,
    /// Resolve as a caller in this group (needs --workspace-id).
    #[arg(long)]
    pub group_id: Option<String>,
    /// Print status and response headers too.
    #[arg(short, long)]
    pub verbose: bool,
    /// Only check policy and credential resolution; send nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub net: crate::cli::misc::UpstreamArgs,
}

pub fn run(cfg: &Config, out: Out, cmd: CapabilityCmd) -> Result<()> {
    match cmd {
        CapabilityCmd::Create { id, provider, credential, methods, paths, hosts, allow_http, approval } => {
            let approval = approval == "required";
            let spec = CapabilitySpec { id, provider, credential, methods, paths, hosts, allow_http, approval };
            let c = Vault::open(cfg)?.capability_create(&spec)?;
            out.show(&c, false, || {
                render::line(&format!(
                    "Capability created: {} ({} {} on {}; {})",
                    c.id,
                    c.methods.join(","),
                    c.path_prefixes.join(","),
                    c.hosts.join(","),
                    c.status
                ));
            });
        }
        CapabilityCmd::List { verbose, all } => {
            let list = Vault::open(cfg)?.capabilities_list()?;
            out.show(&list, verbose, || {
                for (status, title) in
                    [("ready", "Ready"), ("available", "Available (store the provider's secret to enable)")]
                {
                    let rows: Vec<Vec<String>> = list
                        .iter()
                        .filter(|c| c.status == status)
                        .map(|c| {
                            vec![
                                c.id.clone(),
                                render::list_cell(&c.methods, 16),
                                render::list_cell(&c.path_prefixes, 20),
                                c.origin.to_owned(),
                                render::list_cell(&c.hosts, 24),
                            ]
                        })
                        .collect();
                    if rows.is_empty() {
                        continue;
                    }
                    if status == "available" && !all {
                        render::line(&format!(
                            "{} more are available from the registry (store a provider's secret to enable \
                             them): aivault capability list --all",
                            rows.len()
                        ));
                        continue;
                    }
                    render::line(&format!("{title}: {}", rows.len()));
                    render::table(&["CAPABILITY", "METHODS", "PATHS", "ORIGIN", "HOSTS"], &rows);
                    render::line("");
                }
            });
        }
        CapabilityCmd::Describe { id } => {
            let d = Vault::open(cfg)?.capability_describe(&id)?;
            out.show(&d, false, || {
                let c = &d.capability;
                render::line(&format!("{} ({}, {})", c.id, c.origin, c.status));
                if let Some(desc) = &c.description {
                    render::line(&format!("  {desc}"));
                }
                render::line(&format!("  provider: {}", c.provider));
                render::line(&format!("  methods:  {}", c.methods.join(", ")));
                render::line(&format!("  paths:    {}", c.path_prefixes.join(", ")));
                render::line(&format!("  hosts:    {}", c.hosts.join(", ")));
                render::line(&format!("  auth:     {}", d.auth));
                if !d.secrets_needed.is_empty() {
                    render::line(&format!("  secrets:  {}", d.secrets_needed.join(", ")));
                }
                let creds = if d.credentials.is_empty() { "none".to_owned() } else { d.credentials.join(", ") };
                render::line(&format!("  credentials: {creds}"));
                for b in &d.bindings {
                    render::line(&format!(
                        "  binding: {} ({})",
                        b.secret_ref,
                        scope_text(b.scope, &b.workspace_id, &b.group_id)
                    ));
                }
                render::line(&format!("  example:  {}", d.example));
            });
        }
        CapabilityCmd::Delete { id } => {
            let c = Vault::open(cfg)?.capability_delete(&id)?;
            out.show(&c, false, || render::line(&format!("Capability deleted: {}", c.id)));
        }
        CapabilityCmd::Bind { capability, secret_ref, scope } => {
            let b = Vault::open(cfg)?.capability_bind(&capability, &secret_ref, scope.scope()?)?;
            out.show(&b, false, || {
                render::line(&format!(
                    "Bound {} to {} at {}",
                    b.capability,
                    b.secret_ref,
                    scope_text(b.scope, &b.workspace_id, &b.group_id)
                ));
            });
        }
        CapabilityCmd::Unbind { capability, scope } => {
            let b = Vault::open(cfg)?.capability_unbind(&capability, scope.scope()?)?;
            out.show(&b, false, || {
                render::line(&format!(
                    "Unbound {} at {}",
                    b.capability,
                    scope_text(b.scope, &b.workspace_id, &b.group_id)
                ));
            });
        }
        CapabilityCmd::Bindings { capability, scope, verbose } => {
            let filter =
                if scope.scope.is_some() || scope.workspace_id.is_some() { Some(scope.scope()?) } else { None };
            let list = Vault::open(cfg)?.capability_bindings(capability.as_deref(), filter.as_ref())?;
            out.show(&list, verbose, || {
                if list.is_empty() {
                    render::line("No bindings.");
                    return;
                }
                let rows: Vec<Vec<String>> = list
                    .iter()
                    .map(|b| {
                        vec![
                            b.capability.clone(),
                            b.secret_ref.clone(),
                            b.secret_name.clone().unwrap_or_else(|| "-".into()),
                            scope_text(b.scope, &b.workspace_id, &b.group_id),
                        ]
                    })
                    .collect();
                render::table(&["CAPABILITY", "SECRET", "NAME", "SCOPE"], &rows);
            });
        }
    }
    Ok(())
}

pub fn invoke(cfg: &Config, out: Out, args: InvokeArgs) -> Result<()> {
    let ctx = Context::new(args.workspace_id.as_deref(), args.group_id.as_deref())?;
    let body = match (&args.body, &args.body_file) {
        (Some(b), _) => b.clone().into_bytes(),
        (None, Some(path)) => {
            std::fs::read(path).map_err(|e| Error::invalid(format!("cannot read body file {}: {e}", path.display())))?
        }
        (None, None) => Vec::new(),
    };
    let mut headers = Vec::new();
    for h in &args.headers {
        let (name, value) =
            h.split_once(':').ok_or_else(|| Error::invalid(format!("--header '{h}' must be \"Name: value\"")))?;
        headers.push((name.trim().to_owned(), value.trim().to_owned()));
    }
    let request = crate::proxy::invoke::InvokeRequest {
        capability: args.capability,
        method: args.method,
        path: args.path,
        headers,
        body,
        ctx,
        dry_run: args.dry_run,
    };
    let net = args.net.resolve()?;
    let response = crate::proxy::invoke::run(cfg, &net, request)?;
    if args.dry_run || out.json {
        out.json(&response.summary);
        return Ok(());
    }
    if args.verbose {
        render::eprint_line(&format!("HTTP {}", response.summary.status.unwrap_or(0)));
        for (k, v) in &response.headers {
            render::eprint_line(&format!("{k}: {v}"));
        }
        render::eprint_line("");
    }
    render::raw(&response.body);
    if response.summary.status.is_some_and(|s| s >= 400) {
        return Err(Error::Upstream {
            code: crate::refusal::ErrorCode::UpstreamStatus,
            message: format!("upstream answered HTTP {}", response.summary.status.unwrap_or(0)),
        });
    }
    Ok(())
}
