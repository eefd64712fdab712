//! The console's routes: review links, the proposal page, the decision, and static assets.
//! OAuth Connect and paste live in `oauth.rs`.

use std::sync::Arc;

use http::{Method, Request, StatusCode};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use zeroize::Zeroizing;

use super::session::{Session, Sessions};
use super::{COOKIE, ConsoleState, Page, html, pages, respond};
use crate::error::Error;
use crate::secret::SecretBytes;
use crate::service::Vault;

/// Largest form body the console reads.
const MAX_FORM: usize = 256 * 1024;

/// A parsed form: field name → value (zeroized on drop).
pub struct Form(Vec<(String, Zeroizing<String>)>);

impl Form {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// A field with surrounding whitespace trimmed, `None` when empty.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.get(name).map(str::trim).filter(|v| !v.is_empty())
    }

    fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

pub async fn route(state: Arc<ConsoleState>, req: Request<Incoming>) -> Page {
    let host = req.headers().get(http::header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
    if !state.hosts.iter().any(|h| h.eq_ignore_ascii_case(host)) {
        return respond(
            StatusCode::MISDIRECTED_REQUEST,
            "text/plain; charset=utf-8",
            "unknown Host for this console\n",
        );
    }
    let path = req.uri().path().to_owned();
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (req.method().clone(), parts.as_slice()) {
        (Method::GET, ["static", "console.css"]) => {
            respond(StatusCode::OK, "text/css; charset=utf-8", include_str!("assets/console.css"))
        }
        (Method::GET, ["static", "console.js"]) => {
            respond(StatusCode::OK, "text/javascript; charset=utf-8", include_str!("assets/console.js"))
        }
        (Method::GET, [""]) => html(
            StatusCode::OK,
            pages::message(
                "aivault console",
                "Proposals from agents are reviewed here, one page each.",
                Some(
                    "Open a review link: `aivault proposal list` shows what is pending, `aivault proposal link ID` prints a link.",
                ),
                None,
            ),
        ),
        // Prometheus scrapes without a session: counters and ids only, never a value.
        (Method::GET, ["metrics"]) => match state.metrics.get() {
            Some(source) => respond(StatusCode::OK, "text/plain; version=0.0.4; charset=utf-8", source()),
            None => respond(
                StatusCode::NOT_FOUND,
                "text/plain; charset=utf-8",
                "this console runs without a proxy (aivault console): the proxy's console serves /metrics\n",
            ),
        },
        (Method::GET, ["review", token]) => review(&state, token).await,
        (Method::GET, ["proposals", id]) => {
            let notice = req.uri().query().and_then(notice_text);
            match session_of(&state, &req, id) {
                Some((sid, s)) => page(&state, &sid, &s, notice, None, StatusCode::OK).await,
                None => needs_link(id),
            }
        }
        (Method::GET, ["credentials", id, "connect"]) => {
            let subject = format!("credential:{id}");
            let notice = req.uri().query().and_then(notice_text);
            match session_of(&state, &req, &subject) {
                Some((sid, s)) => super::oauth::credential_page(&state, &sid, &s, notice, None, StatusCode::OK).await,
                None => needs_link(&subject),
            }
        }
        (Method::POST, ["proposals" | "credentials", id, rest @ ..]) => {
            let subject = if parts[0] == "credentials" { format!("credential:{id}") } else { (*id).to_owned() };
            let rest: Vec<String> = rest.iter().map(|s| (*s).to_owned()).collect();
            let Some((sid, s)) = session_of(&state, &req, &subject) else { return needs_link(&subject) };
            if !same_origin(&state, &req) {
                return forbidden("This form was sent from another site; it was ignored.");
            }
            let form = match read_form(req).await {
                Ok(f) => f,
                Err(page) => return page,
            };
            if !Sessions::csrf_ok(&s, form.get("csrf")) {
                return forbidden("The form's security token is missing or wrong; reload the page and try again.");
            }
            use super::oauth::{Dest, connect, paste};
            let credential = subject.strip_prefix("credential:").map(str::to_owned);
            match (credential, rest.iter().map(String::as_str).collect::<Vec<_>>().as_slice()) {
                (None, ["decide"]) => decide(&state, &sid, &s, &form).await,
                (None, ["oauth", key, "paste"]) => {
                    paste(&state, &sid, &s, Dest::Slot { proposal: s.subject.clone(), key: (*key).to_owned() }, &form)
                        .await
                }
                (None, ["oauth", key, "connect"]) => {
                    connect(&state, &sid, &s, Dest::Slot { proposal: s.subject.clone(), key: (*key).to_owned() }, &form)
                        .await
                }
                (Some(c), ["paste"]) => paste(&state, &sid, &s, Dest::Credential(c), &form).await,
                (Some(c), ["connect"]) => connect(&state, &sid, &s, Dest::Credential(c), &form).await,
                _ => not_found(),
            }
        }
        (Method::GET, ["oauth", "callback"]) => super::oauth::callback(&state, req.uri().query().unwrap_or("")).await,
        _ => not_found(),
    }
}

fn not_found() -> Page {
    html(StatusCode::NOT_FOUND, pages::message("Not found", "There is no such page here.", None, None))
}

fn forbidden(why: &str) -> Page {
    html(StatusCode::FORBIDDEN, pages::message("Refused", why, None, None))
}

fn needs_link(subject: &str) -> Page {
    let clean =
        |t: &str| t.chars().filter(|c| c.is_ascii_alphanumeric() || "_-./@".contains(*c)).take(64).collect::<String>();
    let hint = match subject.strip_prefix("credential:") {
        Some(c) => format!(
            "Run `aivault oauth connect {} --browser` in a terminal on this machine and open the link it prints.",
            clean(c)
        ),
        None => format!(
            "Run `aivault proposal link {}` in a terminal on this machine and open the link it prints.",
            clean(subject)
        ),
    };
    html(
        StatusCode::FORBIDDEN,
        pages::message(
            "A review link is needed",
            "Proposals open only through a one-time review link.",
            Some(&hint),
            None,
        ),
    )
}

/// Fixed notices by name (the query never reflects free text into the page).
fn notice_text(query: &str) -> Option<&'static str> {
    match query {
        "notice=connected" => Some("Connected: the tokens will be stored when you allow."),
        "notice=pasted" => Some("Tokens checked: they will be stored when you allow."),
        "notice=stored" => Some("Tokens checked and stored: the proxy uses them from its next request."),
        _ => None,
    }
}

/// Runs a vault operation off the async threads.
pub async fn blocking<T: Send + 'static>(
    state: &Arc<ConsoleState>,
    f: impl FnOnce(&Vault) -> crate::Result<T> + Send + 'static,
) -> crate::Result<T> {
    let cfg = state.config.clone();
    tokio::task::spawn_blocking(move || f(&Vault::open(&cfg)?))
        .await
        .map_err(|_| Error::Internal("the console's worker stopped".into()))?
}

fn cookie_of<B>(req: &Request<B>) -> Option<String> {
    req.headers().get_all(http::header::COOKIE).iter().filter_map(|v| v.to_str().ok()).find_map(|v| {
        v.split(';').find_map(|c| c.trim().strip_prefix(COOKIE).and_then(|r| r.strip_prefix('=')).map(str::to_owned))
    })
}

fn session_of<B>(state: &ConsoleState, req: &Request<B>, proposal: &str) -> Option<(String, Session)> {
    let sid = cookie_of(req)?;
    let s = state.sessions.get(&sid, proposal)?;
    Some((sid, s))
}

/// A POST must come from this console's own pages (Origin, when the browser sends one).
fn same_origin<B>(state: &ConsoleState, req: &Request<B>) -> bool {
    match req.headers().get(http::header::ORIGIN).and_then(|o| o.to_str().ok()) {
        None => true,
        Some(origin) => state.hosts.iter().any(|h| origin.eq_ignore_ascii_case(&format!("http://{h}"))),
    }
}

async fn read_form(req: Request<Incoming>) -> Result<Form, Page> {
    let too_big = || respond(StatusCode::PAYLOAD_TOO_LARGE, "text/plain; charset=utf-8", "form too large\n");
    let body = match http_body_util::Limited::new(req.into_body(), MAX_FORM).collect().await {
        Ok(b) => Zeroizing::new(b.to_bytes().to_vec()),
        Err(_) => return Err(too_big()),
    };
    let text = String::from_utf8_lossy(&body);
    let fields = text
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (crate::percent::decode_form(k), Zeroizing::new(crate::percent::decode_form(v)))
        })
        .collect();
    Ok(Form(fields))
}

async fn review(state: &Arc<ConsoleState>, token: &str) -> Page {
    let token = token.to_owned();
    match blocking(state, move |v| v.review_redeem(&token)).await {
        Ok(subject) => match state.sessions.open(&subject) {
            Ok(sid) => {
                let target = match subject.strip_prefix("credential:") {
                    Some(c) => format!("/credentials/{c}/connect"),
                    None => format!("/proposals/{subject}"),
                };
                // A same-site hop (meta refresh, no script) so the Strict cookie goes along even
                // when the link was clicked on another site.
                let mut r = html(StatusCode::OK, pages::opening(&target));
                let cookie = format!(
                    "{COOKIE}={sid}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}",
                    super::session::SESSION_TTL.as_secs()
                );
                if let Ok(v) = http::HeaderValue::from_str(&cookie) {
                    r.headers_mut().insert(http::header::SET_COOKIE, v);
                }
                r
            }
            Err(_) => respond(StatusCode::INTERNAL_SERVER_ERROR, "text/plain; charset=utf-8", "no randomness\n"),
        },
        Err(e) => html(StatusCode::FORBIDDEN, pages::message("This link cannot be used", &e.to_string(), None, None)),
    }
}

/// Renders the proposal page for a session.
pub async fn page(
    state: &Arc<ConsoleState>,
    sid: &str,
    s: &Session,
    notice: Option<&str>,
    error: Option<&str>,
    status: StatusCode,
) -> Page {
    let id = s.subject.clone();
    let first = state.sessions.first_view(sid);
    let loaded = blocking(state, move |v| {
        if first {
            v.proposal_viewed(&id)?;
        }
        let view = v.proposal_show(&id)?;
        let mut agent_values = Vec::new();
        for slot in view.credentials.iter().filter(|c| c.slot.agent_value) {
            if let Some(value) = v.proposal_agent_value(&id, &slot.slot.key)? {
                agent_values.push((slot.slot.key.clone(), String::from_utf8_lossy(value.expose()).into_owned()));
            }
        }
        Ok((view, agent_values))
    })
    .await;
    match loaded {
        Ok((view, agent_values)) => {
            let agent_values = Zeroizing::new(agent_values);
            let page = pages::ProposalPage {
                view: &view,
                csrf: s.csrf.expose(),
                agent_values: &agent_values,
                presets: &state.presets,
                notice,
                error,
            };
            html(status, pages::proposal(&page))
        }
        Err(e) => html(StatusCode::NOT_FOUND, pages::message("Cannot show this proposal", &e.to_string(), None, None)),
    }
}

async fn decide(state: &Arc<ConsoleState>, sid: &str, s: &Session, form: &Form) -> Page {
    let id = s.subject.clone();
    let back = format!("/proposals/{id}");
    match form.get("decision") {
        Some("allow") => {
            let values: Vec<(String, SecretBytes)> = form
                .iter()
                .filter_map(|(k, v)| {
                    let key = k.strip_prefix("value:")?;
                    (!v.is_empty()).then(|| (key.to_owned(), SecretBytes::new(v.as_bytes().to_vec())))
                })
                .collect();
            let wanted = id.clone();
            match blocking(state, move |v| v.proposal_approve(&wanted, &values, "console")).await {
                Ok(done) => {
                    state.sessions.close(sid);
                    let mut text = format!("Approved. {} secret(s) stored", done.secrets_set.len());
                    if !done.secrets_deleted.is_empty() {
                        text.push_str(&format!(", {} deleted", done.secrets_deleted.len()));
                    }
                    if !done.capabilities_created.is_empty() {
                        text.push_str(&format!(", capabilities {} created", done.capabilities_created.join(", ")));
                    }
                    text.push_str(". The agent's next request uses them.");
                    let hint = (!done.warnings.is_empty()).then(|| done.warnings.join(" "));
                    html(StatusCode::OK, pages::message("Allowed", &text, hint.as_deref(), None))
                }
                Err(e @ (Error::Invalid(_) | Error::Conflict(_) | Error::Denied { .. } | Error::NotFound { .. })) => {
                    let why = e.to_string();
                    page(state, sid, s, None, Some(&why), StatusCode::UNPROCESSABLE_ENTITY).await
                }
                Err(e) => html(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    pages::message("Not approved", &e.to_string(), Some("Nothing was changed."), Some(&back)),
                ),
            }
        }
        Some("deny") => {
            let reason = form.text("reason").map(|r| r.chars().take(200).collect::<String>());
            let wanted = id.clone();
            match blocking(state, move |v| v.proposal_reject(&wanted, reason, "console")).await {
                Ok(_) => {
                    state.sessions.close(sid);
                    html(
                        StatusCode::OK,
                        pages::message(
                            "Denied",
                            "Nothing was stored. The agent sees the proposal as rejected.",
                            None,
                            None,
                        ),
                    )
                }
                Err(e) => page(state, sid, s, None, Some(&e.to_string()), StatusCode::UNPROCESSABLE_ENTITY).await,
            }
        }
        _ => html(StatusCode::BAD_REQUEST, pages::message("Refused", "Choose Allow or Deny.", None, Some(&back))),
    }
}
