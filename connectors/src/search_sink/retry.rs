//! The retry policy of the search sink: one question per item, "done, already applied,
//! retry, wait for the engine, or give up?".

use serde_json::Value;

use crate::search::{self, describe};
use crate::{ErrorClass, Outcome};

/// The outcome of one bulk item from its operation (`index`, `update`, ...: the key of the
/// item in the bulk response), its HTTP status and error object.
///
/// A 409 means two different things. On an `index` with an external version it is the
/// engine refusing an older (or equal) version: already applied. On an `update` (a script)
/// it is a concurrency conflict: another write changed the document between the script's
/// read and its write, `retry_on_conflict` times over; the script never ran to the end,
/// so the item is retried.
pub fn item_outcome(op: &str, status: u16, error: Option<&Value>) -> Outcome {
    match status {
        200..=299 => Outcome::Done,
        409 if op == "update" => {
            Outcome::Retry(format!("concurrency conflict: {}", describe(status, error)))
        }
        409 => Outcome::AlreadyApplied,
        _ => match search::item_class(status, error) {
            ErrorClass::Permanent => Outcome::Permanent(describe(status, error)),
            ErrorClass::Retryable => Outcome::Retry(describe(status, error)),
            ErrorClass::Unavailable => Outcome::Unavailable(describe(status, error)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn statuses_are_classified() {
        assert_eq!(item_outcome("index", 201, None), Outcome::Done);
        assert_eq!(item_outcome("update", 200, None), Outcome::Done);
        assert_eq!(item_outcome("index", 409, None), Outcome::AlreadyApplied);
        assert!(item_outcome("update", 409, None).is_retryable());
        assert!(item_outcome("index", 429, None).is_retryable());
        assert!(item_outcome("index", 503, None).is_retryable());
        assert!(matches!(
            item_outcome("index", 400, None),
            Outcome::Permanent(_)
        ));
        let blocked = json!({"type": "cluster_block_exception", "reason": "blocked by: [SERVICE_UNAVAILABLE/2/no cluster-manager];"});
        assert!(item_outcome("index", 503, Some(&blocked)).is_unavailable());
    }

    #[test]
    fn a_mapping_error_keeps_the_engines_reason() {
        let error = json!({"type": "mapper_parsing_exception", "reason": "failed to parse field [n]",
            "caused_by": {"type": "number_format_exception", "reason": "For input string: \"x\""}});
        let Outcome::Permanent(reason) = item_outcome("index", 400, Some(&error)) else {
            panic!()
        };
        assert_eq!(
            reason,
            "status 400: mapper_parsing_exception: failed to parse field [n] \
             (caused by number_format_exception: For input string: \"x\")"
        );
    }
}
