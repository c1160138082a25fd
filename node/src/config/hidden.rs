//! A setting that is a secret (a shared secret, a cursor key): parsed from the command line,
//! a variable or the config file like any string, but never shown — `Debug` of the CLI and
//! of the settings prints a placeholder.

use std::fmt;
use std::str::FromStr;

/// A secret value; [`Hidden::expose`] is the one way to read it.
#[derive(Clone, PartialEq, Eq)]
pub struct Hidden(String);

impl Hidden {
    /// The value itself, for the one place that uses it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Hidden {
    fn from(value: String) -> Hidden {
        Hidden(value)
    }
}

impl FromStr for Hidden {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Hidden, Self::Err> {
        Ok(Hidden(s.to_string()))
    }
}

impl fmt::Debug for Hidden {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}
