//! The durable job queue against real SQLite: files in temporary directories and in-memory.
//!
//! The scenarios themselves live in `support/queue_scenarios.rs`, shared with
//! `queue_postgres.rs`, so both backends are held to the same behaviour. These tests need
//! no PostgreSQL.

use kubeward::queue::{Queue, QueueConfig, QueueError};

/// Every scenario on a SQLite file; several handles on one file stand in for restarts and for
/// concurrent processes.
mod sqlite_file {
    shared_scenarios!(SqliteFile);
}

/// The single-handle scenarios on `sqlite::memory:` (one connection, no WAL).
mod sqlite_memory {
    single_handle_scenarios!(SqliteMemory);
}

#[tokio::test]
async fn memory_delivery_dedupe_and_isolated_databases() {
    let a = Queue::connect("sqlite::memory:").await.unwrap();
    let b = Queue::connect("sqlite::memory:").await.unwrap();
    assert!(a.record_delivery("github", "x").await.unwrap());
    assert!(!a.record_delivery("github", "x").await.unwrap());
    // Each `sqlite::memory:` connection is its own database.
    assert!(b.record_delivery("github", "x").await.unwrap());
}

#[tokio::test]
async fn unsupported_and_invalid_urls_are_clear_errors() {
    // Nothing listens on port 1: the error says why, and never quotes the password.
    let err = Queue::connect("postgres://user:secret@127.0.0.1:1/kubeward")
        .await
        .unwrap_err();
    assert!(matches!(err, QueueError::Connect(_)), "{err}");
    assert!(!format!("{err} {err:?}").contains("secret"), "{err:?}");
    let err = Queue::connect("postgresql://user:secret@127.0.0.1:notaport/kubeward")
        .await
        .unwrap_err();
    assert!(matches!(err, QueueError::InvalidUrl(_)), "{err}");
    assert!(!format!("{err} {err:?}").contains("secret"), "{err:?}");

    let err = Queue::connect("mysql://user:secret@db").await.unwrap_err();
    assert!(
        matches!(err, QueueError::UnsupportedBackend { ref scheme, .. } if scheme == "mysql"),
        "{err}"
    );
    assert!(!err.to_string().contains("secret"), "{err}");
    let err = Queue::connect("sqlite://").await.unwrap_err();
    assert!(matches!(err, QueueError::InvalidUrl(_)), "{err}");
    let err = Queue::connect_with(
        "sqlite::memory:",
        QueueConfig::default().with_max_attempts(0),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, QueueError::Invalid(_)), "{err}");
}

/// A queue file made by the first schema (one remembered PR per head) is upgraded in place:
/// its remembered heads survive, and a head can then name several pull requests.
#[tokio::test]
async fn a_first_schema_queue_file_is_upgraded_keeping_its_data() {
    use sqlx::Connection;
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("queue.db").display()
    );
    {
        let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::raw_sql(include_str!(
            "../../src/queue/migrations/sqlite/0001_init.sql"
        ))
        .execute(&mut conn)
        .await
        .unwrap();
        sqlx::raw_sql(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL,
                applied_at_ms INTEGER NOT NULL);
             INSERT INTO schema_migrations VALUES (1, 'init', 0);
             INSERT INTO pr_heads VALUES ('github', 1, 'sha', 5, 0);",
        )
        .execute(&mut conn)
        .await
        .unwrap();
        conn.close().await.unwrap();
    }
    let queue = Queue::connect(&url).await.unwrap();
    assert_eq!(queue.prs_for_head("github", 1, "sha").await.unwrap(), [5]);
    queue.remember_pr_head("github", 1, "sha", 6).await.unwrap();
    assert_eq!(
        queue.prs_for_head("github", 1, "sha").await.unwrap(),
        [5, 6]
    );
}
