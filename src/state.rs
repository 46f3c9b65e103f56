use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::Auth;
use crate::cluster::Handles;
use crate::config::Settings;
use crate::db::Db;
use crate::limits::Limits;
use crate::posting::Poster;
use crate::realtime::{Publisher, Sockets, Typing};
use crate::writes::Writes;

/// The one cloneable handle every handler gets (as `web::Data<AppState>`).
pub struct AppState {
    pub db: Db,
    /// Where the socket route hands new connections; REST presence.
    pub sockets: Sockets,
    pub publisher: Publisher,
    /// Group commit of posted messages.
    pub poster: Poster,
    /// Every chat-scoped write other than posting goes through it.
    pub writes: Writes,
    pub typing: Arc<Typing>,
    pub auth: Arc<Auth>,
    /// Per-user rates of each kind of write.
    pub limits: Limits,
    pub settings: Arc<Settings>,
    /// Cluster mode: the broker's health (`/readyz`), other nodes' typing spells (for
    /// joiners here), which scope presence and limits have (`debug-status`).
    pub cluster: Option<Handles>,
    /// Cancelled on SIGTERM / Ctrl-C: every socket closes with 1001.
    pub shutdown: CancellationToken,
    /// Every socket's task, so that shutdown waits for them to end (a drain, not a poll).
    pub sessions: TaskTracker,
}
