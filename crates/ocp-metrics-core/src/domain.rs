//! Domain newtypes. Each is built by a constructor that can fail, so a value of the type is
//! valid by construction and code that holds one never checks it again.

use crate::limits::EVENT_STRING_BYTES_MAX;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Why a string could not become a domain value. The message is shown to API users.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    #[error("must not be empty")]
    Empty,
    #[error("is {bytes} bytes long; the limit is {max} bytes")]
    TooLong { bytes: usize, max: usize },
    /// A control character (C0, DEL or C1: terminal escapes, line breaks, NUL) at a character
    /// position (0-based). Such values would be echoed into catalogs, logs and exports.
    #[error(
        "must not contain control characters; found U+{code:04X} at character {at}: send printable text"
    )]
    Control { code: u32, at: usize },
    /// `*`, which grants use for "every group", so that no group could be granted by name.
    #[error("must not be `*`: in grants `*` means every group; name the group differently")]
    Wildcard,
}

/// A dimension value or other bounded label: 0 to 256 bytes, no control characters.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Label(Box<str>);

impl Label {
    pub fn parse(s: &str) -> Result<Label, DomainError> {
        check_len(s, EVENT_STRING_BYTES_MAX)?;
        check_printable(s)?;
        Ok(Label(s.into()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An OCP group (organization): 1 to 256 bytes, no control characters, not `*`. It is the
/// unit of tenancy: every series belongs to exactly one group. Events, queries and grants all
/// parse group names with this one type, so every group a producer can write to can be
/// granted by name, and `*` stays free to mean "every group" in a grant.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct GroupName(Box<str>);

impl GroupName {
    /// What a grant lists instead of names to mean every group; never a group's name.
    pub const WILDCARD: &'static str = "*";

    pub fn parse(s: &str) -> Result<GroupName, DomainError> {
        if s.is_empty() {
            return Err(DomainError::Empty);
        }
        if s == Self::WILDCARD {
            return Err(DomainError::Wildcard);
        }
        check_len(s, EVENT_STRING_BYTES_MAX)?;
        check_printable(s)?;
        Ok(GroupName(s.into()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn check_len(s: &str, max: usize) -> Result<(), DomainError> {
    if s.len() > max {
        return Err(DomainError::TooLong {
            bytes: s.len(),
            max,
        });
    }
    Ok(())
}

/// Refuses the first control character (`char::is_control`: C0, DEL and C1), naming it.
fn check_printable(s: &str) -> Result<(), DomainError> {
    match s.chars().enumerate().find(|(_, c)| c.is_control()) {
        Some((at, c)) => Err(DomainError::Control {
            code: u32::from(c),
            at,
        }),
        None => Ok(()),
    }
}

macro_rules! debug_display_as_str {
    ($($t:ty),*) => {$(
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&*self.0, f)
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    )*};
}
debug_display_as_str!(Label, GroupName);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_name_table() {
        let longest = "a".repeat(EVENT_STRING_BYTES_MAX);
        let too_long = "a".repeat(EVENT_STRING_BYTES_MAX + 1);
        let cases: &[(&str, Option<DomainError>)] = &[
            ("ocp-qa", None),
            ("has space", None),
            ("\u{fc}n\u{ef}code", None),
            ("a*", None),
            ("**", None),
            (longest.as_str(), None),
            ("", Some(DomainError::Empty)),
            ("*", Some(DomainError::Wildcard)),
            (
                too_long.as_str(),
                Some(DomainError::TooLong {
                    bytes: EVENT_STRING_BYTES_MAX + 1,
                    max: EVENT_STRING_BYTES_MAX,
                }),
            ),
            ("tab\there", Some(DomainError::Control { code: 9, at: 3 })),
        ];
        for (input, want) in cases {
            assert_eq!(GroupName::parse(input).err(), *want, "{input:?}");
        }
    }
}
