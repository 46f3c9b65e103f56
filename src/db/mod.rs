//! Storage. One binary speaks SQLite (default, embedded) and PostgreSQL, chosen at start
//! from the database URL. Queries are written once with diesel's DSL and expanded for
//! each backend by `on_conn!`, because diesel-async has no runtime multi-backend
//! connection. Query functions take a borrowed `Conn` (`conn`), so handlers compose them
//! in one transaction (`Db::write`); this module never publishes events.

mod batch;
mod blocking;
pub mod chats;
mod conn;
pub mod edits;
pub mod members;
pub mod messages;
mod migrate;
pub mod models;
pub mod pool;
pub mod schema;

pub use batch::{NewMessage, PostOutcome};
pub use blocking::run_in_place_on_this_thread;
pub use chats::{ChatLock, ChatPage, NewChat};
pub(crate) use conn::on_conn;
pub use conn::{Conn, Work};
pub use edits::{Change, ChangeOutcome};
pub use members::{AddOutcome, ReadOutcome, ReadState, ReadUpTo, RemoveOutcome};
pub use messages::{Cursor, MessagePage};
pub use migrate::run_migrations;
pub use pool::{Db, PgConn, SqliteConn, connect};

/// Failures of the storage layer, split by what the client should hear.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// No connection could be had in time, or it broke: 503, nothing was written.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error(transparent)]
    Query(diesel::result::Error),
    /// A batch of sends failed as a whole (the cause is in the text); nothing was written.
    #[error("batch failed: {0}")]
    Batch(String),
}

impl From<diesel::result::Error> for DbError {
    fn from(e: diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind as K, Error as E};
        match e {
            E::DatabaseError(K::ClosedConnection | K::UnableToSendCommand, info) => {
                Self::Unavailable(info.message().to_owned())
            }
            E::BrokenTransactionManager => Self::Unavailable("transaction manager broken".into()),
            other => Self::Query(other),
        }
    }
}
