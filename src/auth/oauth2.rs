//! OAuth 2.0 pieces that need no network: token request forms, client authentication, token
//! response parsing, PKCE and authorization URLs, and the stored token document.
//!
//! The stored secret value of an OAuth2 credential is a JSON object with `client_id`,
//! `client_secret` (optional), `refresh_token` (optional), `access_token` (optional) and
//! `expires_at` (Unix seconds, optional).

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

use super::{ClientAuth, GrantType, Material};
use crate::percent::encode as encode_query_value;
use crate::secret::SecretString;

/// Tokens as a token endpoint returned them.
#[derive(Debug)]
pub struct TokenSet {
    pub access_token: SecretString,
    pub refresh_token: Option<SecretString>,
    /// Unix seconds; `None` when the server gave no `expires_in`.
    pub expires_at: Option<u64>,
}

/// A token endpoint said no. Carries the provider's OAuth error code, never a token.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("token endpoint answered {code}{}", description.as_ref().map(|d| format!(": {d}")).unwrap_or_default())]
pub struct OAuthError {
    pub code: String,
    pub description: Option<String>,
}

impl OAuthError {
    pub fn new(code: &str, description: impl Into<String>) -> OAuthError {
        OAuthError { code: code.to_owned(), description: Some(description.into()) }
    }
}

/// The client's identity at the token endpoint.
pub struct Client<'a> {
    pub id: &'a str,
    pub secret: Option<&'a str>,
    pub auth: ClientAuth,
}

/// A token request: form fields and, for HTTP Basic client authentication, the header value.
pub struct TokenRequest {
    pub form: String,
    pub authorization: Option<SecretString>,
}

impl std::fmt::Debug for TokenRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenRequest(<redacted>)")
    }
}

/// Builds a token request for `grant` (`refresh_token` needs `refresh_token`).
pub fn token_request(client: &Client<'_>, grant: Grant<'_>, scopes: &[String]) -> TokenRequest {
    let mut fields: Vec<(&str, String)> = Vec::new();
    match grant {
        Grant::Refresh(rt) => {
            fields.push(("grant_type", "refresh_token".into()));
            fields.push(("refresh_token", rt.to_owned()));
        }
        Grant::ClientCredentials => fields.push(("grant_type", "client_credentials".into())),
        Grant::Code { code, redirect_uri, verifier } => {
            fields.push(("grant_type", "authorization_code".into()));
            fields.push(("code", code.to_owned()));
            fields.push(("redirect_uri", redirect_uri.to_owned()));
            fields.push(("code_verifier", verifier.to_owned()));
        }
    }
    if !scopes.is_empty() && !matches!(grant, Grant::Code { .. }) {
        fields.push(("scope", scopes.join(" ")));
    }
    let basic = client.auth == ClientAuth::Basic && client.secret.is_some();
    let authorization = if basic {
        let pair = zeroize::Zeroizing::new(format!(
            "{}:{}",
            encode_query_value(client.id),
            encode_query_value(client.secret.unwrap_or_default())
        ));
        Some(SecretString::new(format!("Basic {}", STANDARD.encode(pair.as_bytes()))))
    } else {
        fields.push(("client_id", client.id.to_owned()));
        if let Some(s) = client.secret {
            fields.push(("client_secret", s.to_owned()));
        }
        None
    };
    let form = fields.iter().map(|(k, v)| format!("{k}={}", encode_query_value(v))).collect::<Vec<_>>().join("&");
    TokenRequest { form, authorization }
}

/// Which grant a token request uses.
#[derive(Clone, Copy)]
pub enum Grant<'a> {
    Refresh(&'a str),
    ClientCredentials,
    Code { code: &'a str, redirect_uri: &'a str, verifier: &'a str },
}

impl Grant<'_> {
    /// The grant a credential refreshes with.
    pub fn for_credential<'m>(grant: GrantType, material: &'m Material) -> Result<Grant<'m>, OAuthError> {
        match grant {
            GrantType::ClientCredentials => Ok(Grant::ClientCredentials),
            GrantType::RefreshToken => material
                .field("refresh_token")
                .filter(|t| !t.expose().is_empty())
                .map(|t| Grant::Refresh(t.expose()))
                .ok_or_else(|| {
                    OAuthError::new(
                        "no_refresh_token",
                        "the credential holds no refresh token; run `aivault oauth connect` or `aivault oauth paste`",
                    )
                }),
        }
    }
}

/// Parses a token endpoint response.
pub fn parse_token_response(status: u16, body: &[u8], now: u64) -> Result<TokenSet, OAuthError> {
    let json: serde_json::Value = serde_json::from_slice(body)
        .map_err(|_| OAuthError::new("invalid_response", format!("HTTP {status} with a body that is not JSON")))?;
    if !(200..300).contains(&status) || json.get("error").is_some() {
        return Err(OAuthError {
            code: json.get("error").and_then(|e| e.as_str()).unwrap_or("http_error").to_owned(),
            description: json
                .get("error_description")
                .and_then(|d| d.as_str())
                .map(str::to_owned)
                .or_else(|| Some(format!("HTTP {status}"))),
        });
    }
    let access = json.get("access_token").and_then(|v| v.as_str()).filter(|s| !s.is_empty());
    let access = access.ok_or_else(|| OAuthError::new("invalid_response", "no access_token in the response"))?;
    let expires_at =
        json.get("expires_in").and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok())).map(|s| now + s);
    Ok(TokenSet {
        access_token: SecretString::new(access.to_owned()),
        refresh_token: json.get("refresh_token").and_then(|v| v.as_str()).map(|s| SecretString::new(s.to_owned())),
        expires_at,
    })
}

/// The stored JSON document for an OAuth2 credential.
pub fn stored_document(
    client_id: &str,
    client_secret: Option<&str>,
    refresh_token: Option<&str>,
    tokens: Option<&TokenSet>,
) -> SecretString {
    let mut doc = serde_json::Map::new();
    doc.insert("client_id".into(), client_id.into());
    if let Some(s) = client_secret {
        doc.insert("client_secret".into(), s.into());
    }
    if let Some(rt) = refresh_token {
        doc.insert("refresh_token".into(), rt.into());
    }
    if let Some(t) = tokens {
        doc.insert("access_token".into(), t.access_token.expose().into());
        if let Some(e) = t.expires_at {
            doc.insert("expires_at".into(), e.into());
        }
    }
    SecretString::new(serde_json::Value::Object(doc).to_string())
}

/// A PKCE pair: (verifier, S256 challenge).
pub fn pkce_pair() -> Result<(SecretString, String), crate::crypto::CryptoError> {
    let mut raw = [0u8; 32];
    crate::crypto::random_bytes(&mut raw)?;
    let verifier = URL_SAFE_NO_PAD.encode(raw);
    Ok((SecretString::new(verifier.clone()), pkce_challenge(&verifier)))
}

/// `BASE64URL(SHA256(verifier))` (RFC 7636 S256).
pub fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes()).as_ref())
}

/// The authorization URL for the code flow with PKCE.
pub fn authorization_url(
    endpoint: &str,
    client_id: &str,
    redirect_uri: &str,
    scopes: &[String],
    state: &str,
    challenge: &str,
) -> String {
    let sep = if endpoint.contains('?') { '&' } else { '?' };
    let mut url = format!(
        "{endpoint}{sep}response_type=code&client_id={}&redirect_uri={}&state={}&code_challenge={}&code_challenge_method=S256",
        encode_query_value(client_id),
        encode_query_value(redirect_uri),
        encode_query_value(state),
        encode_query_value(challenge)
    );
    if !scopes.is_empty() {
        url.push_str(&format!("&scope={}", encode_query_value(scopes.join(" "))));
    }
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_is_base64url_sha256() {
        // SHA-256("abc") = ba7816bf...15ad, base64url without padding.
        assert_eq!(pkce_challenge("abc"), "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0");
        let (verifier, challenge) = pkce_pair().unwrap();
        assert_eq!(verifier.expose().len(), 43);
        assert_eq!(pkce_challenge(verifier.expose()), challenge);
    }

    #[test]
    fn token_requests() {
        let client = Client { id: "my id", secret: Some("s3cr:t"), auth: ClientAuth::Basic };
        let r = token_request(&client, Grant::Refresh("rt/1"), &["a".into(), "b".into()]);
        assert_eq!(r.form, "grant_type=refresh_token&refresh_token=rt%2F1&scope=a%20b");
        assert_eq!(r.authorization.unwrap().expose(), format!("Basic {}", STANDARD.encode("my%20id:s3cr%3At")));
        let form = Client { id: "cid", secret: Some("sec"), auth: ClientAuth::Form };
        let r = token_request(&form, Grant::ClientCredentials, &[]);
        assert_eq!(r.form, "grant_type=client_credentials&client_id=cid&client_secret=sec");
        assert!(r.authorization.is_none());
        let public = Client { id: "cid", secret: None, auth: ClientAuth::Basic };
        let r = token_request(
            &public,
            Grant::Code { code: "c", redirect_uri: "http://127.0.0.1:1/cb", verifier: "v" },
            &[],
        );
        assert!(r.form.contains("client_id=cid") && r.form.contains("code_verifier=v"));
        assert!(!format!("{r:?}").contains("cid"));
    }

    #[test]
    fn token_responses() {
        let ok =
            parse_token_response(200, br#"{"access_token":"at","expires_in":60,"refresh_token":"rt2"}"#, 1000).unwrap();
        assert_eq!((ok.access_token.expose(), ok.expires_at), ("at", Some(1060)));
        assert_eq!(ok.refresh_token.unwrap().expose(), "rt2");
        let err =
            parse_token_response(400, br#"{"error":"invalid_grant","error_description":"revoked"}"#, 0).unwrap_err();
        assert_eq!(err.code, "invalid_grant");
        assert!(parse_token_response(200, b"<html>", 0).is_err());
        assert!(parse_token_response(200, b"{}", 0).is_err());
    }
}
