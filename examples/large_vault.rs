//! Fills a vault through the service layer, for measuring how aivault grows with its vault:
//!
//! ```text
//! cargo run --release --example large_vault -- HOME SECRETS HOSTS CAPABILITIES AGENTS VALUE
//! ```
//!
//! `SECRETS` secrets hold `VALUE` (imported in batches of 10,000, one transaction each); the first
//! `HOSTS` of them back one credential each (header strategy, host `hNNNN.bench.test`); every host
//! gets `CAPABILITIES / HOSTS` capabilities (GET, `/small` for the first, `/vK/` for the others);
//! `AGENTS` agents are created in one transaction. Prints one JSON line: the token of the first
//! agent and how long each phase took. The benchmark harness (`benches/harness/run.py`, W9) builds
//! a 10-secret and a 100,000-secret vault with it and measures both proxies side by side.

use std::time::Instant;

use aivault::config::Config;
use aivault::scope::{Context, Scope};
use aivault::secret::SecretBytes;
use aivault::service::{CapabilitySpec, CredentialSpec, Vault};

fn main() {
    if let Err(e) = fill() {
        eprintln!("large_vault: {e}");
        std::process::exit(1);
    }
}

fn arg(args: &[String], i: usize, what: &str) -> Result<usize, String> {
    args.get(i).and_then(|a| a.parse().ok()).ok_or_else(|| format!("argument {i} ({what}) must be a number"))
}

fn fill() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: large_vault HOME SECRETS HOSTS CAPABILITIES AGENTS VALUE";
    let home = args.get(1).ok_or(usage)?;
    let (secrets, hosts, capabilities, agents) = (
        arg(&args, 2, "SECRETS")?,
        arg(&args, 3, "HOSTS")?.max(1),
        arg(&args, 4, "CAPABILITIES")?,
        arg(&args, 5, "AGENTS")?.max(1),
    );
    let value = args.get(6).ok_or(usage)?;
    if hosts > secrets {
        return Err("HOSTS must not exceed SECRETS: each host's credential uses its own secret".into());
    }
    let cfg = Config::for_home(std::path::Path::new(home));
    let vault = Vault::open(&cfg)?;
    let mut phases = serde_json::Map::new();
    let mut phase = |name: &str, t: Instant| {
        phases.insert(format!("{name}_s"), serde_json::json!(t.elapsed().as_secs_f64()));
    };

    let t = Instant::now();
    let mut ids = Vec::with_capacity(hosts);
    for start in (0..secrets).step_by(10_000) {
        let batch: Vec<(String, SecretBytes)> = (start..secrets.min(start + 10_000))
            .map(|i| (format!("LARGE_{i:06}"), SecretBytes::from_str_copy(value)))
            .collect();
        let summary = vault.secrets_import(batch, Scope::Global)?;
        ids.extend(summary.entries.iter().take(hosts.saturating_sub(ids.len())).map(|e| e.secret.id.clone()));
    }
    phase("secrets", t);

    let t = Instant::now();
    for (h, secret) in ids.iter().enumerate() {
        vault.credential_create(&CredentialSpec {
            id: format!("large-{h:04}"),
            provider: format!("large-{h:04}"),
            secret_ref: secret.clone(),
            auth: Some("header".to_owned()),
            hosts: vec![format!("h{h:04}.bench.test")],
            ..CredentialSpec::default()
        })?;
    }
    phase("credentials", t);

    let t = Instant::now();
    let per_host = capabilities.div_ceil(hosts);
    for c in 0..capabilities {
        let (h, k) = (c / per_host, c % per_host);
        if h >= hosts {
            break;
        }
        vault.capability_create(&CapabilitySpec {
            id: format!("large-{h:04}/c{k}"),
            provider: None,
            credential: Some(format!("large-{h:04}")),
            methods: vec!["GET".to_owned()],
            paths: vec![if k == 0 { "/small".to_owned() } else { format!("/v{k}/") }],
            hosts: vec![],
            allow_http: false,
            approval: false,
        })?;
    }
    phase("capabilities", t);

    let t = Instant::now();
    let names: Vec<String> = (0..agents).map(|a| format!("large-agent-{a:05}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let created = vault.agents_create(&refs, Context::default(), false, &[])?;
    phase("agents", t);

    let token = created.first().map(|a| a.token.expose().to_owned()).unwrap_or_default();
    let out = serde_json::json!({"token": token, "phases": phases, "secrets": secrets, "hosts": hosts,
                                 "capabilities": capabilities, "agents": agents});
    println!("{out}");
    Ok(())
}
