//! Refusals as values: one `ErrorCode` enum (its wire string, HTTP status and a hint for the
//! person reading it, in one table) and the `Refusal` the pipeline returns instead of a response.
//!
//! The proxy renders a `Refusal` in exactly one place (`proxy::respond::refusal`), audit records
//! take the code from the value, and `invoke` turns it into a CLI error without re-parsing.
//! Architecture invariant: a refusal's message is built from codes, ids and host names only.

use std::fmt;

/// Every error code aivault reports (`x-aivault-error`, `--json` errors, audit outcomes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    ProxyAuthRequired,
    HostNotAllowed,
    CapabilityDenied,
    NoCredential,
    CredentialUnavailable,
    DestinationBlocked,
    CleartextNotAllowed,
    CapabilityNotGranted,
    RateLimited,
    BudgetExhausted,
    ApprovalDenied,
    UpstreamError,
    UpstreamTimeout,
    BadRequest,
    RequestTooLarge,
    OauthRefreshFailed,
    MisdirectedRequest,
    UnsupportedPayloadSigning,
    UnsupportedEncoding,
    TooManyConnections,
    NotFound,
    /// A proposal body an agent sent is malformed (the `field` extra names where).
    InvalidProposal,
    /// An agent has too many pending proposals, or raises them too fast.
    TooManyProposals,
    /// A registry-pinned secret used outside its provider (CLI).
    PinnedProvider,
    /// `invoke` got a non-success status from the upstream (CLI).
    UpstreamStatus,
    InternalError,
}

/// Whether a code is a policy/identity decision or a failure on the way to the upstream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodeClass {
    Denied,
    Upstream,
    Usage,
    Internal,
}

use CodeClass::{Denied, Internal, Upstream, Usage};
use ErrorCode as C;

/// code, wire string, status, class, what to do next.
#[rustfmt::skip]
const TABLE: &[(ErrorCode, &str, u16, CodeClass, &str)] = &[
    (C::ProxyAuthRequired, "proxy_auth_required", 407, Denied,
     "send the agent token as the proxy password (HTTPS_PROXY=http://agent:<token>@HOST:PORT) or use `aivault run`"),
    (C::HostNotAllowed, "host_not_allowed", 403, Denied,
     "add a capability for this host (`aivault capability create ... --host HOST`), or run the proxy with --unmatched tunnel"),
    (C::CapabilityDenied, "capability_denied", 403, Denied,
     "no capability allows this method and path; see `aivault capability list` and `aivault explain`"),
    (C::NoCredential, "no_credential", 403, Denied,
     "store the provider's secret in a scope this agent reads (`aivault secrets create`)"),
    (C::CredentialUnavailable, "credential_unavailable", 502, Denied,
     "the credential's secret was deleted or cannot be opened; recreate it or fix the credential"),
    (C::DestinationBlocked, "destination_blocked", 403, Denied,
     "the address is private, loopback or metadata; let it through with --allow-destination CIDR|HOST (or map the name with --resolve) if you mean it"),
    (C::CleartextNotAllowed, "cleartext_not_allowed", 403, Denied,
     "credentials are injected over https only; use an https:// URL, or allow http on the capability (--allow-http)"),
    (C::CapabilityNotGranted, "capability_not_granted", 403, Denied,
     "this agent may use only its granted capabilities (`aivault agent grant NAME CAPABILITY`)"),
    (C::RateLimited, "rate_limited", 429, Denied, "slow down: retry after the Retry-After seconds (`aivault limit list`)"),
    (C::BudgetExhausted, "budget_exhausted", 429, Denied,
     "the request budget for this period is used up; it resets after Retry-After seconds (`aivault limit list`)"),
    (C::ApprovalDenied, "approval_denied", 403, Denied,
     "a person denied this request or did not decide in time (`aivault approval list`)"),
    (C::UpstreamError, "upstream_error", 502, Upstream, "the upstream could not be reached or spoke no valid HTTP"),
    (C::UpstreamTimeout, "upstream_timeout", 504, Upstream, "the upstream did not answer in time (--response-timeout)"),
    (C::BadRequest, "bad_request", 400, Usage, "the request could not be parsed"),
    (C::RequestTooLarge, "request_too_large", 413, Usage, "the body is larger than the proxy will buffer"),
    (C::OauthRefreshFailed, "oauth_refresh_failed", 502, Denied,
     "reconnect the credential (`aivault oauth connect` or `aivault oauth paste`)"),
    (C::MisdirectedRequest, "misdirected_request", 421, Usage, "open a tunnel (CONNECT) for each host"),
    (C::UnsupportedPayloadSigning, "unsupported_payload_signing", 400, Usage,
     "configure the client for unsigned payloads"),
    (C::UnsupportedEncoding, "unsupported_encoding", 502, Upstream,
     "the upstream answered in a content encoding the proxy cannot inspect"),
    (C::TooManyConnections, "too_many_connections", 429, Denied,
     "this agent has too many open connections (--max-agent-connections)"),
    (C::NotFound, "not_found", 404, Usage, "unknown aivault endpoint"),
    (C::InvalidProposal, "invalid_proposal", 400, Usage,
     "fix the field named in `field` and send the proposal again (see README, \"Let the agent ask\")"),
    (C::TooManyProposals, "too_many_proposals", 429, Denied,
     "wait for a person to decide the pending proposals (`aivault proposal list`), then ask again"),
    (C::PinnedProvider, "pinned_provider", 403, Denied, "registry secrets serve only their own provider"),
    (C::UpstreamStatus, "upstream_status", 502, Upstream, "the upstream answered with an error status"),
    (C::InternalError, "internal_error", 500, Internal, "a bug in aivault; please report it"),
];

impl ErrorCode {
    pub const ALL: [ErrorCode; 26] = [
        C::ProxyAuthRequired,
        C::HostNotAllowed,
        C::CapabilityDenied,
        C::NoCredential,
        C::CredentialUnavailable,
        C::DestinationBlocked,
        C::CleartextNotAllowed,
        C::CapabilityNotGranted,
        C::RateLimited,
        C::BudgetExhausted,
        C::ApprovalDenied,
        C::UpstreamError,
        C::UpstreamTimeout,
        C::BadRequest,
        C::RequestTooLarge,
        C::OauthRefreshFailed,
        C::MisdirectedRequest,
        C::UnsupportedPayloadSigning,
        C::UnsupportedEncoding,
        C::TooManyConnections,
        C::NotFound,
        C::InvalidProposal,
        C::TooManyProposals,
        C::PinnedProvider,
        C::UpstreamStatus,
        C::InternalError,
    ];

    fn row(self) -> &'static (ErrorCode, &'static str, u16, CodeClass, &'static str) {
        // Every variant has a row (checked by a test); the fallback is never used.
        TABLE.iter().find(|r| r.0 == self).unwrap_or(&TABLE[TABLE.len() - 1])
    }

    pub fn as_str(self) -> &'static str {
        self.row().1
    }

    pub fn status(self) -> u16 {
        self.row().2
    }

    pub fn class(self) -> CodeClass {
        self.row().3
    }

    pub fn hint(self) -> &'static str {
        self.row().4
    }

    pub fn parse(s: &str) -> Option<ErrorCode> {
        TABLE.iter().find(|r| r.1 == s).map(|r| r.0)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A request the proxy will not serve, as a value: rendered once, audited with its code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub code: ErrorCode,
    pub message: String,
    /// One extra machine-readable field for the JSON body (e.g. `oauth_error`).
    pub extra: Option<(&'static str, String)>,
    /// Seconds after which a retry may succeed (`Retry-After`).
    pub retry_after: Option<u64>,
}

impl Refusal {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Refusal {
        Refusal { code, message: message.into(), extra: None, retry_after: None }
    }

    pub fn with(mut self, key: &'static str, value: impl Into<String>) -> Refusal {
        self.extra = Some((key, value.into()));
        self
    }

    pub fn status(&self) -> u16 {
        self.code.status()
    }

    pub fn retry_after(mut self, secs: u64) -> Refusal {
        self.retry_after = Some(secs);
        self
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_one_row_and_round_trips() {
        assert_eq!(TABLE.len(), ErrorCode::ALL.len());
        for code in ErrorCode::ALL {
            assert_eq!(TABLE.iter().filter(|r| r.0 == code).count(), 1, "{code:?}");
            assert_eq!(ErrorCode::parse(code.as_str()), Some(code));
            assert!(!code.hint().is_empty());
            assert!((400..600).contains(&code.status()));
        }
    }

    #[test]
    fn contract_statuses() {
        for (code, status) in [
            ("proxy_auth_required", 407),
            ("host_not_allowed", 403),
            ("capability_denied", 403),
            ("no_credential", 403),
            ("credential_unavailable", 502),
            ("destination_blocked", 403),
            ("upstream_error", 502),
            ("upstream_timeout", 504),
        ] {
            assert_eq!(ErrorCode::parse(code).map(ErrorCode::status), Some(status), "{code}");
        }
    }
}
