//! Per-user rate limits shared by every node: the GCRA `governor` runs on one node, as
//! one Redis script, on Redis' clock (nodes' clocks may differ). While Redis does not
//! answer, each node limits on its own (`missive_rate_limits_cluster_wide` says which).

use futures_util::future::{BoxFuture, FutureExt};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::RedisPresence;
use crate::domain::UserId;
use crate::limits::{Allowance, SharedRates};

/// KEYS[1] the user's theoretical arrival time; ARGV rate per second, burst. Returns
/// {1, remaining, reset ms} or {0, wait ms}.
const GCRA: &str = r"
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = 1000 / rate
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - interval * burst
if allow_at > now then
  return {0, math.ceil(allow_at - now)}
end
redis.call('SET', KEYS[1], tostring(new_tat), 'PX', math.ceil(new_tat - now) + 1)
local remaining = math.floor((now - allow_at) / interval)
return {1, remaining, math.ceil(new_tat - now)}
";

pub struct RedisRates {
    presence: Arc<RedisPresence>,
    script: redis::Script,
    reachable: AtomicBool,
}

impl RedisRates {
    pub fn new(presence: Arc<RedisPresence>) -> Arc<Self> {
        Arc::new(Self { presence, script: redis::Script::new(GCRA), reachable: AtomicBool::new(false) })
    }

    /// Shared while the last call answered and the presence upkeep (same connection,
    /// every heartbeat) reaches Redis.
    pub fn is_cluster_wide(&self) -> bool {
        self.reachable.load(Ordering::Relaxed) && self.presence.is_cluster_wide()
    }

    fn note(&self, ok: bool) {
        if self.reachable.swap(ok, Ordering::Relaxed) != ok {
            metrics::gauge!("missive_rate_limits_cluster_wide").set(if ok { 1.0 } else { 0.0 });
            if !ok {
                tracing::warn!("redis unreachable: rate limits fall back to this node");
            }
        }
    }
}

impl SharedRates for RedisRates {
    fn check<'a>(
        &'a self,
        kind: &'a str,
        user: &'a UserId,
        per_second: u32,
        burst: u32,
    ) -> BoxFuture<'a, Option<Result<Allowance, Duration>>> {
        async move {
            // Nobody waits on a Redis the upkeep cannot reach.
            if !self.presence.is_cluster_wide() {
                self.note(false);
                return None;
            }
            let mut conn = self.presence.connection()?;
            let answer = self
                .script
                .key(format!("missive:rate:{kind}:{user}"))
                .arg(per_second.max(1))
                .arg(burst.max(1))
                .invoke_async::<Vec<i64>>(&mut conn)
                .await;
            self.note(answer.is_ok());
            match answer.ok()?.as_slice() {
                [1, remaining, reset_ms] => Some(Ok(Allowance {
                    limit: burst.max(1),
                    remaining: u32::try_from(*remaining).unwrap_or(0).min(burst),
                    reset_secs: u64::try_from(*reset_ms).unwrap_or(0).div_ceil(1000),
                })),
                [0, wait_ms] => Some(Err(Duration::from_millis(u64::try_from(*wait_ms).unwrap_or(1).max(1)))),
                _ => None,
            }
        }
        .boxed()
    }
}
