//! Tokens the operator configures at start: the admin token and the metrics scrape token.

use crate::error::AuthError;
use crate::registry::verify_admin;
use std::fmt;
use std::sync::Arc;

/// Fewest characters of an operator token. These tokens are compared as given (no server-made
/// randomness behind them), so their length is their strength: 32 characters of hex are 128
/// bits, out of reach of any online guessing, while a short word falls to a dictionary.
pub const OPERATOR_TOKEN_CHARS_MIN: usize = 32;
/// Most bytes of an operator token; it travels in an `Authorization` header.
pub const OPERATOR_TOKEN_BYTES_MAX: usize = 1024;

/// A token the operator set (the admin token, the metrics scrape token): long enough to resist
/// guessing and sendable in an HTTP header. Compared in constant time; redacted in `Debug`.
#[derive(Clone)]
pub struct OperatorToken(Arc<str>);

impl OperatorToken {
    /// Checks `raw` as the token called `name` in error messages (e.g. `OCP_METRICS_ADMIN_TOKEN`).
    pub fn parse(name: &str, raw: &str) -> Result<OperatorToken, AuthError> {
        let chars = raw.chars().count();
        if chars < OPERATOR_TOKEN_CHARS_MIN {
            return Err(AuthError::InvalidConfig(format!(
                "{name} is {chars} characters long; it must have at least \
                 {OPERATOR_TOKEN_CHARS_MIN} so that it cannot be guessed (make one with \
                 `openssl rand -hex 32`)"
            )));
        }
        if raw.len() > OPERATOR_TOKEN_BYTES_MAX {
            return Err(AuthError::InvalidConfig(format!(
                "{name} is {} bytes long; it must have at most {OPERATOR_TOKEN_BYTES_MAX}",
                raw.len()
            )));
        }
        if !raw.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(AuthError::InvalidConfig(format!(
                "{name} must be printable ASCII without spaces: it is sent in an HTTP \
                 `Authorization` header"
            )));
        }
        Ok(OperatorToken(Arc::from(raw)))
    }

    /// Whether `presented` is this token, in constant time.
    pub fn matches(&self, presented: &str) -> bool {
        verify_admin(&self.0, presented)
    }

    /// The token itself, for a client that sends it (the demo, the operator CLI).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for OperatorToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OperatorToken(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_and_characters_are_checked() {
        let ok = "0123456789abcdef0123456789abcdef";
        assert!(OperatorToken::parse("T", ok).is_ok());
        let short = OperatorToken::parse("T", &ok[1..]).unwrap_err().to_string();
        assert!(short.contains("T is 31 characters long"), "{short}");
        assert!(short.contains("at least 32"), "{short}");
        assert!(OperatorToken::parse("T", "a").is_err());
        assert!(OperatorToken::parse("T", &format!("{ok} x")).is_err());
        assert!(OperatorToken::parse("T", &format!("{ok}\n")).is_err());
        assert!(OperatorToken::parse("T", &"x".repeat(OPERATOR_TOKEN_BYTES_MAX + 1)).is_err());
    }

    #[test]
    fn matches_only_itself_and_never_prints_itself() {
        let secret = "0123456789abcdef0123456789abcdef";
        let t = OperatorToken::parse("T", secret).unwrap();
        assert!(t.matches(secret));
        assert!(!t.matches(&secret[1..]));
        assert!(!t.matches(""));
        assert!(!format!("{t:?}").contains(secret));
    }
}
