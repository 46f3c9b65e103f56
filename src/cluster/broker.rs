//! Redis pub/sub, the fast and lossy path between nodes. One channel; every node
//! subscribes once (and again after every reconnect, by redis-rs' RESP3 resubscription)
//! and filters by its own connections.
//!
//! Loss is expected and detected: each origin numbers its envelopes, and heartbeats (on
//! the same ordered publisher) carry the origin's last number, so a receiver notices a
//! gap, including a lost last envelope, within a heartbeat. A node that stops hearing its
//! own heartbeats treats its subscription as dead (Centrifugo #1189: a wedged
//! subscription with every health check green) and resubscribes. Every suspected loss is
//! repaired: messages from PostgreSQL, the rest by telling clients to resync.

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{PushInfo, PushKind, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::envelope::{self, Header, Kind};
use super::fanout::{ClusterFanout, Outgoing};

/// The one channel every node publishes to and subscribes to.
pub const CHANNEL: &str = "missive:events";
/// Envelopes published together at most.
const BATCH: usize = 256;
/// Received envelopes waiting for the receive task; past it they are dropped and the
/// loss is repaired (the read loop of the Redis connection must never block).
const INBOX: usize = 65_536;

/// What the operators and `/readyz` see of the broker.
#[derive(Default)]
pub struct BrokerStatus {
    /// The last publish (or heartbeat) reached Redis.
    pub publishing: AtomicBool,
    /// The subscription delivers: our own heartbeats come back.
    pub subscribed: AtomicBool,
}

impl BrokerStatus {
    pub fn healthy(&self) -> bool {
        self.publishing.load(Ordering::Relaxed) && self.subscribed.load(Ordering::Relaxed)
    }
}

/// Timings of the cluster; tests shorten them.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub heartbeat: Duration,
    /// How long a gap in a chat is waited out before the database is read.
    pub gap_wait: Duration,
}

/// Faults the multi-node tests inject, read from the environment, in debug builds only
/// (a release binary has none): `MISSIVE_FAULT_PUBLISH_DELAY_MS` holds each published
/// batch back (so another node's later envelopes overtake it), `MISSIVE_FAULT_DROP_EVERY`
/// drops every n-th envelope received from another node (so gaps must be repaired),
/// `MISSIVE_FAULT_WEDGE_AFTER` makes the first subscription go silent for good after that
/// many envelopes while its connection stays up (a wedged subscription), and
/// `MISSIVE_FAULT_QUEUE_BYTES` shrinks the publisher queue's byte bound (so an outage
/// overflows it quickly).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Faults {
    publish_delay: Option<Duration>,
    drop_every: Option<u64>,
    wedge_after: Option<u64>,
    pub(super) queue_bytes: Option<usize>,
}

impl Faults {
    #[cfg(debug_assertions)]
    pub(super) fn from_env() -> Self {
        let var = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok()).filter(|v| *v > 0);
        Self {
            publish_delay: var("MISSIVE_FAULT_PUBLISH_DELAY_MS").map(Duration::from_millis),
            drop_every: var("MISSIVE_FAULT_DROP_EVERY"),
            wedge_after: var("MISSIVE_FAULT_WEDGE_AFTER"),
            queue_bytes: var("MISSIVE_FAULT_QUEUE_BYTES").map(|b| b as usize),
        }
    }

    #[cfg(not(debug_assertions))]
    pub(super) fn from_env() -> Self {
        Self::default()
    }
}

/// Opens a connection manager, retrying while Redis is unreachable (a node may start, or
/// keep running, during an outage).
pub async fn connect(
    client: &redis::Client,
    cfg: ConnectionManagerConfig,
    stop: &CancellationToken,
) -> Option<ConnectionManager> {
    let mut delay = Duration::from_millis(100);
    loop {
        match client.get_connection_manager_with_config(cfg.clone()).await {
            Ok(conn) => return Some(conn),
            Err(e) => {
                tracing::warn!(error = %e, "redis unreachable; retrying");
                tokio::select! {
                    _ = stop.cancelled() => return None,
                    _ = tokio::time::sleep(delay) => {}
                }
                delay = (delay * 2).min(Duration::from_secs(2));
            }
        }
    }
}

pub fn manager_config() -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(Duration::from_secs(2)))
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_secs(2))
}

/// Publishes envelopes in queue order, numbering them, with a heartbeat every interval.
/// A failed batch is retried as it was (same numbers: a receiver drops what it already
/// has), so order holds across outages; meanwhile the queue fills, and what overflows is
/// dropped with its number skipped.
pub async fn publish_loop(
    client: redis::Client,
    fanout: Arc<ClusterFanout>,
    mut queue: mpsc::Receiver<Outgoing>,
    status: Arc<BrokerStatus>,
    timing: Timing,
    stop: CancellationToken,
) {
    let Some(mut conn) = connect(&client, manager_config(), &stop).await else { return };
    let node = fanout.node.clone();
    let faults = Faults::from_env();
    let mut n: u64 = 0;
    let mut ticks = tokio::time::interval(timing.heartbeat);
    let mut items = Vec::with_capacity(BATCH);
    loop {
        let heartbeat = tokio::select! {
            _ = stop.cancelled() => return,
            got = queue.recv_many(&mut items, BATCH) => {
                if got == 0 {
                    return;
                }
                false
            }
            _ = ticks.tick() => true,
        };
        let mut payloads = Vec::with_capacity(items.len() + 1);
        for item in items.drain(..) {
            fanout.queued_bytes.fetch_sub(item.bytes, Ordering::Relaxed);
            n += 1 + fanout.skipped.swap(0, Ordering::Relaxed);
            let header = Header { o: node.clone(), n, kind: item.kind };
            payloads.push(envelope::encode(&header, &item.frame));
        }
        if heartbeat {
            n += fanout.skipped.swap(0, Ordering::Relaxed);
            payloads.push(envelope::encode(&Header { o: node.clone(), n, kind: Kind::Heartbeat {} }, ""));
        }
        if let Some(hold) = faults.publish_delay {
            tokio::time::sleep(hold).await;
        }
        let mut delay = Duration::from_millis(50);
        loop {
            let mut pipe = redis::pipe();
            for p in &payloads {
                pipe.publish(CHANNEL, p.as_slice()).ignore();
            }
            match pipe.query_async::<()>(&mut conn).await {
                Ok(()) => {
                    status.publishing.store(true, Ordering::Relaxed);
                    metrics::counter!("missive_broker_published_total").increment(payloads.len() as u64);
                    break;
                }
                Err(e) => {
                    if status.publishing.swap(false, Ordering::Relaxed) {
                        tracing::warn!(error = %e, "redis publish failed: degraded, retrying in order");
                    }
                    metrics::counter!("missive_broker_publish_failures_total").increment(1);
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(delay) => {}
                    }
                    delay = (delay * 2).min(Duration::from_secs(1));
                }
            }
        }
    }
}

/// The push sender of the subscriber connection: never blocks the connection's read
/// loop; a full inbox drops and counts, and the receive task repairs.
struct Inbox {
    tx: mpsc::Sender<PushInfo>,
    dropped: Arc<AtomicU64>,
}

impl redis::aio::AsyncPushSender for Inbox {
    fn send(&self, info: PushInfo) -> Result<(), redis::aio::SendError> {
        if self.tx.try_send(info).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("missive_broker_dropped_total", "side" => "receive").increment(1);
        }
        Ok(())
    }
}

/// Subscribes and hands every envelope of another node to the fan-out; watches the
/// numbers for loss, its own heartbeats for a dead subscription, and while the
/// subscription is down keeps remote messages flowing by catching up from the database
/// every heartbeat.
pub async fn receive_loop(
    client: redis::Client,
    fanout: Arc<ClusterFanout>,
    status: Arc<BrokerStatus>,
    timing: Timing,
    stop: CancellationToken,
) {
    let node = fanout.node.clone();
    let faults = Faults::from_env();
    let mut received: u64 = 0;
    let dropped = Arc::new(AtomicU64::new(0));
    let mut last_n: HashMap<String, u64> = HashMap::new();
    let mut first = true;
    // Injected wedge (tests): envelopes heard before it, whether it happened, and whether
    // this subscription is the wedged one.
    let (mut heard, mut spent) = (0u64, false);
    'subscription: loop {
        let mut wedged = false;
        let (tx, mut rx) = mpsc::channel(INBOX);
        let cfg =
            manager_config().set_push_sender(Inbox { tx, dropped: dropped.clone() }).set_automatic_resubscription();
        let Some(mut conn) = connect(&client, cfg, &stop).await else { return };
        if let Err(e) = conn.subscribe(CHANNEL).await {
            tracing::warn!(error = %e, "redis subscribe failed; retrying");
            tokio::time::sleep(timing.heartbeat).await;
            continue;
        }
        tracing::info!("redis: subscribed");
        // Whatever happened while we were not subscribed is unknown, except at the very
        // start: nothing was delivered here yet, so nothing can be missing (messages
        // committed meanwhile are caught up from the database all the same).
        let mut suspect = (!std::mem::take(&mut first)).then_some("the subscription restarted");
        let mut own_heard = Instant::now();
        let mut ticks = tokio::time::interval(timing.heartbeat);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                info = rx.recv() => {
                    let Some(info) = info else { continue 'subscription };
                    match info.kind {
                        PushKind::Message => {
                            heard += 1;
                            if !spent && faults.wedge_after.is_some_and(|after| heard >= after) {
                                (spent, wedged) = (true, true);
                            }
                            if wedged {
                                continue; // injected wedge (tests)
                            }
                            let Some(Value::BulkString(payload)) = info.data.into_iter().nth(1) else { continue };
                            let Some((header, frame)) = envelope::decode(&payload) else {
                                metrics::counter!("missive_broker_invalid_total").increment(1);
                                continue;
                            };
                            if header.o == node {
                                // Our own: delivered locally already; proves the subscription.
                                own_heard = Instant::now();
                                if !status.subscribed.swap(true, Ordering::Relaxed) {
                                    tracing::info!("redis: subscription delivers");
                                }
                                continue;
                            }
                            metrics::counter!("missive_broker_received_total").increment(1);
                            received += 1;
                            if faults.drop_every.is_some_and(|every| received.is_multiple_of(every))
                                && !matches!(header.kind, Kind::Heartbeat {})
                            {
                                continue; // injected loss (tests)
                            }
                            let heartbeat = matches!(header.kind, Kind::Heartbeat {});
                            // The first envelope heard from an origin (a heartbeat, as a
                            // rule: nodes beat from their start) is where its count starts.
                            match last_n.get_mut(&header.o) {
                                None => {
                                    last_n.insert(header.o.clone(), header.n);
                                }
                                Some(last) => {
                                    if header.n <= *last && !heartbeat {
                                        continue; // a retried batch: already handled
                                    }
                                    if header.n > *last + u64::from(!heartbeat) {
                                        metrics::counter!("missive_broker_gaps_total").increment(1);
                                        suspect = Some("a node's envelopes were lost");
                                    }
                                    *last = (*last).max(header.n);
                                }
                            }
                            fanout.receive(header, frame);
                        }
                        PushKind::Disconnection => {
                            status.subscribed.store(false, Ordering::Relaxed);
                            tracing::warn!("redis: subscription disconnected");
                            suspect = Some("the broker connection was lost");
                        }
                        _ => {}
                    }
                }
                _ = ticks.tick() => {
                    if dropped.swap(0, Ordering::Relaxed) > 0 {
                        suspect = Some("the receive queue overflowed");
                    }
                    // Four heartbeats, and never under 3 s: a loaded machine delays ticks,
                    // and a false alarm costs every client a resync.
                    let deaf = own_heard.elapsed() > (timing.heartbeat * 4).max(Duration::from_secs(3));
                    if deaf && status.subscribed.swap(false, Ordering::Relaxed) {
                        tracing::warn!("redis: our own heartbeats stopped arriving");
                    }
                    if deaf && status.publishing.load(Ordering::Relaxed) {
                        // Publishing works but nothing comes back: the subscription is
                        // wedged. Start a new one.
                        tracing::warn!("redis: subscription wedged; resubscribing");
                        metrics::counter!("missive_broker_resubscribes_total").increment(1);
                        continue 'subscription;
                    }
                    if !status.subscribed.load(Ordering::Relaxed) {
                        // Remote messages still arrive, from the database.
                        fanout.catch_up().await;
                    } else if let Some(reason) = suspect.take() {
                        fanout.repair(reason).await;
                    }
                    fanout.sweep();
                    metrics::gauge!("missive_broker_healthy").set(if status.healthy() { 1.0 } else { 0.0 });
                }
            }
        }
    }
}
