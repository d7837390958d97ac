//! Random identifiers and secrets, and the hashes secrets are stored as.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use serde::{Deserialize, Deserializer, Serialize, Serializer, de::Error};
use sha2::{Digest, Sha256};
use std::fmt;
use subtle::ConstantTimeEq;

/// Random bytes in a client secret or a personal access token's secret. 256 bits make a plain
/// SHA-256 a sufficient storage hash: there is nothing to brute-force, so no slow KDF is needed.
pub const SECRET_BYTES: usize = 32;
/// Random bytes in client ids, token ids and JWT ids. 128 bits never collide in practice.
pub const ID_BYTES: usize = 16;

/// Bytes from the thread-local CSPRNG (ChaCha, seeded and reseeded from the operating system).
pub(crate) fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    rand::rng().fill_bytes(&mut buf);
    buf
}

/// A new high-entropy secret, base64url without padding (43 characters).
pub(crate) fn new_secret() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes::<SECRET_BYTES>())
}

/// A new random id: lowercase hex, so it never contains the `_` that separates a personal
/// access token's parts.
pub(crate) fn new_id() -> String {
    hex::encode(random_bytes::<ID_BYTES>())
}

/// The SHA-256 of a secret. Compared only in constant time; printed only redacted.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct SecretHash([u8; 32]);

impl SecretHash {
    /// Compared against when the record looked up does not exist, so that an unknown id costs
    /// the same work as a wrong secret. No secret hashes to all zeros in practice.
    pub const NONE: SecretHash = SecretHash([0; 32]);

    pub fn of(secret: &str) -> SecretHash {
        SecretHash(Sha256::digest(secret.as_bytes()).into())
    }

    pub fn matches(&self, secret: &str) -> bool {
        SecretHash::of(secret).0.ct_eq(&self.0).into()
    }
}

impl fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretHash(<redacted>)")
    }
}

impl Serialize for SecretHash {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(self.0))
    }
}

impl<'de> Deserialize<'de> for SecretHash {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<SecretHash, D::Error> {
        let s = String::deserialize(d)?;
        let mut out = [0u8; 32];
        hex::decode_to_slice(&s, &mut out).map_err(D::Error::custom)?;
        Ok(SecretHash(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_and_ids_have_the_promised_shape() {
        let s = new_secret();
        assert_eq!(s.len(), 43);
        assert!(
            s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_ne!(s, new_secret());
        let id = new_id();
        assert_eq!(id.len(), 2 * ID_BYTES);
        assert!(
            id.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
    }

    #[test]
    fn hash_matches_only_its_secret_and_never_prints_it() {
        let h = SecretHash::of("abc");
        assert!(h.matches("abc"));
        assert!(!h.matches("abd"));
        assert!(!h.matches(""));
        assert_eq!(format!("{h:?}"), "SecretHash(<redacted>)");
        let json = serde_json::to_string(&h).unwrap();
        let back: SecretHash = serde_json::from_str(&json).unwrap();
        assert_eq!(back, h);
    }
}
