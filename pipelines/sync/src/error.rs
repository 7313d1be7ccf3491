//! [`Error`]: why a sync command failed.

/// Why a sync command failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// PostgreSQL could not be reached or refused a query (`context` says which).
    #[error("{context}")]
    Database {
        /// What was being done.
        context: String,
        /// PostgreSQL's error.
        #[source]
        source: sqlx::Error,
    },
    /// A query or a column of a row failed.
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
    /// The search client could not be built.
    #[error(transparent)]
    Connector(#[from] anineplus_connectors::Error),
    /// A call to the search engine failed (unreachable, or an error status).
    #[error(transparent)]
    Engine(#[from] anineplus_connectors::search::CallError),
    /// The search engine refused every write for now.
    #[error("search engine unavailable: {0}")]
    Unavailable(String),
    /// The index is not one the sync commands handle.
    #[error("index {0} is not supported by the sync commands")]
    Unsupported(&'static str),
    /// A row or document does not have the shape its mapping needs.
    #[error("{0}")]
    Mapping(String),
    /// Writes into a generation being built were refused.
    #[error("{target}: {} documents refused, refused: {failed:?}", failed.len())]
    Refused {
        /// The index being built.
        target: String,
        /// Each refused write, with the engine's reason.
        failed: Vec<String>,
    },
    /// The alias points at no `<alias>-v<N>` index, so there is no next generation.
    #[error("alias {0} points at no `{0}-v<N>` index")]
    NoGeneration(String),
    /// Building the next generation failed; it was deleted and the alias left as it was.
    #[error("{new} deleted, alias not switched")]
    Abandoned {
        /// The generation that was being built.
        new: String,
        /// Why building it failed.
        #[source]
        source: Box<Error>,
    },
}

impl Error {
    /// A row or document without the shape its mapping needs.
    pub(crate) fn mapping(message: impl Into<String>) -> Self {
        Error::Mapping(message.into())
    }
}

/// Result of the sync commands.
pub type Result<T> = std::result::Result<T, Error>;
