//! The destination guard: which upstream addresses the proxy refuses to connect to.
//!
//! Pure. Loopback, private, link-local, CGNAT, multicast, unspecified, reserved and cloud
//! metadata addresses are refused, including their IPv6 spellings (v4-mapped, NAT64, 6to4).
//! Explicit `--resolve` targets bypass the guard: they are operator intent, and so is
//! `--allow-destination CIDR|HOST`: a company's package mirror on a private range, named once.
//! A cloud metadata address is let through only when it is named exactly (a /32 or /128 or its
//! host), never by a wider range that happens to contain it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why an address is refused (a noun phrase: "a loopback address"), or `None` when it is a
/// public unicast address.
pub fn blocked(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => blocked_v4(v4),
        IpAddr::V6(v6) => blocked_v6(v6),
    }
}

fn blocked_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let o = ip.octets();
    let reason = match o {
        [0, ..] => "an unspecified (this-network) address",
        [127, ..] => "a loopback address",
        [10, ..] | [192, 168, ..] => "a private address",
        [172, b, ..] if (16..=31).contains(&b) => "a private address",
        [169, 254, 169, 254] => METADATA,
        [169, 254, ..] => "a link-local address",
        [100, 100, 100, 200] => METADATA,
        [100, b, ..] if (64..=127).contains(&b) => "a carrier-grade NAT address",
        [168, 63, 129, 16] => METADATA,
        [192, 0, 0, _] => "an IETF protocol assignment",
        [192, 0, 2, _] | [198, 51, 100, _] | [203, 0, 113, _] => "a documentation address",
        [198, b, ..] if b == 18 || b == 19 => "a benchmarking address",
        [a, ..] if (224..=239).contains(&a) => "a multicast address",
        [a, ..] if a >= 240 => "a reserved or broadcast address",
        _ => return None,
    };
    Some(reason)
}

fn blocked_v6(ip: Ipv6Addr) -> Option<&'static str> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return blocked_v4(v4);
    }
    let s = ip.segments();
    if ip.is_unspecified() {
        return Some("the unspecified address");
    }
    if ip.is_loopback() {
        return Some("a loopback address");
    }
    let reason = match s {
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => {
            return blocked_v4(embedded_v4(hi, lo)).map(|_| "the NAT64 form of a blocked address");
        }
        [0x2002, hi, lo, ..] => return blocked_v4(embedded_v4(hi, lo)).map(|_| "the 6to4 form of a blocked address"),
        [0, 0, 0, 0, 0, 0, _, _] => "an IPv4-compatible address",
        [a, ..] if a & 0xfe00 == 0xfc00 => "a unique local address (this includes fd00:ec2::254, cloud metadata)",
        [a, ..] if a & 0xffc0 == 0xfe80 => "a link-local address",
        [a, ..] if a & 0xffc0 == 0xfec0 => "a site-local address",
        [a, ..] if a & 0xff00 == 0xff00 => "a multicast address",
        [0x2001, 0xdb8, ..] => "a documentation address",
        [0x2001, 0, ..] => "a Teredo address",
        [0x100, 0, 0, 0, ..] => "a discard-only address",
        _ => return None,
    };
    Some(reason)
}

fn embedded_v4(hi: u16, lo: u16) -> Ipv4Addr {
    Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8)
}

/// Why an `--allow-destination` entry does not parse.
#[derive(Debug, thiserror::Error)]
pub enum AllowError {
    #[error("--allow-destination '{0}': the prefix length must be 0 to {1}")]
    Prefix(String, u8),
    #[error("--allow-destination '{0}' is neither ADDR/PREFIX nor a host name")]
    Shape(String),
    #[error("--allow-destination '{0}': {1}")]
    Host(String, crate::policy::HostError),
}

/// One `--allow-destination` entry: an address range or a host name (`*.corp.example` too).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Allowed {
    Range { net: IpAddr, prefix: u8 },
    Host(crate::policy::HostPattern),
}

impl Allowed {
    /// Parses `10.0.0.0/8`, `192.168.1.7`, `fd00::/8`, `mirror.corp.example` or `*.corp.example`.
    pub fn parse(text: &str) -> Result<Allowed, AllowError> {
        let t = text.trim();
        let (addr, prefix) = match t.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (t, None),
        };
        if let Ok(net) = addr.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
            let max = if net.is_ipv4() { 32 } else { 128 };
            let prefix = match prefix {
                Some(p) => p
                    .parse::<u8>()
                    .ok()
                    .filter(|p| *p <= max)
                    .ok_or_else(|| AllowError::Prefix(text.to_owned(), max))?,
                None => max,
            };
            return Ok(Allowed::Range { net, prefix });
        }
        if prefix.is_some() {
            return Err(AllowError::Shape(text.to_owned()));
        }
        crate::policy::HostPattern::parse(t).map(Allowed::Host).map_err(|e| AllowError::Host(text.to_owned(), e))
    }

    fn covers(&self, host: &str, ip: IpAddr) -> bool {
        match self {
            Allowed::Host(h) => h.matches(host, h.port()),
            Allowed::Range { net, prefix } => {
                let within = match (net, ip) {
                    (IpAddr::V4(n), IpAddr::V4(a)) => bits_match(&n.octets(), &a.octets(), *prefix),
                    (IpAddr::V6(n), IpAddr::V6(a)) => bits_match(&n.octets(), &a.octets(), *prefix),
                    (IpAddr::V4(n), IpAddr::V6(a)) => {
                        a.to_ipv4_mapped().is_some_and(|a| bits_match(&n.octets(), &a.octets(), *prefix))
                    }
                    (IpAddr::V6(_), IpAddr::V4(_)) => false,
                };
                let exact = *prefix == if net.is_ipv4() { 32 } else { 128 };
                within && (exact || blocked(ip) != Some(METADATA))
            }
        }
    }
}

impl std::fmt::Display for Allowed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Allowed::Range { net, prefix } => write!(f, "{net}/{prefix}"),
            Allowed::Host(h) => write!(f, "{h}"),
        }
    }
}

const METADATA: &str = "a cloud metadata address";

fn bits_match(a: &[u8], b: &[u8], prefix: u8) -> bool {
    let (full, rest) = ((prefix / 8) as usize, prefix % 8);
    if a[..full] != b[..full] {
        return false;
    }
    rest == 0 || (a[full] ^ b[full]) >> (8 - rest) == 0
}

/// Why `ip` (an address of `host`) is refused given the operator's allowances, or `None`.
pub fn refused(host: &str, ip: IpAddr, allowed: &[Allowed]) -> Option<&'static str> {
    let reason = blocked(ip)?;
    if allowed.iter().any(|a| a.covers(host, ip)) {
        return None;
    }
    Some(reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let cases: &[(&str, bool)] = &[
            ("8.8.8.8", false),
            ("1.1.1.1", false),
            ("127.0.0.1", true),
            ("127.8.9.10", true),
            ("10.1.2.3", true),
            ("172.16.0.1", true),
            ("172.32.0.1", false),
            ("192.168.1.1", true),
            ("169.254.169.254", true),
            ("169.254.1.1", true),
            ("100.64.0.1", true),
            ("100.100.100.200", true),
            ("100.128.0.1", false),
            ("0.0.0.0", true),
            ("224.0.0.1", true),
            ("255.255.255.255", true),
            ("168.63.129.16", true),
            ("::1", true),
            ("::", true),
            ("::ffff:127.0.0.1", true),
            ("::ffff:169.254.169.254", true),
            ("::ffff:8.8.8.8", false),
            ("64:ff9b::a9fe:a9fe", true),
            ("64:ff9b::808:808", false),
            ("2002:7f00:1::", true),
            ("fd00:ec2::254", true),
            ("fe80::1", true),
            ("ff02::1", true),
            ("2606:4700:4700::1111", false),
        ];
        for (ip, want) in cases {
            let parsed: IpAddr = ip.parse().unwrap();
            assert_eq!(blocked(parsed).is_some(), *want, "{ip}");
            if let Some(reason) = blocked(parsed) {
                // Reads as "... resolves to X, which is <reason>".
                let first = reason.split(' ').next().unwrap();
                assert!(["a", "an", "the"].contains(&first), "{ip}: {reason}");
                assert!(!reason.contains("address address"), "{reason}");
                if first == "a" {
                    assert!(!reason[2..].starts_with(['a', 'e', 'i', 'o']), "{ip}: {reason}");
                }
            }
        }
    }

    #[test]
    fn allowances_open_only_what_they_name() {
        let a = |t: &str| Allowed::parse(t).unwrap();
        let cases: &[(&[&str], &str, &str, bool)] = &[
            (&[], "mirror", "10.1.2.3", false),
            (&["10.0.0.0/8"], "mirror", "10.1.2.3", true),
            (&["10.0.0.0/8"], "mirror", "11.1.2.3", true), // public: never refused
            (&["10.1.0.0/16"], "mirror", "10.2.0.1", false),
            (&["192.168.1.7"], "x", "192.168.1.7", true),
            (&["192.168.1.7"], "x", "192.168.1.8", false),
            (&["172.16.0.0/12"], "x", "172.31.255.255", true),
            (&["10.0.0.0/9"], "x", "10.128.0.1", false),
            (&["fd00::/8"], "x", "fd12::1", true),
            (&["10.0.0.0/8"], "x", "::ffff:10.0.0.1", true),
            (&["mirror.corp.example"], "mirror.corp.example", "10.9.9.9", true),
            (&["*.corp.example"], "pypi.corp.example", "10.9.9.9", true),
            (&["*.corp.example"], "pypi.other.example", "10.9.9.9", false),
            // Metadata only when named exactly.
            (&["169.254.0.0/16"], "x", "169.254.169.254", false),
            (&["169.254.0.0/16"], "x", "169.254.1.1", true),
            (&["169.254.169.254/32"], "x", "169.254.169.254", true),
            (&["0.0.0.0/0"], "x", "127.0.0.1", true),
        ];
        for (allow, host, ip, ok) in cases {
            let list: Vec<Allowed> = allow.iter().map(|t| a(t)).collect();
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(refused(host, ip, &list).is_none(), *ok, "{allow:?} {host} {ip}");
        }
        for bad in ["10.0.0.0/33", "::/129", "10.0.0.0/x", "bad host/8", ""] {
            assert!(Allowed::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(a("10.0.0.0/8").to_string(), "10.0.0.0/8");
    }
}
