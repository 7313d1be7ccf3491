//! The retry policy of the search sink: one question per status, "done, already applied,
//! retry, or give up?".

use serde_json::Value;

use crate::Outcome;

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
        429 | 500..=599 => Outcome::Retry(describe(status, error)),
        _ => Outcome::Permanent(describe(status, error)),
    }
}

/// The outcome of every document of a bulk request that failed as a whole with `status`.
pub fn request_outcome(status: u16, body: &str) -> Outcome {
    let error = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v.get("error").cloned());
    let reason = match &error {
        Some(e) => describe(status, Some(e)),
        None => format!(
            "status {status}: {}",
            body.chars().take(300).collect::<String>()
        ),
    };
    match status {
        // 404 here means the engine or a proxy lost the route, not the document.
        404 | 408 | 429 | 500..=599 => Outcome::Unavailable(reason),
        _ => Outcome::Permanent(reason),
    }
}

/// `status 400: mapper_parsing_exception: failed to parse ... (caused by: ...)`.
fn describe(status: u16, error: Option<&Value>) -> String {
    let Some(error) = error else {
        return format!("status {status}");
    };
    if let Some(text) = error.as_str() {
        return format!("status {status}: {text}");
    }
    let kind = error["type"].as_str().unwrap_or("error");
    let reason = error["reason"].as_str().unwrap_or("");
    let mut out = format!("status {status}: {kind}: {reason}");
    let mut cause = error.get("caused_by");
    while let Some(c) = cause {
        out.push_str(&format!(
            " (caused by {}: {})",
            c["type"].as_str().unwrap_or("error"),
            c["reason"].as_str().unwrap_or("")
        ));
        cause = c.get("caused_by");
    }
    out
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
        assert!(request_outcome(502, "bad gateway").is_unavailable());
        assert!(matches!(
            request_outcome(413, "too large"),
            Outcome::Permanent(_)
        ));
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
