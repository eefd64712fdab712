//! Proposals as data: what an agent may ask for (credential slots and capabilities), parsed from
//! hostile JSON into checked values, and the stored shape of a proposal.
//!
//! Architecture invariant: a pure leaf. Parsing never stores anything; every rejection names the
//! field (`credentials[1].key`) so the agent can fix it. A value an agent supplies leaves this
//! module only as a `SecretString`; the stored `Slot` records only that there was one.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::secret::SecretString;

/// Largest proposal body the proxy reads.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Most credential slots and most capabilities in one proposal.
pub const MAX_SLOTS: usize = 32;
pub const MAX_CAPABILITIES: usize = 16;
/// Most pending proposals per agent.
pub const MAX_PENDING_PER_AGENT: usize = 8;
/// Longest free text (message, description, instructions) and longest URL.
const MAX_TEXT: usize = 2000;
const MAX_URL: usize = 2048;
const MAX_KEY: usize = 64;
/// Default lifetime of a pending proposal.
pub const DEFAULT_TTL_MS: u64 = 24 * 3600 * 1000;

/// Where a proposal is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pending,
    Approved,
    Rejected,
    Expired,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Approved => "approved",
            Status::Rejected => "rejected",
            Status::Expired => "expired",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Add or replace.
    Set,
    Delete,
}

/// An OAuth slot's provider endpoints. With `authorization_url` the page offers Connect,
/// without it token paste.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OAuthSlot {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_url: Option<String>,
    pub token_url: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// How the client authenticates at the token endpoint (`basic` or `form`), chosen by the
    /// person connecting (a preset fills it); agents do not set it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_auth: Option<String>,
}

/// One credential slot as stored (never a value: `agent_value` says whether the agent put one in).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Slot {
    pub action: Action,
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub obtain: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub obtain_instructions: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth: Option<OAuthSlot>,
    /// The agent supplied a value (sealed beside the proposal); the person confirms it.
    #[serde(default)]
    pub agent_value: bool,
}

impl Slot {
    pub fn is_oauth(&self) -> bool {
        self.oauth.is_some()
    }

    /// A `set` slot a person must fill in before approval (static, no agent value).
    pub fn needs_value(&self) -> bool {
        self.action == Action::Set && !self.is_oauth() && !self.agent_value
    }
}

/// How a requested capability's credential injects the slot's value (the shape
/// `credential create --auth ...` takes).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthAsk {
    /// `header`, `query`, `basic` or `path`; an OAuth slot implies `oauth2`.
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_template: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_param: Option<String>,
}

/// A capability the agent wants, bound to one of the proposal's slots (or an existing secret).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapabilityAsk {
    /// `provider/name`.
    pub id: String,
    pub hosts: Vec<String>,
    pub methods: Vec<String>,
    pub paths: Vec<String>,
    /// The secret key whose value is injected.
    pub secret: String,
    pub auth: AuthAsk,
}

impl CapabilityAsk {
    pub fn provider(&self) -> &str {
        self.id.split_once('/').map_or(self.id.as_str(), |(p, _)| p)
    }
}

/// A checked proposal: what is stored, plus the values the agent supplied (by slot index).
pub struct Parsed {
    pub message: Option<String>,
    pub slots: Vec<Slot>,
    pub capabilities: Vec<CapabilityAsk>,
    pub values: Vec<(usize, SecretString)>,
}

/// Why a proposal body was refused, naming the field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invalid {
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

fn bad(field: impl Into<String>, message: impl Into<String>) -> Invalid {
    Invalid { field: field.into(), message: message.into() }
}

/// Parses and checks a proposal body. Nothing about the store is known here: a delete of an
/// unknown key is the service's check.
pub fn parse(body: &[u8]) -> Result<Parsed, Invalid> {
    if body.len() > MAX_BODY_BYTES {
        return Err(bad("body", format!("larger than {MAX_BODY_BYTES} bytes")));
    }
    let doc: Value = serde_json::from_slice(body)
        .map_err(|e| bad("body", format!("not JSON (line {}, column {})", e.line(), e.column())))?;
    let Value::Object(mut top) = doc else { return Err(bad("body", "must be a JSON object")) };
    let message = take_text(&mut top, "message", "")?;
    let raw_slots = take_array(&mut top, "credentials", "")?;
    let raw_caps = take_array(&mut top, "capabilities", "")?;
    no_more(&top, "")?;
    if raw_slots.is_empty() && raw_caps.is_empty() {
        return Err(bad("credentials", "a proposal asks for at least one credential or capability"));
    }
    if raw_slots.len() > MAX_SLOTS {
        return Err(bad("credentials", format!("at most {MAX_SLOTS} slots")));
    }
    if raw_caps.len() > MAX_CAPABILITIES {
        return Err(bad("capabilities", format!("at most {MAX_CAPABILITIES} capabilities")));
    }
    let mut slots = Vec::new();
    let mut values = Vec::new();
    for (i, raw) in raw_slots.into_iter().enumerate() {
        let at = format!("credentials[{i}]");
        let (slot, value) = parse_slot(raw, &at)?;
        if slots.iter().any(|s: &Slot| s.key == slot.key) {
            return Err(bad(format!("{at}.key"), format!("{} appears twice", slot.key)));
        }
        if let Some(v) = value {
            values.push((i, v));
        }
        slots.push(slot);
    }
    let mut capabilities = Vec::new();
    for (i, raw) in raw_caps.into_iter().enumerate() {
        let at = format!("capabilities[{i}]");
        let cap = parse_capability(raw, &at)?;
        if capabilities.iter().any(|c: &CapabilityAsk| c.id == cap.id) {
            return Err(bad(format!("{at}.id"), format!("{} appears twice", cap.id)));
        }
        if let Some(slot) = slots.iter().find(|s| s.key == cap.secret) {
            if slot.action == Action::Delete {
                return Err(bad(format!("{at}.secret"), format!("{} is deleted by this proposal", cap.secret)));
            }
            if slot.is_oauth() != (cap.auth.kind == "oauth2") {
                return Err(bad(
                    format!("{at}.auth.type"),
                    "an oauth slot is injected with auth type oauth2, and only an oauth slot",
                ));
            }
        }
        capabilities.push(cap);
    }
    Ok(Parsed { message, slots, capabilities, values })
}

fn parse_slot(raw: Value, at: &str) -> Result<(Slot, Option<SecretString>), Invalid> {
    let Value::Object(mut m) = raw else { return Err(bad(at, "must be an object")) };
    let action = match take_str(&mut m, "action", at)?.as_deref() {
        None | Some("set") => Action::Set,
        Some("delete") => Action::Delete,
        Some(other) => return Err(bad(format!("{at}.action"), format!("unknown action '{}'", printable(other)))),
    };
    let key = take_str(&mut m, "key", at)?.ok_or_else(|| bad(format!("{at}.key"), "is required"))?;
    check_key(&key).map_err(|why| bad(format!("{at}.key"), why.to_string()))?;
    let kind = take_str(&mut m, "type", at)?;
    let description = take_text(&mut m, "description", at)?;
    let obtain = take_url(&mut m, "obtain", at)?;
    let obtain_instructions = take_text(&mut m, "obtain_instructions", at)?;
    let value = take_value(&mut m, at)?;
    let oauth_raw = m.remove("oauth");
    no_more(&m, at)?;
    let oauth = match (kind.as_deref(), oauth_raw) {
        (None | Some("static"), None) => None,
        (None | Some("static"), Some(_)) => {
            return Err(bad(format!("{at}.oauth"), "only a slot of type oauth takes an oauth object"));
        }
        (Some("oauth"), Some(o)) => Some(parse_oauth(o, &format!("{at}.oauth"))?),
        (Some("oauth"), None) => return Err(bad(format!("{at}.oauth"), "an oauth slot needs {\"token_url\": ...}")),
        (Some(other), _) => return Err(bad(format!("{at}.type"), format!("unknown type '{}'", printable(other)))),
    };
    if action == Action::Delete && (oauth.is_some() || value.is_some()) {
        return Err(bad(at, "a delete slot takes only its key"));
    }
    if oauth.is_some() && value.is_some() {
        return Err(bad(format!("{at}.value"), "an oauth slot is connected or pasted by a person, not given a value"));
    }
    let slot = Slot { action, key, description, obtain, obtain_instructions, oauth, agent_value: value.is_some() };
    Ok((slot, value))
}

fn parse_oauth(raw: Value, at: &str) -> Result<OAuthSlot, Invalid> {
    let Value::Object(mut m) = raw else { return Err(bad(at, "must be an object")) };
    let authorization_url = take_url(&mut m, "authorization_url", at)?;
    let token_url = take_url(&mut m, "token_url", at)?.ok_or_else(|| bad(format!("{at}.token_url"), "is required"))?;
    let scopes = match m.remove("scopes") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => s.split_whitespace().map(str::to_owned).collect(),
        Some(Value::Array(a)) => strings(a, &format!("{at}.scopes"))?,
        Some(_) => return Err(bad(format!("{at}.scopes"), "must be a string or an array of strings")),
    };
    if let Some(s) = scopes.iter().find(|s| s.len() > 200 || s.chars().any(char::is_control)) {
        return Err(bad(format!("{at}.scopes"), format!("bad scope '{}'", printable(s))));
    }
    no_more(&m, at)?;
    Ok(OAuthSlot { authorization_url, token_url, scopes, client_auth: None })
}

fn parse_capability(raw: Value, at: &str) -> Result<CapabilityAsk, Invalid> {
    let Value::Object(mut m) = raw else { return Err(bad(at, "must be an object")) };
    let id = take_str(&mut m, "id", at)?.ok_or_else(|| bad(format!("{at}.id"), "is required (provider/name)"))?;
    let ok_id = id.len() <= 128
        && id.split_once('/').is_some_and(|(p, n)| {
            let part = |s: &str| {
                !s.is_empty()
                    && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
            };
            part(p) && part(n)
        });
    if !ok_id {
        return Err(bad(format!("{at}.id"), "must be provider/name in lowercase letters, digits, - and _"));
    }
    let mut hosts = list(&mut m, "hosts", at)?;
    if let Some(h) = take_str(&mut m, "host", at)? {
        hosts.push(h);
    }
    if hosts.is_empty() {
        return Err(bad(format!("{at}.host"), "is required"));
    }
    let methods = list(&mut m, "methods", at)?;
    let mut paths = list(&mut m, "paths", at)?;
    paths.extend(list(&mut m, "path_prefixes", at)?);
    let secret =
        take_str(&mut m, "secret", at)?.ok_or_else(|| bad(format!("{at}.secret"), "is required (a slot key)"))?;
    check_key(&secret).map_err(|why| bad(format!("{at}.secret"), why.to_string()))?;
    let auth = match m.remove("auth") {
        Some(Value::Object(mut a)) => {
            let at = format!("{at}.auth");
            let kind = take_str(&mut a, "type", &at)?.ok_or_else(|| bad(format!("{at}.type"), "is required"))?;
            if !["header", "query", "basic", "path", "oauth2"].contains(&kind.as_str()) {
                return Err(bad(
                    format!("{at}.type"),
                    format!("unknown auth type '{}' (header, query, basic, path, oauth2)", printable(&kind)),
                ));
            }
            let auth = AuthAsk {
                kind,
                header_name: take_str(&mut a, "header_name", &at)?,
                value_template: take_str(&mut a, "value_template", &at)?,
                query_param: take_str(&mut a, "query_param", &at)?,
            };
            no_more(&a, &at)?;
            auth
        }
        None => AuthAsk { kind: "header".into(), header_name: None, value_template: None, query_param: None },
        Some(_) => return Err(bad(format!("{at}.auth"), "must be an object")),
    };
    no_more(&m, at)?;
    for (i, h) in hosts.iter().enumerate() {
        crate::policy::HostPattern::parse(h).map_err(|e| bad(format!("{at}.hosts[{i}]"), e.to_string()))?;
    }
    Ok(CapabilityAsk { id, hosts, methods, paths, secret, auth })
}

/// An absolute `http(s)://` URL with a host, of a sane length (what a slot's links and OAuth
/// endpoints must be, here and on the console's forms).
pub fn is_http_url(url: &str) -> bool {
    url.len() <= MAX_URL
        && (url.starts_with("https://") || url.starts_with("http://"))
        && url.parse::<http::Uri>().is_ok_and(|u| u.host().is_some())
}

/// Why a name is not a secret key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("must be 1 to {MAX_KEY} characters")]
    Length,
    #[error("'{0}' must be UPPER_SNAKE_CASE (e.g. STRIPE_KEY)")]
    Case(String),
}

/// `UPPER_SNAKE_CASE`, starting with a letter.
pub fn check_key(key: &str) -> Result<(), KeyError> {
    if key.is_empty() || key.len() > MAX_KEY {
        return Err(KeyError::Length);
    }
    let ok = key.as_bytes()[0].is_ascii_uppercase()
        && key.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
    if !ok {
        return Err(KeyError::Case(printable(key)));
    }
    Ok(())
}

/// A short, control-free echo of agent text for an error message.
fn printable(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(64).collect()
}

fn field(at: &str, name: &str) -> String {
    if at.is_empty() { name.to_owned() } else { format!("{at}.{name}") }
}

fn no_more(m: &Map<String, Value>, at: &str) -> Result<(), Invalid> {
    match m.keys().next() {
        Some(k) => Err(bad(field(at, &printable(k)), "unknown field")),
        None => Ok(()),
    }
}

fn take_str(m: &mut Map<String, Value>, name: &str, at: &str) -> Result<Option<String>, Invalid> {
    match m.remove(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.len() > MAX_TEXT => Err(bad(field(at, name), "too long")),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(bad(field(at, name), "must be a string")),
    }
}

fn take_text(m: &mut Map<String, Value>, name: &str, at: &str) -> Result<Option<String>, Invalid> {
    let text = take_str(m, name, at)?;
    if text.as_deref().is_some_and(|t| t.chars().any(|c| c.is_control() && c != '\n')) {
        return Err(bad(field(at, name), "contains control characters"));
    }
    Ok(text.filter(|t| !t.trim().is_empty()))
}

fn take_url(m: &mut Map<String, Value>, name: &str, at: &str) -> Result<Option<String>, Invalid> {
    let Some(url) = take_str(m, name, at)? else { return Ok(None) };
    if !is_http_url(&url) {
        return Err(bad(field(at, name), "must be an http(s) URL"));
    }
    Ok(Some(url))
}

fn take_value(m: &mut Map<String, Value>, at: &str) -> Result<Option<SecretString>, Invalid> {
    match m.remove("value") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Err(bad(field(at, "value"), "is empty")),
        Some(Value::String(s)) if s.len() > MAX_BODY_BYTES => Err(bad(field(at, "value"), "too long")),
        Some(Value::String(s)) => Ok(Some(SecretString::new(s))),
        Some(_) => Err(bad(field(at, "value"), "must be a string")),
    }
}

fn take_array(m: &mut Map<String, Value>, name: &str, at: &str) -> Result<Vec<Value>, Invalid> {
    match m.remove(name) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(a)) => Ok(a),
        Some(_) => Err(bad(field(at, name), "must be an array")),
    }
}

fn list(m: &mut Map<String, Value>, name: &str, at: &str) -> Result<Vec<String>, Invalid> {
    match m.remove(name) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(a)) => strings(a, &field(at, name)),
        Some(_) => Err(bad(field(at, name), "must be an array of strings")),
    }
}

fn strings(a: Vec<Value>, at: &str) -> Result<Vec<String>, Invalid> {
    a.into_iter()
        .enumerate()
        .map(|(i, v)| match v {
            Value::String(s) if s.len() <= MAX_URL => Ok(s),
            _ => Err(bad(format!("{at}[{i}]"), "must be a short string")),
        })
        .collect()
}

#[cfg(test)]
mod tests;
