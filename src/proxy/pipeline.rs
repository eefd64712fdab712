//! The request pipeline: the one place that decides to inject a credential.
//!
//! `handle` reads as the life of a proxied request (ARCHITECTURE.md, same numbering):
//! 1 match → 2 resolve → 3 strip → 4 inject → 5 guard + re-originate → 6 stream back → 7 audit.
//! Every exit is a response (never a panic) and every exit is audited.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use http::{HeaderMap, HeaderName, Request, Response, Uri, Version};
use http_body_util::BodyExt as _;

use super::audit_sink::AuditSink;
use super::body::{Counted, OnDone};
use super::oauth::OAuthJob;
use super::redact::Needles;
use super::respond;
use super::upstream::{Body, Upstream, UpstreamError};
use crate::audit::AuditEvent;
use crate::auth::inject::{self, Target};
use crate::auth::oauth2::OAuthError;
use crate::auth::{AuthConfig, AuthError};
use crate::crypto::MasterKey;
use crate::refusal::{ErrorCode, Refusal};
use crate::scope::Context;
use crate::secret::SecretString;
use crate::service::Snapshot;
use crate::service::resolve::RequestLine;

/// The current snapshot, swapped atomically when the vault changes; subscribers hear of each swap.
#[derive(Clone)]
pub struct SnapshotCell(Arc<CellInner>);

struct CellInner {
    current: RwLock<Arc<Snapshot>>,
    changes: tokio::sync::watch::Sender<u64>,
}

impl SnapshotCell {
    pub fn new(s: Snapshot) -> Self {
        let (changes, _) = tokio::sync::watch::channel(s.generation);
        SnapshotCell(Arc::new(CellInner { current: RwLock::new(Arc::new(s)), changes }))
    }

    pub fn load(&self) -> Arc<Snapshot> {
        match self.0.current.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub fn store(&self, mut s: Snapshot) {
        s.adopt_limiters(&self.load());
        let generation = s.generation;
        match self.0.current.write() {
            Ok(mut g) => *g = Arc::new(s),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(s),
        }
        self.0.changes.send_replace(generation);
    }

    /// A receiver that wakes on every swap.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.0.changes.subscribe()
    }
}

/// What every request handler shares.
pub struct Shared {
    pub key: MasterKey,
    /// Where held requests and proposals are recorded.
    pub store: crate::store::Location,
    pub lock_wait: std::time::Duration,
    pub snapshot: SnapshotCell,
    pub upstream: Upstream,
    pub audit: AuditSink,
    pub limits: Limits,
    pub oauth: super::oauth::TokenManager,
    /// Compiled masking needles of recent requests (bounded; see `redact::cache`).
    pub maskers: super::redact::MaskerCache,
}

/// Per-request limits.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// The largest body buffered to compute a SigV4 payload hash.
    pub sigv4_max_body: usize,
    /// How long a held request waits for a person's decision.
    pub approval_timeout: std::time::Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { sigv4_max_body: 64 * 1024 * 1024, approval_timeout: std::time::Duration::from_secs(120) }
    }
}

/// Who is asking, as established by proxy authentication (or the CLI for `invoke`).
#[derive(Clone, Debug)]
pub struct Caller {
    pub agent: String,
    pub ctx: Context,
    /// The capabilities this agent may use (empty: all its scope resolves).
    pub grants: Arc<[String]>,
    /// The agent's id when it is a `run`/`env` session (so `run` can summarise its refusals).
    pub session: Option<Arc<str>>,
}

impl Caller {
    /// Names this caller on an audit record: agent, session, workspace and group.
    pub fn stamp(&self, e: &mut AuditEvent) {
        e.agent = Some(self.agent.clone());
        e.session = self.session.as_deref().map(str::to_owned);
        e.workspace_id = self.ctx.workspace_id.clone();
        e.group_id = self.ctx.group_id.clone();
    }
}

/// Where the request goes: fixed by the CONNECT line or the absolute-form URI, never by headers.
#[derive(Clone, Debug)]
pub struct Destination {
    pub https: bool,
    pub host: String,
    pub port: u16,
    /// `invoke` names its capability; the proxy infers it from method and path.
    pub capability: Option<String>,
}

/// Handles one request end to end; a refusal is rendered here (already audited).
pub async fn handle(shared: &Shared, caller: &Caller, dest: &Destination, req: Request<Body>) -> Response<Body> {
    serve(shared, caller, dest, req).await.unwrap_or_else(|refusal| respond::refusal(&refusal))
}

/// The life of a request, with a refusal as a value (audited before it is returned).
pub async fn serve(
    shared: &Shared,
    caller: &Caller,
    dest: &Destination,
    req: Request<Body>,
) -> Result<Response<Body>, Refusal> {
    let (parts, body) = req.into_parts();
    let mut p = match prepare(shared, caller, dest, parts) {
        Ok(p) => p,
        Err(refusal) => {
            super::body::drain(body, 64 * 1024).await;
            return Err(refusal);
        }
    };
    // 2c. Held for a person's decision (the body stays unread until then).
    if let Some(hold) = p.hold.take() {
        if let Err(refusal) = super::approval::wait(shared, hold, shared.limits.approval_timeout).await {
            super::body::drain(body, 64 * 1024).await;
            return Err(refused(&shared.audit, p.event, p.started, refusal));
        }
    }
    // 4b. SigV4 signs the request exactly as it will leave (buffering the body only if it must);
    // OAuth2 obtains a current access token (and may replay once after a 401).
    let body = match std::mem::replace(&mut p.deferred, Deferred::None) {
        Deferred::SigV4(job) => {
            match super::sign::sign(job, dest, &p.method, &mut p.target, body, shared.limits.sigv4_max_body).await {
                Ok(body) => body,
                Err(refusal) => return Err(refused(&shared.audit, p.event, p.started, refusal)),
            }
        }
        Deferred::OAuth(job) => return oauth_forward(shared, dest, p, body, job).await,
        Deferred::None => body,
    };
    // 5–7. Re-originate, stream back, audit.
    forward(shared, dest, p, body).await
}

/// Audits a refusal and hands it back.
pub(crate) fn refused(audit: &AuditSink, event: AuditEvent, started: Instant, refusal: Refusal) -> Refusal {
    super::refusal_log::note(
        event.agent.as_deref(),
        event.method.as_deref().unwrap_or("-"),
        event.host.as_deref().unwrap_or("-"),
        &refusal,
    );
    finish(audit, event, started, Some(refusal.status()), refusal.code.as_str(), 0, 0);
    refusal
}

/// A request that passed phases 1–4: allowed, credential resolved, agent auth stripped, real
/// credential injected.
pub struct Prepared {
    pub method: http::Method,
    pub target: Target,
    pub event: AuditEvent,
    pub started: Instant,
    /// SigV4 signing or an OAuth2 token, done once the body and network are at hand.
    pub deferred: Deferred,
    /// Injected values to mask if the upstream echoes them.
    pub needles: Needles,
    /// The request waits for a person's decision first (stage 2c).
    pub hold: Option<super::approval::Hold>,
}

/// Phases 1–4. A refusal is returned as a value (already audited).
pub fn prepare(
    shared: &Shared,
    caller: &Caller,
    dest: &Destination,
    parts: http::request::Parts,
) -> Result<Prepared, Refusal> {
    let started = Instant::now();
    let snapshot = shared.snapshot.load();
    // Borrowed from the request line: the headers move into the target, these stay.
    let method = parts.method.as_str();
    let raw_path = parts.uri.path();
    let mut event = AuditEvent::new("proxy.request");
    caller.stamp(&mut event);
    event.method = Some(method.to_owned());
    event.host = Some(dest.host.clone());
    event.path = Some(raw_path.to_owned());
    let deny = |event: AuditEvent, refusal: Refusal| refused(&shared.audit, event, started, refusal);

    // 1 + 2a. Match, then pick: every capability that allows host, method and path, most
    // specific first; the first whose credential resolves for the caller's context serves it.
    let (rule, match_path, pick) = match &dest.capability {
        Some(named) => {
            let rule = match snapshot.check_capability(named, method, raw_path) {
                Ok(rule) => rule,
                Err(denial) => return Err(deny(event, denial.refusal())),
            };
            if !crate::policy::granted(&caller.grants, rule) {
                let why = format!("this agent is not granted {named}");
                return Err(deny(event, Refusal::new(ErrorCode::CapabilityNotGranted, why)));
            }
            match snapshot.pick(named, &dest.host, dest.port, &caller.ctx) {
                Ok(pick) => (rule, raw_path.to_owned(), pick),
                Err(e) => return Err(deny(event, e.refusal())),
            }
        }
        None => match snapshot.select(
            &RequestLine { host: &dest.host, port: dest.port, method, path: raw_path },
            &caller.ctx,
            &caller.grants,
            None,
        ) {
            Ok(sel) => (sel.rule, sel.match_path.to_owned(), sel.pick),
            Err(refusal) => return Err(deny(event, refusal)),
        },
    };
    let capability = rule.id.as_str();
    event.capability = Some(capability.to_owned());
    // A credential never travels in cleartext unless the capability says so explicitly.
    if !dest.https && !rule.allow_http {
        let why = format!(
            "{capability} serves https only: the credential is not sent over plain http://{}:{}",
            dest.host, dest.port
        );
        return Err(deny(event, Refusal::new(ErrorCode::CleartextNotAllowed, why)));
    }

    // 2a'. Rate limits and budgets of the agent, the capability and the credential.
    let now = event.ts_ms; // the record was stamped a moment ago: one clock read, not two
    let over_budget_ask = match snapshot.check_limits(&caller.agent, capability, &pick.credential_label(), now) {
        Ok(ask) => ask,
        Err(refusal) => return Err(deny(event, refusal)),
    };

    // 2c (decided in `serve`): a capability that requires approval holds the request, unless an
    // earlier "allow for N minutes" covers this agent.
    // An exhausted budget with `--on-exhaust ask` escalates the same way.
    let needs_person = rule.approval || over_budget_ask;
    let hold = (needs_person && !snapshot.allowance(&caller.agent, capability, now)).then(|| super::approval::Hold {
        agent: caller.agent.clone(),
        capability: capability.to_owned(),
        method: method.to_owned(),
        host: dest.host.clone(),
        path: match_path.clone(),
    });

    // 2b. Open the chosen credential's sealed secrets.
    let resolved = match snapshot.open(&shared.key, &pick) {
        Ok(r) => r,
        Err(e) => return Err(deny(event, e.refusal())),
    };
    event.credential = Some(resolved.credential_id.clone());

    // 3. Strip every agent-supplied auth-class header and whatever the strategy owns.
    let mut target =
        Target { path: raw_path.to_owned(), query: parts.uri.query().map(str::to_owned), headers: parts.headers };
    // What the agent's own SigV4 signature covered (only a SigV4 credential re-signs it).
    let agent_signed =
        if resolved.auth.is_sigv4() { super::sign::agent_signed_headers(&target.headers) } else { Vec::new() };
    inject::strip(&mut target, &resolved.auth);
    inject::remove_where(&mut target.headers, |n| crate::policy::ROUTING_OVERRIDE_HEADERS.contains(&n.as_str()));
    if target.path != match_path && !resolved.auth.is_path() {
        target.path = match_path;
    }

    // 4. Inject. This request's hold on the decrypted material ends right after (the snapshot's
    // bounded cache keeps it; zeroized when the last holder drops it).
    let injected = apply_strategy(&mut target, &resolved, dest, agent_signed);
    let mut needles = Needles::default();
    if resolved.auth.is_sigv4() {
        needles.vary_per_request();
    }
    for value in resolved.material.leaf_values() {
        needles.push(value.expose().as_bytes());
    }
    for name in resolved.auth.owned_headers() {
        // The rendered value (a scheme such as `Bearer ` stays readable in an echo).
        for value in target.headers.get_all(name) {
            match value.to_str().ok().and_then(|v| v.split_once(' ')) {
                Some((_, credential)) => needles.push(credential.as_bytes()),
                None => needles.push(value.as_bytes()),
            }
        }
    }
    // Recorded as sent, with a path strategy's secret segment redacted.
    event.path = Some(target.path_for_audit(&resolved.auth));
    drop(resolved);
    let deferred = match injected {
        Ok(sign) => sign,
        Err(e) => return Err(deny(event, Refusal::new(ErrorCode::CredentialUnavailable, e.to_string()))),
    };
    // 6b needs to read the response: the proxy, not the agent, chooses the upstream encoding.
    target.headers.insert(http::header::ACCEPT_ENCODING, http::HeaderValue::from_static("identity"));
    // The method the policy matched is the one sent: canonical upper case.
    let method = match crate::policy::canonical_method(method) {
        std::borrow::Cow::Borrowed(_) => parts.method,
        std::borrow::Cow::Owned(upper) => http::Method::from_bytes(upper.as_bytes()).unwrap_or(parts.method),
    };
    Ok(Prepared { method, target, event, started, deferred, needles, hold })
}

/// Forwards a request for a host no capability names (`--unmatched tunnel`, absolute-form):
/// nothing is injected, the agent's own headers pass, the destination guard still applies.
pub async fn passthrough(
    shared: &Shared,
    caller: &Caller,
    dest: &Destination,
    req: Request<Body>,
) -> Result<Response<Body>, Refusal> {
    let started = Instant::now();
    let (parts, body) = req.into_parts();
    let mut event = AuditEvent::new("proxy.passthrough");
    caller.stamp(&mut event);
    event.method = Some(parts.method.as_str().to_owned());
    event.host = Some(dest.host.clone());
    event.path = Some(parts.uri.path().to_owned());
    let target = Target {
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts.headers,
    };
    let p = Prepared {
        method: parts.method,
        target,
        event,
        started,
        deferred: Deferred::None,
        needles: Needles::default(),
        hold: None,
    };
    forward(shared, dest, p, body).await
}

/// Steps 5–7: guard and re-originate over the pooled client, stream the response, audit at the end.
async fn forward(shared: &Shared, dest: &Destination, p: Prepared, body: Body) -> Result<Response<Body>, Refusal> {
    let Prepared { method, target, event, started, needles, .. } = p;
    let bytes_in = Arc::new(AtomicU64::new(0));
    match send(shared, dest, method, target, Counted::new(body, bytes_in.clone()).boxed()).await {
        Ok(response) => relay(shared, response, event, started, bytes_in, needles),
        Err(refusal) => Err(refused(&shared.audit, event, started, refusal)),
    }
}

/// Step 5: guard and re-originate.
async fn send(
    shared: &Shared,
    dest: &Destination,
    method: http::Method,
    target: Target,
    body: Body,
) -> Result<Response<hyper::body::Incoming>, Refusal> {
    let upstream_req = build_upstream_request(dest, method, target, body)?;
    match shared.upstream.send(upstream_req).await {
        Ok(r) => Ok(r),
        Err(UpstreamError::Blocked(msg)) => Err(Refusal::new(ErrorCode::DestinationBlocked, msg)),
        Err(UpstreamError::Timeout) => {
            Err(Refusal::new(ErrorCode::UpstreamTimeout, format!("{} did not answer in time", dest.host)))
        }
        Err(UpstreamError::Failed(msg)) => Err(Refusal::new(ErrorCode::UpstreamError, msg)),
    }
}

/// Steps 6–7: stream the response back as it arrives; audit when the body ends.
fn relay(
    shared: &Shared,
    response: Response<hyper::body::Incoming>,
    event: AuditEvent,
    started: Instant,
    bytes_in: Arc<AtomicU64>,
    needles: Needles,
) -> Result<Response<Body>, Refusal> {
    let status = response.status().as_u16();
    let (mut head, body) = response.into_parts();
    strip_hop_by_hop(&mut head.headers);
    let bytes_out = Arc::new(AtomicU64::new(0));
    let counted = Counted::new(body, bytes_out.clone());
    // 6b. Mask any echo of the injected credential (same length, so framing stays valid).
    let counted: Body = match needles.compile(Some(&shared.maskers)) {
        None => counted.boxed(),
        Some(masker) => {
            masker.mask_headers(&mut head.headers);
            let plain = match decoded(counted.boxed(), &mut head.headers) {
                Ok(b) => b,
                Err(refusal) => return Err(refused(&shared.audit, event, started, refusal)),
            };
            super::redact::Redacted::new(plain, masker).boxed()
        }
    };
    let audit = shared.audit.clone();
    let done = OnDone::new(counted, move |complete| {
        let outcome = if complete { "ok" } else { "client_closed" };
        let (up, down) = (bytes_in.load(Ordering::Relaxed), bytes_out.load(Ordering::Relaxed));
        finish(&audit, event, started, Some(status), outcome, up, down);
    });
    head.version = Version::HTTP_11;
    Ok(Response::from_parts(head, done.boxed()))
}

/// 6b, first half: the response body as plain bytes, whatever coding the upstream chose.
fn decoded(body: Body, headers: &mut HeaderMap) -> Result<Body, Refusal> {
    use super::decode::{Coding, Decoded, coding, strip_encoding_headers};
    match coding(headers) {
        Coding::Identity => Ok(body),
        Coding::Decode(kind) => {
            let d =
                Decoded::new(body, kind).map_err(|e| Refusal::new(ErrorCode::UnsupportedEncoding, e.to_string()))?;
            strip_encoding_headers(headers);
            Ok(d.boxed())
        }
        Coding::Unsupported(c) => Err(Refusal::new(
            ErrorCode::UnsupportedEncoding,
            format!("the upstream answered with Content-Encoding {c}, which the proxy cannot inspect"),
        )),
    }
}

/// The largest request body kept in memory so an OAuth request can be replayed after a 401.
const REPLAY_LIMIT: u64 = 1024 * 1024;

/// 4c + 5–7 for OAuth2: inject a current access token; on a 401, force one refresh and replay
/// the request once if its body could be kept.
async fn oauth_forward(
    shared: &Shared,
    dest: &Destination,
    p: Prepared,
    body: Body,
    job: OAuthJob,
) -> Result<Response<Body>, Refusal> {
    let Prepared { method, mut target, mut event, started, mut needles, .. } = p;
    let fail = |mut event: AuditEvent, e: OAuthError| -> Result<Response<Body>, Refusal> {
        event.detail = Some(format!("oauth error {}", e.code));
        let refusal =
            Refusal::new(ErrorCode::OauthRefreshFailed, format!("refreshing the OAuth2 access token failed: {e}"))
                .with("oauth_error", e.code.clone());
        Err(refused(&shared.audit, event, started, refusal))
    };
    let (replay, mut body) = match http_body::Body::size_hint(&body).exact() {
        Some(n) if n <= REPLAY_LIMIT => match body.collect().await {
            Ok(b) => {
                let bytes = b.to_bytes();
                (Some(bytes.clone()), respond::full(bytes))
            }
            Err(e) => {
                let refusal = Refusal::new(ErrorCode::BadRequest, format!("reading the request body failed: {e}"));
                return Err(refused(&shared.audit, event, started, refusal));
            }
        },
        _ => (None, body),
    };
    let mut token = match shared.oauth.token(&shared.upstream, &job, None).await {
        Ok(t) => t,
        Err(e) => return fail(event, e),
    };
    for attempt in 0..2 {
        if let Err(e) = set_bearer(&mut target, &token) {
            return fail(event, e);
        }
        needles.push(token.expose().as_bytes());
        let bytes_in = Arc::new(AtomicU64::new(0));
        // A copy: a 401 replays the request with a fresh token.
        let sent = target.clone();
        let response =
            match send(shared, dest, method.clone(), sent, Counted::new(body, bytes_in.clone()).boxed()).await {
                Ok(r) => r,
                Err(refusal) => return Err(refused(&shared.audit, event, started, refusal)),
            };
        let retry = attempt == 0 && response.status() == http::StatusCode::UNAUTHORIZED;
        let Some(bytes) = replay.as_ref().filter(|_| retry) else {
            return relay(shared, response, event, started, bytes_in, needles);
        };
        drop(response);
        event.detail = Some("upstream answered 401; refreshed the token and replayed once".into());
        token = match shared.oauth.token(&shared.upstream, &job, Some(token.expose())).await {
            Ok(t) => t,
            Err(e) => return fail(event, e),
        };
        body = respond::full(bytes.clone());
    }
    let refusal = Refusal::new(ErrorCode::UpstreamError, "the upstream rejected the refreshed token");
    Err(refused(&shared.audit, event, started, refusal))
}

fn set_bearer(target: &mut Target, token: &SecretString) -> Result<(), OAuthError> {
    let mut v = http::HeaderValue::from_str(&format!("Bearer {}", token.expose()))
        .map_err(|_| OAuthError::new("invalid_token", "the access token is not a valid header value"))?;
    v.set_sensitive(true);
    target.headers.insert(http::header::AUTHORIZATION, v);
    Ok(())
}

/// Header-, query-, path- and basic-style strategies inject directly; OAuth2 uses a stored
/// access token; SigV4 returns a signing job for the stage after the body is known.
fn apply_strategy(
    target: &mut Target,
    resolved: &crate::service::ResolvedCredential,
    dest: &Destination,
    agent_signed: Vec<String>,
) -> Result<Deferred, AuthError> {
    let (strategy, material) = (&resolved.auth, &resolved.material);
    match strategy.config() {
        auth @ AuthConfig::Oauth2 { .. } => {
            match OAuthJob::from_material(&resolved.credential_id, &resolved.secrets, auth, material) {
                Ok(job) => Ok(Deferred::OAuth(job)),
                Err(e) => Err(AuthError::InvalidConfig(e.to_string())),
            }
        }
        AuthConfig::AwsSigv4 { service, region } => {
            let field =
                |name: &str| material.field(name).cloned().ok_or_else(|| AuthError::MissingField(name.to_owned()));
            Ok(Deferred::SigV4(super::sign::SigV4Job {
                access_key_id: field("access_key_id")?,
                secret_access_key: field("secret_access_key")?,
                session_token: material.field("session_token").filter(|t| !t.expose().is_empty()).cloned(),
                region: crate::auth::sigv4::region_from_host(&dest.host).unwrap_or(region).to_owned(),
                service: crate::auth::aws_signing_name(service).to_owned(),
                agent_signed,
            }))
        }
        _ => inject::inject(target, strategy, material).map(|()| Deferred::None),
    }
}

/// Work that waits until the body and the network are available.
pub enum Deferred {
    None,
    SigV4(super::sign::SigV4Job),
    OAuth(OAuthJob),
}

pub(crate) fn finish(
    audit: &AuditSink,
    mut event: AuditEvent,
    started: Instant,
    status: Option<u16>,
    outcome: &str,
    bytes_in: u64,
    bytes_out: u64,
) {
    event.status = status;
    event.outcome = Some(outcome.to_owned());
    event.bytes_in = Some(bytes_in);
    event.bytes_out = Some(bytes_out);
    event.duration_ms = Some(started.elapsed().as_millis() as u64);
    audit.record(event);
}

/// Hop-by-hop headers (RFC 9110 §7.6.1) plus any the `Connection` header names.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    const HOP_BY_HOP: &[&str] = &[
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authorization",
        "proxy-authenticate",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    ];
    let named: Vec<HeaderName> = headers
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().to_ascii_lowercase().as_bytes()).ok())
        .collect();
    inject::remove_where(headers, |n| HOP_BY_HOP.contains(&n.as_str()) || named.contains(n));
}

fn build_upstream_request(
    dest: &Destination,
    method: http::Method,
    target: Target,
    body: Body,
) -> Result<Request<Body>, Refusal> {
    use std::fmt::Write as _;
    let default_port = if dest.https { 443 } else { 80 };
    let query = target.query.as_deref().filter(|q| !q.is_empty());
    let mut uri = String::with_capacity(16 + dest.host.len() + target.path.len() + query.map_or(0, str::len));
    uri.push_str(if dest.https { "https://" } else { "http://" });
    uri.push_str(&dest.host);
    if dest.port != default_port {
        let _ = write!(uri, ":{}", dest.port);
    }
    uri.push_str(&target.path);
    if let Some(q) = query {
        uri.push('?');
        uri.push_str(q);
    }
    let uri =
        Uri::try_from(uri).map_err(|_| Refusal::new(ErrorCode::BadRequest, "the request target is not a valid URI"))?;
    let mut headers = target.headers;
    strip_hop_by_hop(&mut headers);
    // The pooled client sets Host (HTTP/1.1) or :authority (HTTP/2) from the URI. `Expect` was
    // answered to the agent by this proxy; the upstream gets the body directly.
    headers.remove(http::header::HOST);
    headers.remove(http::header::EXPECT);
    let mut req = Request::new(body);
    *req.method_mut() = method;
    *req.uri_mut() = uri;
    *req.headers_mut() = headers;
    *req.version_mut() = Version::HTTP_11;
    Ok(req)
}
