//! The registry's one error type. Every variant carries Confluent's numeric `error_code` and
//! the HTTP status Confluent answers with, so clients switch on the same codes they know from
//! Confluent Schema Registry.

use axum::http::StatusCode;

/// Result of the registry's operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, with Confluent's error code (see [`Error::code`]).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// 40401: no (visible) version of the subject exists.
    #[error("Subject '{0}' not found.")]
    SubjectNotFound(String),
    /// 40402: the subject exists but not this version.
    #[error("Version {version} not found for subject '{subject}'.")]
    VersionNotFound {
        /// The subject.
        subject: String,
        /// The requested version, as given.
        version: String,
    },
    /// 40403: no such schema (by id, or under the subject).
    #[error("{0}")]
    SchemaNotFound(String),
    /// 40404: a soft delete of a subject that is already soft-deleted.
    #[error("Subject '{0}' was soft deleted. Set permanent=true to delete permanently")]
    SubjectSoftDeleted(String),
    /// 40405: a permanent delete of a subject that was not soft-deleted first.
    #[error("Subject '{0}' was not deleted first before being permanently deleted")]
    SubjectNotSoftDeleted(String),
    /// 40406: a soft delete of a version that is already soft-deleted.
    #[error(
        "Subject '{subject}' Version {version} was soft deleted. Set permanent=true to delete permanently"
    )]
    VersionSoftDeleted {
        /// The subject.
        subject: String,
        /// The version.
        version: i32,
    },
    /// 40407: a permanent delete of a version that was not soft-deleted first.
    #[error(
        "Subject '{subject}' Version {version} was not deleted first before being permanently deleted"
    )]
    VersionNotSoftDeleted {
        /// The subject.
        subject: String,
        /// The version.
        version: i32,
    },
    /// 40408: the subject has no compatibility level of its own.
    #[error(
        "Subject '{0}' does not have subject-level compatibility configured (add ?defaultToGlobal=true for the effective level)"
    )]
    SubjectCompatibilityNotConfigured(String),
    /// 40409: the subject has no mode of its own.
    #[error(
        "Subject '{0}' does not have subject-level mode configured (add ?defaultToGlobal=true for the effective mode)"
    )]
    SubjectModeNotConfigured(String),
    /// 409: the schema breaks the subject's compatibility level.
    #[error(
        "Schema being registered is incompatible with an earlier schema for subject '{subject}': {}",
        .messages.join("; ")
    )]
    Incompatible {
        /// The subject.
        subject: String,
        /// One line per problem, naming the field and the version it conflicts with.
        messages: Vec<String>,
    },
    /// 42201: not a valid Avro schema (or not AVRO at all).
    #[error("Invalid schema: {0}")]
    InvalidSchema(String),
    /// 42202: a version that is neither a number in 1..=2^31-1 nor `latest`.
    #[error(
        "The specified version '{0}' is not a valid version id. Allowed values are between [1, 2^31-1] and the string \"latest\""
    )]
    InvalidVersion(String),
    /// 42203: an unknown compatibility level.
    #[error(
        "Invalid compatibility level '{0}'. Valid values are: NONE, BACKWARD, BACKWARD_TRANSITIVE, FORWARD, FORWARD_TRANSITIVE, FULL, FULL_TRANSITIVE"
    )]
    InvalidCompatibilityLevel(String),
    /// 42204: an unknown mode.
    #[error("Invalid mode '{0}'. Valid values are: READWRITE, READONLY, IMPORT")]
    InvalidMode(String),
    /// 42205: the operation is not allowed (READONLY mode, ids outside IMPORT mode, ...).
    #[error("{0}")]
    OperationNotPermitted(String),
    /// 42206: the version is referenced by other schemas and cannot be deleted.
    #[error(
        "One or more references exist to the schema {{subject={subject}, version={version}}}: referenced by schema ids {ids:?}; delete those first"
    )]
    ReferenceExists {
        /// The subject.
        subject: String,
        /// The version.
        version: i32,
        /// The schemas that reference it.
        ids: Vec<i32>,
    },
    /// 42207: in IMPORT mode, the schema already has another id.
    #[error("Schema already registered with id {existing} instead of input id {requested}")]
    IdMismatch {
        /// The id the schema has.
        existing: i32,
        /// The id the request asked for.
        requested: i32,
    },
    /// 422: the request body is not the JSON the endpoint expects.
    #[error("Invalid request: {0}")]
    InvalidRequest(String),
    /// 415: a request body in a content type other than JSON.
    #[error(
        "Unsupported content type '{0}': send application/vnd.schemaregistry.v1+json or application/json"
    )]
    UnsupportedMediaType(String),
    /// 404: no such endpoint.
    #[error("HTTP 404 Not Found: no endpoint {0}")]
    NoSuchEndpoint(String),
    /// 405: the endpoint exists but not with this method.
    #[error("HTTP 405 Method Not Allowed")]
    MethodNotAllowed,
    /// 40101: no credentials, or credentials that do not match a user.
    #[error("Unauthorized: {0}")]
    Unauthorized(String),
    /// 40301: the user lacks the permission for this operation on this resource.
    #[error("{0}")]
    Forbidden(String),
    /// The users file is missing or invalid (at start).
    #[error("access configuration: {0}")]
    AccessConfig(String),
    /// 413: a request body longer than the registry reads (see [`Limits`](crate::limits::Limits)).
    #[error("Request body larger than {0} bytes")]
    PayloadTooLarge(usize),
    /// 500: a fault of the registry itself (a failed task). Logged; the client gets no details.
    #[error("Internal error: {0}")]
    Internal(String),
    /// 50001: PostgreSQL failed. The details are logged, not sent to the client.
    #[error("Error in the backend data store: {0}")]
    Store(#[from] sqlx::Error),
    /// 50001: the database migrations could not be applied (at start).
    #[error("could not migrate the registry database: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The database could not be reached at start.
    #[error("cannot connect to PostgreSQL at {url}: {reason}")]
    DatabaseUnreachable {
        /// The database URL, password redacted.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// Binding or serving the listener failed (at start).
    #[error("registry server I/O: {0}")]
    Io(#[from] std::io::Error),
}

impl Error {
    /// Confluent's `error_code` for this error.
    pub fn code(&self) -> u32 {
        match self {
            Error::SubjectNotFound(_) => 40401,
            Error::VersionNotFound { .. } => 40402,
            Error::SchemaNotFound(_) => 40403,
            Error::SubjectSoftDeleted(_) => 40404,
            Error::SubjectNotSoftDeleted(_) => 40405,
            Error::VersionSoftDeleted { .. } => 40406,
            Error::VersionNotSoftDeleted { .. } => 40407,
            Error::SubjectCompatibilityNotConfigured(_) => 40408,
            Error::SubjectModeNotConfigured(_) => 40409,
            Error::Incompatible { .. } => 409,
            Error::InvalidSchema(_) => 42201,
            Error::InvalidVersion(_) => 42202,
            Error::InvalidCompatibilityLevel(_) => 42203,
            Error::InvalidMode(_) => 42204,
            Error::OperationNotPermitted(_) => 42205,
            Error::ReferenceExists { .. } => 42206,
            Error::IdMismatch { .. } => 42207,
            Error::InvalidRequest(_) => 422,
            Error::UnsupportedMediaType(_) => 415,
            Error::NoSuchEndpoint(_) => 404,
            Error::MethodNotAllowed => 405,
            Error::PayloadTooLarge(_) => 413,
            Error::Unauthorized(_) => 40101,
            Error::Forbidden(_) => 40301,
            Error::AccessConfig(_) => 50001,
            Error::Internal(_) => 500,
            Error::Store(_)
            | Error::Migrate(_)
            | Error::DatabaseUnreachable { .. }
            | Error::Io(_) => 50001,
        }
    }

    /// The HTTP status Confluent answers this error with.
    pub fn status(&self) -> StatusCode {
        match self.code() {
            409 => StatusCode::CONFLICT,
            415 => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            413 => StatusCode::PAYLOAD_TOO_LARGE,
            40101 => StatusCode::UNAUTHORIZED,
            40301 => StatusCode::FORBIDDEN,
            405 => StatusCode::METHOD_NOT_ALLOWED,
            404 | 40401..=40499 => StatusCode::NOT_FOUND,
            422 | 42201..=42299 => StatusCode::UNPROCESSABLE_ENTITY,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Whether trying again later may succeed: only the store's failures are transient; every
    /// other error is the client's and repeats until the request changes.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Store(_) | Error::DatabaseUnreachable { .. })
    }

    /// The message sent to the client. Store errors stay internal (they are logged).
    pub fn client_message(&self) -> String {
        match self {
            Error::Store(_)
            | Error::Migrate(_)
            | Error::DatabaseUnreachable { .. }
            | Error::Io(_) => "Error in the backend data store; see the registry's log".to_owned(),
            Error::Internal(_) => "Internal error; see the registry's log".to_owned(),
            other => other.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_confluent_statuses() {
        assert_eq!(
            Error::SubjectNotFound("s".into()).status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            Error::InvalidVersion("abc".into()).status(),
            StatusCode::UNPROCESSABLE_ENTITY
        );
        let incompatible = Error::Incompatible {
            subject: "anime-value".into(),
            messages: vec!["a".into(), "b".into()],
        };
        assert_eq!(incompatible.status(), StatusCode::CONFLICT);
        assert_eq!(incompatible.code(), 409);
        assert!(incompatible.to_string().ends_with("'anime-value': a; b"));
        let store = Error::Store(sqlx::Error::PoolTimedOut);
        assert_eq!(store.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(store.code(), 50001);
        assert!(store.is_retryable());
        assert!(!store.client_message().contains("PoolTimedOut"));
    }
}
