//! Auth strategies: how a credential's secret material is put on a request.
//!
//! Pure: this module parses and validates strategy configuration and renders values from
//! already-decrypted material. It never decrypts, never does I/O, and never decides *whether*
//! to inject; that is the request pipeline's job.
//!
//! The JSON shape is the registry's (`{"header": {"header_name": .., "value_template": ..}}`),
//! shared by registry files and stored credentials, with unknown fields rejected.

pub mod inject;
mod material;
pub mod oauth2;
pub mod sigv4;
mod strategy;
mod template;

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

pub use material::Material;
pub use strategy::Strategy;
pub use template::Template;

/// Errors in strategy configuration or rendering. Never carries secret bytes.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("invalid template: {0}")]
    InvalidTemplate(String),
    #[error("invalid auth configuration: {0}")]
    InvalidConfig(String),
    #[error("the secret material has no field '{0}' that the template needs")]
    MissingField(String),
    #[error("a rendered credential value contains a line break or NUL; refusing to send it")]
    UnsafeValue,
}

/// One header rendered from a template (multi-header).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderTemplate {
    pub header_name: String,
    pub value_template: String,
}

/// One query parameter rendered from a template (multi-query).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryTemplate {
    pub param_name: String,
    pub value_template: String,
}

/// OAuth2 grant used to obtain access tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantType {
    RefreshToken,
    ClientCredentials,
}

impl GrantType {
    pub fn parse(s: &str) -> Result<GrantType, AuthError> {
        match s {
            "refresh_token" => Ok(GrantType::RefreshToken),
            "client_credentials" => Ok(GrantType::ClientCredentials),
            "authorization_code" => Err(AuthError::InvalidConfig(
                "grant type authorization_code is a one-time consent flow: use `aivault oauth \
                 connect` to obtain a refresh token, then --grant-type refresh_token"
                    .into(),
            )),
            other => Err(AuthError::InvalidConfig(format!(
                "unknown grant type '{other}': use refresh_token or client_credentials"
            ))),
        }
    }
}

/// How the client authenticates at the token endpoint.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    /// HTTP Basic with client id and secret (RFC 6749 §2.3.1, the recommended default).
    #[default]
    Basic,
    /// `client_id` and `client_secret` as form fields.
    Form,
}

/// A strategy and its parameters, exactly as registry files and stored credentials spell it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum AuthConfig {
    Header {
        header_name: String,
        value_template: String,
    },
    Query {
        param_name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        value_template: Option<String>,
    },
    Path {
        prefix_template: String,
    },
    Basic {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        username: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        password: Option<String>,
    },
    MultiHeader(Vec<HeaderTemplate>),
    MultiQuery(Vec<QueryTemplate>),
    Oauth2 {
        grant_type: GrantType,
        token_endpoint: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        scopes: Vec<String>,
        #[serde(default)]
        client_auth: ClientAuth,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        authorization_endpoint: Option<String>,
    },
    AwsSigv4 {
        service: String,
        region: String,
    },
}

/// Headers no strategy may own: framing and hop-by-hop headers.
const RESERVED_HEADERS: &[&str] = &[
    "host",
    "connection",
    "keep-alive",
    "proxy-authorization",
    "proxy-authenticate",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
];

impl AuthConfig {
    /// The strategy's name as the CLI spells it (`--auth`).
    pub fn kind(&self) -> &'static str {
        match self {
            AuthConfig::Header { .. } => "header",
            AuthConfig::Query { .. } => "query",
            AuthConfig::Path { .. } => "path",
            AuthConfig::Basic { .. } => "basic",
            AuthConfig::MultiHeader(_) => "multi-header",
            AuthConfig::MultiQuery(_) => "multi-query",
            AuthConfig::Oauth2 { .. } => "oauth2",
            AuthConfig::AwsSigv4 { .. } => "aws-sigv4",
        }
    }

    /// Checks names and templates. Called when a credential is created and when the registry loads.
    pub fn validate(&self) -> Result<(), AuthError> {
        match self {
            AuthConfig::Header { header_name, value_template } => {
                check_header_name(header_name)?;
                Template::parse_with_field(value_template)?;
            }
            AuthConfig::Query { param_name, value_template } => {
                check_param_name(param_name)?;
                Template::parse_with_field(value_template.as_deref().unwrap_or("{{secret}}"))?;
            }
            AuthConfig::Path { prefix_template } => {
                let t = Template::parse_with_field(prefix_template)?;
                if !prefix_template.starts_with('/')
                    || prefix_template.contains(['?', '#'])
                    || prefix_template.ends_with('/')
                {
                    return Err(AuthError::InvalidTemplate(format!(
                        "path template '{t}' must start with '/', not end with '/', and contain \
                         no '?' or '#'"
                    )));
                }
            }
            AuthConfig::Basic { username, password } => {
                Template::parse(username.as_deref().unwrap_or("{{username}}"))?;
                Template::parse(password.as_deref().unwrap_or("{{password}}"))?;
            }
            AuthConfig::MultiHeader(list) => {
                if list.is_empty() {
                    return Err(AuthError::InvalidConfig("multi-header needs at least one header".into()));
                }
                let mut seen = BTreeSet::new();
                for h in list {
                    check_header_name(&h.header_name)?;
                    Template::parse_with_field(&h.value_template)?;
                    if !seen.insert(h.header_name.to_ascii_lowercase()) {
                        return Err(AuthError::InvalidConfig(format!("header '{}' is listed twice", h.header_name)));
                    }
                }
            }
            AuthConfig::MultiQuery(list) => {
                if list.is_empty() {
                    return Err(AuthError::InvalidConfig("multi-query needs at least one parameter".into()));
                }
                let mut seen = BTreeSet::new();
                for q in list {
                    check_param_name(&q.param_name)?;
                    Template::parse_with_field(&q.value_template)?;
                    if !seen.insert(q.param_name.clone()) {
                        return Err(AuthError::InvalidConfig(format!(
                            "query parameter '{}' is listed twice",
                            q.param_name
                        )));
                    }
                }
            }
            AuthConfig::Oauth2 { token_endpoint, authorization_endpoint, .. } => {
                check_endpoint("token endpoint", token_endpoint)?;
                if let Some(a) = authorization_endpoint {
                    check_endpoint("authorization endpoint", a)?;
                }
            }
            AuthConfig::AwsSigv4 { service, region } => {
                for (what, v) in [("service", service), ("region", region)] {
                    let ok =
                        !v.is_empty() && v.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
                    if !ok {
                        return Err(AuthError::InvalidConfig(format!(
                            "aws {what} '{v}' must be lowercase letters, digits and '-'"
                        )));
                    }
                }
            }
        }
        Ok(())
    }

    /// Secret fields the strategy reads, so a credential can be checked before first use.
    pub fn required_fields(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let mut add = |text: &str| {
            if let Ok(t) = Template::parse(text) {
                out.extend(t.fields().map(str::to_owned));
            }
        };
        match self {
            AuthConfig::Header { value_template, .. } => add(value_template),
            AuthConfig::Query { value_template, .. } => add(value_template.as_deref().unwrap_or("{{secret}}")),
            AuthConfig::Path { prefix_template } => add(prefix_template),
            AuthConfig::Basic { username, password } => {
                add(username.as_deref().unwrap_or("{{username}}"));
                add(password.as_deref().unwrap_or("{{password}}"));
            }
            AuthConfig::MultiHeader(list) => list.iter().for_each(|h| add(&h.value_template)),
            AuthConfig::MultiQuery(list) => list.iter().for_each(|q| add(&q.value_template)),
            AuthConfig::Oauth2 { .. } | AuthConfig::AwsSigv4 { .. } => {}
        }
        out
    }

    /// Request headers this strategy owns (lowercase). The pipeline removes the agent's copies.
    pub fn owned_headers(&self) -> Vec<String> {
        match self {
            AuthConfig::Header { header_name, .. } => vec![header_name.to_ascii_lowercase()],
            AuthConfig::MultiHeader(list) => list.iter().map(|h| h.header_name.to_ascii_lowercase()).collect(),
            AuthConfig::Basic { .. } | AuthConfig::Oauth2 { .. } => vec!["authorization".into()],
            AuthConfig::AwsSigv4 { .. } => {
                vec!["authorization".into(), "x-amz-date".into(), "x-amz-security-token".into()]
            }
            AuthConfig::Query { .. } | AuthConfig::Path { .. } | AuthConfig::MultiQuery(_) => {
                vec![]
            }
        }
    }

    /// Query parameters this strategy owns. The pipeline removes the agent's copies.
    pub fn owned_query_params(&self) -> Vec<String> {
        match self {
            AuthConfig::Query { param_name, .. } => vec![param_name.clone()],
            AuthConfig::MultiQuery(list) => list.iter().map(|q| q.param_name.clone()).collect(),
            _ => vec![],
        }
    }

    /// One-line human description with no secret in it.
    pub fn describe(&self) -> String {
        match self {
            AuthConfig::Header { header_name, value_template } => {
                format!("header {header_name}: {value_template}")
            }
            AuthConfig::Query { param_name, value_template } => {
                format!("query ?{param_name}={}", value_template.as_deref().unwrap_or("{{secret}}"))
            }
            AuthConfig::Path { prefix_template } => format!("path prefix {prefix_template}"),
            AuthConfig::Basic { .. } => "basic (authorization: Basic ...)".to_owned(),
            AuthConfig::MultiHeader(list) => {
                format!("headers {}", list.iter().map(|h| h.header_name.as_str()).collect::<Vec<_>>().join(", "))
            }
            AuthConfig::MultiQuery(list) => {
                format!("query {}", list.iter().map(|q| q.param_name.as_str()).collect::<Vec<_>>().join(", "))
            }
            AuthConfig::Oauth2 { grant_type, token_endpoint, .. } => {
                format!("oauth2 {grant_type:?} via {token_endpoint}")
            }
            AuthConfig::AwsSigv4 { service, region } => format!("aws-sigv4 {service}/{region}"),
        }
    }
}

fn check_header_name(name: &str) -> Result<(), AuthError> {
    let token = !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if !token {
        return Err(AuthError::InvalidConfig(format!("'{name}' is not a valid header name")));
    }
    if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
        return Err(AuthError::InvalidConfig(format!(
            "header '{name}' controls framing or proxying and cannot carry a credential"
        )));
    }
    Ok(())
}

fn check_param_name(name: &str) -> Result<(), AuthError> {
    let ok =
        !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'~'));
    if ok {
        Ok(())
    } else {
        Err(AuthError::InvalidConfig(format!(
            "'{name}' is not a valid query parameter name (letters, digits, '_', '-', '.', '~')"
        )))
    }
}

fn check_endpoint(what: &str, url: &str) -> Result<(), AuthError> {
    let https = url.strip_prefix("https://").is_some_and(|rest| !rest.is_empty());
    let loopback_http = url.strip_prefix("http://").is_some_and(|rest| {
        rest.starts_with("127.0.0.1") || rest.starts_with("localhost") || rest.starts_with("[::1]")
    });
    if https || loopback_http {
        Ok(())
    } else {
        Err(AuthError::InvalidConfig(format!("{what} '{url}' must be an https:// URL (plain http only on loopback)")))
    }
}

/// The SigV4 signing name for an AWS service given as endpoint prefix or signing name
/// (`bedrock-runtime` signs as `bedrock`).
pub fn aws_signing_name(service: &str) -> &str {
    match service {
        "bedrock-runtime" | "bedrock-agent-runtime" | "bedrock-agent" => "bedrock",
        "runtime.sagemaker" | "api.sagemaker" => "sagemaker",
        "email" => "ses",
        "runtime.lex" => "lex",
        "data.iot" => "iotdata",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_shape_matches_registry_and_rejects_unknown_fields() {
        let header: AuthConfig =
            serde_json::from_str(r#"{"header":{"header_name":"authorization","value_template":"Bearer {{secret}}"}}"#)
                .unwrap();
        assert_eq!(header.kind(), "header");
        let multi: AuthConfig =
            serde_json::from_str(r#"{"multi_header":[{"header_name":"DD-API-KEY","value_template":"{{api_key}}"}]}"#)
                .unwrap();
        assert_eq!(multi.owned_headers(), vec!["dd-api-key"]);
        let basic: AuthConfig = serde_json::from_str(r#"{"basic":{}}"#).unwrap();
        assert_eq!(basic.required_fields().into_iter().collect::<Vec<_>>(), ["password", "username"]);
        assert!(
            serde_json::from_str::<AuthConfig>(
                r#"{"header":{"header_name":"a","value_template":"{{secret}}","extra":1}}"#
            )
            .is_err()
        );
        assert!(serde_json::from_str::<AuthConfig>(r#"{"hmac":{}}"#).is_err());
    }

    #[test]
    fn validate_table() {
        let h = |n: &str, t: &str| AuthConfig::Header { header_name: n.into(), value_template: t.into() };
        let cases: Vec<(&str, AuthConfig, bool)> = vec![
            ("bearer", h("authorization", "Bearer {{secret}}"), true),
            ("no placeholder", h("authorization", "Bearer x"), false),
            ("crlf", h("x-api-key", "{{secret}}\r\n"), false),
            ("bad header name", h("x api", "{{secret}}"), false),
            ("reserved header", h("Host", "{{secret}}"), false),
            ("path ok", AuthConfig::Path { prefix_template: "/bot{{secret}}".into() }, true),
            ("path no slash", AuthConfig::Path { prefix_template: "bot{{secret}}".into() }, false),
            ("path query", AuthConfig::Path { prefix_template: "/b{{secret}}?x".into() }, false),
            ("query ok", AuthConfig::Query { param_name: "api_key".into(), value_template: None }, true),
            ("query bad name", AuthConfig::Query { param_name: "a&b".into(), value_template: None }, false),
            ("multi empty", AuthConfig::MultiHeader(vec![]), false),
            (
                "multi dup",
                AuthConfig::MultiHeader(vec![
                    HeaderTemplate { header_name: "A".into(), value_template: "{{x}}".into() },
                    HeaderTemplate { header_name: "a".into(), value_template: "{{y}}".into() },
                ]),
                false,
            ),
            (
                "oauth http remote",
                AuthConfig::Oauth2 {
                    grant_type: GrantType::RefreshToken,
                    token_endpoint: "http://auth.example.com/token".into(),
                    scopes: vec![],
                    client_auth: ClientAuth::Basic,
                    authorization_endpoint: None,
                },
                false,
            ),
            ("sigv4", AuthConfig::AwsSigv4 { service: "bedrock-runtime".into(), region: "us-east-1".into() }, true),
            ("sigv4 bad region", AuthConfig::AwsSigv4 { service: "s3".into(), region: "US_EAST".into() }, false),
        ];
        for (name, cfg, ok) in cases {
            assert_eq!(cfg.validate().is_ok(), ok, "{name}: {:?}", cfg.validate());
        }
    }

    #[test]
    fn grant_types() {
        assert_eq!(GrantType::parse("refresh_token"), Ok(GrantType::RefreshToken));
        assert!(GrantType::parse("authorization_code").is_err());
        assert!(GrantType::parse("password").is_err());
    }
}
