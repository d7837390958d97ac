//! Access tokens: compact JWS (RFC 7515) with HS256, carrying the claims this service needs.
//! Only HS256 is accepted, whatever the header says, so `alg: none` and algorithm-confusion
//! tricks fail.

use crate::domain::GroupGrant;
use crate::error::Reason;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::fmt;

/// Bytes in the HMAC-SHA256 signing key: the hash output size, the minimum RFC 7518 section 3.2
/// requires for HS256.
pub const KEY_BYTES: usize = 32;

/// The fixed header of every token this service issues: `{"alg":"HS256","typ":"JWT"}`.
const HEADER_B64: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9";

type HmacSha256 = Hmac<Sha256>;

/// The HS256 key that signs access tokens. Printed only redacted; it leaves the process only
/// towards a [`crate::CredentialStore`], never towards a client.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKey(pub(crate) [u8; KEY_BYTES]);

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey(<redacted>)")
    }
}

impl SigningKey {
    /// A new random key from the operating system's CSPRNG (through the thread-local one).
    pub fn generate() -> SigningKey {
        SigningKey(crate::secret::random_bytes::<KEY_BYTES>())
    }

    /// The key as a store keeps it: [`KEY_BYTES`] raw bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<SigningKey, String> {
        let key: [u8; KEY_BYTES] = bytes
            .try_into()
            .map_err(|_| format!("holds {} bytes, expected {KEY_BYTES}", bytes.len()))?;
        Ok(SigningKey(key))
    }

    /// The raw bytes, for a [`crate::CredentialStore`] to keep. Never log or send them.
    pub fn to_bytes(&self) -> [u8; KEY_BYTES] {
        self.0
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC accepts keys of any length, so this cannot fail.
        HmacSha256::new_from_slice(&self.0).expect("HMAC takes keys of any length")
    }
}

/// The claims of an access token. `exp` and `iat` are Unix seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Claims {
    pub sub: String,
    pub groups: GroupGrant,
    /// Space separated, as in RFC 6749 section 3.3 and RFC 8693.
    pub scope: String,
    pub exp: i64,
    pub iat: i64,
    pub jti: String,
}

#[derive(Deserialize)]
struct Header {
    alg: String,
}

pub(crate) fn encode(key: &SigningKey, claims: &Claims) -> String {
    // A struct of strings and integers always serializes.
    let payload = serde_json::to_vec(claims).expect("claims serialize");
    let signing_input = format!("{HEADER_B64}.{}", URL_SAFE_NO_PAD.encode(payload));
    let mut mac = key.mac();
    mac.update(signing_input.as_bytes());
    let sig = mac.finalize().into_bytes();
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig))
}

/// Checks the shape, the algorithm and the signature, then reads the claims. Expiry and
/// revocation are the caller's, since they need the clock and the registry.
pub(crate) fn decode(key: &SigningKey, token: &str) -> Result<Claims, Reason> {
    let mut parts = token.split('.');
    let (Some(header_b64), Some(payload_b64), Some(sig_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Reason::Malformed);
    };
    let header: Header = URL_SAFE_NO_PAD
        .decode(header_b64)
        .ok()
        .and_then(|h| serde_json::from_slice(&h).ok())
        .ok_or(Reason::Malformed)?;
    if header.alg != "HS256" {
        return Err(Reason::Malformed);
    }
    let sig = URL_SAFE_NO_PAD
        .decode(sig_b64)
        .map_err(|_| Reason::Malformed)?;
    let signing_input = &token[..header_b64.len() + 1 + payload_b64.len()];
    let mut mac = key.mac();
    mac.update(signing_input.as_bytes());
    // `verify_slice` compares in constant time.
    mac.verify_slice(&sig).map_err(|_| Reason::BadSignature)?;
    URL_SAFE_NO_PAD
        .decode(payload_b64)
        .ok()
        .and_then(|p| serde_json::from_slice(&p).ok())
        .ok_or(Reason::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> Claims {
        Claims {
            sub: "ocpm_client_x".into(),
            groups: GroupGrant::parse(&["ocp-qa"]).unwrap(),
            scope: "metrics:read".into(),
            exp: 2_000_000_000,
            iat: 1_999_996_400,
            jti: "j".into(),
        }
    }

    #[test]
    fn header_constant_is_the_documented_header() {
        let h = URL_SAFE_NO_PAD.decode(HEADER_B64).unwrap();
        assert_eq!(h, br#"{"alg":"HS256","typ":"JWT"}"#);
    }

    #[test]
    fn round_trip_and_rejections() {
        let key = SigningKey([7; KEY_BYTES]);
        let other = SigningKey([8; KEY_BYTES]);
        let token = encode(&key, &claims());
        assert_eq!(decode(&key, &token), Ok(claims()));
        assert_eq!(decode(&other, &token), Err(Reason::BadSignature));

        let (rest, sig) = token.rsplit_once('.').unwrap();
        let (_, payload) = rest.split_once('.').unwrap();
        let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#);
        let mut forged = claims();
        forged.groups = GroupGrant::All;
        let forged_payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap());
        let flipped_sig = {
            let mut b = URL_SAFE_NO_PAD.decode(sig).unwrap();
            b[0] ^= 1;
            URL_SAFE_NO_PAD.encode(b)
        };
        let cases: Vec<(String, Reason)> = vec![
            (
                format!("{HEADER_B64}.{forged_payload}.{sig}"),
                Reason::BadSignature,
            ),
            (format!("{rest}.{flipped_sig}"), Reason::BadSignature),
            (format!("{rest}."), Reason::BadSignature),
            (format!("{none_header}.{payload}."), Reason::Malformed),
            (format!("{none_header}.{payload}.{sig}"), Reason::Malformed),
            (format!("{rest}.{sig}.extra"), Reason::Malformed),
            (format!("{rest}.!!!"), Reason::Malformed),
            ("a.b.c".to_owned(), Reason::Malformed),
            ("..".to_owned(), Reason::Malformed),
        ];
        for (input, want) in cases {
            assert_eq!(decode(&key, &input), Err(want), "input {input}");
        }
    }

    #[test]
    fn debug_redacts_the_key() {
        assert_eq!(
            format!("{:?}", SigningKey([1; KEY_BYTES])),
            "SigningKey(<redacted>)"
        );
    }
}
