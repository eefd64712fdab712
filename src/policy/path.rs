//! Request paths: normalisation for matching, ambiguity rejection, segment-bounded prefixes.
//!
//! The path the upstream receives is the one the agent sent; the normalised form is only used to
//! decide. Anything that two servers could read differently (`%2F`, encoded dots, `..`, `\`) is
//! refused instead of guessed.

/// Why a path was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum PathError {
    #[error("path must start with '/'")]
    NotAbsolute,
    #[error("path contains an ambiguous encoding ({0})")]
    Ambiguous(&'static str),
    #[error("path contains a '.' or '..' segment")]
    DotSegment,
    #[error("path contains a malformed percent-encoding")]
    BadPercent,
}

/// Normalises a request path (without query) for matching. Unreserved characters that were
/// percent-encoded are decoded; other escapes are kept with uppercase hex.
pub fn normalize(path: &str) -> Result<String, PathError> {
    if !path.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    if path.contains('\\') {
        return Err(PathError::Ambiguous("backslash"));
    }
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hi = bytes.get(i + 1).and_then(|c| (*c as char).to_digit(16));
            let lo = bytes.get(i + 2).and_then(|c| (*c as char).to_digit(16));
            let (Some(hi), Some(lo)) = (hi, lo) else { return Err(PathError::BadPercent) };
            let decoded = (hi * 16 + lo) as u8;
            match decoded {
                b'/' => return Err(PathError::Ambiguous("%2F")),
                b'\\' => return Err(PathError::Ambiguous("%5C")),
                b'.' => return Err(PathError::Ambiguous("%2E")),
                b'%' => return Err(PathError::Ambiguous("%25")),
                0 => return Err(PathError::Ambiguous("%00")),
                c if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'~') => out.push(c as char),
                c => {
                    out.push('%');
                    out.push_str(&format!("{c:02X}"));
                }
            }
            i += 3;
            continue;
        }
        if b < 0x20 || b == 0x7f {
            return Err(PathError::Ambiguous("control character"));
        }
        out.push(b as char);
        i += 1;
    }
    if out.split('/').any(|seg| seg == "." || seg == "..") {
        return Err(PathError::DotSegment);
    }
    Ok(out)
}

/// Checks an allow-list prefix when a capability is defined.
pub fn check_prefix(prefix: &str) -> Result<(), PathError> {
    if prefix.contains(['?', '#', '%']) {
        return Err(PathError::Ambiguous("'?', '#' or '%' in a prefix"));
    }
    let n = normalize(prefix)?;
    debug_assert_eq!(n, prefix);
    Ok(())
}

/// Whether normalised `path` is under `prefix` on a segment boundary: `/v1/users` allows
/// `/v1/users`, `/v1/users/` and `/v1/users/7`, not `/v1/usersX`. `/` allows everything.
pub fn prefix_matches(prefix: &str, path: &str) -> bool {
    if prefix == "/" {
        return true;
    }
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || prefix.ends_with('/') || rest.starts_with('/'),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_table() {
        let cases: &[(&str, &str, bool)] = &[
            ("/v1/users", "/v1/users", true),
            ("/v1/users", "/v1/users/", true),
            ("/v1/users", "/v1/users/7", true),
            ("/v1/users", "/v1/usersX", false),
            ("/v1/users", "/v1/user", false),
            ("/v1/users/", "/v1/users/7", true),
            ("/v1/users/", "/v1/users", false),
            ("/", "/anything/at/all", true),
            ("/v1", "/v2/v1", false),
        ];
        for (prefix, path, want) in cases {
            assert_eq!(prefix_matches(prefix, path), *want, "{prefix} vs {path}");
        }
    }

    #[test]
    fn normalize_table() {
        let cases: &[(&str, Result<&str, PathError>)] = &[
            ("/v1/users", Ok("/v1/users")),
            ("/v1/%75sers", Ok("/v1/users")),
            ("/v1/a%20b", Ok("/v1/a%20b")),
            ("/v1/a%2fb", Err(PathError::Ambiguous("%2F"))),
            ("/v1/%2E%2E/admin", Err(PathError::Ambiguous("%2E"))),
            ("/v1/../admin", Err(PathError::DotSegment)),
            ("/v1/./users", Err(PathError::DotSegment)),
            ("/v1/..", Err(PathError::DotSegment)),
            ("/v1/a\\b", Err(PathError::Ambiguous("backslash"))),
            ("/v1/%zz", Err(PathError::BadPercent)),
            ("/v1/%2", Err(PathError::BadPercent)),
            ("/v1/%252F", Err(PathError::Ambiguous("%25"))),
            ("v1", Err(PathError::NotAbsolute)),
            ("/v1/..x", Ok("/v1/..x")),
        ];
        for (input, want) in cases {
            assert_eq!(normalize(input).as_deref().map_err(Clone::clone), want.clone(), "{input}");
        }
    }
}
