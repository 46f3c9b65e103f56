//! Per-user rate limits on every write a client can repeat (GCRA, via `governor`): posting,
//! typing, read markers, edits and deletes, chat creation and participant changes. A
//! limited request gets 429 with `Retry-After`; every answer carries `X-RateLimit-Limit`,
//! `-Remaining`, `-Reset`.

use futures_util::future::BoxFuture;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DashMapStateStore;
use governor::{Quota, RateLimiter};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use crate::config::Settings;
use crate::domain::UserId;

type Keyed = RateLimiter<UserId, DashMapStateStore<UserId>, DefaultClock, StateInformationMiddleware>;

/// What a caller may still do, for the `X-RateLimit-*` headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allowance {
    /// The burst: requests allowed back to back.
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until the full burst is available again.
    pub reset_secs: u64,
}

/// Rates shared by every node (cluster mode): the same GCRA, kept in Redis. `None` when
/// the store cannot answer; the node then limits on its own.
pub trait SharedRates: Send + Sync {
    fn check<'a>(
        &'a self,
        kind: &'a str,
        user: &'a UserId,
        per_second: u32,
        burst: u32,
    ) -> BoxFuture<'a, Option<Result<Allowance, Duration>>>;
}

pub struct UserLimiter {
    kind: &'static str,
    limiter: Keyed,
    per_second: u32,
    burst: u32,
    shared: Option<Arc<dyn SharedRates>>,
}

impl UserLimiter {
    pub fn new(kind: &'static str, per_second: u32, burst: u32, shared: Option<Arc<dyn SharedRates>>) -> Self {
        let per_second = NonZeroU32::new(per_second.max(1)).unwrap_or(NonZeroU32::MIN);
        let burst_nz = NonZeroU32::new(burst.max(1)).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::per_second(per_second).allow_burst(burst_nz);
        let limiter = RateLimiter::dashmap(quota).with_middleware::<StateInformationMiddleware>();
        Self { kind, limiter, per_second: per_second.get(), burst: burst_nz.get(), shared }
    }

    /// Takes one unit for `user`, counted over every node when the rates are shared (and
    /// the store answers), else on this node: the allowance left, or how long to wait.
    pub async fn take(&self, user: &UserId) -> Result<Allowance, Duration> {
        if let Some(shared) = &self.shared
            && let Some(verdict) = shared.check(self.kind, user, self.per_second, self.burst).await
        {
            return verdict;
        }
        self.check(user)
    }

    /// Takes one unit for `user` on this node: the allowance left, or how long to wait.
    pub fn check(&self, user: &UserId) -> Result<Allowance, Duration> {
        match self.limiter.check_key(user) {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                let used = u64::from(self.burst - remaining.min(self.burst));
                let reset_secs = used.div_ceil(u64::from(self.per_second));
                Ok(Allowance { limit: self.burst, remaining, reset_secs })
            }
            Err(not_until) => Err(not_until.wait_time_from(DefaultClock::default().now())),
        }
    }

    pub fn limit(&self) -> u32 {
        self.burst
    }

    /// Forgets users whose bucket is full again, so memory follows active users only.
    pub fn prune(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}

/// One limiter per kind of write, so a burst of typing calls never costs a user the
/// right to post.
pub struct Limits {
    pub post: UserLimiter,
    pub typing: UserLimiter,
    pub read: UserLimiter,
    /// Edits and deletes.
    pub edit: UserLimiter,
    /// Chat creation, adding and removing participants.
    pub membership: UserLimiter,
}

impl Limits {
    /// `shared`: cluster mode's store, so the limits hold across nodes.
    pub fn new(s: &Settings, shared: Option<Arc<dyn SharedRates>>) -> Self {
        let limiter = |kind, rate, burst| UserLimiter::new(kind, rate, burst, shared.clone());
        Self {
            post: limiter("post", s.post_rate_per_sec, s.post_rate_burst),
            typing: limiter("typing", s.typing_rate_per_sec, s.typing_rate_burst),
            read: limiter("read", s.read_rate_per_sec, s.read_rate_burst),
            edit: limiter("edit", s.edit_rate_per_sec, s.edit_rate_burst),
            membership: limiter("membership", s.membership_rate_per_sec, s.membership_rate_burst),
        }
    }

    /// Forgets idle users in every limiter (called periodically).
    pub fn prune(&self) {
        for limiter in [&self.post, &self.typing, &self.read, &self.edit, &self.membership] {
            limiter.prune();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_burst_passes_then_the_next_request_waits() {
        let limiter = UserLimiter::new("post", 1, 3, None);
        let alice = UserId::parse("alice").unwrap();
        let remaining: Vec<u32> = (0..3).map(|_| limiter.check(&alice).unwrap().remaining).collect();
        assert_eq!(remaining, [2, 1, 0]);
        let wait = limiter.check(&alice).unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(1), "{wait:?}");
        let bob = UserId::parse("bob").unwrap();
        assert_eq!(limiter.check(&bob).unwrap().remaining, 2, "limits are per user");
    }
}
