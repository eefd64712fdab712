//! `aivault oauth connect | paste`: obtain or import an OAuth2 credential's tokens.

use std::time::Duration;

use clap::Subcommand;

use super::misc::UpstreamArgs;
use super::render::{self, Out};
use crate::auth::oauth2::{self, Client, Grant, TokenSet};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::proxy::oauth::{exchange, now_secs};
use crate::proxy::oauth_redirect::LoopbackFlow;
use crate::proxy::upstream::Upstream;
use crate::secret::SecretString;
use crate::service::Vault;
use crate::service::oauth::OAuthTarget;

#[derive(Subcommand, Debug)]
pub enum OAuthCmd {
    /// Authorize in the browser (Authorization Code + PKCE) and store the tokens.
    Connect {
        /// The oauth2 credential's id.
        credential: String,
        /// The OAuth app's client id (default: the one stored with the credential).
        #[arg(long)]
        client_id: Option<String>,
        /// The OAuth app's client secret (default: the one stored with the credential).
        #[arg(long)]
        client_secret: Option<String>,
        /// The provider's authorization endpoint (prefilled for registry providers).
        #[arg(long)]
        authorization_url: Option<String>,
        /// The token endpoint; must be the credential's own.
        #[arg(long)]
        token_url: Option<String>,
        /// OAuth scope (repeatable; default: the credential's).
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// Loopback port for the redirect (default: any free port).
        #[arg(long, default_value_t = 0)]
        port: u16,
        /// Print the URL without trying to open a browser.
        #[arg(long)]
        no_browser: bool,
        /// Connect in the console instead: print (and open) a one-time link to the credential's
        /// Connect page, with provider presets, on the running proxy's or `aivault console`'s pages.
        #[arg(long, conflicts_with_all = ["client_id", "client_secret", "authorization_url", "token_url", "port"])]
        browser: bool,
        /// Seconds to wait for the redirect.
        #[arg(long, default_value_t = 300)]
        timeout: u64,
        #[command(flatten)]
        net: UpstreamArgs,
    },
    /// Store tokens you already have; a refresh token is validated by refreshing it first.
    Paste {
        /// The oauth2 credential's id.
        credential: String,
        /// A refresh token (validated by refreshing it before it is stored).
        #[arg(long)]
        refresh_token: Option<String>,
        /// An access token (keeps the stored refresh token).
        #[arg(long)]
        access_token: Option<String>,
        /// Lifetime of --access-token in seconds.
        #[arg(long)]
        expires_in: Option<u64>,
        /// The OAuth app's client id (default: the one stored with the credential).
        #[arg(long)]
        client_id: Option<String>,
        /// The OAuth app's client secret (default: the one stored with the credential).
        #[arg(long)]
        client_secret: Option<String>,
        #[command(flatten)]
        net: UpstreamArgs,
    },
}

pub fn run(cfg: &Config, out: Out, cmd: OAuthCmd) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::io("cannot start the async runtime"))?;
    match cmd {
        OAuthCmd::Connect { credential, no_browser, browser: true, .. } => {
            let token = Vault::open(cfg)?.oauth_connect_link(&credential)?;
            let base = crate::service::proxies::console_url(&cfg.home).ok_or_else(|| {
                Error::invalid("no console is running: start `aivault proxy` (it serves one) or `aivault console`, then run this again")
            })?;
            let url = format!("{base}/review/{token}");
            if !no_browser {
                open_in_browser(&url);
            }
            let doc = serde_json::json!({ "credential": credential, "connect_url": url, "expires_in_s": crate::service::proposals::LINK_TTL_MS / 1000 });
            out.show(&doc, false, || {
                render::line(&format!("Open this link once to connect {credential} in the console (valid 30 min):"));
                render::line(&url);
            });
        }
        OAuthCmd::Connect {
            credential,
            client_id,
            client_secret,
            authorization_url,
            token_url,
            scopes,
            port,
            no_browser,
            timeout,
            net,
            browser: false,
        } => {
            let target = Vault::open(cfg)?.oauth_target(&credential)?;
            let client_id = client_id.map(SecretString::new).or(target.client_id.clone()).ok_or_else(|| {
                Error::invalid(format!("pass --client-id (the OAuth app's client id) for {credential}"))
            })?;
            let client_secret = client_secret.map(SecretString::new).or(target.client_secret.clone());
            let auth_url = authorization_url
                .or(target.authorization_endpoint.clone())
                .ok_or_else(|| Error::invalid("pass --authorization-url: the provider's authorization endpoint"))?;
            if let Some(t) = &token_url {
                if *t != target.token_endpoint {
                    return Err(Error::invalid(format!(
                        "credential {credential} refreshes at {}; --token-url must match it",
                        target.token_endpoint
                    )));
                }
            }
            let scopes = if scopes.is_empty() { target.scopes.clone() } else { scopes };
            let upstream = Upstream::new(net.resolve()?)?;
            let tokens = runtime.block_on(connect_flow(
                out,
                &target,
                &upstream,
                &client_id,
                client_secret.as_ref(),
                &auth_url,
                &scopes,
                port,
                !no_browser,
                Duration::from_secs(timeout),
            ))?;
            let refresh = tokens.refresh_token.clone();
            store(cfg, &target, &client_id, client_secret.as_ref(), refresh.as_ref(), &tokens, "connected with PKCE")?;
            report(out, &credential, &tokens, refresh.is_some());
        }
        OAuthCmd::Paste { credential, refresh_token, access_token, expires_in, client_id, client_secret, net } => {
            let target = Vault::open(cfg)?.oauth_target(&credential)?;
            let client_id = client_id.map(SecretString::new).or(target.client_id.clone()).ok_or_else(|| {
                Error::invalid(format!("pass --client-id (the OAuth app's client id) for {credential}"))
            })?;
            let client_secret = client_secret.map(SecretString::new).or(target.client_secret.clone());
            let (tokens, refresh) = match refresh_token.map(SecretString::new) {
                Some(rt) => {
                    let upstream = Upstream::new(net.resolve()?)?;
                    let client = Client {
                        id: client_id.expose(),
                        secret: client_secret.as_ref().map(SecretString::expose),
                        auth: target.client_auth,
                    };
                    let req = oauth2::token_request(&client, Grant::Refresh(rt.expose()), &target.scopes);
                    let tokens = runtime.block_on(exchange(&upstream, &target.token_endpoint, &req)).map_err(|e| {
                        Error::Denied {
                            code: crate::refusal::ErrorCode::OauthRefreshFailed,
                            message: format!("refusing to store the refresh token: the provider rejected it ({e})"),
                        }
                    })?;
                    let refresh = tokens.refresh_token.clone().unwrap_or(rt);
                    (tokens, Some(refresh))
                }
                None => {
                    let access = access_token.ok_or_else(|| {
                        Error::invalid("pass --refresh-token (validated by refreshing) or --access-token")
                    })?;
                    (
                        TokenSet {
                            access_token: SecretString::new(access),
                            refresh_token: None,
                            expires_at: expires_in.map(|s| now_secs() + s),
                        },
                        // Only the access token is replaced: the stored refresh token stays.
                        target.refresh_token.clone(),
                    )
                }
            };
            store(cfg, &target, &client_id, client_secret.as_ref(), refresh.as_ref(), &tokens, "tokens pasted")?;
            report(out, &credential, &tokens, refresh.is_some());
        }
    }
    Ok(())
}

fn store(
    cfg: &Config,
    target: &OAuthTarget,
    client_id: &SecretString,
    client_secret: Option<&SecretString>,
    refresh: Option<&SecretString>,
    tokens: &TokenSet,
    why: &str,
) -> Result<()> {
    let doc = oauth2::stored_document(
        client_id.expose(),
        client_secret.map(SecretString::expose),
        refresh.map(SecretString::expose),
        Some(tokens),
    );
    Vault::open(cfg)?.oauth_store_tokens(&target.secret_id, &doc, why)?;
    Ok(())
}

fn report(out: Out, credential: &str, tokens: &TokenSet, has_refresh: bool) {
    let expires_in = tokens.expires_at.map(|e| e.saturating_sub(now_secs()));
    let doc = serde_json::json!({ "credential": credential, "refresh_token_stored": has_refresh, "access_token_expires_in": expires_in });
    out.show(&doc, false, || {
        let life = expires_in.map(|s| format!("expires in {s} s")).unwrap_or_else(|| "no expiry given".into());
        let refresh = if has_refresh { "with a refresh token" } else { "without a refresh token" };
        render::line(&format!("OAuth tokens stored for {credential} ({refresh}; access token {life})"));
    });
}

#[allow(clippy::too_many_arguments)]
async fn connect_flow(
    out: Out,
    target: &OAuthTarget,
    upstream: &Upstream,
    client_id: &SecretString,
    client_secret: Option<&SecretString>,
    auth_url: &str,
    scopes: &[String],
    port: u16,
    open_browser: bool,
    timeout: Duration,
) -> Result<TokenSet> {
    let flow = LoopbackFlow::start(port, auth_url, client_id.expose(), scopes).await?;
    // With --json, stdout carries only the final document: the instructions go to stderr.
    let say = |text: &str| if out.json { render::eprint_line(text) } else { render::line(text) };
    say("Open this URL to authorize aivault:");
    say(flow.url());
    say(&format!("Waiting for the redirect on {} ...", flow.redirect_uri()));
    if open_browser {
        open_in_browser(flow.url());
    }
    let client =
        Client { id: client_id.expose(), secret: client_secret.map(SecretString::expose), auth: target.client_auth };
    let ignored = || render::eprint_line("warning: ignored a redirect whose state does not match; still waiting");
    flow.finish(upstream, &target.token_endpoint, &client, scopes, timeout, &ignored).await
}

/// Best effort: hands `url` to the desktop's opener.
fn open_in_browser(url: &str) {
    for opener in ["xdg-open", "open"] {
        let spawned = std::process::Command::new(opener)
            .arg(url)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
        if spawned.is_ok() {
            break;
        }
    }
}
