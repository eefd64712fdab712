//! Request paths: normalisation for matching, ambiguity rejection, segment-bounded prefixes.
//!
//! The path the upstream receives is the one the agent sent; the normalised form is only used to
//! decide. Anything that two servers could read differently (`%2F`, encoded dots, dot segments,
//! `;` parameters such as `..;`, backslashes, invalid or overlong UTF-8 such as `%c0%ae`) is
//! refused instead of guessed.

/// Why a path was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum PathError {
    #[error("path must start with '/'")]
    NotAbsolute,
    #[error("path contains an ambiguous encoding ({0})")]
    Ambiguous(&'static str),
    #[error("path contains a dot segment ('.', '..' or '...')")]
    DotSegment,
    #[error("path contains a ';' parameter (servers disagree on what it means)")]
    Parameter,
    #[error("path contains an invalid or overlong UTF-8 escape")]
    BadUtf8,
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
    if path.contains(';') {
        return Err(PathError::Parameter);
    }
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    // Consecutive escapes of non-ASCII bytes must form valid UTF-8 (no overlong dots).
    let mut escaped_run: Vec<u8> = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'%' && !escaped_run.is_empty() {
            check_utf8(&mut escaped_run)?;
        }
        let b = bytes[i];
        if b == b'%' {
            let hi = bytes.get(i + 1).and_then(|c| (*c as char).to_digit(16));
            let lo = bytes.get(i + 2).and_then(|c| (*c as char).to_digit(16));
            let (Some(hi), Some(lo)) = (hi, lo) else { return Err(PathError::BadPercent) };
            let decoded = (hi * 16 + lo) as u8;
            if decoded >= 0x80 {
                escaped_run.push(decoded);
            } else if !escaped_run.is_empty() {
                check_utf8(&mut escaped_run)?;
            }
            match decoded {
                b';' => return Err(PathError::Parameter),
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
    check_utf8(&mut escaped_run)?;
    if out.split('/').any(|seg| !seg.is_empty() && seg.bytes().all(|b| b == b'.')) {
        return Err(PathError::DotSegment);
    }
    Ok(out)
}

fn check_utf8(run: &mut Vec<u8>) -> Result<(), PathError> {
    let ok = std::str::from_utf8(run).is_ok();
    run.clear();
    if ok { Ok(()) } else { Err(PathError::BadUtf8) }
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
            ("/v1/users/..;/admin", Err(PathError::Parameter)),
            ("/v1/users/.;/admin", Err(PathError::Parameter)),
            ("/v1/users;jsessionid=1", Err(PathError::Parameter)),
            ("/v1/users/%3B/x", Err(PathError::Parameter)),
            ("/v1/users/.../admin", Err(PathError::DotSegment)),
            ("/v1/users/...", Err(PathError::DotSegment)),
            ("/v1/%c0%ae%c0%ae/admin", Err(PathError::BadUtf8)),
            ("/v1/%e0%80%ae/admin", Err(PathError::BadUtf8)),
            ("/v1/%c0", Err(PathError::BadUtf8)),
            ("/v1/caf%C3%A9", Ok("/v1/caf%C3%A9")),
            ("/v1/%F0%9F%98%80x", Ok("/v1/%F0%9F%98%80x")),
        ];
        for (input, want) in cases {
            assert_eq!(normalize(input).as_deref().map_err(Clone::clone), want.clone(), "{input}");
        }
    }

    /// How a lenient server could read a path: every escape decoded, `\` as `/`, `;` parameters
    /// dropped, dot segments resolved (RFC 3986 5.2.4, with `...` as `..`).
    fn lenient_server_view(path: &str) -> String {
        let decoded = String::from_utf8_lossy(&crate::percent::decode(path)).replace('\\', "/");
        let mut out: Vec<String> = Vec::new();
        for seg in decoded.split('/').skip(1) {
            let seg = seg.split(';').next().unwrap_or("");
            match seg {
                "." => {}
                s if !s.is_empty() && s.bytes().all(|b| b == b'.') => {
                    out.pop();
                }
                s => out.push(s.to_owned()),
            }
        }
        format!("/{}", out.join("/"))
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4000))]

        #[test]
        fn normalize_never_panics(path in "\\PC{0,40}") {
            let _ = normalize(&path);
        }

        /// A path the policy lets through under a prefix stays under it however the server reads it.
        #[test]
        fn an_allowed_path_stays_under_its_prefix(
            tail in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::strategy::Just("..".to_owned()),
                    proptest::strategy::Just(".".to_owned()),
                    proptest::strategy::Just("...".to_owned()),
                    proptest::strategy::Just("..;".to_owned()),
                    proptest::strategy::Just(".;".to_owned()),
                    proptest::strategy::Just("%2e%2e".to_owned()),
                    proptest::strategy::Just("%2f".to_owned()),
                    proptest::strategy::Just("%5c".to_owned()),
                    proptest::strategy::Just("\\".to_owned()),
                    proptest::strategy::Just("%c0%ae%c0%ae".to_owned()),
                    proptest::strategy::Just("%3b".to_owned()),
                    proptest::strategy::Just("%252e".to_owned()),
                    "[a-z0-9%._;~-]{0,6}",
                ],
                0..6,
            ),
            sep in proptest::collection::vec(proptest::prop_oneof![proptest::strategy::Just("/"), proptest::strategy::Just("")], 6),
        ) {
            let prefix = "/v1/users";
            let mut path = prefix.to_owned();
            for (i, part) in tail.iter().enumerate() {
                path.push_str(sep[i % sep.len()]);
                path.push_str(part);
            }
            if let Ok(n) = normalize(&path) {
                if prefix_matches(prefix, &n) {
                    let seen = lenient_server_view(&path);
                    proptest::prop_assert!(prefix_matches(prefix, &seen), "{path} -> {n}, a server may read {seen}");
                }
            }
        }
    }
}
