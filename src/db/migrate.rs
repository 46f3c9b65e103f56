//! Embedded migrations, one directory per backend with the same names.
//! They run on a blocking thread with a plain (sync) connection: the async harness
//! needs a multi-thread runtime, which tests and actix workers do not have.

use diesel::Connection;
use diesel::SqliteConnection;
use diesel::connection::SimpleConnection;
use diesel_async::AsyncPgConnection;
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

const SQLITE: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES: EmbeddedMigrations = embed_migrations!("migrations/postgres");

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Applies pending migrations and returns how many ran.
pub async fn run_migrations(url: String, postgres: bool) -> Result<usize, BoxError> {
    tokio::task::spawn_blocking(move || -> Result<usize, BoxError> {
        if postgres {
            let mut conn = <AsyncConnectionWrapper<AsyncPgConnection> as Connection>::establish(&url)?;
            Ok(conn.run_pending_migrations(POSTGRES)?.len())
        } else {
            let mut conn = SqliteConnection::establish(&url)?;
            // Wait for a lock held elsewhere (a server still stopping) instead of failing.
            conn.batch_execute("PRAGMA busy_timeout = 10000;")?;
            Ok(conn.run_pending_migrations(SQLITE)?.len())
        }
    })
    .await?
}
