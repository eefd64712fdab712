//! Where a vault's state lives: the embedded redb file (default) or a PostgreSQL database
//! (`--store postgres://...` / `AIVAULT_STORE_URL`). Displayed without the password.

use std::fmt;
use std::path::PathBuf;

/// A store's address.
#[derive(Clone, PartialEq, Eq)]
pub enum Location {
    /// `$AIVAULT_HOME/vault.redb`.
    File(PathBuf),
    /// A `postgres://` or `postgresql://` URL (it may hold a password: never print it), and the
    /// libpq passfile to take a password from when the URL has none.
    Postgres(zeroize::Zeroizing<String>, Option<PathBuf>),
}

impl Location {
    /// Parses a `--store` value: a PostgreSQL URL, or a path to a redb file.
    pub fn parse(text: &str) -> Location {
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            Location::Postgres(zeroize::Zeroizing::new(text.to_owned()), None)
        } else {
            Location::File(PathBuf::from(text.strip_prefix("file://").unwrap_or(text)))
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, Location::Postgres(..))
    }

    /// The redb file, if this is one.
    pub fn file(&self) -> Option<&std::path::Path> {
        match self {
            Location::File(p) => Some(p),
            Location::Postgres(..) => None,
        }
    }
}

/// `user@host:port/db` for a URL (no password, no query), the path for a file.
impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::File(p) => write!(f, "{}", p.display()),
            Location::Postgres(url, _) => {
                let rest = url.split_once("://").map_or(url.as_str(), |(_, r)| r);
                let rest = rest.split(['?', '#']).next().unwrap_or("");
                let (user, host) = match rest.rsplit_once('@') {
                    Some((u, h)) => (u.split(':').next().unwrap_or(""), h),
                    None => ("", rest),
                };
                if user.is_empty() { write!(f, "postgres://{host}") } else { write!(f, "postgres://{user}@{host}") }
            }
        }
    }
}

impl fmt::Debug for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Location({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_paths_and_no_password_in_display() {
        let cases = [
            (
                "postgres://aivault:s3cr3t-SENTINEL@db.internal:5432/vault?sslmode=require",
                "postgres://aivault@db.internal:5432/vault",
            ),
            ("postgresql://db/vault", "postgres://db/vault"),
            ("/var/lib/aivault/vault.redb", "/var/lib/aivault/vault.redb"),
            ("file:///tmp/v.redb", "/tmp/v.redb"),
        ];
        for (text, shown) in cases {
            let loc = Location::parse(text);
            assert_eq!(loc.to_string(), shown);
            assert!(!format!("{loc:?}").contains("SENTINEL"));
        }
        assert!(Location::parse("postgres://x/y").is_postgres());
        assert!(Location::parse("v.redb").file().is_some());
    }
}
