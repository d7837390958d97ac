//! Echoing user input in error messages. Every message that quotes a value the user sent clips
//! it here, so that the bound is the same everywhere and named once
//! ([`crate::limits::ECHO_CHARS_MAX`]).

use crate::limits::ECHO_CHARS_MAX;

/// The first [`ECHO_CHARS_MAX`] characters of `s` (all of it when shorter), never splitting a
/// character.
pub fn clip(s: &str) -> &str {
    match s.char_indices().nth(ECHO_CHARS_MAX) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_keeps_short_input_and_cuts_long_input_at_a_character_boundary() {
        assert_eq!(clip(""), "");
        let exact = "a".repeat(ECHO_CHARS_MAX);
        assert_eq!(clip(&exact), exact);
        let long = "é".repeat(ECHO_CHARS_MAX + 1);
        assert_eq!(clip(&long).chars().count(), ECHO_CHARS_MAX);
        assert_eq!(clip(&long).len(), 2 * ECHO_CHARS_MAX);
    }
}
