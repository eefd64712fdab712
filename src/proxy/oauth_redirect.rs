//! The loopback redirect of `aivault oauth connect`: Authorization Code + PKCE (RFC 8252 §7.3).
//!
//! `LoopbackFlow::start` listens on 127.0.0.1, mints `state` and the PKCE pair and builds the
//! authorization URL; `finish` serves redirects until one carries the matching `state` (others get
//! a page saying they were ignored, and the flow keeps waiting), then exchanges the code at the
//! credential's token endpoint through the proxy's upstream client. The CLI only prints and opens.

use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

use super::oauth::exchange;
use super::upstream::Upstream;
use crate::auth::oauth2::{self, Client, Grant, TokenSet};
use crate::error::{Error, Result};
use crate::refusal::ErrorCode;
use crate::secret::SecretString;

/// A started flow: listening, with its URL ready to open.
pub struct LoopbackFlow {
    listener: TcpListener,
    redirect_uri: String,
    state: String,
    verifier: SecretString,
    url: String,
}

impl LoopbackFlow {
    /// Listens on `127.0.0.1:port` (0: any free port) and prepares the authorization URL.
    pub async fn start(port: u16, auth_url: &str, client_id: &str, scopes: &[String]) -> Result<LoopbackFlow> {
        let listener = TcpListener::bind(("127.0.0.1", port))
            .await
            .map_err(|e| Error::Network(format!("cannot listen on 127.0.0.1:{port} for the redirect: {e}")))?;
        let port = listener.local_addr().map_err(Error::io("cannot read the redirect listener's address"))?.port();
        let redirect_uri = format!("http://127.0.0.1:{port}/callback");
        let state = crate::crypto::random_token("")?;
        let (verifier, challenge) = oauth2::pkce_pair()?;
        let url = oauth2::authorization_url(auth_url, client_id, &redirect_uri, scopes, &state, &challenge);
        Ok(LoopbackFlow { listener, redirect_uri, state, verifier, url })
    }

    /// The URL to open in a browser.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn redirect_uri(&self) -> &str {
        &self.redirect_uri
    }

    /// Waits (at most `timeout`) for the redirect and exchanges its code. `ignored` is called for
    /// each redirect whose `state` does not match.
    pub async fn finish(
        self,
        upstream: &Upstream,
        token_endpoint: &str,
        client: &Client<'_>,
        scopes: &[String],
        timeout: Duration,
        ignored: &dyn Fn(),
    ) -> Result<TokenSet> {
        let code = tokio::time::timeout(timeout, wait_for_code(&self.listener, &self.state, ignored))
            .await
            .map_err(|_| Error::Network(format!("no redirect arrived within {} s", timeout.as_secs())))??;
        let grant =
            Grant::Code { code: code.expose(), redirect_uri: &self.redirect_uri, verifier: self.verifier.expose() };
        exchange(upstream, token_endpoint, &oauth2::token_request(client, grant, scopes)).await.map_err(|e| {
            Error::Denied { code: ErrorCode::OauthRefreshFailed, message: format!("the code exchange failed: {e}") }
        })
    }
}

/// Serves the loopback redirect until a request with a matching `state` arrives.
async fn wait_for_code(listener: &TcpListener, state: &str, ignored: &dyn Fn()) -> Result<SecretString> {
    loop {
        let (mut stream, _) =
            listener.accept().await.map_err(|e| Error::Network(format!("the redirect listener failed: {e}")))?;
        let mut buf = vec![0u8; 8192];
        let mut len = 0;
        while len < buf.len() && !buf[..len].windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut buf[len..]).await {
                Ok(0) | Err(_) => break,
                Ok(n) => len += n,
            }
        }
        let head = String::from_utf8_lossy(&buf[..len]).into_owned();
        let target = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
        let Some(query) = target.strip_prefix("/callback?") else {
            let _ = stream.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").await;
            continue;
        };
        let params: std::collections::HashMap<String, String> = query
            .split('&')
            .filter_map(|p| p.split_once('='))
            .map(|(k, v)| (k.to_owned(), crate::percent::decode_form(v)))
            .collect();
        let state_ok =
            params.get("state").is_some_and(|s| crate::crypto::constant_time_eq(s.as_bytes(), state.as_bytes()));
        let (status, page, result) = if !state_ok {
            // Not ours (a stale tab, a forged link): say so and keep waiting for the real one.
            ("400 Bad Request", "State mismatch: this redirect was not started by aivault; it was ignored.", None)
        } else if let Some(err) = params.get("error") {
            (
                "400 Bad Request",
                "Authorization was denied. You can close this tab.",
                Some(Err(Error::Denied {
                    code: ErrorCode::OauthRefreshFailed,
                    message: format!("the provider denied authorization: {err}"),
                })),
            )
        } else {
            match params.get("code") {
                Some(code) => (
                    "200 OK",
                    "aivault is connected. You can close this tab.",
                    Some(Ok(SecretString::new(code.clone()))),
                ),
                None => (
                    "400 Bad Request",
                    "No code in the redirect.",
                    Some(Err(Error::invalid("the redirect carried no code"))),
                ),
            }
        };
        let html = format!("<!doctype html><title>aivault</title><p>{page}</p>");
        let reply = format!(
            "HTTP/1.1 {status}\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{html}",
            html.len()
        );
        let _ = stream.write_all(reply.as_bytes()).await;
        match result {
            Some(r) => return r,
            None => ignored(),
        }
    }
}
