//! The reserved host `aivault.local`: the proxy answers it itself (never re-originated, no
//! capability needed), authenticated by the agent's own token, so a proposal is bound to the
//! agent's identity and scope.
//!
//! `POST /v1/proposals` creates one (201 `{id, status, approval_url}`), `GET /v1/proposals/ID`
//! answers its status to the agent that raised it (anyone else gets 404).

use std::sync::Arc;

use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;

use super::respond;
use super::state::{Agent, ProxyState};
use super::upstream::Body;
use crate::audit::AuditEvent;
use crate::proposal;
use crate::refusal::{ErrorCode, Refusal};

/// The host agents send proposals to.
pub const PROPOSAL_HOST: &str = "aivault.local";

pub async fn serve(state: Arc<ProxyState>, agent: Arc<Agent>, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    let outcome = match (&method, path.strip_prefix("/v1/proposals")) {
        (&Method::POST, Some("" | "/")) => create(&state, &agent, req).await,
        (&Method::GET, Some(rest)) if rest.len() > 1 && rest.starts_with('/') => {
            status(&state, &agent, &rest[1..]).await
        }
        (_, Some(_)) => Err(Refusal::new(ErrorCode::BadRequest, "use POST /v1/proposals or GET /v1/proposals/ID")),
        _ => Err(Refusal::new(ErrorCode::NotFound, format!("{PROPOSAL_HOST} serves only /v1/proposals"))),
    };
    let mut e = AuditEvent::new("proxy.proposal");
    agent.caller.stamp(&mut e);
    e.method = Some(method.as_str().to_owned());
    e.host = Some(PROPOSAL_HOST.to_owned());
    e.path = Some(path);
    match outcome {
        Ok(resp) => {
            e.status = Some(resp.status().as_u16());
            e.outcome = Some("answered".into());
            state.shared.audit.record(e);
            resp
        }
        Err(refusal) => {
            e.status = Some(refusal.status());
            e.outcome = Some(refusal.code.as_str().to_owned());
            state.shared.audit.record(e);
            respond::refusal(&refusal)
        }
    }
}

async fn create(state: &Arc<ProxyState>, agent: &Agent, req: Request<Incoming>) -> Result<Response<Body>, Refusal> {
    let limited = http_body_util::Limited::new(req.into_body(), proposal::MAX_BODY_BYTES);
    let body = match limited.collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return Err(Refusal::new(
                ErrorCode::InvalidProposal,
                format!("the body is larger than {} bytes or was cut off", proposal::MAX_BODY_BYTES),
            )
            .with("field", "body"));
        }
    };
    let parsed = proposal::parse(&body)
        .map_err(|bad| Refusal::new(ErrorCode::InvalidProposal, bad.to_string()).with("field", bad.field))?;
    let (name, ctx, writer) = (agent.caller.agent.clone(), agent.caller.ctx.clone(), state.clone());
    let row = tokio::task::spawn_blocking(move || {
        let shared = &writer.shared;
        crate::service::proposals::create_at(&shared.store, shared.lock_wait, &shared.key, &name, &ctx, parsed)
    })
    .await
    .map_err(|_| Refusal::new(ErrorCode::InternalError, "the proposal writer stopped"))??;
    let console = state.console_url();
    let approval_url = console.as_ref().map(|c| format!("{c}/proposals/{}", row.id));
    tracing::info!(
        id = %row.id, agent = %row.agent,
        "proposal raised: review it with `aivault proposal show {id}` or at {url}",
        id = row.id, url = approval_url.as_deref().unwrap_or("the console (not running)")
    );
    let body = serde_json::json!({
        "id": row.id,
        "status": row.status.as_str(),
        "approval_url": approval_url,
        "review": format!("a person reviews it with `aivault proposal show {}` or on the approval page", row.id),
    });
    Ok(respond::json(StatusCode::CREATED, &body))
}

async fn status(state: &Arc<ProxyState>, agent: &Agent, id: &str) -> Result<Response<Body>, Refusal> {
    let not_found = || Refusal::new(ErrorCode::NotFound, format!("no proposal {} for this agent", printable(id)));
    if id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(not_found());
    }
    let (path, lock_wait) = (state.shared.store.clone(), state.shared.lock_wait);
    let (name, wanted) = (agent.caller.agent.clone(), id.to_owned());
    let status = tokio::task::spawn_blocking(move || {
        crate::service::proposals::status_for_agent(&path, lock_wait, &name, &wanted)
    })
    .await
    .map_err(|_| Refusal::new(ErrorCode::InternalError, "the proposal reader stopped"))?
    .map_err(|e| Refusal::new(ErrorCode::InternalError, format!("cannot read the proposal: {e}")))?;
    match status {
        Some((s, generation)) => {
            // "approved" promises that the next request is served with it: wait (bounded) until
            // this proxy's snapshot includes the approval.
            if s == crate::proposal::Status::Approved {
                let mut changes = state.shared.snapshot.subscribe();
                let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(3);
                while state.shared.snapshot.load().generation < generation {
                    if !matches!(tokio::time::timeout_at(deadline, changes.changed()).await, Ok(Ok(()))) {
                        break;
                    }
                }
            }
            Ok(respond::json(StatusCode::OK, &serde_json::json!({ "id": id, "status": s.as_str() })))
        }
        None => Err(not_found()),
    }
}

fn printable(s: &str) -> String {
    s.chars().filter(|c| c.is_ascii_graphic()).take(64).collect()
}
