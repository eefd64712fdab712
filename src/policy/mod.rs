//! Capability policy: which (host, method, path) a capability allows. Pure: no I/O, no secrets.
//!
//! A policy denial is a value (`Decision::Deny`), not an error.

mod host;
pub mod limit;
mod path;

use crate::refusal::{ErrorCode, Refusal};
use std::collections::HashMap;

pub use host::{HostError, HostPattern, names_authority, normalize_host, split_host_port};
pub use path::{PathError, check_prefix, normalize as normalize_path, prefix_matches};

/// Request headers that let a server in front of the API (or the framework behind it) re-route a
/// request or change its method after the policy matched it. Removed from every request that
/// carries an injected credential, so what was matched is what is served.
pub const ROUTING_OVERRIDE_HEADERS: &[&str] = &[
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
    "x-original-method",
    "x-original-url",
    "x-original-uri",
    "x-rewrite-url",
    "x-override-url",
    "x-forwarded-host",
    "x-forwarded-prefix",
    "x-forwarded-proto",
    "x-forwarded-path",
    "x-forwarded-uri",
    "x-forwarded-server",
    "x-forwarded-port",
    "x-forwarded-scheme",
    "x-original-host",
    "x-host",
    "forwarded",
];

/// A request method as capabilities name it: upper case. Agents send upper case, so only a
/// lower-case method costs a copy.
pub fn canonical_method(method: &str) -> std::borrow::Cow<'_, str> {
    if method.bytes().any(|b| b.is_ascii_lowercase()) { method.to_ascii_uppercase().into() } else { method.into() }
}

/// Whether `grants` (capability ids or `provider/*`) let an agent use `rule`; no grants means
/// every capability.
pub fn granted(grants: &[String], rule: &Rule) -> bool {
    grants.is_empty()
        || grants.iter().any(|g| match g.strip_suffix("/*") {
            Some(provider) => provider == rule.provider,
            None => *g == rule.id,
        })
}

/// A compiled capability allow-list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub id: String,
    pub provider: String,
    pub hosts: Vec<HostPattern>,
    /// Uppercase methods.
    pub methods: Vec<String>,
    pub path_prefixes: Vec<String>,
    /// Whether the credential may be injected into plain `http://` requests (never by default).
    pub allow_http: bool,
    /// An operator's own capability (not compiled into the registry): at equal specificity it is
    /// tried before a registry one.
    pub custom: bool,
    /// Requests are held until a person allows them.
    pub approval: bool,
}

/// Why a rule definition was rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RuleError {
    #[error(transparent)]
    Host(#[from] HostError),
    #[error("invalid path prefix '{prefix}': {reason}")]
    Prefix { prefix: String, reason: PathError },
    #[error("invalid method '{0}'")]
    Method(String),
    #[error("a capability needs at least one {0}")]
    Empty(&'static str),
}

impl Rule {
    pub fn new(
        id: &str,
        provider: &str,
        hosts: &[String],
        methods: &[String],
        path_prefixes: &[String],
    ) -> Result<Rule, RuleError> {
        if hosts.is_empty() {
            return Err(RuleError::Empty("host"));
        }
        if methods.is_empty() {
            return Err(RuleError::Empty("method"));
        }
        if path_prefixes.is_empty() {
            return Err(RuleError::Empty("path prefix"));
        }
        let hosts = hosts.iter().map(|h| HostPattern::parse(h)).collect::<Result<Vec<_>, _>>()?;
        let mut ms = Vec::new();
        for m in methods {
            let up = m.to_ascii_uppercase();
            if up.is_empty() || up.len() > 16 || !up.bytes().all(|b| b.is_ascii_uppercase()) {
                return Err(RuleError::Method(m.clone()));
            }
            if !ms.contains(&up) {
                ms.push(up);
            }
        }
        for p in path_prefixes {
            check_prefix(p).map_err(|reason| RuleError::Prefix { prefix: p.clone(), reason })?;
        }
        Ok(Rule {
            id: id.to_owned(),
            provider: provider.to_owned(),
            hosts,
            methods: ms,
            path_prefixes: path_prefixes.to_vec(),
            allow_http: false,
            custom: false,
            approval: false,
        })
    }

    /// Holds every request for a person's decision.
    pub fn with_approval(mut self, required: bool) -> Rule {
        self.approval = required;
        self
    }

    /// Marks the rule as the operator's own capability.
    pub fn custom(mut self) -> Rule {
        self.custom = true;
        self
    }

    /// Lets this capability serve cleartext `http://` requests (an explicit operator choice).
    pub fn with_http(mut self, allow: bool) -> Rule {
        self.allow_http = allow;
        self
    }

    /// The longest allowed prefix that covers `path`, if the method fits too. The caller has
    /// already matched the host.
    fn allows(&self, method: &str, path: &str) -> Option<&str> {
        if !self.methods.iter().any(|m| m == method) {
            return None;
        }
        self.path_prefixes.iter().filter(|p| prefix_matches(p, path)).max_by_key(|p| p.len()).map(String::as_str)
    }
}

/// Why a request was denied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Denial {
    /// No capability names this host.
    HostNotAllowed { host: String },
    /// The host is known, but no capability allows this method and path.
    CapabilityDenied { method: String, path: String },
    /// The path could be read two ways; refused before matching.
    AmbiguousPath { reason: PathError },
}

impl Denial {
    /// The machine-readable code agents receive.
    pub fn code(&self) -> ErrorCode {
        match self {
            Denial::HostNotAllowed { .. } => ErrorCode::HostNotAllowed,
            Denial::CapabilityDenied { .. } | Denial::AmbiguousPath { .. } => ErrorCode::CapabilityDenied,
        }
    }

    /// The refusal the proxy sends for this denial.
    pub fn refusal(&self) -> Refusal {
        Refusal::new(self.code(), self.message())
    }

    pub fn message(&self) -> String {
        match self {
            Denial::HostNotAllowed { host } => format!(
                "no capability allows host {host}; create one with `aivault capability create` or \
                 store a registry secret for this provider"
            ),
            Denial::CapabilityDenied { method, path } => {
                format!("no capability allows {method} {path} on this host")
            }
            Denial::AmbiguousPath { reason } => format!("request path refused: {reason}"),
        }
    }
}

/// The outcome of matching one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision<'a> {
    Allow { rule: &'a Rule, prefix: &'a str },
    Deny(Denial),
}

/// Rules indexed by host for fast matching.
#[derive(Debug, Default)]
pub struct Policy {
    rules: Vec<Rule>,
    /// Capability id → its rule (a lookup per request; a binary search over the registry's
    /// hundreds of ids was a dozen string compares).
    by_id: HashMap<String, usize>,
    exact: HashMap<String, Vec<usize>>,
    wildcard: HashMap<String, Vec<usize>>,
}

impl Policy {
    pub fn new(mut rules: Vec<Rule>) -> Policy {
        rules.sort_by(|a, b| a.id.cmp(&b.id));
        let mut exact: HashMap<String, Vec<usize>> = HashMap::new();
        let mut wildcard: HashMap<String, Vec<usize>> = HashMap::new();
        let mut by_id = HashMap::with_capacity(rules.len());
        for (i, rule) in rules.iter().enumerate() {
            by_id.entry(rule.id.clone()).or_insert(i);
            for h in &rule.hosts {
                let index = if h.is_wildcard() { &mut wildcard } else { &mut exact };
                let slot = index.entry(h.host().to_owned()).or_default();
                if !slot.contains(&i) {
                    slot.push(i);
                }
            }
        }
        Policy { rules, by_id, exact, wildcard }
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    pub fn rule(&self, id: &str) -> Option<&Rule> {
        self.by_id.get(id).map(|&i| &self.rules[i])
    }

    /// Rules naming `host:port`; the iterator borrows the host, the rules borrow only `self`.
    fn candidates<'s, 'h>(&'s self, host: &'h str, port: u16) -> impl Iterator<Item = &'s Rule> + use<'s, 'h> {
        let exact = self.exact.get(host).map(Vec::as_slice).unwrap_or_default();
        let wild = host
            .split_once('.')
            .and_then(|(_, suffix)| self.wildcard.get(suffix))
            .map(Vec::as_slice)
            .unwrap_or_default();
        exact.iter().chain(wild).map(|&i| &self.rules[i]).filter(move |r| r.hosts.iter().any(|h| h.matches(host, port)))
    }

    /// Whether any capability names `host:port` (used to decide a CONNECT).
    pub fn knows_host(&self, host: &str, port: u16) -> bool {
        self.candidates(host, port).next().is_some()
    }

    /// Every capability that allows the request, most specific first: longest path prefix, then
    /// an operator's capability before a registry one, then id. `path` is the raw request path
    /// without its query. A denial when none allows it.
    pub fn matches(&self, host: &str, port: u16, method: &str, path: &str) -> Result<Vec<(&Rule, &str)>, Denial> {
        let mut rules = self.candidates(host, port).peekable();
        if rules.peek().is_none() {
            return Err(Denial::HostNotAllowed { host: host.to_owned() });
        }
        let normalized = normalize_path(path).map_err(|reason| Denial::AmbiguousPath { reason })?;
        let method = canonical_method(method);
        let mut found: Vec<(&Rule, &str)> = rules.filter_map(|r| Some((r, r.allows(&method, &normalized)?))).collect();
        if found.is_empty() {
            return Err(Denial::CapabilityDenied { method: method.into_owned(), path: normalized });
        }
        found.sort_by(|(a, ap), (b, bp)| bp.len().cmp(&ap.len()).then(b.custom.cmp(&a.custom)).then(a.id.cmp(&b.id)));
        found.dedup_by(|x, y| x.0.id == y.0.id);
        Ok(found)
    }

    /// The most specific capability for one request (see `matches`).
    pub fn decide(&self, host: &str, port: u16, method: &str, path: &str) -> Decision<'_> {
        match self.matches(host, port, method, path) {
            Ok(found) => match found.first() {
                Some(&(rule, prefix)) => Decision::Allow { rule, prefix },
                None => Decision::Deny(Denial::CapabilityDenied { method: method.to_owned(), path: path.to_owned() }),
            },
            Err(denial) => Decision::Deny(denial),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(id: &str, hosts: &[&str], methods: &[&str], prefixes: &[&str]) -> Rule {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        Rule::new(id, "p", &s(hosts), &s(methods), &s(prefixes)).unwrap()
    }

    #[test]
    fn a_method_is_upper_case_and_copied_only_when_it_was_not() {
        for (sent, canonical, copied) in [("GET", "GET", false), ("get", "GET", true), ("PoSt", "POST", true)] {
            let m = canonical_method(sent);
            assert_eq!(m, canonical, "{sent}");
            assert_eq!(matches!(m, std::borrow::Cow::Owned(_)), copied, "{sent}");
        }
    }

    /// Every allowing capability, most specific first: longer prefix, then custom, then id.
    #[test]
    fn matches_are_ordered_by_specificity() {
        let policy = Policy::new(vec![
            rule("aws-sts/actions", &["sts.us-east-1.amazonaws.com"], &["POST"], &["/"]),
            rule("my-sts/all", &["sts.us-east-1.amazonaws.com"], &["POST"], &["/"]).custom(),
            rule("a-reg/deep", &["sts.us-east-1.amazonaws.com"], &["POST"], &["/deep"]),
            rule("z-custom/deep", &["sts.us-east-1.amazonaws.com"], &["POST"], &["/deep"]).custom(),
            rule("b-reg/deep", &["sts.us-east-1.amazonaws.com"], &["POST"], &["/deep"]),
        ]);
        let ids = |path: &str| -> Vec<String> {
            policy
                .matches("sts.us-east-1.amazonaws.com", 443, "POST", path)
                .unwrap()
                .iter()
                .map(|(r, _)| r.id.clone())
                .collect()
        };
        assert_eq!(ids("/"), ["my-sts/all", "aws-sts/actions"]);
        assert_eq!(ids("/deep/x"), ["z-custom/deep", "a-reg/deep", "b-reg/deep", "my-sts/all", "aws-sts/actions"]);
        assert!(
            matches!(policy.decide("sts.us-east-1.amazonaws.com", 443, "POST", "/"), Decision::Allow { rule, .. } if rule.id == "my-sts/all")
        );
        assert_eq!(
            policy.matches("sts.us-east-1.amazonaws.com", 443, "GET", "/").unwrap_err().code(),
            ErrorCode::CapabilityDenied
        );
    }

    #[test]
    fn decide_table() {
        let policy = Policy::new(vec![
            rule("api/users", &["api.example.com"], &["GET", "POST"], &["/v1/users"]),
            rule("api/users-admin", &["api.example.com"], &["GET"], &["/v1/users/admin"]),
            rule("api/orders", &["api.example.com"], &["GET"], &["/v1/orders"]),
            rule("shop/all", &["*.myshopify.com"], &["GET"], &["/"]),
        ]);
        let cases: &[(&str, &str, &str, &str)] = &[
            ("api.example.com", "GET", "/v1/users", "allow:api/users"),
            ("api.example.com", "post", "/v1/users/7", "allow:api/users"),
            ("api.example.com", "GET", "/v1/users/admin/x", "allow:api/users-admin"),
            ("api.example.com", "DELETE", "/v1/users/7", "capability_denied"),
            ("api.example.com", "GET", "/v1/usersX", "capability_denied"),
            ("api.example.com", "GET", "/v1/users/../admin", "capability_denied"),
            ("api.example.com", "GET", "/v1/users%2F..%2Fadmin", "capability_denied"),
            ("api.example.com", "POST", "/v1/orders", "capability_denied"),
            ("other.example.com", "GET", "/v1/users", "host_not_allowed"),
            ("store.myshopify.com", "GET", "/admin/api/products.json", "allow:shop/all"),
            ("myshopify.com", "GET", "/", "host_not_allowed"),
        ];
        for (host, method, path, want) in cases {
            let got = match policy.decide(host, 443, method, path) {
                Decision::Allow { rule, .. } => format!("allow:{}", rule.id),
                Decision::Deny(d) => d.code().as_str().to_owned(),
            };
            assert_eq!(&got, want, "{method} {host}{path}");
        }
        assert!(!policy.knows_host("api.example.com", 8443));
    }

    #[test]
    fn rule_validation() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert!(Rule::new("x", "p", &s(&[]), &s(&["GET"]), &s(&["/"])).is_err());
        assert!(Rule::new("x", "p", &s(&["a.com"]), &s(&["G ET"]), &s(&["/"])).is_err());
        assert!(Rule::new("x", "p", &s(&["a.com"]), &s(&["GET"]), &s(&["v1"])).is_err());
        assert!(Rule::new("x", "p", &s(&["a.com"]), &s(&["GET"]), &s(&["/v1/../x"])).is_err());
        assert!(Rule::new("x", "p", &s(&["a.com"]), &s(&["GET"]), &s(&["/v1?x"])).is_err());
    }
}
