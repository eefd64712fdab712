//! Proxy authentication: the agent token from `Proxy-Authorization` (Basic userinfo or Bearer).

use base64::Engine as _;
use http::HeaderMap;

use crate::secret::SecretString;

/// The token an agent presented, if any. Basic: the password part of the userinfo (the user part
/// is ignored; a bare token without ':' also works). Bearer: the token itself.
pub fn presented_token(headers: &HeaderMap) -> Option<SecretString> {
    let value = headers.get(http::header::PROXY_AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, rest) = value.split_once(' ')?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return (!rest.is_empty()).then(|| SecretString::new(rest.to_owned()));
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = zeroize::Zeroizing::new(base64::engine::general_purpose::STANDARD.decode(rest).ok()?);
        let text = std::str::from_utf8(&decoded).ok()?;
        let token = match text.split_once(':') {
            Some((_, password)) => password,
            None => text,
        };
        // Clients percent-encode userinfo; tokens are base64url so this is rarely needed.
        let token = String::from_utf8_lossy(&crate::percent::decode(token)).into_owned();
        return (!token.is_empty()).then(|| SecretString::new(token));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(http::header::PROXY_AUTHORIZATION, v.parse().unwrap());
        h
    }

    #[test]
    fn forms() {
        let basic = base64::engine::general_purpose::STANDARD.encode("agent:avt_abc");
        let cases: &[(&str, Option<&str>)] = &[
            (&format!("Basic {basic}"), Some("avt_abc")),
            ("Bearer avt_abc", Some("avt_abc")),
            ("bearer   avt_abc ", Some("avt_abc")),
            (&format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("avt_bare")), Some("avt_bare")),
            (&format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("a:avt%5Fx")), Some("avt_x")),
            ("Basic !!!", None),
            ("Digest x", None),
            ("Bearer ", None),
        ];
        for (value, want) in cases {
            let got = presented_token(&headers(value));
            assert_eq!(got.as_ref().map(|t| t.expose()), *want, "{value}");
        }
    }
}
