//! The top-level error: every module's typed error, one `kind()` that maps to exit codes (CLI)
//! and to proxy status codes with `x-aivault-error` (proxy).
//!
//! Architecture invariant: no variant holds secret bytes. A sentinel test checks Display and
//! Debug of each variant.

use crate::auth::AuthError;
use crate::ca::CaError;
use crate::crypto::CryptoError;
use crate::policy::{HostError, RuleError};
use crate::refusal::{CodeClass, ErrorCode, Refusal};
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
    /// The vault file is damaged (truncated, bit-flipped, empty).
    Damaged,
    Upstream,
    /// Cannot listen, cannot reach the proxy or an OAuth provider, a redirect never came.
    Network,
    /// A local file or process (not the store): cannot write a file, run a command.
    Io,
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
    /// No credential (or two equal ones) for the caller's context.
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    #[error(transparent)]
    Ca(#[from] CaError),
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
    Denied { code: ErrorCode, message: String },
    #[error("{message}")]
    Upstream { code: ErrorCode, message: String },
    /// A local file or process, with what was being done and the OS error as its source.
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
    #[error("{0}")]
    Network(String),
    /// A broken invariant inside aivault (a worker thread gone, a value that cannot encode).
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    pub fn invalid(msg: impl Into<String>) -> Error {
        Error::Invalid(msg.into())
    }

    /// A local I/O failure while doing `what` ("cannot write /x/ca.pem").
    pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let what = what.into();
        move |source| Error::Io { what, source }
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
            Error::Denied { .. } | Error::Resolve(_) => ErrorKind::Denied,
            Error::Crypto(_) | Error::WrongMasterKey { .. } => ErrorKind::Crypto,
            Error::Store(StoreError::NotEmpty) => ErrorKind::Conflict,
            Error::Store(e) if e.is_damage() => ErrorKind::Damaged,
            Error::Store(_) => ErrorKind::Store,
            Error::Upstream { .. } => ErrorKind::Upstream,
            Error::Network(_) => ErrorKind::Network,
            Error::Io { .. } => ErrorKind::Io,
            Error::Ca(CaError::BadHost(_)) => ErrorKind::Usage,
            Error::Ca(CaError::BadKey(_)) => ErrorKind::Crypto,
            Error::Registry(_) | Error::Ca(_) | Error::Internal(_) => ErrorKind::Internal,
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
            ErrorKind::Damaged => 9,
            ErrorKind::Network => 10,
            ErrorKind::Io => 11,
            ErrorKind::Internal => 1,
        }
    }

    /// The refusal the proxy sends for this error.
    pub fn refusal(&self) -> Refusal {
        let code = match self {
            Error::Denied { code, .. } | Error::Upstream { code, .. } => *code,
            Error::Resolve(_) => ErrorCode::NoCredential,
            Error::Crypto(_) | Error::Auth(_) => ErrorCode::CredentialUnavailable,
            _ => ErrorCode::InternalError,
        };
        Refusal::new(code, self.to_string())
    }

    /// A CLI error for a refusal (as `invoke` reports one).
    pub fn from_refusal(r: Refusal) -> Error {
        let message = r.to_string();
        match r.code.class() {
            CodeClass::Upstream => Error::Upstream { code: r.code, message },
            _ => Error::Denied { code: r.code, message },
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(source: std::io::Error) -> Self {
        Error::Io { what: "I/O failed".into(), source }
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
        assert_eq!(Error::Network("cannot listen".into()).exit_code(), 10);
        let io = Error::io("cannot write /x")(std::io::Error::from(std::io::ErrorKind::PermissionDenied));
        assert_eq!(io.exit_code(), 11);
        assert!(std::error::Error::source(&io).is_some(), "the OS error is kept as the source");
        let denied = Error::Denied { code: ErrorCode::CapabilityDenied, message: "no".into() };
        assert_eq!(denied.refusal().status(), 403);
        let timeout = Error::Upstream { code: ErrorCode::UpstreamTimeout, message: "slow".into() };
        assert_eq!(timeout.refusal().code, ErrorCode::UpstreamTimeout);
        assert_eq!(timeout.refusal().status(), 504);
        let auth = Error::Denied { code: ErrorCode::ProxyAuthRequired, message: "token".into() };
        assert_eq!(auth.refusal().status(), 407);
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
        if let Err(e) = inject::inject(&mut target, &crate::auth::Strategy::compile(&path).unwrap(), &slash) {
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
