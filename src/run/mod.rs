//! `aivault run -- CMD`: start CMD with the proxy and CA wired in, and exit with its status.
//!
//! A session token is minted for the child (the agent's context, or the one given), a running
//! `aivault proxy` is used if there is one, otherwise an embedded proxy serves for the child's
//! lifetime. The session is deleted when the child exits. What the child may not see (the vault's
//! variables, files and processes) is `sandbox`'s business.

pub mod env;

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::proxy::server::{Proxy, ProxyOptions};
use crate::sandbox::{self, Isolation, Plan};
use crate::scope::Context;
use crate::secret::SecretString;
use crate::service::Vault;

/// Variables that point clients at the CA bundle.
pub const CA_VARS: &[&str] = &[
    "SSL_CERT_FILE",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "NODE_EXTRA_CA_CERTS",
    "GIT_SSL_CAINFO",
    "AWS_CA_BUNDLE",
    "PIP_CERT",
    "DENO_CERT",
    "CARGO_HTTP_CAINFO",
];

/// What `aivault run` was asked to do.
pub struct RunRequest {
    pub agent: Option<String>,
    pub ctx: Context,
    pub program: String,
    pub args: Vec<String>,
    /// Options for an embedded proxy, if one has to be started.
    pub proxy: ProxyOptions,
    /// How far the child is kept from the vault (see `sandbox`).
    pub isolation: Isolation,
    /// `--isolate`: the child's only network is the proxy (see `sandbox::net`).
    pub isolate: bool,
    /// Prints one warning line for the operator (the CLI's renderer).
    pub warn: fn(&str),
}

/// The child's proxy and trust variables, upper and lower case where both exist.
pub fn child_env(proxy: SocketAddr, token: &SecretString, bundle: &Path) -> Vec<(String, String)> {
    let url = format!("http://agent:{}@{proxy}", token.expose());
    let no_proxy = "localhost,127.0.0.1,::1".to_owned();
    let mut env = Vec::new();
    for name in ["HTTPS_PROXY", "HTTP_PROXY"] {
        env.push((name.to_owned(), url.clone()));
        env.push((name.to_ascii_lowercase(), url.clone()));
    }
    env.push(("NO_PROXY".into(), no_proxy.clone()));
    env.push(("no_proxy".into(), no_proxy));
    env.push(("NODE_USE_ENV_PROXY".into(), "1".into()));
    for name in CA_VARS {
        env.push(((*name).to_owned(), bundle.display().to_string()));
    }
    env
}

/// A session agent minted for `run` or `env`, with what its environment needs.
struct Session {
    id: String,
    token: SecretString,
    bundle: PathBuf,
    /// Key variables of the registry providers the agent can use (set to the placeholder).
    usable: Vec<String>,
    /// Every registry key variable (real values of these must not reach the agent).
    all: Vec<String>,
}

impl Session {
    /// Mints a session for `agent` (its context and grants), or for `ctx` named `name`, and waits
    /// until running proxies serve it: asking one earlier would be refused (and audited as a 407)
    /// while it reloads.
    fn start(cfg: &Config, agent: Option<&str>, ctx: &Context, name: &str) -> Result<Session> {
        let vault = Vault::open(cfg)?;
        let (name, ctx, grants) = match agent {
            Some(n) => {
                let a = vault.agent_by_name(n)?;
                (a.name, Context { workspace_id: a.workspace_id, group_id: a.group_id }, a.grants)
            }
            None => (name.to_owned(), ctx.clone(), Vec::new()),
        };
        vault.ca_material()?;
        let bundle = vault.ca_bundle_path();
        let (usable, all) = vault.placeholder_vars(&ctx, &grants)?;
        let created = vault.agent_create(&name, ctx, true, &grants)?;
        let generation = vault.generation()?;
        drop(vault);
        crate::service::proxies::wait_for(&cfg.home, generation, Duration::from_secs(3));
        Ok(Session { id: created.info.id, token: created.token, bundle, usable, all })
    }

    /// The child's variables for a proxy at `proxy`: `child_env` plus the placeholders.
    fn env(&self, proxy: SocketAddr) -> Vec<(String, String)> {
        let mut env = child_env(proxy, &self.token, &self.bundle);
        env.extend(self.usable.iter().map(|n| (n.clone(), PLACEHOLDER.to_owned())));
        env
    }

    /// Registry key variables holding a real value in this process's environment.
    fn inherited_keys(&self) -> Vec<String> {
        self.all.iter().filter(|n| std::env::var_os(n).is_some_and(|v| v != PLACEHOLDER)).cloned().collect()
    }
}

/// Runs the child and returns the exit code to use.
pub fn run(cfg: &Config, req: RunRequest) -> Result<i32> {
    let session = Session::start(cfg, req.agent.as_deref(), &req.ctx, "run")?;
    let outcome = run_child(cfg, &req, &session);
    if let Ok(v) = Vault::open(cfg) {
        let _ = v.agent_session_end(&session.id);
    }
    outcome
}

/// The value every placeholder variable gets (the proxy replaces what the agent sends).
pub const PLACEHOLDER: &str = "aivault-placeholder";

fn run_child(cfg: &Config, req: &RunRequest, session: &Session) -> Result<i32> {
    let token = &session.token;
    let wanted: BTreeMap<String, String> =
        req.proxy.policy_fingerprint().into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    let (addr, embedded) = match running_proxy(&cfg.home, token) {
        Some((addr, theirs)) if theirs == wanted => (addr, None),
        found => {
            if let Some((running, theirs)) = found {
                // Never run the command under another policy than the one asked for.
                let differ: Vec<&str> =
                    wanted.iter().filter(|(k, v)| theirs.get(*k) != Some(*v)).map(|(k, _)| k.as_str()).collect();
                (req.warn)(&format!(
                    "aivault: starting a private proxy for this command: its {} differ from the proxy at {running}",
                    differ.join(", ")
                ));
            }
            let e = Embedded::start(cfg, req.proxy.clone())?;
            (e.addr, Some(e))
        }
    };
    let mut plan = Plan::hiding(&cfg.home, req.isolation);
    // --isolate: inside its namespace the child reaches the proxy at 127.0.0.1:<port>, relayed
    // through a Unix socket to the real proxy (the bridge lives as long as this function).
    let bridge = if req.isolate {
        let b = sandbox::net::Bridge::start(addr).map_err(Error::io("cannot start the --isolate bridge"))?;
        plan.network = Some(sandbox::net::NetPlan { port: addr.port(), socket: b.socket().to_owned() });
        Some(b)
    } else {
        None
    };
    let child_addr = if req.isolate { SocketAddr::from(([127, 0, 0, 1], addr.port())) } else { addr };
    let env = session.env(child_addr);
    // Real keys already exported in the operator's shell must not flow into the agent.
    let inherited = session.inherited_keys();
    if !inherited.is_empty() {
        (req.warn)(&format!(
            "aivault: removed {} from the agent's environment (the proxy injects the vault's value)",
            inherited.join(", ")
        ));
    }
    let mut cmd = sandbox::command(&plan, &req.program, &req.args, &env);
    for name in &inherited {
        if !session.usable.contains(name) {
            cmd.env_remove(name);
        }
    }
    let mut child = cmd.spawn().map_err(|e| Error::invalid(format!("cannot start {}: {e}", req.program)))?;
    let status = child.wait().map_err(Error::io(format!("waiting for {} failed", req.program)))?;
    // What the proxy refused this session, said where the user is looking.
    if let Some(tally) = session_refusals(addr, token) {
        for line in crate::proxy::session_tally::summary_lines(&tally) {
            (req.warn)(&line);
        }
    }
    drop(bridge);
    if let Some(e) = embedded {
        e.stop();
    }
    Ok(sandbox::exit_code(status))
}

/// Where a foreground `aivault proxy` advertises itself.
pub fn proxy_file(home: &Path) -> PathBuf {
    home.join("proxy.json")
}

/// A running proxy that already accepts `token`, if there is one: its address and the policy
/// settings it runs with.
fn running_proxy(home: &Path, token: &SecretString) -> Option<(SocketAddr, BTreeMap<String, String>)> {
    let text = std::fs::read_to_string(proxy_file(home)).ok()?;
    let doc: serde_json::Value = serde_json::from_str(&text).ok()?;
    let addr: SocketAddr = doc.get("listen")?.as_str()?.parse().ok()?;
    let policy: BTreeMap<String, String> = serde_json::from_value(doc.get("policy")?.clone()).ok()?;
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        match ping(addr, token) {
            Some(200) => return Some((addr, policy)),
            Some(407) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            _ => return None,
        }
    }
}

fn ping(addr: SocketAddr, token: &SecretString) -> Option<u16> {
    internal_get(addr, token, "/ping").map(|(status, _)| status)
}

/// What the proxy at `addr` refused the session holding `token`.
fn session_refusals(addr: SocketAddr, token: &SecretString) -> Option<crate::proxy::session_tally::SessionRefusals> {
    match internal_get(addr, token, "/session")? {
        (200, body) => serde_json::from_slice(&body).ok(),
        _ => None,
    }
}

/// `GET http://aivault.internal{path}` through the proxy with `token`: status and body (≤ 64 KiB).
fn internal_get(addr: SocketAddr, token: &SecretString, path: &str) -> Option<(u16, Vec<u8>)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    let req = format!(
        "GET http://{}{path} HTTP/1.1\r\nHost: {0}\r\nProxy-Authorization: Bearer {}\r\nConnection: close\r\n\r\n",
        crate::proxy::outer::INTERNAL_HOST,
        token.expose()
    );
    s.write_all(req.as_bytes()).ok()?;
    let mut buf = Vec::new();
    let _ = s.take(64 * 1024).read_to_end(&mut buf);
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&buf[..end]).ok()?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, buf[end + 4..].to_vec()))
}

/// A proxy running on a background thread for the child's lifetime.
struct Embedded {
    addr: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl Embedded {
    fn start(cfg: &Config, mut opts: ProxyOptions) -> Result<Embedded> {
        opts.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(Error::io("cannot start the async runtime"))?;
        let proxy = runtime.block_on(Proxy::bind(cfg, opts))?;
        let addr = proxy.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            runtime.block_on(async move {
                // The terminal's Ctrl-C reaches the child; this process waits for the child instead of dying.
                let ignore_interrupts = async {
                    loop {
                        if tokio::signal::ctrl_c().await.is_err() {
                            break;
                        }
                    }
                };
                tokio::select! {
                    r = proxy.run(async { let _ = stopped.await; }) => { if let Err(e) = r { tracing::error!(error = %e, "embedded proxy failed"); } }
                    () = ignore_interrupts => {}
                }
            });
        });
        Ok(Embedded { addr, stop, thread })
    }

    fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.thread.join();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn child_env_sets_every_contract_variable_once() {
        let env = child_env("127.0.0.1:8787".parse().unwrap(), &SecretString::new("avt_x".into()), Path::new("/b.pem"));
        let get = |k: &str| env.iter().filter(|(n, _)| n == k).map(|(_, v)| v.as_str()).collect::<Vec<_>>();
        for k in ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"] {
            assert_eq!(get(k), vec!["http://agent:avt_x@127.0.0.1:8787"], "{k}");
        }
        assert_eq!(get("NO_PROXY"), vec!["localhost,127.0.0.1,::1"]);
        assert_eq!(get("NODE_USE_ENV_PROXY"), vec!["1"]);
        for k in CA_VARS {
            assert_eq!(get(k), vec!["/b.pem"], "{k}");
        }
    }
}
