//! Host names and host patterns: exact hosts and `*.` wildcards that cover exactly one label.

use std::fmt;

/// Why a host or host pattern was rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HostError {
    #[error("invalid host '{0}'")]
    Invalid(String),
    #[error("invalid host pattern '{0}': a wildcard must be a leading '*.' followed by at least two labels")]
    BadWildcard(String),
    #[error("invalid port in '{0}'")]
    BadPort(String),
}

/// Lowercases and checks a DNS name or IP literal. Underscores are allowed (real hosts have them).
pub fn normalize_host(raw: &str) -> Result<String, HostError> {
    let host = raw.trim_end_matches('.').to_ascii_lowercase();
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return inner
            .parse::<std::net::Ipv6Addr>()
            .map(|ip| format!("[{ip}]"))
            .map_err(|_| HostError::Invalid(raw.to_owned()));
    }
    if host.parse::<std::net::Ipv4Addr>().is_ok() {
        return Ok(host);
    }
    let ok = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if ok { Ok(host) } else { Err(HostError::Invalid(raw.to_owned())) }
}

/// Whether the authority `named` (a request's `host[:port]`) names `host:port`, where `host` is
/// already normalized and a missing port means `default_port`. The usual case (the very same
/// text, with or without the port) is decided without allocating; anything else is split and
/// normalized first.
pub fn names_authority(named: &str, host: &str, port: u16, default_port: u16) -> bool {
    if let Some(rest) = named.strip_prefix(host) {
        if rest.is_empty() {
            return port == default_port;
        }
        if let Some(p) = rest.strip_prefix(':') {
            if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) {
                return p.parse::<u16>().ok() == Some(port) && port != 0;
            }
        }
    }
    match split_host_port(named) {
        Ok((h, p)) => normalize_host(&h).ok().as_deref() == Some(host) && p.unwrap_or(default_port) == port,
        Err(_) => false,
    }
}

/// Splits `host[:port]` (IPv6 in brackets). The port is `None` when absent.
pub fn split_host_port(raw: &str) -> Result<(String, Option<u16>), HostError> {
    let (host, port) = if raw.starts_with('[') {
        match raw.find(']') {
            Some(end) => {
                let rest = &raw[end + 1..];
                let port = match rest.strip_prefix(':') {
                    Some(p) => Some(p),
                    None if rest.is_empty() => None,
                    None => return Err(HostError::Invalid(raw.to_owned())),
                };
                (&raw[..=end], port)
            }
            None => return Err(HostError::Invalid(raw.to_owned())),
        }
    } else {
        match raw.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (raw, None),
        }
    };
    let port = match port {
        Some(p) => Some(p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(|| HostError::BadPort(raw.to_owned()))?),
        None => None,
    };
    Ok((host.to_owned(), port))
}

/// An allowed host: exact or a one-label wildcard, with an optional port (default 443).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HostPattern {
    /// For a wildcard, the suffix after `*.`; otherwise the exact host.
    host: String,
    wildcard: bool,
    port: u16,
}

impl HostPattern {
    pub fn parse(raw: &str) -> Result<HostPattern, HostError> {
        let (host, port) = split_host_port(raw.trim())?;
        let port = port.unwrap_or(443);
        if let Some(suffix) = host.strip_prefix("*.") {
            let suffix = normalize_host(suffix).map_err(|_| HostError::BadWildcard(raw.to_owned()))?;
            if suffix.split('.').count() < 2 || suffix.contains('*') {
                return Err(HostError::BadWildcard(raw.to_owned()));
            }
            return Ok(HostPattern { host: suffix, wildcard: true, port });
        }
        if host.contains('*') {
            return Err(HostError::BadWildcard(raw.to_owned()));
        }
        Ok(HostPattern { host: normalize_host(&host)?, wildcard: false, port })
    }

    /// Whether `host` (already normalized) on `port` is allowed by this pattern.
    pub fn matches(&self, host: &str, port: u16) -> bool {
        if port != self.port {
            return false;
        }
        if self.wildcard {
            host.strip_suffix(self.host.as_str())
                .and_then(|label| label.strip_suffix('.'))
                .is_some_and(|label| !label.is_empty() && !label.contains('.'))
        } else {
            host == self.host
        }
    }

    /// Whether every host this pattern allows is also allowed by `outer` (narrowing check).
    pub fn within(&self, outer: &HostPattern) -> bool {
        match (self.wildcard, outer.wildcard) {
            (false, _) => outer.matches(&self.host, self.port),
            (true, true) => self == outer,
            (true, false) => false,
        }
    }

    pub fn is_wildcard(&self) -> bool {
        self.wildcard
    }

    /// The exact host, or the wildcard suffix.
    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn port(&self) -> u16 {
        self.port
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.wildcard {
            f.write_str("*.")?;
        }
        f.write_str(&self.host)?;
        if self.port != 443 {
            write!(f, ":{}", self.port)?;
        }
        Ok(())
    }
}

impl fmt::Debug for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HostPattern({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_authority_table() {
        let cases: &[(&str, &str, u16, bool)] = &[
            ("api.example.com", "api.example.com", 443, true),
            ("api.example.com:443", "api.example.com", 443, true),
            ("api.example.com:0443", "api.example.com", 443, true),
            ("api.example.com:8443", "api.example.com", 8443, true),
            ("api.example.com", "api.example.com", 8443, false),
            ("api.example.com:444", "api.example.com", 443, false),
            ("api.example.com:", "api.example.com", 443, false),
            ("api.example.com:99999", "api.example.com", 443, false),
            ("api.example.com:0", "api.example.com", 0, false),
            ("api.example.com.evil", "api.example.com", 443, false),
            ("api.example.com@evil", "api.example.com", 443, false),
            ("API.Example.com.", "api.example.com", 443, true),
            ("API.Example.com.:443", "api.example.com", 443, true),
            ("other.example.com", "api.example.com", 443, false),
            ("[::1]", "[::1]", 443, true),
            ("[::1]:8443", "[::1]", 8443, true),
            ("[0:0::1]:443", "[::1]", 443, true),
            ("127.0.0.1:443", "127.0.0.1", 443, true),
            ("", "api.example.com", 443, false),
        ];
        for &(named, host, port, want) in cases {
            assert_eq!(names_authority(named, host, port, 443), want, "{named} vs {host}:{port}");
        }
    }

    #[test]
    fn match_table() {
        let cases: &[(&str, &str, u16, bool)] = &[
            ("api.example.com", "api.example.com", 443, true),
            ("api.example.com", "api.example.com", 8443, false),
            ("api.example.com:8443", "api.example.com", 8443, true),
            ("API.Example.com.", "api.example.com", 443, true),
            ("*.myshopify.com", "store.myshopify.com", 443, true),
            ("*.myshopify.com", "myshopify.com", 443, false),
            ("*.myshopify.com", "a.b.myshopify.com", 443, false),
            ("*.myshopify.com", "evilmyshopify.com", 443, false),
            ("*.myshopify.com", "store.myshopify.com.evil.com", 443, false),
            ("api.example.com", "api.example.com.evil.com", 443, false),
        ];
        for (pattern, host, port, want) in cases {
            let p = HostPattern::parse(pattern).unwrap();
            assert_eq!(p.matches(host, *port), *want, "{pattern} vs {host}:{port}");
        }
    }

    #[test]
    fn parse_rejects() {
        for bad in ["*", "*.com", "a.*.com", "*.*.example.com", "exa mple.com", "host:0", "host:x", ""] {
            assert!(HostPattern::parse(bad).is_err(), "{bad}");
        }
        assert!(HostPattern::parse("under_score.example.com").is_ok());
        assert!(HostPattern::parse("[::1]:8443").is_ok());
    }

    #[test]
    fn narrowing() {
        let shop = HostPattern::parse("*.myshopify.com").unwrap();
        let mine = HostPattern::parse("my-store.myshopify.com").unwrap();
        assert!(mine.within(&shop));
        assert!(!shop.within(&mine));
        assert!(!HostPattern::parse("evil.com").unwrap().within(&shop));
        assert!(shop.within(&shop));
    }

    #[test]
    fn split_table() {
        assert_eq!(split_host_port("a.com:443").unwrap(), ("a.com".into(), Some(443)));
        assert_eq!(split_host_port("a.com").unwrap(), ("a.com".into(), None));
        assert_eq!(split_host_port("[::1]:80").unwrap(), ("[::1]".into(), Some(80)));
        assert!(split_host_port("[::1").is_err());
        assert!(split_host_port("a.com:99999").is_err());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4000))]

        /// The CONNECT authority parser: no input panics, and what it accepts names one host.
        #[test]
        fn authority_parser_never_panics(raw in "\\PC{0,60}", bracketed in "\\[[0-9a-fA-F:.%]{0,40}\\](:[0-9]{0,6})?") {
            for input in [&raw, &bracketed] {
                if let Ok((host, port)) = split_host_port(input) {
                    if let Ok(h) = normalize_host(&host) {
                        proptest::prop_assert!(!h.contains(['/', '@', '?', '#', ' ']), "{input} -> {h}");
                    }
                    let _ = port;
                }
            }
        }
    }
}
