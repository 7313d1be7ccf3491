//! The crate's error type and the stable codes clients see in `extensions.code`.
//!
//! Each variant says whose fault it is. Internal errors are logged with their cause and
//! reach clients only as `INTERNAL` with a fixed message.

use async_graphql::ErrorExtensions;

/// Stable error codes of the GraphQL edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// No valid credentials.
    Unauthenticated,
    /// Authenticated but not allowed.
    Forbidden,
    /// The request is invalid (input, query shape, limits).
    BadUserInput,
    /// The object does not exist (or may not be seen).
    NotFound,
    /// The change conflicts with the current state (unique key, state machine).
    Conflict,
    /// Too many requests.
    RateLimited,
    /// The request ran out of time (its deadline); ask for less or retry later.
    Timeout,
    /// Our fault.
    Internal,
}

impl ErrorCode {
    /// The code as clients see it.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Unauthenticated => "UNAUTHENTICATED",
            ErrorCode::Forbidden => "FORBIDDEN",
            ErrorCode::BadUserInput => "BAD_USER_INPUT",
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::Conflict => "CONFLICT",
            ErrorCode::RateLimited => "RATE_LIMITED",
            ErrorCode::Timeout => "TIMEOUT",
            ErrorCode::Internal => "INTERNAL",
        }
    }

    /// Every code, for metrics.
    pub const ALL: [ErrorCode; 8] = [
        ErrorCode::Unauthenticated,
        ErrorCode::Forbidden,
        ErrorCode::BadUserInput,
        ErrorCode::NotFound,
        ErrorCode::Conflict,
        ErrorCode::RateLimited,
        ErrorCode::Timeout,
        ErrorCode::Internal,
    ];
}

/// Errors of the API library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Missing, malformed, expired or otherwise invalid credentials.
    #[error("authentication required")]
    Unauthenticated,
    /// The viewer may not do this.
    #[error("{0}")]
    Forbidden(&'static str),
    /// Invalid input; the message names the field.
    #[error("{0}")]
    BadInput(String),
    /// No such object (kind named).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// Conflicts with existing state.
    #[error("{0}")]
    Conflict(String),
    /// Over the rate limit; retry after this many seconds.
    #[error("rate limit exceeded, retry after {0} s")]
    RateLimited(u64),
    /// The request's deadline passed (milliseconds allowed).
    #[error("the request ran longer than its {0} ms deadline")]
    Timeout(u64),
    /// PostgreSQL failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// Migrations failed.
    #[error("migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Redis failed.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// Kafka client failure.
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// Avro encoding or registry failure.
    #[error("schema: {0}")]
    Encode(#[from] anineplus_schemas::EncodeError),
    /// The search engine is unreachable or failed (clients see `INTERNAL`).
    #[error("search engine: {0}")]
    Search(String),
    /// Anything else that is our fault.
    #[error("{0}")]
    Internal(String),
}

/// Result of the API library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The client-facing code of this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::Unauthenticated => ErrorCode::Unauthenticated,
            Error::Forbidden(_) => ErrorCode::Forbidden,
            Error::BadInput(_) => ErrorCode::BadUserInput,
            Error::NotFound(_) => ErrorCode::NotFound,
            Error::Conflict(_) => ErrorCode::Conflict,
            Error::RateLimited(_) => ErrorCode::RateLimited,
            Error::Timeout(_) => ErrorCode::Timeout,
            _ => ErrorCode::Internal,
        }
    }

    /// Whether retrying the same operation later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::Database(_) | Error::Redis(_) | Error::Kafka(_) | Error::RateLimited(_)
        ) || matches!(self, Error::Encode(e) if e.is_retryable())
    }

    /// A bad-input error.
    pub fn bad_input(message: impl Into<String>) -> Self {
        Error::BadInput(message.into())
    }

    /// Maps a unique-constraint violation to `CONFLICT` with `message`, other errors as is.
    pub fn conflict_on_unique(err: sqlx::Error, message: &str) -> Self {
        match &err {
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                Error::Conflict(message.to_owned())
            }
            _ => Error::Database(err),
        }
    }
}

impl ErrorExtensions for Error {
    /// The GraphQL error of `self`: the message (fixed for internal errors, whose cause is
    /// logged instead) and `extensions.code`.
    fn extend(&self) -> async_graphql::Error {
        let code = self.code();
        let message = if code == ErrorCode::Internal {
            tracing::error!(error = %self, "internal error");
            "internal error".to_owned()
        } else {
            self.to_string()
        };
        let retry_after = match self {
            Error::RateLimited(secs) => Some(*secs),
            _ => None,
        };
        async_graphql::Error::new(message).extend_with(|_, ext| {
            ext.set("code", code.as_str());
            if let Some(secs) = retry_after {
                ext.set("retryAfter", secs);
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use async_graphql::ErrorExtensions;

    use super::*;

    #[test]
    fn internal_errors_do_not_leak() {
        let err = Error::Internal("password=hunter2".into()).extend();
        assert_eq!(err.message, "internal error");
        let ext = err.extensions.unwrap();
        assert_eq!(
            ext.get("code"),
            Some(&async_graphql::Value::from("INTERNAL"))
        );
    }

    #[test]
    fn client_errors_keep_their_message() {
        let err = Error::bad_input("email: not an email").extend();
        assert_eq!(err.message, "email: not an email");
    }
}
