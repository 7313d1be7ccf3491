//! How a record failed, classified once: retryable or permanent.

use anineplus_connectors::Outcome;
use anineplus_schemas::DecodeError;

/// Whether a failure may pass later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Timeouts, 429, 5xx, an unreachable service: retry in place, then via retry topics.
    Retryable,
    /// Undecodable bytes, unknown schema id, mapping errors, 400: dead-letter at once.
    Permanent,
}

impl ErrorClass {
    /// The header value: `retryable` or `permanent`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Retryable => "retryable",
            ErrorClass::Permanent => "permanent",
        }
    }
}

/// A classified failure of one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Retryable or permanent.
    pub class: ErrorClass,
    /// What happened, for operators.
    pub message: String,
}

impl Failure {
    /// A permanent failure.
    pub fn permanent(message: impl Into<String>) -> Self {
        Failure {
            class: ErrorClass::Permanent,
            message: message.into(),
        }
    }

    /// A retryable failure.
    pub fn retryable(message: impl Into<String>) -> Self {
        Failure {
            class: ErrorClass::Retryable,
            message: message.into(),
        }
    }

    /// A decode failure, classified by the codec.
    pub fn decode(error: &DecodeError) -> Self {
        let message = format!("decode: {error}");
        if error.is_retryable() {
            Failure::retryable(message)
        } else {
            Failure::permanent(message)
        }
    }

    /// The failure a sink outcome stands for, if any.
    pub fn from_outcome(outcome: &Outcome) -> Option<Self> {
        match outcome {
            Outcome::Done | Outcome::AlreadyApplied => None,
            Outcome::Retry(reason) | Outcome::Unavailable(reason) => {
                Some(Failure::retryable(format!("sink: {reason}")))
            }
            Outcome::Permanent(reason) => Some(Failure::permanent(format!("sink: {reason}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_failures_of_bad_bytes_are_permanent() {
        let bad = anineplus_schemas::wire::split(b"xx").unwrap_err();
        assert_eq!(
            Failure::decode(&DecodeError::Wire(bad)).class,
            ErrorClass::Permanent
        );
        assert_eq!(
            Failure::decode(&DecodeError::UnknownSchemaId(9)).class,
            ErrorClass::Permanent
        );
        assert_eq!(
            Failure::from_outcome(&Outcome::Retry("429".into()))
                .unwrap()
                .class,
            ErrorClass::Retryable
        );
        assert_eq!(Failure::from_outcome(&Outcome::AlreadyApplied), None);
    }
}
