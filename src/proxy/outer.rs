//! The agent-facing HTTP/1.1 side of the proxy: CONNECT, absolute-form `http://` and `https://`
//! requests, proxy authentication and the decision to intercept, tunnel or refuse.

use std::sync::Arc;

use http::{Method, Request, Response};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;

use super::conn::Slot;
use super::pipeline::{self, Caller, Destination};
use super::respond;
use super::state::{Agent, ProxyState, Unmatched};
use super::upstream::Body;
use super::{agent_auth, mitm, tunnel};
use crate::audit::AuditEvent;
use crate::crypto;
use crate::policy::{normalize_host, split_host_port};
use crate::refusal::{ErrorCode, Refusal};

/// Host name used by `aivault run` to check that a running proxy knows its session token.
pub const INTERNAL_HOST: &str = "aivault.internal";

pub async fn handle(
    state: Arc<ProxyState>,
    slot: Arc<Slot>,
    req: Request<Incoming>,
) -> Result<Response<Body>, std::convert::Infallible> {
    let resp = if req.method() == Method::CONNECT {
        connect(state, slot, req).await
    } else if req.uri().scheme().is_some() && req.uri().authority().is_some() {
        absolute_form(state, &slot, req).await
    } else {
        respond::error(
            ErrorCode::BadRequest,
            "this is a forward proxy: set HTTPS_PROXY=http://agent:<token>@<this address> (or use `aivault run`)",
        )
    };
    Ok(resp)
}

/// Authenticates the request and admits its connection into the agent's budget.
fn admit(state: &ProxyState, slot: &Slot, headers: &http::HeaderMap) -> Result<Agent, Refusal> {
    let agent = authenticate(state, headers)?;
    slot.admit(&agent.token_hash)?;
    Ok(agent)
}

/// Checks the agent token against the current snapshot.
pub fn authenticate(state: &ProxyState, headers: &http::HeaderMap) -> Result<Agent, Refusal> {
    let Some(token) = agent_auth::presented_token(headers) else {
        return Err(Refusal::new(ErrorCode::ProxyAuthRequired, "proxy authentication required: send the agent token"));
    };
    let hash = crypto::sha256_hex(token.expose().as_bytes());
    let snapshot = state.shared.snapshot.load();
    match snapshot.agent_by_hash(&hash) {
        Some(agent) => {
            let caller = Caller {
                agent: agent.name.clone(),
                ctx: agent.context.clone(),
                grants: agent.grants.clone().into(),
                session: agent.session.then(|| Arc::from(agent.id.as_str())),
            };
            Ok(Agent { caller, token_hash: hash })
        }
        None => Err(Refusal::new(ErrorCode::ProxyAuthRequired, "the agent token is invalid or revoked")),
    }
}

/// Audits a refusal made before the pipeline (CONNECT, authentication) and renders it.
fn refuse(state: &ProxyState, agent: Option<&Agent>, host: &str, method: &str, refusal: &Refusal) -> Response<Body> {
    let mut e = AuditEvent::new("proxy.connect");
    if let Some(a) = agent {
        a.caller.stamp(&mut e);
    }
    e.host = Some(host.to_owned());
    e.method = Some(method.to_owned());
    e.status = Some(refusal.status());
    e.outcome = Some(refusal.code.as_str().to_owned());
    super::refusal_log::note(e.agent.as_deref(), method, host, refusal);
    state.shared.audit.record(e);
    respond::refusal(refusal)
}

async fn connect(state: Arc<ProxyState>, slot: Arc<Slot>, mut req: Request<Incoming>) -> Response<Body> {
    let Some(authority) = req.uri().authority().map(|a| a.as_str().to_owned()) else {
        return respond::error(ErrorCode::BadRequest, "CONNECT needs a host:port target");
    };
    let (host, port) = match split_host_port(&authority) {
        Ok((h, Some(p))) => match normalize_host(&h) {
            Ok(h) => (h, p),
            Err(_) => return respond::error(ErrorCode::BadRequest, &format!("invalid CONNECT host in '{authority}'")),
        },
        Ok((_, None)) => return respond::error(ErrorCode::BadRequest, "CONNECT target must include a port (host:443)"),
        Err(_) => return respond::error(ErrorCode::BadRequest, &format!("invalid CONNECT target '{authority}'")),
    };
    let agent = match admit(&state, &slot, req.headers()) {
        Ok(a) => a,
        Err(refusal) => return refuse(&state, None, &host, "CONNECT", &refusal),
    };
    let reserved = host == super::proposals::PROPOSAL_HOST && port == 443;
    let known = reserved || state.shared.snapshot.load().policy.knows_host(&host, port);
    if !known {
        if state.opts.unmatched == Unmatched::Deny {
            let why = format!("no capability allows host {host}:{port}; the proxy runs with --unmatched deny");
            return refuse(&state, Some(&agent), &host, "CONNECT", &Refusal::new(ErrorCode::HostNotAllowed, why));
        }
        // Tunnel without interception: connect first so a refusal is still a proper response.
        let upstream = match state.shared.upstream.connect_tcp(&host, port).await {
            Ok(s) => s,
            Err(e) => {
                let code = match e {
                    super::upstream::ConnectError::Blocked { .. } => ErrorCode::DestinationBlocked,
                    _ => ErrorCode::UpstreamError,
                };
                return refuse(&state, Some(&agent), &host, "CONNECT", &Refusal::new(code, e.to_string()));
            }
        };
        let on_upgrade = hyper::upgrade::on(&mut req);
        tokio::spawn(tunnel::splice(state.clone(), slot, on_upgrade, upstream, agent, host, port));
        return Response::new(respond::empty());
    }
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(mitm::intercept(state.clone(), slot, on_upgrade, agent, host, port));
    Response::new(respond::empty())
}

async fn absolute_form(state: Arc<ProxyState>, slot: &Slot, req: Request<Incoming>) -> Response<Body> {
    let https = match req.uri().scheme_str() {
        Some("https") => true,
        Some("http") => false,
        Some(other) => return respond::error(ErrorCode::BadRequest, &format!("unsupported scheme {other}://")),
        None => return respond::error(ErrorCode::BadRequest, "absolute-form request without a scheme"),
    };
    let Some(uri_host) = req.uri().host() else {
        return respond::error(ErrorCode::BadRequest, "request URI has no host");
    };
    let Ok(host) = normalize_host(uri_host) else {
        return respond::error(ErrorCode::BadRequest, "invalid host in request URI");
    };
    let port = req.uri().port_u16().unwrap_or(if https { 443 } else { 80 });
    let agent = match admit(&state, slot, req.headers()) {
        Ok(a) => a,
        Err(refusal) => return refuse(&state, None, &host, req.method().as_str(), &refusal),
    };
    if host == INTERNAL_HOST && !https {
        return internal(&state, &agent, req.uri().path());
    }
    let dest = Destination { https, host, port, capability: None };
    let req = req.map(|b| b.map_err(Into::into).boxed());
    let known = state.shared.snapshot.load().policy.knows_host(&dest.host, dest.port);
    if !known && state.opts.unmatched == Unmatched::Tunnel {
        return pipeline::passthrough(&state.shared, &agent.caller, &dest, req)
            .await
            .unwrap_or_else(|refusal| respond::refusal(&refusal));
    }
    pipeline::handle(&state.shared, &agent.caller, &dest, req).await
}

fn internal(state: &ProxyState, agent: &Agent, path: &str) -> Response<Body> {
    match path {
        "/ping" => {
            let body = serde_json::json!({
                "ok": true,
                "generation": state.shared.snapshot.load().generation,
                "leaf_certificates_minted": state.ca().minted(),
            });
            respond::json(http::StatusCode::OK, &body)
        }
        // What this session was refused (only a session's own token reads its tally).
        "/session" => {
            let tally = match &agent.caller.session {
                Some(id) => state.shared.audit.sessions.get(id),
                None => super::session_tally::SessionRefusals::default(),
            };
            respond::json(http::StatusCode::OK, &serde_json::to_value(&tally).unwrap_or_default())
        }
        _ => respond::error(ErrorCode::NotFound, "unknown aivault endpoint"),
    }
}
