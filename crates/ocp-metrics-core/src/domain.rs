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
    #[error("must not contain control characters")]
    Control,
}

/// A dimension value or other bounded label: 0 to 256 bytes, no control characters.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Label(Box<str>);

impl Label {
    pub fn parse(s: &str) -> Result<Label, DomainError> {
        check_len(s, EVENT_STRING_BYTES_MAX)?;
        Ok(Label(s.into()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An OCP group (organization): 1 to 256 bytes, no control characters. It is the unit of
/// tenancy: every series belongs to exactly one group.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct GroupName(Box<str>);

impl GroupName {
    pub fn parse(s: &str) -> Result<GroupName, DomainError> {
        if s.is_empty() {
            return Err(DomainError::Empty);
        }
        check_len(s, EVENT_STRING_BYTES_MAX)?;
        if s.chars().any(char::is_control) {
            return Err(DomainError::Control);
        }
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
