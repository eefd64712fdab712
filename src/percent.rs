//! Percent-encoding (RFC 3986): one encoder for everything but unreserved characters, one
//! decoder. Pure.

/// RFC 3986 unreserved: `A-Z a-z 0-9 - . _ ~`.
pub fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Percent-encodes every byte that is not unreserved, with uppercase hex.
pub fn encode(value: impl AsRef<[u8]>) -> String {
    let bytes = value.as_ref();
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if is_unreserved(b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decodes `%XX` escapes; anything malformed is kept as it is.
pub fn decode(s: &str) -> Vec<u8> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok());
            if let Some(b) = hex {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

/// Decodes an `application/x-www-form-urlencoded` value (`+` is a space) to text.
pub fn decode_form(s: &str) -> String {
    String::from_utf8_lossy(&decode(&s.replace('+', " "))).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        assert_eq!(encode("a b&c/ü~"), "a%20b%26c%2F%C3%BC~");
        assert_eq!(decode("a%20b%2f%zz%4"), b"a b/%zz%4");
        assert_eq!(decode_form("a+b%2Bc"), "a b+c");
        assert_eq!(decode(&encode("any thing/ü")), "any thing/ü".as_bytes());
    }
}
