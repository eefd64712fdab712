//! `aivault explain`: the decision the proxy would make for one request, without sending it.
//!
//! It runs `Snapshot::select`, the same function the proxy's steps 1–2 call, with a trace: every
//! capability that matched and what became of it, the credential chosen and the scope level it
//! came from, the strategy and the names it would inject into. Never a value: nothing is
//! decrypted.

use serde::Serialize;

use super::Vault;
use super::resolve::Considered;
use crate::error::{Error, Result};
use crate::policy::{normalize_host, split_host_port};
use crate::refusal::ErrorCode;
use crate::scope::Context;

/// What `explain` found.
#[derive(Clone, Debug, Serialize)]
pub struct Explanation {
    pub allowed: bool,
    pub method: String,
    pub host: String,
    pub port: u16,
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    pub context: String,
    /// The capability that would serve the request.
    pub capability: Option<String>,
    pub credential: Option<String>,
    /// `group`, `workspace` or `global`.
    pub level: Option<String>,
    /// The injection strategy (`header`, `aws-sigv4`, ...).
    pub strategy: Option<String>,
    /// Header and query parameter names the strategy writes (never their values).
    pub injects: Vec<String>,
    /// Every capability that allowed the request, most specific first, and its outcome.
    pub considered: Vec<Considered>,
    /// Limits on the agent, capability and credential (their counters live in each running proxy).
    pub limits: Vec<String>,
    /// The refusal code when not allowed.
    pub code: Option<&'static str>,
    pub message: Option<String>,
}

impl Vault {
    /// Explains how the proxy would handle `method url` for `agent` (or `ctx`).
    pub fn explain(&self, agent: Option<&str>, ctx: Context, method: &str, url: &str) -> Result<Explanation> {
        let (https, host, port, path) = parse_url(url)?;
        let (agent, ctx, grants) = match agent {
            Some(name) => {
                let a = self.agent_by_name(name)?;
                (Some(a.name), Context { workspace_id: a.workspace_id, group_id: a.group_id }, a.grants)
            }
            None => (None, ctx, Vec::new()),
        };
        let method = method.to_ascii_uppercase();
        let snapshot = self.snapshot()?;
        let mut considered = Vec::new();
        let mut out = Explanation {
            allowed: false,
            method: method.clone(),
            host: host.clone(),
            port,
            path: path.clone(),
            agent,
            context: ctx.to_string(),
            capability: None,
            credential: None,
            level: None,
            strategy: None,
            injects: Vec::new(),
            considered: Vec::new(),
            limits: Vec::new(),
            code: None,
            message: None,
        };
        let line = super::resolve::RequestLine { host: &host, port, method: &method, path: &path };
        match snapshot.select(&line, &ctx, &grants, Some(&mut considered)) {
            Ok(sel) => {
                let credential = sel.pick.credential_label();
                out.limits = snapshot.limits_for(out.agent.as_deref().unwrap_or(""), &sel.rule.id, &credential);
                out.capability = Some(sel.rule.id.clone());
                out.credential = Some(credential.into_owned());
                out.level = Some(sel.pick.level().to_string());
                if let Some(auth) = snapshot.auth_of(&sel.pick) {
                    out.strategy = Some(auth.kind().to_owned());
                    out.injects = auth
                        .owned_headers()
                        .iter()
                        .map(|h| h.as_str().to_owned())
                        .chain(auth.owned_query().iter().map(|q| format!("?{q}")))
                        .collect();
                }
                if !https && !sel.rule.allow_http {
                    out.code = Some(ErrorCode::CleartextNotAllowed.as_str());
                    out.message = Some(format!("{} serves https only", sel.rule.id));
                } else {
                    out.allowed = true;
                }
            }
            Err(refusal) => {
                out.code = Some(refusal.code.as_str());
                out.message = Some(refusal.message);
            }
        }
        out.considered = considered;
        Ok(out)
    }
}

/// `https://host[:port]/path?query` → (https, host, port, path without query).
fn parse_url(url: &str) -> Result<(bool, String, u16, String)> {
    let uri: http::Uri = url.parse().map_err(|_| Error::invalid(format!("'{url}' is not a URL")))?;
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err(Error::invalid(format!("'{url}' needs an https:// or http:// scheme"))),
    };
    let authority = uri.authority().ok_or_else(|| Error::invalid(format!("'{url}' has no host")))?;
    let (host, port) = split_host_port(authority.as_str())?;
    let host = normalize_host(&host)?;
    let port = port.unwrap_or(if https { 443 } else { 80 });
    Ok((https, host, port, uri.path().to_owned()))
}
