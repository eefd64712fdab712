//! OAuth slots on the approval page: Connect (Authorization Code + PKCE, redirected back to
//! `/oauth/callback`) and token paste (a refresh token is checked by refreshing it first). Either
//! way the token document is staged, sealed, on the proposal and stored only on Allow.

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

fn client_auth(form: &Form) -> (ClientAuth, &'static str) {
    match form.get("client_auth") {
        Some("form") => (ClientAuth::Form, "form"),
        _ => (ClientAuth::Basic, "basic"),
    }
}

fn https_url(form: &Form, name: &str) -> Option<String> {
    let v = form.text(name)?;
    let ok = v.len() <= 2048
        && (v.starts_with("https://") || v.starts_with("http://"))
        && v.parse::<http::Uri>().is_ok_and(|u| u.host().is_some());
    ok.then(|| v.to_owned())
}

fn scopes(form: &Form) -> Vec<String> {
    form.get("scopes").unwrap_or("").split_whitespace().take(50).map(|s| s.chars().take(200).collect()).collect()
}

/// Stages a token document and returns to the page with a notice.
async fn stage(
    state: &Arc<ConsoleState>,
    s: &Session,
    key: &str,
    doc: SecretString,
    endpoints: OAuthSlot,
    why: &'static str,
    notice: &str,
) -> Result<Page, String> {
    let (id, k) = (s.proposal.clone(), key.to_owned());
    blocking(state, move |v| v.proposal_stage_tokens(&id, &k, &doc, endpoints, why))
        .await
        .map_err(|e| e.to_string())?;
    Ok(see_other(&format!("/proposals/{}?notice={notice}", s.proposal)))
}

pub async fn paste(state: &Arc<ConsoleState>, sid: &str, s: &Session, key: &str, form: &Form) -> Page {
    let outcome = async {
        let token_url = https_url(form, "token_url").ok_or("the token URL must be an http(s) URL")?;
        let client_id = form.text("client_id").ok_or("the client ID is required")?.to_owned();
        let client_secret = form.text("client_secret").map(str::to_owned);
        let (auth, auth_name) = client_auth(form);
        let scopes = scopes(form);
        let (tokens, refresh) = match form.text("refresh_token") {
            Some(rt) => {
                let client = Client { id: &client_id, secret: client_secret.as_deref(), auth };
                let req = oauth2::token_request(&client, Grant::Refresh(rt), &scopes);
                let tokens = exchange(&state.upstream, &token_url, &req)
                    .await
                    .map_err(|e| format!("the provider rejected the refresh token ({}); nothing was kept", e.code))?;
                let refresh = tokens.refresh_token.clone().unwrap_or_else(|| SecretString::new(rt.to_owned()));
                (tokens, Some(refresh))
            }
            None => {
                let access = form
                    .text("access_token")
                    .ok_or("paste a refresh token (checked by refreshing) or an access token")?;
                let expires_at = form.text("expires_in").and_then(|s| s.parse::<u64>().ok()).map(|s| now_secs() + s);
                (TokenSet { access_token: SecretString::new(access.to_owned()), refresh_token: None, expires_at }, None)
            }
        };
        let doc = oauth2::stored_document(
            &client_id,
            client_secret.as_deref(),
            refresh.as_ref().map(SecretString::expose),
            Some(&tokens),
        );
        let endpoints =
            OAuthSlot { authorization_url: None, token_url, scopes, client_auth: Some(auth_name.to_owned()) };
        stage(state, s, key, doc, endpoints, "tokens pasted on the approval page", "pasted").await
    }
    .await;
    match outcome {
        Ok(p) => p,
        Err(why) => page(state, sid, s, None, Some(&why), StatusCode::UNPROCESSABLE_ENTITY).await,
    }
}

pub async fn connect(state: &Arc<ConsoleState>, sid: &str, s: &Session, key: &str, form: &Form) -> Page {
    let started = (|| {
        let authorization_url =
            https_url(form, "authorization_url").ok_or("the authorization URL must be an http(s) URL")?;
        let token_url = https_url(form, "token_url").ok_or("the token URL must be an http(s) URL")?;
        let client_id = form.text("client_id").ok_or("the client ID is required")?.to_owned();
        let (_, auth_name) = client_auth(form);
        let (verifier, challenge) = oauth2::pkce_pair().map_err(|e| e.to_string())?;
        let redirect_uri = format!("{}/oauth/callback", state.base_url);
        let scopes = scopes(form);
        let flow = Flow::new(
            s.proposal.clone(),
            key.to_owned(),
            SecretString::new(client_id.clone()),
            form.text("client_secret").map(|c| SecretString::new(c.to_owned())),
            authorization_url.clone(),
            token_url,
            scopes.clone(),
            auth_name.to_owned(),
            verifier,
            redirect_uri.clone(),
        );
        let state_param = state.sessions.start_flow(flow).map_err(|e| e.to_string())?;
        let url =
            oauth2::authorization_url(&authorization_url, &client_id, &redirect_uri, &scopes, &state_param, &challenge);
        let host = url.parse::<http::Uri>().ok().and_then(|u| u.host().map(str::to_owned)).unwrap_or_default();
        Ok::<_, String>((url, host))
    })();
    match started {
        Ok((url, host)) => html(StatusCode::OK, pages::continue_to(key, &url, &host)),
        Err(why) => page(state, sid, s, None, Some(&why), StatusCode::UNPROCESSABLE_ENTITY).await,
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
    let back = format!("/proposals/{}", flow.proposal);
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
    let tokens = match exchange(&state.upstream, &flow.token_url, &oauth2::token_request(&client, grant, &flow.scopes))
        .await
    {
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
    let (id, key) = (flow.proposal.clone(), flow.key.clone());
    let staged =
        blocking(state, move |v| v.proposal_stage_tokens(&id, &key, &doc, endpoints, "connected with PKCE")).await;
    match staged {
        // Cross-site redirects carry no Strict cookie: a link back is a same-site navigation.
        Ok(()) => html(
            StatusCode::OK,
            pages::message(
                "Connected",
                &format!("Tokens for {} are ready. Go back to allow the proposal.", flow.key),
                None,
                Some(&back),
            ),
        ),
        Err(e) => html(StatusCode::CONFLICT, pages::message("Not connected", &e.to_string(), None, Some(&back))),
    }
}
