use deadpool::managed::{Manager, PoolError};
use diesel::SqliteConnection;
use diesel::{ConnectionError, ConnectionResult};
use diesel_async::pooled_connection::deadpool::{Object, Pool};
use diesel_async::pooled_connection::{AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod};
use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use futures_util::FutureExt;
use std::time::Duration;
use tokio::runtime::Handle;

use super::DbError;

pub type SqliteConn = SyncConnectionWrapper<SqliteConnection, super::blocking::Blocking>;
pub type PgConn = AsyncPgConnection;

/// A handle on the database, cheap to clone.
#[derive(Clone)]
pub enum Db {
    Postgres(Pool<PgConn>),
    /// SQLite allows one writer at a time; a single writer connection queues writes in
    /// process (no SQLITE_BUSY) while readers proceed in parallel under WAL.
    Sqlite {
        writer: Pool<SqliteConn>,
        readers: Pool<SqliteConn>,
    },
}

/// Per-connection SQLite settings (they do not persist in the file, except WAL).
/// `synchronous = FULL`: a 201 means the message survives a power cut. The busy timeout
/// comes first: switching to WAL needs a lock, and another process may hold one (a
/// previous server still closing the file checkpoints it), which without the timeout
/// fails the start at once with "database is locked".
const SQLITE_SETUP: &str = "PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL; \
    PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;";

pub struct PoolOptions {
    pub size: usize,
    pub timeout: Duration,
    /// The runtime that drives connections. Each actix worker has its own runtime;
    /// connections made on one that stops first would die with it, so every connection
    /// is established on the long-lived main runtime instead.
    pub runtime: Handle,
}

pub async fn connect(url: &str, postgres: bool, opts: PoolOptions) -> Result<Db, DbError> {
    let db = if postgres {
        Db::Postgres(build_pool(url, opts.size, &opts, None)?)
    } else {
        Db::Sqlite {
            writer: build_pool(url, 1, &opts, Some(SQLITE_SETUP))?,
            readers: build_pool(url, opts.size, &opts, Some(SQLITE_SETUP))?,
        }
    };
    db.ping().await?;
    Ok(db)
}

fn build_pool<C>(url: &str, size: usize, opts: &PoolOptions, setup: Option<&'static str>) -> Result<Pool<C>, DbError>
where
    C: AsyncConnection + SimpleAsyncConnection + 'static,
    AsyncDieselConnectionManager<C>: Manager<Type = C, Error = diesel_async::pooled_connection::PoolError>,
{
    let mut cfg = ManagerConfig::<C>::default();
    // No `SELECT 1` on every checkout: on SQLite it cost a blocking hop per request and
    // per batch, on PostgreSQL a round trip. A PostgreSQL connection whose socket has
    // closed (server restart) is still replaced at checkout: diesel-async checks that
    // without a query, as it checks for a transaction left open.
    cfg.recycling_method = RecyclingMethod::Fast;
    let handle = opts.runtime.clone();
    cfg.custom_setup = Box::new(move |url| {
        let url = url.to_owned();
        let task = handle.spawn(async move { establish::<C>(&url, setup).await });
        async move { task.await.map_err(|e| ConnectionError::BadConnection(e.to_string()))? }.boxed()
    });
    let manager = AsyncDieselConnectionManager::<C>::new_with_config(url, cfg);
    Pool::builder(manager)
        .max_size(size)
        .wait_timeout(Some(opts.timeout))
        .create_timeout(Some(opts.timeout))
        .recycle_timeout(Some(opts.timeout))
        .runtime(deadpool::Runtime::Tokio1)
        .build()
        .map_err(|e| DbError::Unavailable(e.to_string()))
}

async fn establish<C: AsyncConnection + SimpleAsyncConnection>(url: &str, setup: Option<&str>) -> ConnectionResult<C> {
    let mut conn = C::establish(url).await?;
    if let Some(sql) = setup {
        conn.batch_execute(sql).await.map_err(ConnectionError::CouldntSetupConfiguration)?;
    }
    Ok(conn)
}

pub(crate) async fn checkout<C>(pool: &Pool<C>) -> Result<Object<C>, DbError>
where
    C: AsyncConnection + 'static,
    AsyncDieselConnectionManager<C>: Manager<Type = C, Error = diesel_async::pooled_connection::PoolError>,
{
    let started = std::time::Instant::now();
    let obj = pool.get().await.map_err(|e| match e {
        PoolError::Timeout(_) => DbError::Unavailable("timed out waiting for a database connection".into()),
        other => DbError::Unavailable(other.to_string()),
    })?;
    metrics::histogram!("missive_db_pool_wait_seconds").record(started.elapsed().as_secs_f64());
    Ok(obj)
}

impl Db {
    /// A round trip to the database (for `/readyz` and startup).
    pub async fn ping(&self) -> Result<(), DbError> {
        self.read(async |conn| {
            super::on_conn!(conn, |c| c.batch_execute("SELECT 1").await?);
            Ok(())
        })
        .await
    }

    pub fn backend_name(&self) -> &'static str {
        match self {
            Db::Postgres(_) => "postgresql",
            Db::Sqlite { .. } => "sqlite",
        }
    }
}
