//! Putting credentials on a request: strip whatever the agent sent in their place, then inject.
//!
//! Pure: works on a request's method, path, query and headers; no I/O. Only the request pipeline
//! calls this, after policy allowed the request and resolution picked the credential.

use base64::Engine as _;
use http::{HeaderMap, HeaderName, HeaderValue};

use super::strategy::{Apply, Strategy};
use super::{AuthError, Material};

/// Headers that carry credentials in common APIs. Agents send placeholders in them; the upstream
/// must only ever see the injected value, so they are removed whatever the strategy.
pub const AUTH_CLASS_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "x-api-key",
    "api-key",
    "x-auth-token",
    "x-goog-api-key",
    "x-amz-security-token",
];

/// The parts of a request the strategies touch.
#[derive(Debug, Clone)]
pub struct Target {
    /// Raw path as sent (percent-encoding preserved), starting with '/'.
    pub path: String,
    /// Raw query without '?', if any.
    pub query: Option<String>,
    pub headers: HeaderMap,
}

impl Target {
    /// The request-target: path plus query.
    pub fn path_and_query(&self) -> String {
        match &self.query {
            Some(q) if !q.is_empty() => format!("{}?{q}", self.path),
            _ => self.path.clone(),
        }
    }

    /// The path for audit records: a path strategy's secret segment becomes `<redacted>`.
    pub fn path_for_audit(&self, strategy: &Strategy) -> String {
        let Apply::Path { literal, .. } = &strategy.apply else { return self.path.clone() };
        match self.path.strip_prefix(literal.as_str()) {
            Some(rest) => {
                let after = rest.find('/').map(|i| &rest[i..]).unwrap_or("");
                format!("{literal}<redacted>{after}")
            }
            None => self.path.clone(),
        }
    }
}

/// For a path strategy (`/bot{{secret}}`): if the agent's path starts with the template's literal
/// prefix, the first segment is the agent's placeholder token. Returns the path without it.
pub fn strip_path_placeholder<'a>(strategy: &Strategy, path: &'a str) -> Option<&'a str> {
    let literal = strategy.path_literal()?;
    if !path.starts_with(literal) {
        return None;
    }
    let rest = &path[1..];
    Some(match rest.find('/') {
        Some(i) => &rest[i..],
        None => "/",
    })
}

/// Removes the agent's auth-class headers and every header and query parameter the strategy owns.
pub fn strip(target: &mut Target, strategy: &Strategy) {
    let owned = strategy.owned_headers();
    remove_where(&mut target.headers, |name| AUTH_CLASS_HEADERS.contains(&name.as_str()) || owned.contains(name));
    if strategy.is_sigv4() {
        // Whatever the agent signed with goes: its Authorization, date and token headers (owned
        // headers above) and a presigned URL's query parameters. Other x-amz-* headers are
        // request data (x-amz-target, x-amz-acl, checksums) and stay, to be signed again.
        target.query = super::sigv4::strip_presign(target.query.as_deref());
    }
    let owned = strategy.owned_query();
    if !owned.is_empty() {
        if let Some(q) = &target.query {
            let kept: Vec<&str> = q
                .split('&')
                .filter(|pair| {
                    let name = pair.split('=').next().unwrap_or_default();
                    !name.is_empty() && !owned.iter().any(|o| o == name)
                })
                .collect();
            target.query = if kept.is_empty() { None } else { Some(kept.join("&")) };
        }
    }
    if let Some(rest) = strip_path_placeholder(strategy, &target.path) {
        target.path = rest.to_owned();
    }
}

/// Injects the credential. Strategies that need the whole request (SigV4) or a token
/// lifecycle (OAuth2) are applied elsewhere and rejected here.
pub fn inject(target: &mut Target, strategy: &Strategy, material: &Material) -> Result<(), AuthError> {
    match &strategy.apply {
        Apply::Headers(list) => {
            for (name, template) in list {
                set_header(target, name, &template.render(material)?)?;
            }
        }
        Apply::Query(list) => {
            for (name, template) in list {
                append_query(target, name, template.render(material)?.expose());
            }
        }
        Apply::Path { template, slashes, .. } => {
            let prefix = template.render(material)?;
            // The secret must stay inside its own segment.
            let rendered = prefix.expose();
            if rendered.matches('/').count() != *slashes || rendered.contains(['?', '#', ' ']) {
                return Err(AuthError::UnsafeValue);
            }
            target.path = format!("{rendered}{}", target.path);
        }
        Apply::Basic { user, pass } => {
            let joined = match (user.render(material), pass.render(material)) {
                (Ok(u), Ok(p)) => crate::secret::SecretString::concat(&[u.expose(), ":", p.expose()]),
                (Err(e), _) | (_, Err(e)) => match material.field("secret") {
                    // A single "user:pass" secret also works for basic auth.
                    Some(whole) if whole.expose().contains(':') => whole.clone(),
                    _ => return Err(e),
                },
            };
            let encoded = zeroize::Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(joined.expose()));
            let value = crate::secret::SecretString::concat(&["Basic ", encoded.as_str()]);
            set_header(target, &http::header::AUTHORIZATION, &value)?;
        }
        Apply::OwnStage => {
            return Err(AuthError::InvalidConfig(format!("{} is applied by its own stage", strategy.kind())));
        }
    }
    Ok(())
}

/// Removes every header `doomed` names, in one pass over the request's own headers (a request
/// has a handful; looking up each of dozens of names would hash and parse every one of them).
pub fn remove_where(headers: &mut HeaderMap, doomed: impl Fn(&HeaderName) -> bool) {
    let names: Vec<HeaderName> = headers.keys().filter(|n| doomed(n)).cloned().collect();
    for n in names {
        headers.remove(n);
    }
}

fn set_header(target: &mut Target, name: &HeaderName, value: &crate::secret::SecretString) -> Result<(), AuthError> {
    let mut value = HeaderValue::from_str(value.expose()).map_err(|_| AuthError::UnsafeValue)?;
    value.set_sensitive(true);
    target.headers.insert(name.clone(), value);
    Ok(())
}

fn append_query(target: &mut Target, name: &str, value: &str) {
    let pair = format!("{name}={}", crate::percent::encode(value));
    target.query = Some(match target.query.take() {
        Some(q) if !q.is_empty() => format!("{q}&{pair}"),
        _ => pair,
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{AuthConfig, HeaderTemplate, QueryTemplate};
    use crate::secret::SecretBytes;

    fn target(path: &str, query: Option<&str>, headers: &[(&str, &str)]) -> Target {
        let mut h = HeaderMap::new();
        for (k, v) in headers {
            h.append(HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        Target { path: path.into(), query: query.map(Into::into), headers: h }
    }

    fn compiled(auth: &AuthConfig) -> Strategy {
        Strategy::compile(auth).unwrap()
    }

    fn apply(auth: &AuthConfig, material: &Material, mut t: Target) -> Target {
        let strategy = compiled(auth);
        strip(&mut t, &strategy);
        inject(&mut t, &strategy, material).unwrap();
        t
    }

    #[test]
    fn header_replaces_placeholder_and_keeps_other_headers() {
        let auth =
            AuthConfig::Header { header_name: "authorization".into(), value_template: "Bearer {{secret}}".into() };
        let m = Material::single(SecretBytes::from_str_copy("sk-real"));
        let t = apply(
            &auth,
            &m,
            target(
                "/v1/x",
                None,
                &[("Authorization", "Bearer sk-placeholder"), ("x-api-key", "junk"), ("x-trace", "1")],
            ),
        );
        assert_eq!(t.headers.get_all("authorization").iter().count(), 1);
        assert_eq!(t.headers["authorization"], "Bearer sk-real");
        assert!(t.headers.get("x-api-key").is_none());
        assert_eq!(t.headers["x-trace"], "1");
        assert!(t.headers["authorization"].is_sensitive());
    }

    #[test]
    fn query_strategies_own_their_params() {
        let auth = AuthConfig::Query { param_name: "key".into(), value_template: None };
        let m = Material::single(SecretBytes::from_str_copy("a b&c"));
        let t = apply(&auth, &m, target("/v1/models", Some("key=placeholder&alt=json&key=again"), &[]));
        assert_eq!(t.query.as_deref(), Some("alt=json&key=a%20b%26c"));

        let multi = AuthConfig::MultiQuery(vec![
            QueryTemplate { param_name: "key".into(), value_template: "{{key}}".into() },
            QueryTemplate { param_name: "token".into(), value_template: "{{token}}".into() },
        ]);
        let mut m = Material::default();
        m.add("key", &SecretBytes::from_str_copy("K"));
        m.add("token", &SecretBytes::from_str_copy("T"));
        let t = apply(&multi, &m, target("/1/boards", Some("token=fake"), &[]));
        assert_eq!(t.query.as_deref(), Some("key=K&token=T"));
    }

    #[test]
    fn path_strategy_replaces_the_agents_token_segment() {
        let auth = AuthConfig::Path { prefix_template: "/bot{{secret}}".into() };
        let m = Material::single(SecretBytes::from_str_copy("123:ABC"));
        let t = apply(&auth, &m, target("/botPLACEHOLDER/sendMessage", None, &[]));
        assert_eq!(t.path, "/bot123:ABC/sendMessage");
        let t = apply(&auth, &m, target("/getMe", None, &[]));
        assert_eq!(t.path, "/bot123:ABC/getMe");
        assert_eq!(t.path_for_audit(&compiled(&auth)), "/bot<redacted>/getMe");
        let evil = Material::single(SecretBytes::from_str_copy("1/../admin"));
        let mut t = target("/getMe", None, &[]);
        assert!(inject(&mut t, &compiled(&auth), &evil).is_err());
    }

    #[test]
    fn basic_and_multi_header() {
        let basic = AuthConfig::Basic { username: Some("api".into()), password: None };
        let mut m = Material::default();
        m.add("password", &SecretBytes::from_str_copy("key-1"));
        let t = apply(&basic, &m, target("/v3/x", None, &[("authorization", "Basic junk")]));
        assert_eq!(t.headers["authorization"], "Basic YXBpOmtleS0x");

        let single = Material::single(SecretBytes::from_str_copy("u:p"));
        let t = apply(&AuthConfig::Basic { username: None, password: None }, &single, target("/", None, &[]));
        assert_eq!(t.headers["authorization"], "Basic dTpw");

        let multi = AuthConfig::MultiHeader(vec![
            HeaderTemplate { header_name: "DD-API-KEY".into(), value_template: "{{api_key}}".into() },
            HeaderTemplate { header_name: "DD-APPLICATION-KEY".into(), value_template: "{{app_key}}".into() },
        ]);
        let m = Material::single(SecretBytes::from_str_copy(r#"{"api_key":"A","app_key":"B"}"#));
        let t = apply(&multi, &m, target("/api/v1/query", None, &[("dd-api-key", "placeholder")]));
        assert_eq!(t.headers["dd-api-key"], "A");
        assert_eq!(t.headers["dd-application-key"], "B");
        assert_eq!(t.headers.get_all("dd-api-key").iter().count(), 1);
    }
}
