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

/// The items of several records flattened for one sink write, and each record's failure.
#[derive(Debug)]
pub(crate) struct Flattened<T> {
    /// Every record's items, in order.
    pub(crate) items: Vec<T>,
    /// The record (by position) each item came from.
    pub(crate) owners: Vec<usize>,
    /// Each record's failure so far (its decode or transform failure, if any).
    pub(crate) failures: Vec<Option<Failure>>,
}

impl<T> Flattened<T> {
    /// Flattens what each record became: its items, or the failure that stopped it.
    pub(crate) fn new(records: impl IntoIterator<Item = Result<Vec<T>, Failure>>) -> Self {
        let mut out = Flattened {
            items: Vec::new(),
            owners: Vec::new(),
            failures: Vec::new(),
        };
        for (i, record) in records.into_iter().enumerate() {
            match record {
                Ok(items) => {
                    out.owners.extend(std::iter::repeat_n(i, items.len()));
                    out.items.extend(items);
                    out.failures.push(None);
                }
                Err(failure) => out.failures.push(Some(failure)),
            }
        }
        out
    }

    /// Folds the sink's outcome of each item into its record's failure: a record fails if
    /// any of its items does, with the worst failure (permanent over retryable).
    pub(crate) fn absorb(&mut self, outcomes: &[Outcome]) {
        for (outcome, owner) in outcomes.iter().zip(&self.owners) {
            if let Some(failure) = Failure::from_outcome(outcome) {
                let worse = self.failures[*owner]
                    .as_ref()
                    .is_none_or(|f| f.class == ErrorClass::Retryable);
                if worse {
                    self.failures[*owner] = Some(failure);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_fails_with_the_worst_outcome_of_its_items() {
        let records = vec![
            Ok(vec!["a1", "a2"]),
            Err(Failure::permanent("garbage")),
            Ok(vec!["c1"]),
        ];
        let mut flat = Flattened::new(records);
        assert_eq!(flat.items, vec!["a1", "a2", "c1"]);
        assert_eq!(flat.owners, vec![0, 0, 2]);
        flat.absorb(&[
            Outcome::Retry("429".into()),
            Outcome::Permanent("400".into()),
            Outcome::AlreadyApplied,
        ]);
        assert_eq!(
            flat.failures[0].as_ref().unwrap().class,
            ErrorClass::Permanent
        );
        assert_eq!(flat.failures[1].as_ref().unwrap().message, "garbage");
        assert!(flat.failures[2].is_none());
    }

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
