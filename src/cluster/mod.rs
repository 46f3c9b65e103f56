//! Cluster mode: N nodes on one PostgreSQL database and one Redis behave as one node.
//! Design and reasoning: `docs/cluster.md`. PostgreSQL's per-chat `seq` is the only
//! sequencer and the only store; Redis pub/sub is a fast, lossy path whose losses are
//! detected and repaired (`broker`); each node orders what it receives per chat
//! (`realtime::sequencer`, driven by `fanout`); presence spans the nodes (`presence`).

mod broker;
pub mod envelope;
mod fanout;
mod presence;
mod rates;

pub use broker::{BrokerStatus, Timing};
pub use fanout::ClusterFanout;
pub use presence::{Announce, RedisPresence, Seen};
pub use rates::RedisRates;

use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::db::Db;
use crate::realtime::Hub;

/// Envelopes waiting to be published; past it they are dropped and their numbers
/// skipped, so receivers repair.
const PUBLISH_QUEUE: usize = 65_536;

/// What the rest of the application asks of the cluster.
#[derive(Clone)]
pub struct Handles {
    pub status: Arc<BrokerStatus>,
    pub fanout: Arc<ClusterFanout>,
    pub presence: Arc<RedisPresence>,
    pub rates: Arc<RedisRates>,
}

impl Handles {
    /// Every part of Redis' work is done cluster-wide: the broker delivers and presence
    /// reaches it. Otherwise the node is `degraded` (and still serves).
    pub fn healthy(&self) -> bool {
        self.status.healthy() && self.presence.is_cluster_wide()
    }

    /// Which scope applies right now, for `debug-status` and operators.
    pub fn scope(&self) -> crate::realtime::protocol::ClusterScope {
        let scope = |wide: bool| if wide { "cluster" } else { "node" }.to_owned();
        crate::realtime::protocol::ClusterScope {
            broker: if self.status.healthy() { "ok" } else { "degraded" }.to_owned(),
            presence: scope(self.presence.is_cluster_wide()),
            limits: scope(self.rates.is_cluster_wide()),
        }
    }
}

/// This node's part of the cluster.
pub struct Cluster {
    pub node: String,
    pub fanout: Arc<ClusterFanout>,
    pub presence: Arc<RedisPresence>,
    pub rates: Arc<RedisRates>,
    pub status: Arc<BrokerStatus>,
    client: redis::Client,
    queue: mpsc::Receiver<fanout::Outgoing>,
    timing: Timing,
    lease: Duration,
}

impl Cluster {
    /// Prepares the node (no connection yet: a node starts during a Redis outage too).
    pub fn new(
        redis_url: &str,
        db: Db,
        hub: Arc<Hub>,
        timing: Timing,
        lease: Duration,
        typing_window: Duration,
    ) -> Result<Self, String> {
        let client = redis::Client::open(with_resp3(redis_url)?).map_err(|e| format!("MISSIVE_REDIS_URL: {e}"))?;
        let node = uuid::Uuid::new_v4().simple().to_string();
        let (tx, queue) = mpsc::channel(PUBLISH_QUEUE);
        let fanout = ClusterFanout::new(hub.clone(), db, node.clone(), tx, timing.gap_wait, typing_window);
        let presence = RedisPresence::new(hub, node.clone());
        let rates = RedisRates::new(presence.clone());
        Ok(Self { node, fanout, presence, rates, status: Arc::default(), client, queue, timing, lease })
    }

    pub fn handles(&self) -> Handles {
        Handles {
            status: self.status.clone(),
            fanout: self.fanout.clone(),
            presence: self.presence.clone(),
            rates: self.rates.clone(),
        }
    }

    /// Starts the publisher, the subscriber and presence upkeep, until `stop`.
    pub fn start(self, announce: Announce, stop: CancellationToken) {
        tracing::info!(node = %self.node, "cluster mode: redis broker");
        tokio::spawn(broker::publish_loop(
            self.client.clone(),
            self.fanout.clone(),
            self.queue,
            self.status.clone(),
            self.timing,
            stop.clone(),
        ));
        tokio::spawn(broker::receive_loop(
            self.client.clone(),
            self.fanout.clone(),
            self.status.clone(),
            self.timing,
            stop.clone(),
        ));
        let presence = self.presence.clone();
        tokio::spawn(presence.maintain(self.client, self.fanout, self.lease, self.timing.heartbeat, announce, stop));
    }
}

/// Subscriptions on a multiplexed connection need RESP3 (redis-rs push messages).
fn with_resp3(url: &str) -> Result<String, String> {
    let mut parsed = url::Url::parse(url).map_err(|e| format!("MISSIVE_REDIS_URL is not a URL: {e}"))?;
    if !matches!(parsed.scheme(), "redis" | "rediss" | "redis+unix" | "unix") {
        return Err("MISSIVE_REDIS_URL must start with redis://".into());
    }
    let others: Vec<(String, String)> =
        parsed.query_pairs().filter(|(k, _)| k != "protocol").map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    parsed.query_pairs_mut().clear().extend_pairs(others).append_pair("protocol", "resp3");
    Ok(parsed.to_string())
}
