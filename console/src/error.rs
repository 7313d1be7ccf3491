//! The console's [`Error`]: whose fault a failure is decides the page and status shown.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::html;

/// What can go wrong in the console.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is invalid (every problem listed).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The request is wrong (a bad filter, a missing field): the operator's to fix.
    #[error("{0}")]
    BadRequest(String),
    /// No such pipeline, dead letter or job.
    #[error("{0}")]
    NotFound(String),
    /// The form's CSRF token is missing or wrong.
    #[error(
        "the form is stale or did not come from this console (CSRF token): reload the page and try again"
    )]
    Csrf,
    /// PostgreSQL failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// The migrations failed.
    #[error("database migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The dead-letter engine (Kafka) failed.
    #[error("dead-letter engine: {0}")]
    Engine(#[from] anineplus_streams::Error),
    /// Kafka failed outside the engine.
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// A background task failed.
    #[error("task: {0}")]
    Task(String),
    /// Serving failed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

/// The crate's result.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Whether the failure is a service's (Kafka, PostgreSQL, a task) and worth trying
    /// again after a pause, rather than the request's or the configuration's.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Engine(e) => matches!(
                e,
                anineplus_streams::Error::Kafka(_)
                    | anineplus_streams::Error::Unavailable(_)
                    | anineplus_streams::Error::Task(_)
            ),
            Error::Kafka(_) | Error::Task(_) | Error::Io(_) => true,
            // The connection, not the statement: the server away, restarting or shutting down.
            Error::Database(e) => match e {
                sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::Protocol(_) => true,
                sqlx::Error::Database(db) => db
                    .code()
                    .is_some_and(|c| c.starts_with("08") || c.starts_with("57P")),
                _ => false,
            },
            _ => false,
        }
    }

    /// The status of the page showing this error.
    pub fn status(&self) -> StatusCode {
        match self {
            Error::BadRequest(_) => StatusCode::BAD_REQUEST,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::Csrf => StatusCode::FORBIDDEN,
            Error::Engine(anineplus_streams::Error::Topic { .. }) => StatusCode::NOT_FOUND,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(error = %self, "request failed");
        }
        let body = format!(
            "<h1>{}</h1><p class=\"error\">{}</p><p><a href=\"/\">Back to the console</a></p>",
            status.canonical_reason().unwrap_or("Error"),
            html::escape(&self.to_string())
        );
        (status, html::bare("Error", &body)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_failures_are_the_services_not_the_requests() {
        use anineplus_streams::Error as Engine;
        assert!(Error::Engine(Engine::Unavailable("registry".into())).is_transient());
        assert!(Error::Database(sqlx::Error::PoolTimedOut).is_transient());
        assert!(!Error::Database(sqlx::Error::RowNotFound).is_transient());
        assert!(!Error::BadRequest("class".into()).is_transient());
        let gone = Engine::Topic {
            topic: "indexer.dlq".into(),
            reason: "does not exist".into(),
        };
        assert_eq!(Error::Engine(gone).status(), StatusCode::NOT_FOUND);
        assert_eq!(Error::Csrf.status(), StatusCode::FORBIDDEN);
    }
}
