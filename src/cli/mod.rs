//! The command line: parse, call the service layer, render. No business logic lives here.

mod agent;
mod approval;
mod capability;
mod credential;
mod env;
mod limit;
mod misc;
mod oauth;
mod proposal;
mod proxy;
pub mod render;
mod secrets;
mod store;

use std::io::Read as _;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::secret::SecretBytes;
use crate::service::Vault;
use render::Out;

/// aivault: keep API keys out of your agents. Secrets stay encrypted in a local vault; a proxy
/// injects them only into requests a capability allows.
#[derive(Parser, Debug)]
#[command(name = "aivault", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// Data directory (default: $AIVAULT_HOME, else $XDG_DATA_HOME/aivault, else ~/.local/share/aivault).
    #[arg(long, global = true, value_name = "DIR")]
    pub home: Option<PathBuf>,
    /// Print one JSON document on stdout instead of human output.
    #[arg(long, global = true)]
    pub json: bool,
    /// Where the state lives: a PostgreSQL URL (fleet mode) or a redb file (default:
    /// $AIVAULT_STORE_URL, else <home>/vault.redb).
    #[arg(long, global = true, value_name = "URL")]
    pub store: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

// Parsed once per process; boxing the large variant would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create the data directory, master key and store (any command does this on first use).
    Init,
    /// Show where the vault lives and what it holds.
    Status,
    /// Manage encrypted secrets.
    #[command(subcommand)]
    Secrets(secrets::SecretsCmd),
    /// Manage credentials: a provider, an auth strategy, hosts and a secret.
    #[command(subcommand, alias = "credentials")]
    Credential(credential::CredentialCmd),
    /// Manage capabilities: which hosts, methods and paths a provider's credential may serve.
    #[command(subcommand, alias = "capabilities")]
    Capability(capability::CapabilityCmd),
    /// Check a capability call against policy and scope resolution (and, with the request
    /// pipeline, perform it).
    Invoke(capability::InvokeArgs),
    /// Run the intercepting proxy in the foreground.
    Proxy(proxy::ServeArgs),
    /// Run a command with the proxy and CA wired in; exits with the command's status.
    ///
    /// A running `aivault proxy` for this vault serves the command when it runs with the same
    /// --unmatched, --resolve, --upstream-ca and --sigv4-max-body-bytes; otherwise (or when none
    /// runs) a private proxy with the flags given serves it for the command's lifetime, and `run`
    /// says which flags differ. The other proxy flags (limits, timeouts) apply only to a private
    /// proxy. When the command exits, refused requests are summarised on stderr.
    Run(proxy::RunArgs),
    /// Print the variables `run` sets (proxy, CA bundle, placeholders) for a shell:
    /// eval "$(aivault env --agent NAME)". Mints a session agent that lives until revoked.
    Env(env::EnvArgs),
    /// Manage agent identities (proxy tokens).
    #[command(subcommand, alias = "agents")]
    Agent(agent::AgentCmd),
    /// The local certificate authority agents trust.
    #[command(subcommand)]
    Ca(agent::CaCmd),
    /// Obtain or import OAuth2 tokens for a credential.
    #[command(subcommand)]
    Oauth(oauth::OAuthCmd),
    /// Re-wrap every data key under a new master key, atomically.
    RotateMaster(misc::RotateMasterArgs),
    /// Show the audit log, newest first.
    Audit(misc::AuditArgs),
    /// Decide on requests held by capabilities that require approval.
    #[command(subcommand, alias = "approvals")]
    Approval(approval::ApprovalCmd),
    /// Rate limits and request budgets on capabilities, credentials and agents.
    #[command(subcommand, alias = "limits")]
    Limit(limit::LimitCmd),
    /// What agents asked for (credential slots, capabilities) and the decision on it.
    #[command(subcommand, alias = "proposals")]
    Proposal(proposal::ProposalCmd),
    /// Serve the approval console alone (no proxy), for a person who only approves.
    Console(proxy::ConsoleArgs),
    /// The store itself: copy a vault between redb and PostgreSQL.
    #[command(subcommand)]
    Store(store::StoreCmd),
    /// Show the decision the proxy would make for a request, without sending it (never a value).
    Explain(misc::ExplainArgs),
    /// Print shell completions.
    Completions(misc::CompletionsArgs),
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    let out = Out { json: cli.json };
    let cfg = Config::resolve(cli.home.as_deref(), cli.store.as_deref())?;
    match cli.command {
        Command::Completions(args) => {
            misc::completions(&args);
            Ok(())
        }
        Command::Init => {
            let vault = Vault::open(&cfg)?;
            let status = vault.status()?;
            out.show(&status, false, || {
                render::line(&format!("Vault ready at {} (master key {})", status.home, status.key_id))
            });
            Ok(())
        }
        Command::Status => misc::status(&cfg, out),
        Command::Secrets(cmd) => secrets::run(&cfg, out, cmd),
        Command::Credential(cmd) => credential::run(&cfg, out, cmd),
        Command::Capability(cmd) => capability::run(&cfg, out, cmd),
        Command::Invoke(args) => capability::invoke(&cfg, out, args),
        Command::Proxy(args) => proxy::serve(&cfg, out, args),
        Command::Run(args) => proxy::run(&cfg, args),
        Command::Env(args) => env::run(&cfg, out, args),
        Command::Agent(cmd) => agent::run_agent(&cfg, out, cmd),
        Command::Ca(cmd) => agent::run_ca(&cfg, out, cmd),
        Command::Oauth(cmd) => oauth::run(&cfg, out, cmd),
        Command::RotateMaster(args) => misc::rotate_master(&cfg, out, &args),
        Command::Audit(args) => misc::audit(&cfg, out, &args),
        Command::Explain(args) => misc::explain(&cfg, out, &args),
        Command::Limit(cmd) => limit::run(&cfg, out, cmd),
        Command::Approval(cmd) => approval::run(&cfg, out, cmd),
        Command::Proposal(cmd) => proposal::run(&cfg, out, cmd),
        Command::Store(cmd) => store::run(&cfg, out, cmd),
        Command::Console(args) => proxy::console(&cfg, args),
    }
}

/// The default `--max-value-bytes`: 1 MiB.
pub const MAX_VALUE_BYTES: usize = 1024 * 1024;

/// Where a secret value comes from: `--value V`, `--value -` (stdin) or `--value-file PATH`.
/// At most `max` bytes are read (`--value-file /dev/zero` ends with an error, not forever).
pub(crate) fn read_value(value: Option<String>, file: Option<PathBuf>, max: usize) -> Result<SecretBytes> {
    let too_large = || {
        Error::invalid(format!("the value is larger than {max} bytes; pass --max-value-bytes N to accept a larger one"))
    };
    // Read into a buffer that never reallocates, so no stray copy of the value is left behind.
    let read_bounded = |mut r: Box<dyn std::io::Read>, what: &str| -> Result<SecretBytes> {
        let mut buf = SecretBytes::new(Vec::with_capacity(max.saturating_add(1).min(64 * 1024 * 1024)));
        let n = std::io::Read::by_ref(&mut r)
            .take(max as u64 + 1)
            .read_to_end(buf.as_mut_vec())
            .map_err(|e| Error::invalid(format!("cannot read {what}: {e}")))?;
        if n > max {
            return Err(too_large());
        }
        buf.trim_trailing_newlines();
        Ok(buf)
    };
    match (value, file) {
        (Some(_), Some(_)) => Err(Error::invalid("pass either --value or --value-file, not both")),
        (Some(v), None) if v == "-" => read_bounded(Box::new(std::io::stdin()), "stdin"),
        (Some(v), None) if v.len() > max => Err(too_large()),
        (Some(v), None) => Ok(SecretBytes::new(v.into_bytes())),
        (None, Some(path)) => {
            let f = std::fs::File::open(&path)
                .map_err(|e| Error::invalid(format!("cannot read value file {}: {e}", path.display())))?;
            read_bounded(Box::new(f), &format!("value file {}", path.display()))
        }
        (None, None) => Err(Error::invalid("pass --value VALUE, --value - (stdin) or --value-file PATH")),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    /// Every flag and argument of every command says what it is for (`--help` is the manual).
    #[test]
    fn every_argument_has_help_text() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if matches!(id, "help" | "version") {
                    continue;
                }
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in cmd.get_subcommands() {
                if sub.get_about().is_none() && sub.get_long_about().is_none() {
                    missing.push(format!("{path} {} (the command itself)", sub.get_name()));
                }
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&super::Cli::command(), "aivault", &mut missing);
        assert!(missing.is_empty(), "{} without help:\n{}", missing.len(), missing.join("\n"));
    }
}
