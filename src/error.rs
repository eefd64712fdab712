//! The top-level error: every module's typed error, one `kind()` that maps to exit codes (CLI)
//! and to proxy status codes with `x-aivault-error` (proxy).
//!
//! Architecture invariant: no variant holds secret bytes. A sentinel test checks Display and
//! Debug of each variant.

use crate::auth::AuthError;
use crate::crypto::CryptoError;
use crate::policy::{HostError, RuleError};
use crate::registry::RegistryError;
use crate::scope::{ResolveError, ScopeError};
use crate::store::StoreError;

/// Broad classes of failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The user asked for something malformed (exit 2).
    Usage,
    NotFound,
    Conflict,
    /// Policy said no.
    Denied,
    /// The master key does not open this vault, or a record was tampered with.
    Crypto,
    Store,
    Upstream,
    Internal,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Scope(#[from] ScopeError),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Rule(#[from] RuleError),
    #[error(transparent)]
    Host(#[from] HostError),
    #[error("{0}")]
    Invalid(String),
    #[error("{what} '{id}' not found{hint}")]
    NotFound { what: &'static str, id: String, hint: String },
    #[error("{0}")]
    Conflict(String),
    #[error(
        "wrong master key: this vault was sealed with {expected}, but the key in use is {found}; \
         set AIVAULT_MASTER_KEY (or {home}/master.key) to the key the vault was created with"
    )]
    WrongMasterKey { expected: String, found: String, home: String },
    #[error("{message}")]
    Denied { code: &'static str, message: String },
    #[error("{message}")]
    Upstream { code: &'static str, message: String },
    #[error("{0}")]
    Io(String),
}

impl Error {
    pub fn invalid(msg: impl Into<String>) -> Error {
        Error::Invalid(msg.into())
    }

    pub fn not_found(what: &'static str, id: impl Into<String>, hint: &str) -> Error {
        let hint = if hint.is_empty() { String::new() } else { format!("; {hint}") };
        Error::NotFound { what, id: id.into(), hint }
    }

    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Scope(_)
            | Error::Auth(AuthError::InvalidTemplate(_) | AuthError::InvalidConfig(_))
            | Error::Rule(_)
            | Error::Host(_)
            | Error::Invalid(_) => ErrorKind::Usage,
            Error::Auth(_) => ErrorKind::Denied,
            Error::NotFound { .. } => ErrorKind::NotFound,
            Error::Conflict(_) => ErrorKind::Conflict,
            Error::Denied { .. } => ErrorKind::Denied,
            Error::Crypto(_) | Error::WrongMasterKey { .. } => ErrorKind::Crypto,
            Error::Store(_) | Error::Io(_) => ErrorKind::Store,
            Error::Upstream { .. } => ErrorKind::Upstream,
            Error::Registry(_) => ErrorKind::Internal,
        }
    }

    /// Process exit status for the CLI.
    pub fn exit_code(&self) -> i32 {
        match self.kind() {
            ErrorKind::Usage => 2,
            ErrorKind::NotFound => 3,
            ErrorKind::Conflict => 4,
            ErrorKind::Denied => 5,
            ErrorKind::Crypto => 6,
            ErrorKind::Store => 7,
            ErrorKind::Upstream => 8,
            ErrorKind::Internal => 1,
        }
    }

    /// The proxy's `(status, x-aivault-error code)` for this error.
    pub fn proxy_status(&self) -> (u16, &'static str) {
        match self {
            Error::Denied { code, .. } => match *code {
                "proxy_auth_required" => (407, code),
                "credential_unavailable" | "oauth_refresh_failed" => (502, code),
                _ => (403, code),
            },
            Error::Upstream { code, .. } => match *code {
                "upstream_timeout" => (504, code),
                "request_too_large" => (413, code),
                _ => (502, code),
            },
            Error::Crypto(_) | Error::Auth(_) => (502, "credential_unavailable"),
            _ => (500, "internal_error"),
        }
    }
}

impl From<ResolveError> for Error {
    fn from(e: ResolveError) -> Self {
        match e {
            ResolveError::NoCredential(_) => Error::Denied { code: "no_credential", message: e.to_string() },
            ResolveError::Ambiguous { .. } => Error::Denied { code: "no_credential", message: e.to_string() },
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(e.to_string())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_and_statuses() {
        assert_eq!(Error::invalid("x").exit_code(), 2);
        assert_eq!(Error::not_found("secret", "a", "").exit_code(), 3);
        let denied = Error::Denied { code: "capability_denied", message: "no".into() };
        assert_eq!(denied.proxy_status(), (403, "capability_denied"));
        let timeout = Error::Upstream { code: "upstream_timeout", message: "slow".into() };
        assert_eq!(timeout.proxy_status(), (504, "upstream_timeout"));
        let auth = Error::Denied { code: "proxy_auth_required", message: "token".into() };
        assert_eq!(auth.proxy_status().0, 407);
    }

    /// Errors raised while handling a secret value never render that value.
    #[test]
    fn errors_never_contain_the_secret_sentinel() {
        use crate::auth::{AuthConfig, Material, Template, inject};
        use crate::secret::SecretBytes;
        const SENTINEL: &str = "sk-SENTINEL-err-0042";
        let mut errors: Vec<Error> = Vec::new();
        let bad = Material::single(SecretBytes::from_str_copy(&format!("{SENTINEL}\r\nX-Evil: 1")));
        if let Err(e) = Template::parse("Bearer {{secret}}").and_then(|t| t.render(&bad)) {
            errors.push(e.into());
        }
        let path = AuthConfig::Path { prefix_template: "/bot{{secret}}".into() };
        let slash = Material::single(SecretBytes::from_str_copy(&format!("{SENTINEL}/../x")));
        let mut target = inject::Target { path: "/getMe".into(), query: None, headers: http::HeaderMap::new() };
        if let Err(e) = inject::inject(&mut target, &path, &slash) {
            errors.push(e.into());
        }
        let (key, _) = crate::crypto::MasterKey::generate().unwrap();
        let mut sealed = crate::crypto::seal(&key, b"a", SENTINEL.as_bytes()).unwrap();
        sealed.ciphertext[20] ^= 1;
        errors.push(crate::crypto::open(&key, b"a", &sealed).unwrap_err().into());
        assert_eq!(errors.len(), 3);
        for e in &errors {
            let shown = format!("{e} {e:?}");
            assert!(!shown.contains(SENTINEL), "{shown}");
        }
        assert!(!format!("{bad:?} {sealed:?}").contains(SENTINEL));
    }
}
