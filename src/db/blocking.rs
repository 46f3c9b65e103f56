//! Where SQLite work runs. diesel-async runs a synchronous connection's work on the tokio
//! blocking pool, so the async caller never blocks. The group-commit writer is the
//! exception: it has a thread of its own that does nothing else, and there a hop to
//! the pool and back cost about 0.2 ms of its 1.7 ms per batch, during which no batch
//! can commit. On that thread the work runs in place.

use diesel_async::sync_connection_wrapper::SpawnBlocking;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use std::cell::Cell;
use std::error::Error;
use tokio::runtime::Handle;

thread_local! {
    static IN_PLACE: Cell<bool> = const { Cell::new(false) };
}

/// Marks the calling thread as one that may block on SQLite: work of every connection
/// it uses runs right there. Only for a thread that serves no other task.
pub fn run_in_place_on_this_thread() {
    IN_PLACE.with(|c| c.set(true));
}

/// The blocking pool of the runtime the connection was made on (the long-lived main
/// one: see `PoolOptions::runtime`), or the calling thread where it is marked.
pub struct Blocking(Handle);

impl SpawnBlocking for Blocking {
    fn spawn_blocking<'a, R>(
        &mut self,
        task: impl FnOnce() -> R + Send + 'static,
    ) -> BoxFuture<'a, Result<R, Box<dyn Error + Send + Sync + 'static>>>
    where
        R: Send + 'static,
    {
        if IN_PLACE.with(Cell::get) {
            return futures_util::future::ready(Ok(task())).boxed();
        }
        self.0.spawn_blocking(task).map(|joined| joined.map_err(Box::from)).boxed()
    }

    fn get_runtime() -> Self {
        // Connections are established on the main runtime (`pool::build_pool`).
        Self(Handle::current())
    }
}
