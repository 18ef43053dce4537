//! Index names in URL paths.
//!
//! Only RFC 3986's unreserved characters go as they are; everything else is
//! percent-encoded, `+` included (older Elasticsearch versions decode a `+` in a path as a
//! space). A valid index name needs nothing else; an invalid one reaches the server as
//! itself and is refused there, not taken for a wildcard (`*`) or a second name (`,`).

/// Percent-encodes `name` (an index name) for one URL path segment.
pub fn segment(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        push(&mut out, b);
    }
    out
}

/// Percent-encodes an index pattern for one URL path segment, keeping its `*` wildcards.
pub fn pattern(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len());
    for b in pattern.bytes() {
        match b {
            b'*' => out.push('*'),
            _ => push(&mut out, b),
        }
    }
    out
}

fn push(out: &mut String, b: u8) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    match b {
        b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
            out.push(char::from(b))
        }
        _ => {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unreserved_characters_stay() {
        assert_eq!(segment("shop.orders_2024-01~x"), "shop.orders_2024-01~x");
        // `+` may be decoded as a space, `*` and `,` would name other indices.
        assert_eq!(segment("a+b"), "a%2Bb");
        assert_eq!(segment("a*b,c"), "a%2Ab%2Cc");
        assert_eq!(segment("a b/c?d#e%"), "a%20b%2Fc%3Fd%23e%25");
        assert_eq!(segment("é"), "%C3%A9");
    }

    #[test]
    fn patterns_keep_their_wildcards() {
        assert_eq!(pattern("shop-*"), "shop-*");
        assert_eq!(pattern("a b*c/d"), "a%20b*c%2Fd");
        assert_eq!(pattern("a+*"), "a%2B*");
    }
}
