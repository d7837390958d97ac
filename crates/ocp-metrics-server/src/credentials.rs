//! Credentials as HTTP carries them: the `Authorization` header (the `Bearer` scheme of RFC 6750
//! and the `Basic` client authentication of RFC 6749 section 2.3.1) and the token endpoint's
//! `application/x-www-form-urlencoded` body.
//!
//! This is the one place either is parsed, with one strictness: auth-scheme names compare
//! case-insensitively (RFC 7235 section 2.1), and form text decodes as the WHATWG URL
//! standard's `application/x-www-form-urlencoded` parser does (a `%` not followed by two hex
//! digits stays as it is, bytes that are not UTF-8 become U+FFFD). The auth crate gets plain
//! strings and knows no HTTP.

use axum::http::{HeaderMap, header};
use ocp_metrics_auth::OAuthError;
use std::collections::HashMap;

/// The token of an `Authorization: Bearer <token>` header, or `None` when there is no such
/// header, it is of another scheme, or it carries no token.
pub(crate) fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    authorization(headers, "Bearer")
}

/// The `Authorization` header's credentials when it is of the `Basic` scheme, still encoded;
/// decode them with [`basic_credentials`].
pub(crate) fn basic_authorization(headers: &HeaderMap) -> Option<&str> {
    authorization(headers, "Basic")
}

/// The client id and secret of HTTP Basic credentials (the part after `Basic `): base64 of
/// `id:secret`, each form-urlencoded first (RFC 6749 section 2.3.1).
pub(crate) fn basic_credentials(encoded: &str) -> Result<(String, String), OAuthError> {
    use base64::Engine;
    let bad = || {
        OAuthError::InvalidRequest(
            "malformed HTTP Basic credentials: send base64(client_id \":\" client_secret), or \
             the form fields client_id and client_secret"
                .to_owned(),
        )
    };
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|_| bad())?;
    let decoded = String::from_utf8(decoded).map_err(|_| bad())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(bad)?;
    Ok((form_decode(id.as_bytes()), form_decode(secret.as_bytes())))
}

/// The name-value pairs of an `application/x-www-form-urlencoded` body. A name given twice
/// keeps its last value.
pub(crate) fn form_urlencoded(body: &[u8]) -> HashMap<String, String> {
    body.split(|&b| b == b'&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = match pair.iter().position(|&b| b == b'=') {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, &[][..]),
            };
            (form_decode(name), form_decode(value))
        })
        .collect()
}

/// The credentials after `scheme` in the `Authorization` header, the scheme compared
/// case-insensitively and the spaces around the credentials dropped. `None` when the header is
/// missing, not visible ASCII, of another scheme, or has nothing after the scheme.
fn authorization<'h>(headers: &'h HeaderMap, scheme: &str) -> Option<&'h str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (name, credentials) = value.trim().split_once(' ')?;
    let credentials = credentials.trim();
    (name.eq_ignore_ascii_case(scheme) && !credentials.is_empty()).then_some(credentials)
}

/// Decodes one name or value of form text: `+` is a space, `%XX` the byte XX.
fn form_decode(text: &[u8]) -> String {
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        let escaped = (text[i] == b'%')
            .then(|| hex_pair(&text[i + 1..]))
            .flatten();
        match (text[i], escaped) {
            (_, Some(byte)) => {
                out.push(byte);
                i += 2;
            }
            (b'+', None) => out.push(b' '),
            (b, None) => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The byte written by the first two bytes of `s` as hex digits, if they are.
fn hex_pair(s: &[u8]) -> Option<u8> {
    let digit = |b: Option<&u8>| (*b? as char).to_digit(16);
    let value = digit(s.first())? * 16 + digit(s.get(1))?;
    u8::try_from(value).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(authorization: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(v) = authorization {
            h.insert(header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn bearer_header_table() {
        let cases: &[(Option<&str>, Option<&str>)] = &[
            (Some("Bearer abc"), Some("abc")),
            (Some("bearer abc"), Some("abc")),
            (Some("BEARER  abc "), Some("abc")),
            (Some("BeArEr abc.def.ghi"), Some("abc.def.ghi")),
            (None, None),
            (Some(""), None),
            (Some("Bearer"), None),
            (Some("Bearer   "), None),
            (Some("Basic abc"), None),
            (Some("Bearerabc"), None),
            (Some("abc"), None),
        ];
        for (input, want) in cases {
            assert_eq!(bearer_token(&headers(*input)), *want, "{input:?}");
        }
    }

    #[test]
    fn non_ascii_authorization_is_no_credentials() {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_bytes(b"Bearer \xffabc").unwrap(),
        );
        assert_eq!(bearer_token(&h), None);
    }

    #[test]
    fn basic_header_table() {
        let cases: &[(Option<&str>, Option<&str>)] = &[
            (Some("Basic YTpi"), Some("YTpi")),
            (Some("basic  YTpi "), Some("YTpi")),
            (Some("Basic"), None),
            (Some("Bearer YTpi"), None),
            (None, None),
        ];
        for (input, want) in cases {
            assert_eq!(basic_authorization(&headers(*input)), *want, "{input:?}");
        }
    }

    #[test]
    fn basic_credentials_table() {
        use base64::Engine;
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let ok = |id: &str, secret: &str| Some((id.to_owned(), secret.to_owned()));
        let cases = [
            (b64("id:sec"), ok("id", "sec")),
            (b64("id:se:c"), ok("id", "se:c")),
            (b64("a%3Ab+c:x%2By"), ok("a:b c", "x+y")),
            // WHATWG: a `%` without two hex digits after it is kept as it is.
            (b64("id:%zz"), ok("id", "%zz")),
            (b64(":"), ok("", "")),
            (b64("nocolon"), None),
            ("!!!".to_owned(), None),
            // Empty base64 decodes to an empty string, which has no `:`.
            (String::new(), None),
        ];
        for (input, want) in cases {
            assert_eq!(basic_credentials(&input).ok(), want, "{input}");
        }
    }

    #[test]
    fn form_table() {
        let pairs = |v: &[(&str, &str)]| -> HashMap<String, String> {
            v.iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        type Case<'a> = (&'a [u8], &'a [(&'a str, &'a str)]);
        let cases: &[Case] = &[
            (b"", &[]),
            (b"&&", &[]),
            (b"a=1&b=2", &[("a", "1"), ("b", "2")]),
            (b"a", &[("a", "")]),
            (b"a=", &[("a", "")]),
            (b"=x", &[("", "x")]),
            (b"a=b=c", &[("a", "b=c")]),
            (b"a=1&a=2", &[("a", "2")]),
            (b"a+b=c+d", &[("a b", "c d")]),
            (b"k=%41%62", &[("k", "Ab")]),
            (b"k=%2B%26%3D", &[("k", "+&=")]),
            (b"k=%4", &[("k", "%4")]),
            (b"k=%", &[("k", "%")]),
            (b"k=%zz1", &[("k", "%zz1")]),
            (b"k=%e2%82%ac", &[("k", "\u{20ac}")]),
            (b"k=%ff", &[("k", "\u{fffd}")]),
            (b"k=\xff", &[("k", "\u{fffd}")]),
            (
                b"grant_type=client_credentials&scope=metrics%3Aread+events%3Awrite",
                &[
                    ("grant_type", "client_credentials"),
                    ("scope", "metrics:read events:write"),
                ],
            ),
        ];
        for (input, want) in cases {
            assert_eq!(
                form_urlencoded(input),
                pairs(want),
                "{}",
                String::from_utf8_lossy(input)
            );
        }
    }
}
