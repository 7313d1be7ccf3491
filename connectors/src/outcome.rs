//! The failure model, shared by every connector, the stream runtime and the tools: the
//! per-record verdict of a write ([`Outcome`]) and the one classification of a failure
//! ([`ErrorClass`]: whose fault it is, and so whether and how to retry it).
//!
//! A sink answers each record of a batch with one [`Outcome`]; the runtime stores a
//! record's offset only when its outcome settled it (done, already applied, or handed to a
//! retry or dead-letter topic). Engine statuses map to it in `search` (one function for
//! every call to the engine), Kafka produce errors in [`crate::kafka::produce_outcome`].

/// Whose fault a failure is, and so whether and how to retry it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// The record's own: it never passes as it is (undecodable bytes, an unknown schema
    /// id, a mapping conflict, a 400). No retry: the dead letters at once.
    Permanent,
    /// A passing fault of this one write (an item's 429 or 5xx, a timeout): retried with
    /// backoff in place, then through the retry topics.
    Retryable,
    /// The destination's: it is unreachable or refused the whole request. When a whole
    /// batch gets it the lane pauses until the destination answers (nothing routed);
    /// alone, it is retried like [`ErrorClass::Retryable`].
    Unavailable,
}

impl ErrorClass {
    /// The `error-class` header value: `permanent`, `retryable` or `unavailable`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Permanent => "permanent",
            ErrorClass::Retryable => "retryable",
            ErrorClass::Unavailable => "unavailable",
        }
    }

    /// Whether trying again may pass.
    pub fn is_retryable(self) -> bool {
        self != ErrorClass::Permanent
    }
}

/// What a sink did with one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Written.
    Done,
    /// A newer or equal state is already there (e.g. a 409 for an older external version):
    /// success, nothing to do.
    AlreadyApplied,
    /// This record failed in a way that may pass later (an item's 429 or 5xx): retry it.
    Retry(String),
    /// The destination as a whole is unreachable or failed the whole request (transport
    /// error, timeout, 5xx or 429 for the request): when a whole batch gets this, the
    /// runtime pauses and waits for the destination instead of routing the records.
    Unavailable(String),
    /// Will never succeed as is (mapping error, 400): dead-letter it with this reason.
    Permanent(String),
}

impl Outcome {
    /// Whether the record is settled successfully.
    pub fn is_success(&self) -> bool {
        matches!(self, Outcome::Done | Outcome::AlreadyApplied)
    }

    /// The class of a failed outcome; `None` for a success.
    pub fn class(&self) -> Option<ErrorClass> {
        match self {
            Outcome::Done | Outcome::AlreadyApplied => None,
            Outcome::Retry(_) => Some(ErrorClass::Retryable),
            Outcome::Unavailable(_) => Some(ErrorClass::Unavailable),
            Outcome::Permanent(_) => Some(ErrorClass::Permanent),
        }
    }

    /// Why it failed (`None` for a success).
    pub fn reason(&self) -> Option<&str> {
        match self {
            Outcome::Done | Outcome::AlreadyApplied => None,
            Outcome::Retry(r) | Outcome::Unavailable(r) | Outcome::Permanent(r) => Some(r),
        }
    }

    /// Whether trying again may succeed.
    pub fn is_retryable(&self) -> bool {
        self.class().is_some_and(ErrorClass::is_retryable)
    }

    /// Whether the destination itself is down (see [`Outcome::Unavailable`]).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Outcome::Unavailable(_))
    }
}
