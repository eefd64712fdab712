//! WebSocket upgrades on an allowed capability: the handshake goes through phases 1–4 like any
//! request (so the credential is injected into it), then both directions are spliced.

use std::sync::Arc;

use http::{HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;

use super::conn::Slot;
use super::pipeline::{self, Destination};
use super::respond;
use super::state::{ActiveGuard, Agent, ProxyState};
use super::upstream::{Body, ConnectError};
use crate::refusal::{ErrorCode, Refusal};

/// An HTTP/1.1 `Connection: upgrade` + `Upgrade: websocket` request.
pub fn is_upgrade<B>(req: &Request<B>) -> bool {
    let connection_upgrade = req
        .headers()
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("upgrade")));
    let websocket = req
        .headers()
        .get(http::header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    connection_upgrade && websocket
}

pub async fn handle(
    state: Arc<ProxyState>,
    dest: Arc<Destination>,
    agent: Arc<Agent>,
    slot: Arc<Slot>,
    mut req: Request<Incoming>,
) -> Response<Body> {
    let client_upgrade = hyper::upgrade::on(&mut req);
    let (parts, _body) = req.into_parts();
    let prepared = match pipeline::prepare(&state.shared, &agent.caller, &dest, parts) {
        Ok(p) => p,
        Err(refusal) => return respond::refusal(&refusal),
    };
    let mut event = prepared.event;
    event.kind = "proxy.websocket".into();
    let fail = |event, code: ErrorCode, msg: &str| {
        respond::refusal(&pipeline::refused(&state.shared.audit, event, prepared.started, Refusal::new(code, msg)))
    };
    let tcp = match state.shared.upstream.connect_tcp(&dest.host, dest.port).await {
        Ok(t) => t,
        Err(e @ ConnectError::Blocked { .. }) => return fail(event, ErrorCode::DestinationBlocked, &e.to_string()),
        Err(e) => return fail(event, ErrorCode::UpstreamError, &e.to_string()),
    };
    let tls_config = state.shared.upstream.http1_tls();
    let Ok(name) = ServerName::try_from(dest.host.trim_start_matches('[').trim_end_matches(']').to_owned()) else {
        return fail(event, ErrorCode::UpstreamError, "invalid upstream name");
    };
    let tls = match tokio_rustls::TlsConnector::from(tls_config).connect(name, tcp).await {
        Ok(t) => t,
        Err(e) => return fail(event, ErrorCode::UpstreamError, &format!("TLS with {} failed: {e}", dest.host)),
    };
    let (mut sender, conn) = match hyper::client::conn::http1::handshake::<_, Body>(TokioIo::new(tls)).await {
        Ok(x) => x,
        Err(e) => return fail(event, ErrorCode::UpstreamError, &e.to_string()),
    };
    tokio::spawn(conn.with_upgrades());
    let mut upstream_req = Request::new(respond::empty());
    *upstream_req.method_mut() = prepared.method;
    *upstream_req.uri_mut() = match prepared.target.path_and_query().parse() {
        Ok(u) => u,
        Err(_) => return fail(event, ErrorCode::BadRequest, "invalid request target"),
    };
    let mut headers = prepared.target.headers;
    headers.remove(http::header::PROXY_AUTHORIZATION);
    let authority = if dest.port == 443 { dest.host.clone() } else { format!("{}:{}", dest.host, dest.port) };
    if let Ok(v) = HeaderValue::from_str(&authority) {
        headers.insert(http::header::HOST, v);
    }
    *upstream_req.headers_mut() = headers;
    let mut response = match sender.send_request(upstream_req).await {
        Ok(r) => r,
        Err(e) => return fail(event, ErrorCode::UpstreamError, &e.to_string()),
    };
    let status = response.status();
    if status != StatusCode::SWITCHING_PROTOCOLS {
        pipeline::finish(&state.shared.audit, event, prepared.started, Some(status.as_u16()), "not_upgraded", 0, 0);
        let (head, body) = response.into_parts();
        return Response::from_parts(
            head,
            http_body_util::BodyExt::boxed(http_body_util::BodyExt::map_err(body, Into::into)),
        );
    }
    let upstream_upgrade = hyper::upgrade::on(&mut response);
    let relay_state = state.clone();
    tokio::spawn(async move {
        let _active = ActiveGuard::new(&relay_state);
        let _slot = slot;
        let (client, upstream) = match tokio::join!(client_upgrade, upstream_upgrade) {
            (Ok(c), Ok(u)) => (c, u),
            _ => {
                pipeline::finish(&relay_state.shared.audit, event, prepared.started, Some(101), "upgrade_failed", 0, 0);
                return;
            }
        };
        let idle = relay_state.opts.tunnel_idle_timeout;
        let revoked = super::conn::revoked(&relay_state.shared.snapshot, &agent.token_hash);
        let (up, down, ending) =
            super::splice::splice(TokioIo::new(client), TokioIo::new(upstream), idle, revoked).await;
        pipeline::finish(&relay_state.shared.audit, event, prepared.started, Some(101), ending.outcome(), up, down);
    });
    let (head, _) = response.into_parts();
    Response::from_parts(head, respond::empty())
}
