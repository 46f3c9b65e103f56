//! Cluster-wide presence in Redis. Each user has a hash of connection counts per node; the
//! scripts that change it return the user's total, so the first connection anywhere and
//! the last one are each seen exactly once. Each node keeps a lease alive with its
//! heartbeat; when a lease expires, one survivor (under a lock) removes the dead node's
//! counts and announces its users offline with the time of its last heartbeat.
//!
//! While Redis is unreachable presence falls back to this node's own connections (the
//! `missive_presence_scope` gauge and `debug-status` say so). Redis that lost its data (a
//! restart: it keeps nothing on disk here) is noticed by its missing epoch key; every node
//! then writes its counts back without announcing anything.

use futures_util::future::{BoxFuture, FutureExt};
use redis::aio::ConnectionManager;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;

use crate::domain::{Millis, UserId, now_millis};
use crate::realtime::{Hub, Opened, Presence};

const NODES: &str = "missive:nodes";
const EPOCH: &str = "missive:epoch";

fn user_key(user: &str) -> String {
    format!("missive:presence:{user}")
}
fn node_users(node: &str) -> String {
    format!("missive:node-users:{node}")
}
fn lease(node: &str) -> String {
    format!("missive:node:{node}")
}
fn seen(node: &str) -> String {
    format!("missive:node-seen:{node}")
}

/// +1 (or -1) connection of user on node; returns the user's total over all nodes, or -1
/// (and nothing changed) when a +1 would pass the cap ARGV[4].
const CHANGE: &str = r"
local delta = tonumber(ARGV[3])
if delta > 0 then
  local total = 0
  for _, v in ipairs(redis.call('HVALS', KEYS[1])) do total = total + tonumber(v) end
  if total + delta > tonumber(ARGV[4]) then return -1 end
end
local c = redis.call('HINCRBY', KEYS[1], ARGV[1], delta)
if c <= 0 then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('SREM', KEYS[2], ARGV[2])
else
  redis.call('SADD', KEYS[2], ARGV[2])
end
local total = 0
for _, v in ipairs(redis.call('HVALS', KEYS[1])) do total = total + tonumber(v) end
return total
";

/// Removes a dead node's count of one user; returns the user's total left.
const REAP_USER: &str = r"
redis.call('HDEL', KEYS[1], ARGV[1])
local total = 0
for _, v in ipairs(redis.call('HVALS', KEYS[1])) do total = total + tonumber(v) end
return total
";

/// Sets this node's count of each user (KEYS[1]: the node's user set, then the users'
/// presence hashes; ARGV: the node, the counts, then the users) and lists the positions of
/// users whom no other node counts: if this node's count was gone too, they were
/// announced offline.
const RESTORE: &str = r"
local n = #KEYS - 1
local came = {}
for i = 1, n do
  local key = KEYS[i + 1]
  local others = 0
  local counts = redis.call('HGETALL', key)
  for j = 1, #counts, 2 do
    if counts[j] ~= ARGV[1] then others = others + tonumber(counts[j + 1]) end
  end
  redis.call('HSET', key, ARGV[1], ARGV[1 + i])
  redis.call('SADD', KEYS[1], ARGV[1 + n + i])
  if others == 0 then table.insert(came, i) end
end
return came
";

/// Users written back per script call.
const RESTORE_CHUNK: usize = 500;

/// A presence change this node announces for others: a user of a dead node went offline
/// (at their node's last heartbeat), or a user of this node, announced offline while the
/// node was taken for dead, is online after all.
#[derive(Debug, Clone, Copy)]
pub enum Seen {
    Offline(Millis),
    Online,
}

/// Tells the application of a presence change found by the upkeep.
pub type Announce = Arc<dyn Fn(UserId, Seen) -> BoxFuture<'static, ()> + Send + Sync>;

pub struct RedisPresence {
    hub: Arc<Hub>,
    node: String,
    conn: OnceCell<ConnectionManager>,
    /// Redis answered the last presence call.
    reachable: AtomicBool,
    /// A count change was skipped or failed: the upkeep writes this node's counts back.
    dirty: AtomicBool,
    /// Count changes made, to notice one racing with a write-back.
    changes: AtomicU64,
    /// A reap runs (one at a time per node).
    reaping: AtomicBool,
    /// Itself, for the reaping task.
    this: std::sync::Weak<RedisPresence>,
    change: redis::Script,
    reap_user: redis::Script,
    restore: redis::Script,
}

impl RedisPresence {
    pub fn new(hub: Arc<Hub>, node: String) -> Arc<Self> {
        Arc::new_cyclic(|this| Self {
            hub,
            node,
            conn: OnceCell::new(),
            reachable: AtomicBool::new(false),
            dirty: AtomicBool::new(false),
            changes: AtomicU64::new(0),
            reaping: AtomicBool::new(false),
            this: this.clone(),
            change: redis::Script::new(CHANGE),
            reap_user: redis::Script::new(REAP_USER),
            restore: redis::Script::new(RESTORE),
        })
    }

    fn clone_handle(&self) -> Arc<Self> {
        // `self` lives in the Arc that made it: upgrading cannot fail while it runs.
        self.this.upgrade().expect("presence is alive while its upkeep runs")
    }

    /// The control connection, once made (rates share it).
    pub(super) fn connection(&self) -> Option<ConnectionManager> {
        self.conn.get().cloned()
    }

    pub fn is_cluster_wide(&self) -> bool {
        self.reachable.load(Ordering::Relaxed)
    }

    fn note(&self, ok: bool) {
        if self.reachable.swap(ok, Ordering::Relaxed) != ok {
            metrics::gauge!("missive_presence_cluster_wide").set(if ok { 1.0 } else { 0.0 });
            if ok {
                tracing::info!("presence is cluster-wide");
            } else {
                tracing::warn!("redis unreachable: presence falls back to this node");
            }
        }
    }

    async fn change(&self, user: &UserId, delta: i64, max: usize) -> Option<i64> {
        // While the upkeep finds Redis unreachable, nobody waits for it (a hung Redis
        // would hold every connection for the response timeout); the upkeep writes this
        // node's counts back when Redis answers again.
        self.changes.fetch_add(1, Ordering::Relaxed);
        if !self.is_cluster_wide() {
            self.dirty.store(true, Ordering::Relaxed);
            return None;
        }
        let Some(mut conn) = self.conn.get().cloned() else {
            self.dirty.store(true, Ordering::Relaxed);
            return None;
        };
        let total = self
            .change
            .key(user_key(user.as_str()))
            .key(node_users(&self.node))
            .arg(&self.node)
            .arg(user.as_str())
            .arg(delta)
            .arg(max)
            .invoke_async::<i64>(&mut conn)
            .await;
        self.note(total.is_ok());
        if total.is_err() {
            self.dirty.store(true, Ordering::Relaxed);
        }
        total.ok()
    }

    /// Keeps the lease alive, writes the counts back if Redis lost them, and reaps dead
    /// nodes. Runs every heartbeat.
    pub async fn maintain(
        self: Arc<Self>,
        client: redis::Client,
        fanout: Arc<super::ClusterFanout>,
        lease_ttl: Duration,
        heartbeat: Duration,
        announce: Announce,
        stop: CancellationToken,
    ) {
        let Some(conn) = super::broker::connect(&client, super::broker::manager_config(), &stop).await else { return };
        let _ = self.conn.set(conn.clone());
        let mut conn = conn;
        let mut epoch: Option<String> = None;
        // The counts in Redis may be off after a spell without it: written back at once.
        let mut rewrite = true;
        // Written back because a survivor took this node for dead: its users were
        // announced offline, and are announced online again.
        let mut revived = false;
        let mut ticks = tokio::time::interval(heartbeat);
        loop {
            tokio::select! {
                _ = stop.cancelled() => {
                    // A clean stop: sessions announce their users as they close. The lease
                    // goes now and the node stays listed, so a survivor reaps at once
                    // whatever a session that outlived the grace left behind.
                    let _: Result<(), _> = redis::cmd("DEL").arg(lease(&self.node)).query_async(&mut conn).await;
                    return;
                }
                _ = ticks.tick() => {}
            }
            match self.tick(&mut conn, &mut epoch, (&mut rewrite, &mut revived), lease_ttl, &announce, &fanout).await {
                Ok(()) => self.note(true),
                Err(e) => {
                    if self.is_cluster_wide() {
                        tracing::warn!(error = %e, "presence upkeep failed");
                    }
                    self.note(false);
                    rewrite = true;
                }
            }
        }
    }

    async fn tick(
        &self,
        conn: &mut ConnectionManager,
        epoch: &mut Option<String>,
        (rewrite, revived): (&mut bool, &mut bool),
        lease_ttl: Duration,
        announce: &Announce,
        fanout: &Arc<super::ClusterFanout>,
    ) -> redis::RedisResult<()> {
        let now = now_millis();
        let (added, current): (i64, Option<String>) = redis::pipe()
            .set(lease(&self.node), now)
            .arg("PX")
            .arg(lease_ttl.as_millis() as u64)
            .ignore()
            .set(seen(&self.node), now)
            .ignore()
            .sadd(NODES, &self.node)
            .get(EPOCH)
            .query_async(conn)
            .await?;
        if added == 1 && epoch.is_some() && current == *epoch {
            // We were listed and are not any more: a survivor took us for dead (our lease
            // lapsed) and removed our counts. They go back in.
            tracing::warn!("presence: this node was reaped while alive; registering its users again");
            *rewrite = true;
            *revived = true;
        }
        if self.dirty.swap(false, Ordering::Relaxed) {
            *rewrite = true;
        }
        if current.is_none() || current != *epoch {
            // A new or emptied Redis (it keeps nothing on disk here).
            let fresh = uuid::Uuid::new_v4().simple().to_string();
            let (now_epoch,): (Option<String>,) =
                redis::pipe().set_nx(EPOCH, &fresh).ignore().get(EPOCH).query_async(conn).await?;
            if epoch.is_some() {
                tracing::info!("presence: redis lost its data; this node's users are registered again");
            }
            *epoch = now_epoch;
            *rewrite = true;
        }
        if std::mem::take(rewrite) {
            // A connection that opens or closes meanwhile may be overwritten by the
            // snapshot: then the next tick writes again.
            let before = self.changes.load(Ordering::Relaxed);
            // Cleared once written: a failed write-back is retried with its announcements.
            self.rewrite(conn, revived.then_some(announce)).await?;
            *revived = false;
            *rewrite = self.changes.load(Ordering::Relaxed) != before;
        }
        let nodes: Vec<String> = redis::cmd("SMEMBERS").arg(NODES).query_async(conn).await?;
        for other in nodes.into_iter().filter(|n| *n != self.node) {
            let alive: bool = redis::cmd("EXISTS").arg(lease(&other)).query_async(conn).await?;
            if !alive && !self.reaping.load(Ordering::Relaxed) {
                // In a task of its own: announcing thousands of users takes longer than
                // our own lease, which this loop must keep renewing.
                self.reaping.store(true, Ordering::Relaxed);
                let (this, mut conn, other) = (self.clone_handle(), conn.clone(), other.clone());
                let (announce, fanout) = (announce.clone(), fanout.clone());
                tokio::spawn(async move {
                    match this.reap(&mut conn, &other, &announce).await {
                        Ok(true) => fanout.end_spells_of(&other).await,
                        Ok(false) => {}
                        Err(e) => tracing::warn!(node = %other, error = %e, "presence: reaping failed"),
                    }
                    this.reaping.store(false, Ordering::Relaxed);
                });
            }
        }
        Ok(())
    }

    /// Sets this node's count of each user to what its registry holds, and removes users
    /// who left meanwhile: silently, since the announcements were made (by this node)
    /// when they happened. With `announce` (the node was taken for dead, and its users
    /// announced offline), its users that no other node counts are announced online
    /// again, from a task of their own (thousands of announcements take longer than the
    /// lease this upkeep must keep renewing).
    async fn rewrite(&self, conn: &mut ConnectionManager, announce: Option<&Announce>) -> redis::RedisResult<()> {
        let here = self.hub.users_here();
        let listed: Vec<String> = redis::cmd("SMEMBERS").arg(node_users(&self.node)).query_async(conn).await?;
        let present: std::collections::HashSet<&str> = here.iter().map(|(u, _)| u.as_str()).collect();
        let gone: Vec<&String> = listed.iter().filter(|u| !present.contains(u.as_str())).collect();
        if !gone.is_empty() {
            let mut pipe = redis::pipe();
            for user in gone {
                pipe.hdel(user_key(user), &self.node).ignore();
                pipe.srem(node_users(&self.node), user).ignore();
            }
            pipe.query_async::<()>(conn).await?;
        }
        let mut back = Vec::new();
        for chunk in here.chunks(RESTORE_CHUNK) {
            let mut call = self.restore.prepare_invoke();
            call.key(node_users(&self.node)).arg(&self.node);
            for (user, count) in chunk {
                call.key(user_key(user.as_str())).arg(*count);
            }
            for (user, _) in chunk {
                call.arg(user.as_str());
            }
            let came: Vec<usize> = call.invoke_async(conn).await?;
            back.extend(came.into_iter().filter_map(|i| chunk.get(i.wrapping_sub(1))).map(|(u, _)| u.clone()));
        }
        if let Some(announce) = announce.filter(|_| !back.is_empty()) {
            let (hub, announce) = (self.hub.clone(), announce.clone());
            tokio::spawn(async move {
                for user in back {
                    // A user whose last connection closed since the snapshot was
                    // announced offline by their session; the next write-back (the change
                    // count moved) removes the count written for them.
                    if hub.is_online(&user) {
                        announce(user.clone(), Seen::Online).await;
                        // Closed while this was announced: the session's "offline" may
                        // have gone out first. A second one is harmless; a stale
                        // "online" is not.
                        if !hub.is_online(&user) {
                            announce(user, Seen::Offline(now_millis())).await;
                        }
                    }
                }
            });
        }
        Ok(())
    }

    /// A node's lease expired: one survivor takes it over and announces its users offline.
    /// True when this node did it (it then also ends the dead node's typing spells).
    async fn reap(&self, conn: &mut ConnectionManager, dead: &str, announce: &Announce) -> redis::RedisResult<bool> {
        let lock: bool = redis::cmd("SET")
            .arg(format!("missive:reap:{dead}"))
            .arg(&self.node)
            .arg("NX")
            .arg("PX")
            .arg(30_000)
            .query_async::<Option<String>>(conn)
            .await?
            .is_some();
        if !lock {
            return Ok(false);
        }
        let last_seen: Option<i64> = redis::cmd("GET").arg(seen(dead)).query_async(conn).await?;
        let last_seen = last_seen.unwrap_or_else(now_millis);
        let users: Vec<String> = redis::cmd("SMEMBERS").arg(node_users(dead)).query_async(conn).await?;
        tracing::warn!(node = dead, users = users.len(), "presence: a node died; announcing its users offline");
        metrics::counter!("missive_presence_nodes_reaped_total").increment(1);
        for user in users {
            let total: i64 = self.reap_user.key(user_key(&user)).arg(dead).invoke_async(conn).await?;
            if total == 0 {
                announce(UserId::from_trusted(user), Seen::Offline(last_seen)).await;
            }
        }
        redis::pipe()
            .del(node_users(dead))
            .ignore()
            .del(seen(dead))
            .ignore()
            .srem(NODES, dead)
            .ignore()
            .query_async::<()>(conn)
            .await?;
        Ok(true)
    }
}

impl Presence for RedisPresence {
    fn opened<'a>(&'a self, user: &'a UserId, first_here: bool, max: usize) -> BoxFuture<'a, Opened> {
        async move {
            match self.change(user, 1, max).await {
                Some(-1) => Opened::Refused,
                Some(1) => Opened::First,
                Some(_) => Opened::Again,
                // Redis unreachable: this node's view (the hub holds the cap per node).
                None if first_here => Opened::First,
                None => Opened::Again,
            }
        }
        .boxed()
    }

    fn closed<'a>(&'a self, user: &'a UserId, last_here: bool) -> BoxFuture<'a, bool> {
        async move {
            match self.change(user, -1, usize::MAX).await {
                Some(total) => total <= 0,
                None => last_here,
            }
        }
        .boxed()
    }

    fn online_among<'a>(&'a self, users: &'a [UserId]) -> BoxFuture<'a, Vec<bool>> {
        async move {
            let local = || users.iter().map(|u| self.hub.is_online(u)).collect();
            if !self.is_cluster_wide() || users.is_empty() {
                return local();
            }
            let Some(conn) = self.conn.get() else { return local() };
            let mut conn = conn.clone();
            let mut pipe = redis::pipe();
            for u in users {
                pipe.hlen(user_key(u.as_str()));
            }
            match pipe.query_async::<Vec<i64>>(&mut conn).await {
                Ok(lens) => {
                    self.note(true);
                    lens.into_iter().map(|n| n > 0).collect()
                }
                Err(_) => {
                    self.note(false);
                    local()
                }
            }
        }
        .boxed()
    }
}
