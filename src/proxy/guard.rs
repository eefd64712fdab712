//! The destination guard: which upstream addresses the proxy refuses to connect to.
//!
//! Pure. Loopback, private, link-local, CGNAT, multicast, unspecified, reserved and cloud
//! metadata addresses are refused, including their IPv6 spellings (v4-mapped, NAT64, 6to4).
//! Explicit `--resolve` targets bypass the guard: they are operator intent.

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
        [169, 254, 169, 254] => "a cloud metadata address",
        [169, 254, ..] => "a link-local address",
        [100, 100, 100, 200] => "a cloud metadata address",
        [100, b, ..] if (64..=127).contains(&b) => "a carrier-grade NAT address",
        [168, 63, 129, 16] => "a cloud metadata address",
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
}
