//! The compiled strategy: an `AuthConfig` turned, once, into what the request pipeline applies.
//!
//! `AuthConfig` is the schema (registry files, stored credential rows, JSON output); `Strategy` is
//! its runtime form, built when a snapshot (or the registry) is loaded: templates parsed, header
//! names validated into `HeaderName`s, owned header and query names listed, the path template's
//! literal prefix and segment count worked out. Per request nothing is parsed again.
//!
//! Pure: no I/O, no decryption. OAuth2 and SigV4 keep their config here and are applied by their
//! own pipeline stages (token lifecycle, whole-request signing).

use http::HeaderName;

use super::{AuthConfig, AuthError, Template};

/// A strategy ready to apply.
#[derive(Debug)]
pub struct Strategy {
    config: AuthConfig,
    pub(super) apply: Apply,
    owned_headers: Vec<HeaderName>,
    owned_query: Vec<String>,
}

/// What `inject` does, with everything parsed.
#[derive(Debug)]
pub(super) enum Apply {
    /// `header` and `multi-header`.
    Headers(Vec<(HeaderName, Template)>),
    /// `query` and `multi-query`.
    Query(Vec<(String, Template)>),
    /// `/bot{{secret}}`: the literal before the first field, and how many `/` the template has
    /// (a rendered value may not add any).
    Path {
        template: Template,
        literal: String,
        slashes: usize,
    },
    Basic {
        user: Template,
        pass: Template,
    },
    /// SigV4 and OAuth2: applied by their own stage.
    OwnStage,
}

impl Strategy {
    /// Validates and compiles `config`.
    pub fn compile(config: &AuthConfig) -> Result<Strategy, AuthError> {
        config.validate()?;
        let apply =
            match config {
                AuthConfig::Header { header_name, value_template } => {
                    Apply::Headers(vec![(header(header_name)?, Template::parse(value_template)?)])
                }
                AuthConfig::MultiHeader(list) => Apply::Headers(
                    list.iter()
                        .map(|h| Ok((header(&h.header_name)?, Template::parse(&h.value_template)?)))
                        .collect::<Result<_, AuthError>>()?,
                ),
                AuthConfig::Query { param_name, value_template } => Apply::Query(vec![(
                    param_name.clone(),
                    Template::parse(value_template.as_deref().unwrap_or("{{secret}}"))?,
                )]),
                AuthConfig::MultiQuery(list) => Apply::Query(
                    list.iter()
                        .map(|q| Ok((q.param_name.clone(), Template::parse(&q.value_template)?)))
                        .collect::<Result<_, AuthError>>()?,
                ),
                AuthConfig::Path { prefix_template } => {
                    let template = Template::parse(prefix_template)?;
                    let literal = template.literal_prefix().to_owned();
                    Apply::Path { template, literal, slashes: prefix_template.matches('/').count() }
                }
                AuthConfig::Basic { username, password } => Apply::Basic {
                    user: Template::parse(username.as_deref().unwrap_or("{{username}}"))?,
                    pass: Template::parse(password.as_deref().unwrap_or("{{password}}"))?,
                },
                AuthConfig::Oauth2 { .. } | AuthConfig::AwsSigv4 { .. } => Apply::OwnStage,
            };
        let owned_headers = config.owned_headers().iter().map(|h| header(h)).collect::<Result<_, _>>()?;
        Ok(Strategy { config: config.clone(), apply, owned_headers, owned_query: config.owned_query_params() })
    }

    /// The schema form (OAuth2 and SigV4 stages read their parameters from it).
    pub fn config(&self) -> &AuthConfig {
        &self.config
    }

    pub fn kind(&self) -> &'static str {
        self.config.kind()
    }

    /// Puts the secret in the path (so the agent's placeholder segment is stripped before matching).
    pub fn is_path(&self) -> bool {
        matches!(self.apply, Apply::Path { .. })
    }

    pub fn is_sigv4(&self) -> bool {
        matches!(self.config, AuthConfig::AwsSigv4 { .. })
    }

    /// Request headers the strategy owns; the agent's copies are removed.
    pub fn owned_headers(&self) -> &[HeaderName] {
        &self.owned_headers
    }

    /// Query parameters the strategy owns; the agent's copies are removed.
    pub fn owned_query(&self) -> &[String] {
        &self.owned_query
    }

    /// For a path strategy: the literal before the secret (`/bot`), when it is more than `/`.
    pub(super) fn path_literal(&self) -> Option<&str> {
        match &self.apply {
            Apply::Path { literal, .. } if literal.len() > 1 => Some(literal),
            _ => None,
        }
    }
}

fn header(name: &str) -> Result<HeaderName, AuthError> {
    HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes())
        .map_err(|_| AuthError::InvalidConfig(format!("'{name}' is not a valid header name")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::HeaderTemplate;

    #[test]
    fn compiles_each_kind_once_and_refuses_what_validate_refuses() {
        let cases: &[(AuthConfig, bool, usize)] = &[
            (AuthConfig::Header { header_name: "X-Api-Key".into(), value_template: "{{secret}}".into() }, false, 1),
            (
                AuthConfig::MultiHeader(vec![
                    HeaderTemplate { header_name: "A".into(), value_template: "{{a}}".into() },
                    HeaderTemplate { header_name: "B".into(), value_template: "x {{b}}".into() },
                ]),
                false,
                2,
            ),
            (AuthConfig::Path { prefix_template: "/bot{{secret}}".into() }, true, 0),
            (AuthConfig::Basic { username: None, password: None }, false, 1),
            (AuthConfig::AwsSigv4 { service: "s3".into(), region: "us-east-1".into() }, false, 3),
        ];
        for (config, path, owned) in cases {
            let s = Strategy::compile(config).unwrap();
            assert_eq!(s.is_path(), *path, "{config:?}");
            assert_eq!(s.owned_headers().len(), *owned, "{config:?}");
            assert_eq!(s.config(), config);
        }
        let bad = [
            AuthConfig::Header { header_name: "Host".into(), value_template: "{{secret}}".into() },
            AuthConfig::Header { header_name: "X".into(), value_template: "constant".into() },
            AuthConfig::Path { prefix_template: "bot{{secret}}".into() },
        ];
        for config in bad {
            assert!(Strategy::compile(&config).is_err(), "{config:?}");
        }
        let path = Strategy::compile(&AuthConfig::Path { prefix_template: "/bot{{secret}}".into() }).unwrap();
        assert_eq!(path.path_literal(), Some("/bot"));
        let bare = Strategy::compile(&AuthConfig::Path { prefix_template: "/{{secret}}".into() }).unwrap();
        assert_eq!(bare.path_literal(), None);
    }
}
