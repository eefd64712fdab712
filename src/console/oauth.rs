//! OAuth in the console: Connect (Authorization Code + PKCE, redirected back to `/oauth/callback`)
//! and token paste (a refresh token is checked by refreshing it first), for a proposal's OAuth slot
//! (the token document is staged, sealed, and stored only on Allow) or for an existing oauth2
//! credential (`aivault oauth connect CREDENTIAL --browser`: stored at once, as the CLI does).

use std::sync::Arc;

use http::StatusCode;

use super::routes::{Form, blocking, page};
use super::session::{Flow, Session};
use super::{ConsoleState, Page, html, pages, see_other};
use crate::auth::ClientAuth;
use crate::auth::oauth2::{self, Client, Grant, TokenSet};
use crate::proposal::OAuthSlot;
use crate::proxy::oauth::{exchange, now_secs};
use crate::secret::SecretString;
use crate::{Error, Result};

/// Where connected or pasted tokens go.
pub enum Dest {
    /// A proposal's OAuth slot (staged until Allow).
    Slot { proposal: String, key: String },
    /// An existing oauth2 credential (stored now).
    Credential(String),
}

impl Dest {
    fn of_subject(subject: &str, key: &str) -> Dest {
        match subject.strip_prefix("credential:") {
            Some(c) => Dest::Credential(c.to_owned()),
            None => Dest::Slot { proposal: subject.to_owned(), key: key.to_owned() },
        }
    }

    fn page_url(&self) -> String {
        match self {
            Dest::Slot { proposal, .. } => format!("/proposals/{proposal}"),
            Dest::Credential(c) => format!("/credentials/{c}/connect"),
        }
    }

    fn name(&self) -> &str {
        match self {
            Dest::Slot { key, .. } => key,
            Dest::Credential(c) => c,
        }
    }
}

/// What an existing credential fixes (its token endpoint) and what it already holds.
struct Stored {
    token_url: String,
    client_id: Option<SecretString>,
    client_secret: Option<SecretString>,
    scopes: Vec<String>,
    client_auth: ClientAuth,
}

async fn stored(state: &Arc<ConsoleState>, credential: &str) -> Result<Stored> {
    let id = credential.to_owned();
    let t = blocking(state, move |v| v.oauth_target(&id)).await?;
    Ok(Stored {
        token_url: t.token_endpoint,
        client_id: t.client_id,
        client_secret: t.client_secret,
        scopes: t.scopes,
        client_auth: t.client_auth,
    })
}

fn client_auth(form: &Form) -> (ClientAuth, &'static str) {
    match form.get("client_auth") {
        Some("form") => (ClientAuth::Form, "form"),
        _ => (ClientAuth::Basic, "basic"),
    }
}

fn auth_name(a: ClientAuth) -> &'static str {
    match a {
        ClientAuth::Basic => "basic",
        ClientAuth::Form => "form",
    }
}

fn http_url(form: &Form, name: &str) -> Option<String> {
    form.text(name).filter(|v| crate::proposal::is_http_url(v)).map(str::to_owned)
}

fn scopes(form: &Form) -> Vec<String> {
    form.get("scopes").unwrap_or("").split_whitespace().take(50).map(|s| s.chars().take(200).collect()).collect()
}

/// The client and endpoints a form names, an existing credential's where it fixes them.
struct Chosen {
    token_url: String,
    client_id: SecretString,
    client_secret: Option<SecretString>,
    scopes: Vec<String>,
    auth: ClientAuth,
}

async fn chosen(state: &Arc<ConsoleState>, dest: &Dest, form: &Form) -> Result<Chosen> {
    let typed_secret = form.text("client_secret").map(|c| SecretString::new(c.to_owned()));
    let typed_id = form.text("client_id").map(|c| SecretString::new(c.to_owned()));
    match dest {
        Dest::Slot { .. } => Ok(Chosen {
            token_url: http_url(form, "token_url")
                .ok_or_else(|| Error::invalid("the token URL must be an http(s) URL"))?,
            client_id: typed_id.ok_or_else(|| Error::invalid("the client ID is required"))?,
            client_secret: typed_secret,
            scopes: scopes(form),
            auth: client_auth(form).0,
        }),
        Dest::Credential(c) => {
            let s = stored(state, c).await?;
            let typed_scopes = scopes(form);
            Ok(Chosen {
                // The credential refreshes at its own endpoint; the form cannot move it.
                token_url: s.token_url,
                client_id: typed_id.or(s.client_id).ok_or_else(|| Error::invalid("the client ID is required"))?,
                client_secret: typed_secret.or(s.client_secret),
                scopes: if typed_scopes.is_empty() { s.scopes } else { typed_scopes },
                auth: if form.get("client_auth").is_some() { client_auth(form).0 } else { s.client_auth },
            })
        }
    }
}

/// Stores (credential) or stages (slot) a token document; returns where to go next.
async fn keep(
    state: &Arc<ConsoleState>,
    dest: &Dest,
    doc: SecretString,
    endpoints: OAuthSlot,
    why: &'static str,
) -> Result<&'static str> {
    match dest {
        Dest::Slot { proposal, key } => {
            let (id, k) = (proposal.clone(), key.clone());
            blocking(state, move |v| v.proposal_stage_tokens(&id, &k, &doc, endpoints, why)).await?;
            Ok("staged")
        }
        Dest::Credential(c) => {
            let id = c.clone();
            blocking(state, move |v| {
                let target = v.oauth_target(&id)?;
                v.oauth_store_tokens(&target.secret_id, &doc, why)
            })
            .await?;
            Ok("stored")
        }
    }
}

/// Re-renders the page the form came from with an error.
async fn again(state: &Arc<ConsoleState>, sid: &str, s: &Session, why: &str) -> Page {
    if s.subject.starts_with("credential:") {
        credential_page(state, sid, s, None, Some(why), StatusCode::UNPROCESSABLE_ENTITY).await
    } else {
        page(state, sid, s, None, Some(why), StatusCode::UNPROCESSABLE_ENTITY).await
    }
}

pub async fn paste(state: &Arc<ConsoleState>, sid: &str, s: &Session, dest: Dest, form: &Form) -> Page {
    let outcome = async {
        let c = chosen(state, &dest, form).await?;
        let (tokens, refresh) = match form.text("refresh_token") {
            Some(rt) => {
                let client = Client {
                    id: c.client_id.expose(),
                    secret: c.client_secret.as_ref().map(SecretString::expose),
                    auth: c.auth,
                };
                let req = oauth2::token_request(&client, Grant::Refresh(rt), &c.scopes);
                let tokens = exchange(&state.upstream, &c.token_url, &req).await.map_err(|e| {
                    Error::invalid(format!("the provider rejected the refresh token ({}); nothing was kept", e.code))
                })?;
                let refresh = tokens.refresh_token.clone().unwrap_or_else(|| SecretString::new(rt.to_owned()));
                (tokens, Some(refresh))
            }
            None => {
                let access = form.text("access_token").ok_or_else(|| {
                    Error::invalid("paste a refresh token (checked by refreshing) or an access token")
                })?;
                let expires_at = form.text("expires_in").and_then(|s| s.parse::<u64>().ok()).map(|s| now_secs() + s);
                (TokenSet { access_token: SecretString::new(access.to_owned()), refresh_token: None, expires_at }, None)
            }
        };
        let doc = oauth2::stored_document(
            c.client_id.expose(),
            c.client_secret.as_ref().map(SecretString::expose),
            refresh.as_ref().map(SecretString::expose),
            Some(&tokens),
        );
        let endpoints = OAuthSlot {
            authorization_url: None,
            token_url: c.token_url,
            scopes: c.scopes,
            client_auth: Some(auth_name(c.auth).to_owned()),
        };
        let done = keep(state, &dest, doc, endpoints, "tokens pasted in the console").await?;
        Ok::<_, Error>(see_other(&format!(
            "{}?notice={}",
            dest.page_url(),
            if done == "stored" { "stored" } else { "pasted" }
        )))
    }
    .await;
    match outcome {
        Ok(p) => p,
        Err(why) => again(state, sid, s, &why.to_string()).await,
    }
}

pub async fn connect(state: &Arc<ConsoleState>, sid: &str, s: &Session, dest: Dest, form: &Form) -> Page {
    let started = async {
        let authorization_url = http_url(form, "authorization_url")
            .ok_or_else(|| Error::invalid("the authorization URL must be an http(s) URL"))?;
        let c = chosen(state, &dest, form).await?;
        let (verifier, challenge) = oauth2::pkce_pair()?;
        let redirect_uri = format!("{}/oauth/callback", state.base_url);
        let (client_id, scopes) = (c.client_id.expose().to_owned(), c.scopes.clone());
        let flow = Flow::new(
            s.subject.clone(),
            dest.name().to_owned(),
            c.client_id,
            c.client_secret,
            authorization_url.clone(),
            c.token_url,
            c.scopes,
            auth_name(c.auth).to_owned(),
            verifier,
            redirect_uri.clone(),
        );
        let state_param = state.sessions.start_flow(flow)?;
        let url =
            oauth2::authorization_url(&authorization_url, &client_id, &redirect_uri, &scopes, &state_param, &challenge);
        let host = url.parse::<http::Uri>().ok().and_then(|u| u.host().map(str::to_owned)).unwrap_or_default();
        Ok::<_, Error>((url, host))
    }
    .await;
    match started {
        Ok((url, host)) => html(StatusCode::OK, pages::continue_to(dest.name(), &url, &host)),
        Err(why) => again(state, sid, s, &why.to_string()).await,
    }
}

/// The provider's redirect back. A `state` that starts no flow is ignored (a flow in progress
/// keeps waiting); a matching one is exchanged once.
pub async fn callback(state: &Arc<ConsoleState>, query: &str) -> Page {
    let params: Vec<(String, String)> = query
        .split('&')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.to_owned(), crate::percent::decode_form(v)))
        .collect();
    let get = |n: &str| params.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
    let Some(flow) = get("state").and_then(|st| state.sessions.take_flow(st)) else {
        return html(
            StatusCode::BAD_REQUEST,
            pages::message(
                "Not a Connect in progress",
                "This redirect does not belong to a Connect started here; it was ignored.",
                None,
                None,
            ),
        );
    };
    let dest = Dest::of_subject(&flow.subject, &flow.key);
    let back = dest.page_url();
    if let Some(err) = get("error") {
        let err: String = err.chars().filter(|c| c.is_ascii_graphic()).take(64).collect();
        return html(
            StatusCode::BAD_REQUEST,
            pages::message("Not connected", &format!("The provider said: {err}."), None, Some(&back)),
        );
    }
    let Some(code) = get("code") else {
        return html(
            StatusCode::BAD_REQUEST,
            pages::message("Not connected", "The redirect carried no code.", None, Some(&back)),
        );
    };
    let auth = if flow.client_auth == "form" { ClientAuth::Form } else { ClientAuth::Basic };
    let client =
        Client { id: flow.client_id.expose(), secret: flow.client_secret.as_ref().map(SecretString::expose), auth };
    let grant = Grant::Code { code, redirect_uri: &flow.redirect_uri, verifier: flow.verifier.expose() };
    let request = oauth2::token_request(&client, grant, &flow.scopes);
    let tokens = match exchange(&state.upstream, &flow.token_url, &request).await {
        Ok(t) => t,
        Err(e) => {
            return html(
                StatusCode::BAD_GATEWAY,
                pages::message("Not connected", &format!("The code exchange failed ({}).", e.code), None, Some(&back)),
            );
        }
    };
    let doc = oauth2::stored_document(
        flow.client_id.expose(),
        flow.client_secret.as_ref().map(SecretString::expose),
        tokens.refresh_token.as_ref().map(SecretString::expose),
        Some(&tokens),
    );
    let endpoints = OAuthSlot {
        authorization_url: Some(flow.authorization_url.clone()),
        token_url: flow.token_url.clone(),
        scopes: flow.scopes.clone(),
        client_auth: Some(flow.client_auth.clone()),
    };
    match keep(state, &dest, doc, endpoints, "connected with PKCE in the console").await {
        // Cross-site redirects carry no Strict cookie: a link back is a same-site navigation.
        Ok("stored") => html(
            StatusCode::OK,
            pages::message("Connected", &format!("Tokens for {} are stored.", dest.name()), None, Some(&back)),
        ),
        Ok(_) => html(
            StatusCode::OK,
            pages::message(
                "Connected",
                &format!("Tokens for {} are ready. Go back to allow the proposal.", dest.name()),
                None,
                Some(&back),
            ),
        ),
        Err(e) => html(StatusCode::CONFLICT, pages::message("Not connected", &e.to_string(), None, Some(&back))),
    }
}

/// The Connect page of an existing oauth2 credential.
pub async fn credential_page(
    state: &Arc<ConsoleState>,
    _sid: &str,
    s: &Session,
    notice: Option<&str>,
    error: Option<&str>,
    status: StatusCode,
) -> Page {
    let Some(id) = s.subject.strip_prefix("credential:") else {
        return html(StatusCode::NOT_FOUND, pages::message("Not found", "There is no such page here.", None, None));
    };
    let wanted = id.to_owned();
    match blocking(state, move |v| v.oauth_target(&wanted)).await {
        Ok(t) => {
            let view = pages::CredentialConnect {
                id,
                token_url: &t.token_endpoint,
                authorization_url: t.authorization_endpoint.as_deref().unwrap_or(""),
                scopes: &t.scopes.join(" "),
                client_auth: auth_name(t.client_auth),
                has_client: t.client_id.is_some(),
                has_refresh: t.refresh_token.is_some(),
                csrf: s.csrf.expose(),
                presets: &state.presets,
                notice,
                error,
            };
            html(status, pages::credential_connect(&view))
        }
        Err(e) => html(StatusCode::NOT_FOUND, pages::message("Cannot connect", &e.to_string(), None, None)),
    }
}
