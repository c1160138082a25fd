//! SLIM names (`ORG/NS/APP`) and shared secrets, validated before use.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use crate::error::ConfigError;

/// A three-part SLIM name, `org/namespace/app`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SlimName {
    parts: [String; 3],
}

impl SlimName {
    /// The name as the bindings' type.
    pub fn to_slim(&self) -> Arc<slim_bindings::Name> {
        let [a, b, c] = self.parts.clone();
        Arc::new(slim_bindings::Name::new(a, b, c))
    }
}

impl FromStr for SlimName {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = |reason| ConfigError::InvalidName {
            input: s.to_string(),
            reason,
        };
        let parts: Vec<&str> = s.split('/').collect();
        if parts.len() != 3 {
            return Err(invalid("it must have exactly three parts separated by '/'"));
        }
        if parts.iter().any(|p| p.is_empty()) {
            return Err(invalid("a part is empty"));
        }
        // SLIM uses the name as the identity id of a shared-secret token, which
        // must not contain ':' or white space.
        if parts.iter().any(|p| {
            p.chars()
                .any(|c| c.is_whitespace() || c == ':' || c.is_control())
        }) {
            return Err(invalid(
                "it contains white space, a control character or ':'",
            ));
        }
        Ok(SlimName {
            parts: [parts[0].into(), parts[1].into(), parts[2].into()],
        })
    }
}

impl fmt::Display for SlimName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.parts[0], self.parts[1], self.parts[2])
    }
}

/// The shortest shared secret SLIM accepts (HMAC-SHA256 key).
pub const MIN_SECRET_BYTES: usize = 32;

/// A shared secret. Never printed: `Debug` and `Display` show a placeholder.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Validates the length SLIM requires.
    pub fn new(value: String) -> Result<Self, ConfigError> {
        if value.len() < MIN_SECRET_BYTES {
            return Err(ConfigError::SecretTooShort {
                len: value.len(),
                min: MIN_SECRET_BYTES,
            });
        }
        Ok(Secret(value))
    }

    pub(crate) fn expose(&self) -> String {
        self.0.clone()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_three_part_name() {
        let n: SlimName = "agntcy/otel/receiver".parse().unwrap();
        assert_eq!(n.to_string(), "agntcy/otel/receiver");
    }

    #[test]
    fn rejects_two_part_name() {
        let err = "agntcy/otel".parse::<SlimName>().unwrap_err();
        assert!(err.to_string().contains("exactly three parts"), "{err}");
    }

    #[test]
    fn rejects_empty_part() {
        assert!("agntcy//receiver".parse::<SlimName>().is_err());
    }

    #[test]
    fn rejects_colon_and_space() {
        assert!("agntcy/otel/a:b".parse::<SlimName>().is_err());
        assert!("agntcy/otel/a b".parse::<SlimName>().is_err());
    }

    #[test]
    fn short_secret_is_refused_with_the_minimum() {
        let err = Secret::new("short".into()).unwrap_err();
        assert_eq!(err, ConfigError::SecretTooShort { len: 5, min: 32 });
        assert!(err.to_string().contains("at least 32 bytes"));
    }

    #[test]
    fn secret_is_never_formatted() {
        let s = Secret::new("x".repeat(40)).unwrap();
        assert!(!format!("{s:?} {s}").contains("xxxx"));
    }
}
