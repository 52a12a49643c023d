//! A string that must never be printed: tokens, client secrets, authorization
//! codes, PKCE verifiers.
//!
//! Invariant: the only way to see the value is [`Secret::expose`], so every
//! place that reads a secret is greppable. `Debug` and `Display` print
//! [`REDACTED`], and the memory is zeroed on drop.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use zeroize::Zeroizing;

/// What `Debug` and `Display` print instead of the value.
pub const REDACTED: &str = "[redacted]";

/// A secret string. Serialises as the plain value (it has to, to reach the
/// blob and the encrypted store), so only serialise it into places that are
/// meant to hold it.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(Zeroizing::new(value.into()))
    }

    /// The value itself. Every caller is a place where a secret leaves this type.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret::new(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Secret::new(value)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.expose())
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Secret::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALUE: &str = "sl.very-secret-access-token";

    #[test]
    fn debug_and_display_redact() {
        let s = Secret::new(VALUE);
        assert_eq!(format!("{s:?}"), REDACTED);
        assert_eq!(format!("{s}"), REDACTED);
        assert_eq!(format!("{s:#?}"), REDACTED);
        assert_eq!(format!("{s:>40}"), REDACTED);
    }

    #[test]
    fn nested_debug_redacts() {
        #[derive(Debug)]
        #[allow(dead_code)]
        struct Holder {
            token: Secret,
            other: Option<Secret>,
        }
        let h = Holder {
            token: Secret::new(VALUE),
            other: Some(Secret::new(VALUE)),
        };
        let printed = format!("{h:?} {h:#?}");
        assert!(!printed.contains(VALUE), "{printed}");
        assert!(printed.contains(REDACTED));
    }

    #[test]
    fn expose_and_serde_carry_the_value() {
        let s = Secret::new(VALUE);
        assert_eq!(s.expose(), VALUE);
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(json, format!("\"{VALUE}\""));
        let back: Secret = serde_json::from_str(&json).unwrap();
        assert_eq!(back, s);
    }
}
