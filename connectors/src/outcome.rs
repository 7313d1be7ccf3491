//! The per-record verdict of a sink write, shared by every sink and the pipelines runtime.
//!
//! A sink answers each record of a batch with one [`Outcome`]; the runtime stores a
//! record's offset only when its outcome settled it (done, already applied, or handed to a
//! retry or dead-letter topic).

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

    /// Whether trying again may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Outcome::Retry(_) | Outcome::Unavailable(_))
    }

    /// Whether the destination itself is down (see [`Outcome::Unavailable`]).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Outcome::Unavailable(_))
    }

    /// How bad the outcome is, to combine the outcomes of the writes of one record:
    /// success < retry < permanent.
    pub fn severity(&self) -> u8 {
        match self {
            Outcome::Done | Outcome::AlreadyApplied => 0,
            Outcome::Retry(_) | Outcome::Unavailable(_) => 1,
            Outcome::Permanent(_) => 2,
        }
    }
}
