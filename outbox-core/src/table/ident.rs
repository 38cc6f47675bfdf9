//! Table names: validated, then always quoted, so no input reaches SQL unchecked.

use crate::{Error, Result};

/// The longest identifier accepted (PostgreSQL's limit; MySQL allows 64).
const MAX_IDENTIFIER_LEN: usize = 63;

/// A SQL identifier checked to be `[A-Za-z_][A-Za-z0-9_]*`, at most 63 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Identifier(pub(super) String);

impl Identifier {
    /// Validates a name.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidIdentifier`] saying what is wrong.
    ///
    /// # Examples
    ///
    /// ```
    /// use outbox_core::table::Identifier;
    ///
    /// assert!(Identifier::new("outbox_events").is_ok());
    /// assert!(Identifier::new("events; drop table users").is_err());
    /// ```
    pub fn new(name: &str) -> Result<Self> {
        let reason = if name.is_empty() {
            Some("is empty".to_owned())
        } else if name.len() > MAX_IDENTIFIER_LEN {
            Some(format!("is longer than {MAX_IDENTIFIER_LEN} characters"))
        } else if name.starts_with(|c: char| c.is_ascii_digit()) {
            Some("starts with a digit".to_owned())
        } else {
            name.chars()
                .find(|c| !(c.is_ascii_alphanumeric() || *c == '_'))
                .map(|c| format!("contains {c:?}; only ASCII letters, digits and _ are allowed"))
        };
        match reason {
            Some(reason) => Err(Error::InvalidIdentifier {
                name: name.to_owned(),
                reason,
            }),
            None => Ok(Self(name.to_owned())),
        }
    }

    /// The name as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Identifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
