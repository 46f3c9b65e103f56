//! A connection of either backend, lent to query functions. Every query function takes
//! `&mut Conn<'_>`, so a caller can run several in one transaction (`Db::write`) or one on
//! its own (`Db::read`, or the one-line `Db` methods). Lemmy's `DbPool` is the model; ours
//! has two backends, so the query body is expanded once per backend by `on_conn!`.

use std::future::Future;

use super::pool::checkout;
use super::{Db, DbError, PgConn, SqliteConn};
use diesel_async::AsyncConnection;

/// A borrowed connection of whichever backend the database is.
pub enum Conn<'a> {
    Pg(&'a mut PgConn),
    Sqlite(&'a mut SqliteConn),
}

/// Runs `$body` with `$c` bound to the backend connection inside `$conn` (a
/// `&mut Conn<'_>`). The body is expanded once per backend, so it must be backend-neutral
/// diesel code.
macro_rules! on_conn {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            $crate::db::Conn::Pg(inner) => {
                let $c: &mut $crate::db::PgConn = &mut **inner;
                $body
            }
            $crate::db::Conn::Sqlite(inner) => {
                let $c: &mut $crate::db::SqliteConn = &mut **inner;
                $body
            }
        }
    };
}
pub(crate) use on_conn;

/// An async closure over a borrowed connection whose future is `Send` (so a write can run
/// as a task of its own). Stable Rust cannot bound `AsyncFnOnce`'s future directly; this is
/// diesel-async's own workaround (`transaction_manager::AsyncFunc`), which it keeps private.
pub trait Work<T, R>: AsyncFnOnce(T) -> R + FnOnce(T) -> <Self as Work<T, R>>::Fut {
    type Fut: Future<Output = R>;
}

impl<F, T, Fut, R> Work<T, R> for F
where
    F: AsyncFnOnce(T) -> R + FnOnce(T) -> Fut,
    Fut: Future<Output = R>,
{
    type Fut = Fut;
}

impl Db {
    /// Runs `work` in one transaction on a connection that may write (SQLite's single
    /// writer). It commits when `work` returns `Ok`, and rolls back on `Err`, whatever the
    /// error type: a handler refuses inside the transaction and nothing is written.
    pub async fn write<R, E, F>(&self, work: F) -> Result<R, E>
    where
        for<'r, 'c> F:
            AsyncFnOnce(&'r mut Conn<'c>) -> Result<R, E> + Work<&'r mut Conn<'c>, Result<R, E>, Fut: Send> + Send,
        E: From<DbError> + From<diesel::result::Error> + Send,
        R: Send,
    {
        match self {
            Db::Postgres(pool) => {
                let mut obj = checkout(pool).await.map_err(E::from)?;
                obj.transaction(async move |c| work(&mut Conn::Pg(c)).await).await
            }
            Db::Sqlite { writer, .. } => {
                let mut obj = checkout(writer).await.map_err(E::from)?;
                obj.transaction(async move |c| work(&mut Conn::Sqlite(c)).await).await
            }
        }
    }

    /// Runs `work` on a connection for reading (SQLite's readers, in parallel with the
    /// writer under WAL), without a transaction.
    pub async fn read<R, E, F>(&self, work: F) -> Result<R, E>
    where
        for<'r, 'c> F:
            AsyncFnOnce(&'r mut Conn<'c>) -> Result<R, E> + Work<&'r mut Conn<'c>, Result<R, E>, Fut: Send> + Send,
        E: From<DbError>,
    {
        match self {
            Db::Postgres(pool) => {
                let mut obj = checkout(pool).await.map_err(E::from)?;
                work(&mut Conn::Pg(&mut obj)).await
            }
            Db::Sqlite { readers, .. } => {
                let mut obj = checkout(readers).await.map_err(E::from)?;
                work(&mut Conn::Sqlite(&mut obj)).await
            }
        }
    }
}
