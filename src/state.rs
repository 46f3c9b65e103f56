use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::Auth;
use crate::cluster::{BrokerStatus, ClusterFanout};
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
    /// Cluster mode: how the broker is doing (`/readyz`).
    pub broker: Option<Arc<BrokerStatus>>,
    /// Cluster mode: typing spells of other nodes, for joiners here.
    pub remote_typing: Option<Arc<ClusterFanout>>,
    /// Cancelled on SIGTERM / Ctrl-C: every socket closes with 1001.
    pub shutdown: CancellationToken,
    /// Every socket's task, so that shutdown waits for them to end (a drain, not a poll).
    pub sessions: TaskTracker,
}
