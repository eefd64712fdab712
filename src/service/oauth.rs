//! OAuth2 credentials in the vault: what `oauth connect`/`paste` and the proxy's token manager
//! need to read, and how new tokens are stored (sealed, as a new version of the secret).

use super::{Vault, record, seal_secret, secret_by_id_w};
use crate::audit::AuditEvent;
use crate::auth::{AuthConfig, ClientAuth, GrantType, Material};
use crate::error::{Error, Result};
use crate::secret::SecretString;
use crate::store::{CredentialRow, SecretRow};
use crate::time::now_ms;

/// An OAuth2 credential's settings and the client identity stored with it.
pub struct OAuthTarget {
    pub credential_id: String,
    pub secret_id: String,
    pub grant: GrantType,
    pub token_endpoint: String,
    pub authorization_endpoint: Option<String>,
    pub scopes: Vec<String>,
    pub client_auth: ClientAuth,
    pub client_id: Option<SecretString>,
    pub client_secret: Option<SecretString>,
    /// The refresh token stored now (kept when only an access token is pasted).
    pub refresh_token: Option<SecretString>,
}

/// A token document's current state (see `Vault::oauth_stored_tokens`).
pub struct StoredTokens {
    pub version: u32,
    pub access_token: Option<SecretString>,
    pub expires_at: Option<u64>,
    pub refresh_token: Option<SecretString>,
}

/// Serialises refreshes of one OAuth2 secret across every proxy on a PostgreSQL store (`None` on a
/// redb file). Blocks: call it off the async threads, and drop the lock there too.
pub fn fleet_refresh_lock(cfg: &crate::config::Config, secret_id: &str) -> Result<Option<crate::store::NamedLock>> {
    Ok(crate::store::lock_named(&cfg.store, cfg.lock_wait, &format!("aivault:oauth-refresh:{secret_id}"))?)
}

impl Vault {
    /// Reads an OAuth2 credential's configuration and current client identity.
    pub fn oauth_target(&self, credential_id: &str) -> Result<OAuthTarget> {
        let (cred, secret) = self.store.read(|tx| {
            let cred = tx.get::<CredentialRow>(credential_id)?;
            let secret = match &cred {
                Some(c) => match c.secrets.values().next() {
                    Some(id) => tx.get::<SecretRow>(id)?,
                    None => None,
                },
                None => None,
            };
            Ok((cred, secret))
        })?;
        let cred = cred
            .ok_or_else(|| Error::not_found("credential", credential_id, "list them with `aivault credential list`"))?;
        let AuthConfig::Oauth2 { grant_type, token_endpoint, scopes, client_auth, authorization_endpoint } = &cred.auth
        else {
            return Err(Error::invalid(format!(
                "credential {credential_id} uses {} auth, not oauth2",
                cred.auth.kind()
            )));
        };
        if cred.secrets.len() != 1 {
            return Err(Error::invalid(format!(
                "credential {credential_id} must read exactly one secret to hold OAuth tokens"
            )));
        }
        let secret = secret.ok_or_else(|| Error::Denied {
            code: crate::refusal::ErrorCode::CredentialUnavailable,
            message: format!("credential {credential_id} references a secret that no longer exists"),
        })?;
        let mut material = Material::default();
        material.add("secret", &self.open_secret(&secret)?);
        let field = |n: &str| material.field(n).filter(|v| !v.expose().is_empty()).cloned();
        let authorization_endpoint = authorization_endpoint.clone().or_else(|| {
            self.registry.provider(&cred.provider).and_then(|p| match &p.def.auth {
                AuthConfig::Oauth2 { authorization_endpoint, .. } => authorization_endpoint.clone(),
                _ => None,
            })
        });
        Ok(OAuthTarget {
            credential_id: cred.id.clone(),
            secret_id: secret.id.clone(),
            grant: *grant_type,
            token_endpoint: token_endpoint.clone(),
            authorization_endpoint,
            scopes: scopes.clone(),
            client_auth: *client_auth,
            client_id: field("client_id"),
            client_secret: field("client_secret"),
            refresh_token: field("refresh_token"),
        })
    }

    /// The token document of an OAuth2 secret as stored now (another proxy of the fleet may
    /// have refreshed it): version, access token, expiry, refresh token.
    pub fn oauth_stored_tokens(&self, secret_id: &str) -> Result<StoredTokens> {
        let row = self
            .store
            .read(|tx| tx.get::<SecretRow>(secret_id))?
            .ok_or_else(|| Error::not_found("secret", secret_id, "the OAuth credential's secret was deleted"))?;
        let mut material = Material::default();
        material.add("secret", &self.open_secret(&row)?);
        let field = |n: &str| material.field(n).filter(|v| !v.expose().is_empty()).cloned();
        Ok(StoredTokens {
            version: row.version,
            access_token: field("access_token"),
            expires_at: material.field("expires_at").and_then(|v| v.expose().parse().ok()),
            refresh_token: field("refresh_token"),
        })
    }

    /// Mints a one-time link to the console's Connect page for an OAuth2 credential.
    pub fn oauth_connect_link(&self, credential_id: &str) -> Result<String> {
        self.oauth_target(credential_id)?;
        let token = crate::crypto::random_token("")?;
        self.store
            .write(|tx| super::proposals::mint_link(tx, &token, format!("credential:{credential_id}"), u64::MAX))?;
        Ok(token)
    }

    /// Stores a new token document for an OAuth2 secret (fresh data key, new version) and returns
    /// the version. `why` goes into the audit record.
    pub fn oauth_store_tokens(&self, secret_id: &str, document: &SecretString, why: &str) -> Result<u32> {
        self.store.write(|tx| {
            let mut row = secret_by_id_w(tx, secret_id)?;
            row.version += 1;
            row.sealed = seal_secret(
                &self.key,
                &row.id,
                row.version,
                &row.scope,
                row.pinned_provider.as_deref(),
                document.expose().as_bytes(),
            )?;
            row.updated_ms = now_ms();
            tx.put(&row.id, &row)?;
            record(tx, AuditEvent::new("oauth.tokens").secret(&row.id).detail(format!("{} ({why})", row.name)))?;
            Ok(row.version)
        })
    }
}
