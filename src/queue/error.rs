//! Queue errors: each names the operation that failed, so a log line is enough to act on.

/// Everything the queue can fail with.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The URL names a backend this build does not provide (yet).
    #[error("unsupported queue backend `{scheme}`: {hint}")]
    UnsupportedBackend { scheme: String, hint: &'static str },
    /// The URL names a known backend but cannot be used as given.
    #[error("invalid queue URL: {0}")]
    InvalidUrl(String),
    /// Opening the database (or creating its directory) failed.
    #[error("cannot open the queue database: {0}")]
    Connect(#[source] sqlx::Error),
    #[error("cannot create the queue database directory {path}: {source}")]
    CreateDir {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A schema migration failed; its transaction rolled back, so the schema is unchanged.
    #[error("queue schema migration {version} ({name}) failed: {source}")]
    Migration {
        version: i64,
        name: &'static str,
        #[source]
        source: sqlx::Error,
    },
    /// The database was migrated by a newer kubeward; running old code against it could corrupt it.
    #[error(
        "queue database schema is version {found}, newer than this build supports ({supported}); upgrade kubeward"
    )]
    SchemaTooNew { found: i64, supported: i64 },
    /// A query failed; `op` says which queue operation it belonged to.
    #[error("queue {op} failed: {source}")]
    Database {
        op: &'static str,
        #[source]
        source: sqlx::Error,
    },
    /// A stored row could not be decoded (unknown state, malformed payload).
    #[error("queue job {id} is unreadable: {detail}")]
    CorruptRow { id: i64, detail: String },
    /// The job or configuration handed in is not valid.
    #[error("invalid queue request: {0}")]
    Invalid(String),
}

/// Wraps a driver error with the queue operation it belonged to.
pub(crate) fn db(op: &'static str) -> impl FnOnce(sqlx::Error) -> QueueError {
    move |source| QueueError::Database { op, source }
}
