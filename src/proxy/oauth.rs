//! OAuth2 access tokens for the proxy: refreshed when missing or within five minutes of expiry,
//! exactly one refresh per credential at a time, a rotated refresh token stored (sealed) before
//! the new access token is used, and a forced refresh when the upstream answers 401.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Request};
use http_body_util::BodyExt as _;

use super::respond;
use super::upstream::Upstream;
use crate::auth::oauth2::{self, Client, Grant, OAuthError, TokenSet};
use crate::auth::{ClientAuth, GrantType, Material};
use crate::config::Config;
use crate::secret::SecretString;
use crate::service::Vault;

/// Refresh when the token expires within this many seconds.
pub const REFRESH_SKEW_SECS: u64 = 300;

/// What one request needs to obtain a token; secrets zeroize on drop.
pub struct OAuthJob {
    pub credential_id: String,
    pub secret_id: String,
    /// The stored secret's version when the snapshot was taken.
    pub version: u32,
    pub grant: GrantType,
    pub token_endpoint: String,
    pub scopes: Vec<String>,
    pub client_auth: ClientAuth,
    pub client_id: SecretString,
    pub client_secret: Option<SecretString>,
    pub refresh_token: Option<SecretString>,
    pub access_token: Option<SecretString>,
    pub expires_at: Option<u64>,
}

impl std::fmt::Debug for OAuthJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthJob").field("credential_id", &self.credential_id).finish_non_exhaustive()
    }
}

impl OAuthJob {
    /// Reads the token document out of a credential's decrypted material.
    pub fn from_material(
        credential_id: &str,
        secrets: &[(String, u32)],
        auth: &crate::auth::AuthConfig,
        material: &Material,
    ) -> Result<OAuthJob, OAuthError> {
        let crate::auth::AuthConfig::Oauth2 { grant_type, token_endpoint, scopes, client_auth, .. } = auth else {
            return Err(OAuthError::new("not_oauth", "credential is not OAuth2"));
        };
        let (secret_id, version) =
            secrets.first().cloned().ok_or_else(|| OAuthError::new("no_secret", "credential has no secret"))?;
        let field = |n: &str| material.field(n).filter(|v| !v.expose().is_empty()).cloned();
        Ok(OAuthJob {
            credential_id: credential_id.to_owned(),
            secret_id,
            version,
            grant: *grant_type,
            token_endpoint: token_endpoint.clone(),
            scopes: scopes.clone(),
            client_auth: *client_auth,
            client_id: field("client_id")
                .ok_or_else(|| OAuthError::new("no_client_id", "the credential's secret holds no client_id"))?,
            client_secret: field("client_secret"),
            refresh_token: field("refresh_token"),
            access_token: field("access_token"),
            expires_at: material.field("expires_at").and_then(|v| v.expose().parse().ok()),
        })
    }
}

#[derive(Default)]
struct Slot {
    version: u32,
    access: Option<SecretString>,
    expires_at: Option<u64>,
    refresh: Option<SecretString>,
}

/// Token state per credential, shared by every request of a proxy.
pub struct TokenManager {
    slots: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<Slot>>>>,
    /// Refreshes this process made (for `/metrics`).
    pub refreshes: std::sync::atomic::AtomicU64,
    /// Where refreshed tokens are persisted; `None` keeps them in memory only.
    persist: Option<Config>,
}

impl TokenManager {
    pub fn new(persist: Option<Config>) -> TokenManager {
        TokenManager { slots: std::sync::Mutex::new(HashMap::new()), refreshes: Default::default(), persist }
    }

    fn slot(&self, credential: &str) -> Arc<tokio::sync::Mutex<Slot>> {
        let mut slots = match self.slots.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        slots.entry(credential.to_owned()).or_default().clone()
    }

    /// A usable access token. `stale` is a token the upstream just rejected: it is refreshed
    /// unless another request already replaced it.
    pub async fn token(
        &self,
        upstream: &Upstream,
        job: &OAuthJob,
        stale: Option<&str>,
    ) -> Result<SecretString, OAuthError> {
        let slot = self.slot(&job.credential_id);
        let mut s = slot.lock().await;
        if s.version < job.version || s.version == 0 {
            *s = Slot {
                version: job.version,
                access: job.access_token.clone(),
                expires_at: job.expires_at,
                refresh: job.refresh_token.clone(),
            };
        }
        let now = now_secs();
        let fresh = s.access.is_some() && s.expires_at.is_none_or(|e| e > now + REFRESH_SKEW_SECS);
        let rejected = stale.is_some_and(|st| s.access.as_ref().is_some_and(|a| a.expose() == st));
        if let (true, false, Some(access)) = (fresh, rejected, &s.access) {
            return Ok(access.clone());
        }
        // Fleet mode: one refresh per credential across every proxy. Under the lock, a token
        // another proxy stored meanwhile is adopted instead of refreshing again.
        let fleet_lock = match &self.persist {
            Some(cfg) if cfg.store.is_postgres() => {
                let (cfg, secret_id) = (cfg.clone(), job.secret_id.clone());
                let taken = tokio::task::spawn_blocking(move || {
                    let lock = crate::service::oauth::fleet_refresh_lock(&cfg, &secret_id)?;
                    let stored = Vault::open(&cfg)?.oauth_stored_tokens(&secret_id)?;
                    Ok::<_, crate::Error>((lock, stored))
                })
                .await;
                match taken {
                    Ok(Ok((lock, stored))) => {
                        if stored.version > s.version {
                            *s = Slot {
                                version: stored.version,
                                access: stored.access_token,
                                expires_at: stored.expires_at,
                                refresh: stored.refresh_token,
                            };
                            let fresh = s.access.is_some() && s.expires_at.is_none_or(|e| e > now + REFRESH_SKEW_SECS);
                            let rejected = stale.is_some_and(|st| s.access.as_ref().is_some_and(|a| a.expose() == st));
                            if let (true, false, Some(access)) = (fresh, rejected, s.access.clone()) {
                                release(lock);
                                return Ok(access);
                            }
                        }
                        lock
                    }
                    Ok(Err(e)) => {
                        return Err(OAuthError::new(
                            "temporarily_unavailable",
                            format!("cannot coordinate the refresh: {e}"),
                        ));
                    }
                    Err(_) => return Err(OAuthError::new("temporarily_unavailable", "cannot coordinate the refresh")),
                }
            }
            _ => None,
        };
        let result = self.refresh_locked(upstream, job, &mut s).await;
        release(fleet_lock);
        result
    }

    /// Refreshes (the caller holds the local and, in a fleet, the fleet-wide lock) and persists.
    async fn refresh_locked(
        &self,
        upstream: &Upstream,
        job: &OAuthJob,
        s: &mut Slot,
    ) -> Result<SecretString, OAuthError> {
        let mut material = Material::default();
        if let Some(rt) = &s.refresh {
            material.add("refresh_token", &crate::secret::SecretBytes::from_str_copy(rt.expose()));
        }
        let grant = Grant::for_credential(job.grant, &material)?;
        let client = Client {
            id: job.client_id.expose(),
            secret: job.client_secret.as_ref().map(SecretString::expose),
            auth: job.client_auth,
        };
        let set = exchange(upstream, &job.token_endpoint, &oauth2::token_request(&client, grant, &job.scopes)).await?;
        self.refreshes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let refresh = set.refresh_token.clone().or_else(|| s.refresh.clone());
        // Persist first: a rotated refresh token must never exist only in memory.
        let version = match &self.persist {
            Some(cfg) => {
                let doc = oauth2::stored_document(
                    job.client_id.expose(),
                    job.client_secret.as_ref().map(SecretString::expose),
                    refresh.as_ref().map(SecretString::expose),
                    Some(&set),
                );
                let (cfg, secret_id) = (cfg.clone(), job.secret_id.clone());
                let stored = tokio::task::spawn_blocking(move || {
                    Vault::open(&cfg).and_then(|v| v.oauth_store_tokens(&secret_id, &doc, "refreshed by the proxy"))
                })
                .await;
                match stored {
                    Ok(Ok(v)) => v,
                    Ok(Err(e)) => {
                        return Err(OAuthError::new(
                            "persist_failed",
                            format!("could not store the refreshed tokens: {e}"),
                        ));
                    }
                    Err(_) => return Err(OAuthError::new("persist_failed", "could not store the refreshed tokens")),
                }
            }
            None => s.version,
        };
        *s = Slot { version, access: Some(set.access_token.clone()), expires_at: set.expires_at, refresh };
        Ok(set.access_token)
    }
}

/// Lets go of a fleet lock on a blocking thread (closing its connection blocks).
fn release(lock: Option<crate::store::NamedLock>) {
    if let Some(lock) = lock {
        tokio::task::spawn_blocking(move || drop(lock));
    }
}

/// POSTs a token request and parses the answer.
pub async fn exchange(upstream: &Upstream, endpoint: &str, req: &oauth2::TokenRequest) -> Result<TokenSet, OAuthError> {
    let mut builder = Request::builder()
        .method("POST")
        .uri(endpoint)
        .header(http::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(http::header::ACCEPT, "application/json");
    if let Some(auth) = &req.authorization {
        let mut v = HeaderValue::from_str(auth.expose())
            .map_err(|_| OAuthError::new("invalid_client", "client credentials are not a valid header"))?;
        v.set_sensitive(true);
        builder = builder.header(http::header::AUTHORIZATION, v);
    }
    let request = builder
        .body(respond::full(Bytes::from(req.form.clone())))
        .map_err(|_| OAuthError::new("invalid_endpoint", format!("{endpoint} is not a valid URL")))?;
    let response = match upstream.send(request).await {
        Ok(r) => r,
        Err(super::upstream::UpstreamError::Timeout) => {
            return Err(OAuthError::new("temporarily_unavailable", "the token endpoint timed out"));
        }
        Err(super::upstream::UpstreamError::Blocked(m) | super::upstream::UpstreamError::Failed(m)) => {
            return Err(OAuthError::new("temporarily_unavailable", format!("cannot reach the token endpoint: {m}")));
        }
    };
    let status = response.status().as_u16();
    let body = match response.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return Err(OAuthError::new("temporarily_unavailable", "the token endpoint closed the connection")),
    };
    oauth2::parse_token_response(status, &body, now_secs())
}

pub fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}
