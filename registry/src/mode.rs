//! Registry modes, global or per subject.

use std::fmt;
use std::str::FromStr;

use crate::error::Error;

/// What writes a subject (or the whole registry) accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Mode {
    /// Normal operation: registrations are checked for compatibility (the default).
    #[default]
    ReadWrite,
    /// No registrations or deletes (42205).
    ReadOnly,
    /// Migration from another registry: registrations may carry their `id` and `version`,
    /// and are not checked for compatibility.
    Import,
}

impl Mode {
    /// The mode's name as Confluent spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::ReadWrite => "READWRITE",
            Mode::ReadOnly => "READONLY",
            Mode::Import => "IMPORT",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Mode {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        match s.trim().to_ascii_uppercase().as_str() {
            "READWRITE" => Ok(Mode::ReadWrite),
            "READONLY" => Ok(Mode::ReadOnly),
            "IMPORT" => Ok(Mode::Import),
            _ => Err(Error::InvalidMode(s.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_round_trip_and_unknown_ones_are_42204() {
        for mode in [Mode::ReadWrite, Mode::ReadOnly, Mode::Import] {
            assert_eq!(mode.as_str().parse::<Mode>().unwrap(), mode);
        }
        assert_eq!("readonly".parse::<Mode>().unwrap(), Mode::ReadOnly);
        assert_eq!("WRITEONLY".parse::<Mode>().unwrap_err().code(), 42204);
    }
}
