//! How a record failed, classified once with the shared [`ErrorClass`] (permanent,
//! retryable, or the destination unavailable): decode errors here ([`Failure::decode`]),
//! sink outcomes by their own class ([`Failure::from_outcome`]).

pub use anineplus_connectors::ErrorClass;
use anineplus_connectors::Outcome;
use anineplus_schemas::DecodeError;

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

    /// A failure of a destination (or the registry) that is unreachable.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Failure {
            class: ErrorClass::Unavailable,
            message: message.into(),
        }
    }

    /// A decode failure: only an unreachable registry may pass later (the registry
    /// unavailable); bad bytes, unknown ids and incompatible schemas are permanent.
    pub fn decode(error: &DecodeError) -> Self {
        let message = format!("decode: {error}");
        if error.is_retryable() {
            Failure::unavailable(message)
        } else {
            Failure::permanent(message)
        }
    }

    /// The failure a sink outcome stands for, if any.
    pub fn from_outcome(outcome: &Outcome) -> Option<Self> {
        Some(Failure {
            class: outcome.class()?,
            message: format!("sink: {}", outcome.reason()?),
        })
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
                    .is_none_or(|f| f.class.is_retryable());
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
        let down = Failure::from_outcome(&Outcome::Unavailable("connection refused".into()));
        assert_eq!(
            down,
            Some(Failure::unavailable("sink: connection refused")),
            "the destination's fault keeps its class"
        );
        assert!(ErrorClass::Unavailable.is_retryable() && !ErrorClass::Permanent.is_retryable());
    }
}
