//! `aivault proxy` and `aivault run`.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, ValueEnum};

use super::misc::UpstreamArgs;
use super::render;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::proxy::server::{Proxy, ProxyOptions, Unmatched};
use crate::sandbox::Isolation;
use crate::scope::Context;

#[derive(Copy, Clone, Debug, ValueEnum)]
pub enum UnmatchedArg {
    Deny,
    Tunnel,
}

#[derive(Copy, Clone, Debug, ValueEnum)]
pub enum SandboxArg {
    Auto,
    Require,
    Off,
}

#[derive(Args, Debug, Clone)]
pub struct ProxyArgs {
    /// What to do with hosts no capability names: deny (403) or tunnel (splice without interception).
    #[arg(long, value_enum, default_value_t = UnmatchedArg::Deny)]
    pub unmatched: UnmatchedArg,
    #[command(flatten)]
    pub upstream: UpstreamArgs,
    /// Largest request head accepted from agents, in bytes.
    #[arg(long, default_value_t = 64 * 1024)]
    pub max_header_bytes: usize,
    /// Seconds an agent connection may sit idle (and the longest wait for a request head).
    #[arg(long, default_value_t = 120)]
    pub idle_timeout: u64,
    /// Seconds a spliced tunnel (--unmatched tunnel) or WebSocket may carry no bytes before it is closed.
    #[arg(long, default_value_t = 600)]
    pub tunnel_idle_timeout: u64,
    /// Seconds to connect (TCP and TLS) to an upstream.
    #[arg(long, default_value_t = 10)]
    pub connect_timeout: u64,
    /// Seconds to wait for the first response byte from an upstream.
    #[arg(long, default_value_t = 300)]
    pub response_timeout: u64,
    /// Most agent connections served at once, tunnels and WebSockets included (more wait to be accepted).
    #[arg(long, default_value_t = 4096)]
    pub max_connections: usize,
    /// Most connections that have not yet authenticated (the oldest is closed to make room).
    #[arg(long, default_value_t = 1024)]
    pub max_pending_connections: usize,
    /// Most connections one agent may hold open (429 too_many_connections beyond it).
    #[arg(long, default_value_t = 1024)]
    pub max_agent_connections: usize,
    /// Seconds a new connection may take to send its first authenticated request.
    #[arg(long, default_value_t = 10)]
    pub auth_timeout: u64,
    /// Largest request body buffered to hash it for an AWS SigV4 signature (413 past it).
    #[arg(long, default_value_t = 64 * 1024 * 1024)]
    pub sigv4_max_body_bytes: usize,
    /// Seconds a request held for approval waits for a decision (then 403 approval_denied).
    #[arg(long, default_value_t = 120)]
    pub approval_timeout: u64,
}

impl ProxyArgs {
    pub fn options(&self, listen: SocketAddr) -> Result<ProxyOptions> {
        let mut upstream = self.upstream.resolve()?;
        upstream.connect_timeout = Duration::from_secs(self.connect_timeout.max(1));
        upstream.response_timeout = Duration::from_secs(self.response_timeout.max(1));
        let mut opts = ProxyOptions::new(listen, upstream);
        opts.unmatched = match self.unmatched {
            UnmatchedArg::Deny => Unmatched::Deny,
            UnmatchedArg::Tunnel => Unmatched::Tunnel,
        };
        opts.max_header_bytes = self.max_header_bytes;
        opts.idle_timeout = Duration::from_secs(self.idle_timeout.max(1));
        opts.tunnel_idle_timeout = Duration::from_secs(self.tunnel_idle_timeout.max(1));
        opts.max_connections = self.max_connections.max(1);
        opts.max_pending_connections = self.max_pending_connections.max(1);
        opts.max_agent_connections = self.max_agent_connections.max(1);
        opts.auth_timeout = Duration::from_secs(self.auth_timeout.max(1));
        opts.limits.sigv4_max_body = self.sigv4_max_body_bytes;
        opts.limits.approval_timeout = Duration::from_secs(self.approval_timeout.max(1));
        Ok(opts)
    }
}

/// `aivault proxy`
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on (use 127.0.0.1:0 for a free port).
    #[arg(long, default_value = "127.0.0.1:8787")]
    pub listen: SocketAddr,
    /// Where the approval console listens (default $AIVAULT_CONSOLE_LISTEN, else 127.0.0.1:8788;
    /// `off` disables it; a non-loopback address is served only when named here).
    #[arg(long, value_name = "ADDR:PORT|off")]
    pub console_listen: Option<String>,
    #[command(flatten)]
    pub proxy: ProxyArgs,
    #[command(flatten)]
    pub log: LogArgs,
}

/// `aivault console`
#[derive(Args, Debug)]
pub struct ConsoleArgs {
    /// Address to listen on (default $AIVAULT_CONSOLE_LISTEN, else 127.0.0.1:8788; a non-loopback
    /// address is served only when named here).
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Option<SocketAddr>,
    #[command(flatten)]
    pub upstream: UpstreamArgs,
    #[command(flatten)]
    pub log: LogArgs,
}

/// The console's default address.
const CONSOLE_DEFAULT: &str = "127.0.0.1:8788";

fn console_bind(arg: Option<&str>) -> Result<Option<crate::console::Bind>> {
    match arg {
        Some("off") => Ok(None),
        Some(a) => {
            let addr =
                a.parse().map_err(|_| Error::invalid(format!("--console-listen '{a}' must be ADDR:PORT or off")))?;
            Ok(Some(crate::console::Bind { addr, explicit: true }))
        }
        // From the environment or the default: never a non-loopback address (Console::bind checks).
        None => {
            let text = std::env::var("AIVAULT_CONSOLE_LISTEN").unwrap_or_else(|_| CONSOLE_DEFAULT.to_owned());
            if text == "off" {
                return Ok(None);
            }
            let addr = text
                .parse()
                .map_err(|_| Error::invalid(format!("AIVAULT_CONSOLE_LISTEN '{text}' must be ADDR:PORT or off")))?;
            Ok(Some(crate::console::Bind { addr, explicit: false }))
        }
    }
}

/// `aivault console`: the approval pages alone, without a proxy.
pub fn console(cfg: &Config, args: ConsoleArgs) -> Result<()> {
    init_logging(&args.log);
    let bind = match args.listen {
        Some(addr) => crate::console::Bind { addr, explicit: true },
        None => console_bind(None)?.ok_or_else(|| Error::invalid("AIVAULT_CONSOLE_LISTEN is off: nothing to serve"))?,
    };
    let upstream = crate::proxy::upstream::Upstream::new(args.upstream.resolve()?)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(Error::io("cannot start the async runtime"))?;
    crate::service::Vault::open(cfg)?;
    runtime.block_on(async {
        let console = crate::console::Console::bind(cfg, bind, upstream).await?;
        render::line(&format!("aivault console on {}", console.url()));
        console.run(shutdown_signal()).await;
        Ok(())
    })
}

/// Whose session `run` and `env` mint.
#[derive(Args, Debug)]
pub struct SessionArgs {
    /// As this agent (its workspace, group and grants).
    #[arg(long, conflicts_with_all = ["workspace_id", "group_id"])]
    pub agent: Option<String>,
    /// As a session agent in this workspace (instead of --agent).
    #[arg(long)]
    pub workspace_id: Option<String>,
    /// As a session agent in this group (needs --workspace-id).
    #[arg(long)]
    pub group_id: Option<String>,
}

impl SessionArgs {
    /// The agent named, and the context given instead of one.
    pub fn resolve(&self) -> Result<(Option<String>, Context)> {
        Ok((self.agent.clone(), Context::new(self.workspace_id.as_deref(), self.group_id.as_deref())?))
    }
}

/// `aivault run`
#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub who: SessionArgs,
    /// Keep the command away from the vault's files and processes: auto (Linux namespaces where
    /// the kernel allows them, else a warning), require (refuse to start without them), off.
    #[arg(long, value_enum, default_value_t = SandboxArg::Auto)]
    pub sandbox: SandboxArg,
    /// Give the command a network namespace of its own whose only way out is the proxy: a
    /// process that ignores HTTPS_PROXY (Node 20's fetch, a raw socket) gets no network instead of
    /// a way around the vault. Needs unprivileged user namespaces (exit 126 where there are none).
    #[arg(long)]
    pub isolate: bool,
    #[command(flatten)]
    pub proxy: ProxyArgs,
    #[command(flatten)]
    pub log: LogArgs,
    /// The command and its arguments.
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

pub fn serve(cfg: &Config, out: render::Out, args: ServeArgs) -> Result<()> {
    // --json: the ready document on stdout, then one JSON line per event on stderr.
    let log = if out.json { LogArgs { log_format: LogFormat::Json } } else { args.log.clone() };
    init_logging(&log);
    let opts = args.proxy.options(args.listen)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(Error::io("cannot start the async runtime"))?;
    let console_at = console_bind(args.console_listen.as_deref())?;
    runtime.block_on(async {
        let proxy = Proxy::bind(cfg, opts).await?;
        let addr = proxy.local_addr()?;
        let (stop_console, console_stopped) = tokio::sync::watch::channel(false);
        let mut console_task = None;
        if let Some(bind) = console_at {
            match crate::console::Console::bind(cfg, bind, proxy.state().shared.upstream.clone()).await {
                Ok(console) => {
                    let _ = proxy.state().console.set(console.url().to_owned());
                    // Weak: the console must not keep the proxy's state (and its audit writer) alive.
                    let state = std::sync::Arc::downgrade(&proxy.state());
                    console.serve_metrics(std::sync::Arc::new(move || {
                        state.upgrade().map(|s| s.metrics_text()).unwrap_or_default()
                    }));
                    if !out.json {
                        render::line(&format!("aivault console on {}", console.url()));
                    }
                    let mut stopped = console_stopped.clone();
                    console_task = Some(tokio::spawn(console.run(async move {
                        let _ = stopped.wait_for(|s| *s).await;
                    })));
                }
                // The default address may be taken (another proxy's console): carry on without it.
                Err(e) if !bind.explicit => render::eprint_line(&format!("warning: console not started: {e}")),
                Err(e) => return Err(e),
            }
        }
        let file = crate::run::proxy_file(&cfg.home);
        let doc = serde_json::json!({
            "listen": addr.to_string(),
            "pid": std::process::id(),
            "policy": proxy.state().opts.policy_fingerprint(),
        });
        let _ = std::fs::write(&file, doc.to_string());
        if out.json {
            // One JSON document on one line, printed once the proxy accepts connections.
            let ready = serde_json::json!({
                "listening": addr.to_string(),
                "console": proxy.state().console.get(),
                "pid": std::process::id(),
            });
            render::line(&ready.to_string());
        } else {
            render::line(&format!("aivault proxy listening on {addr}"));
        }
        let result = proxy.run(shutdown_signal()).await;
        let _ = stop_console.send(true);
        if let Some(task) = console_task {
            let _ = task.await;
        }
        if std::fs::read_to_string(&file).ok().is_some_and(|t| t.contains(&format!("\"pid\":{}", std::process::id()))) {
            let _ = std::fs::remove_file(&file);
        }
        result
    })
}

pub fn run(cfg: &Config, args: RunArgs) -> Result<()> {
    init_logging(&args.log);
    let (agent, ctx) = args.who.resolve()?;
    let (program, rest) =
        args.command.split_first().ok_or_else(|| Error::invalid("nothing to run: aivault run -- CMD [ARGS...]"))?;
    let req = crate::run::RunRequest {
        agent,
        ctx,
        program: program.clone(),
        args: rest.to_vec(),
        proxy: args.proxy.options(SocketAddr::from(([127, 0, 0, 1], 0)))?,
        isolation: match args.sandbox {
            SandboxArg::Auto => Isolation::Auto,
            SandboxArg::Require => Isolation::Require,
            SandboxArg::Off => Isolation::Off,
        },
        isolate: args.isolate,
        warn: render::eprint_line,
    };
    if args.isolate && matches!(args.sandbox, SandboxArg::Off) {
        return Err(Error::invalid("--isolate needs the sandbox: drop --sandbox off"));
    }
    let code = crate::run::run(cfg, req)?;
    std::process::exit(code);
}

async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}

/// `--log-format`: how the proxy's log lines on stderr look.
#[derive(Args, Debug, Clone)]
pub struct LogArgs {
    /// Log lines on stderr as text, or as one JSON object per line (timestamp, level, target,
    /// fields, message) for a log pipeline. Levels come from AIVAULT_LOG (default warn; info adds
    /// one line per proposal and lifecycle event, debug per connection).
    #[arg(long, value_enum, default_value_t = LogFormat::Text, env = "AIVAULT_LOG_FORMAT")]
    pub log_format: LogFormat,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

fn init_logging(log: &LogArgs) {
    let filter = tracing_subscriber::EnvFilter::new(crate::config::log_filter());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match log.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
