//! One task per WebSocket: a single `select!` loop over shutdown, kill (slow consumer),
//! token expiry, client frames and the heartbeat. The loop evaluates to the close reason;
//! registration and cleanup happen in one place, `run`. Events do not pass through it:
//! the connection's writer (the response body, `writer.rs`) takes them from the outbox.
//! The session's own frames go to the same writer, through its `Mouth`.

use actix_ws::{CloseCode, CloseReason};
use bytestring::ByteString;
use futures_util::FutureExt;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use std::convert::Infallible;
use std::future::Future;
use std::num::NonZeroU32;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::{Instant, interval_at, sleep_until};
use tokio_util::sync::CancellationToken;

use super::fanout::Fanout;
use super::hub::{ConnHandle, Hub};
use super::presence::{Opened, Presence};
use super::protocol::*;
use super::sockets::Peer;
use super::wire::{self, Frames, Inbound, WireError};
use super::writer::{Mouth, Own, Writer, writer};
use crate::domain::{ChatId, UserId};

/// A write to a client that takes longer than this marks it as a slow consumer.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a barrier (`leave-chat` and the like) may wait for the writer to take what
/// was queued before it.
const BARRIER_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the close frame may wait behind unread data.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);
pub const CLOSE_TOKEN_EXPIRED: u16 = 4001;
pub const CLOSE_RATE_LIMITED: u16 = 4008;
pub const CLOSE_TOO_MANY: u16 = 4029;

/// One page of a `join-chat` replay.
#[derive(Debug, Clone, Default)]
pub struct ReplayPage {
    /// Encoded `new-message` frames, ascending by `seq`.
    pub frames: Vec<(i64, ByteString)>,
    /// More messages follow this page.
    pub more: bool,
}

/// What a session must ask outside the realtime layer.
pub trait Gatekeeper {
    /// The chat's last `seq`, or `None` when `user` is not a participant. Asked after
    /// the connection subscribed, so whatever commits later arrives live.
    fn chat_position(&self, user: &UserId, chat: &ChatId) -> impl Future<Output = Result<Option<i64>, String>>;
    /// At most `limit` messages with a `seq` above `after`, or `None` when `user` is no
    /// longer a participant. Each page checks membership again.
    fn replay_page(
        &self,
        user: &UserId,
        chat: &ChatId,
        after: i64,
        limit: usize,
    ) -> impl Future<Output = Result<Option<ReplayPage>, String>>;
    /// Who is typing in `chat` right now.
    fn typists(&self, chat: &ChatId) -> Vec<UserId>;
    /// Cluster mode: which scope presence and limits have now (`debug-status`).
    fn cluster_scope(&self) -> Option<ClusterScope> {
        None
    }
    /// Verifies a token sent with `refresh-token`: its user and `exp` (Unix seconds).
    fn verify_token(&self, token: &str) -> Result<(UserId, u64), String>;
    /// The user's first connection opened.
    fn user_online(&self, user: &UserId) -> impl Future<Output = ()>;
    /// The user's last connection closed.
    fn user_offline(&self, user: &UserId) -> impl Future<Output = ()>;
}

#[derive(Debug, Clone)]
pub struct SessionConfig {
    pub heartbeat: Duration,
    pub outbox_capacity: usize,
    /// How long presence frames may wait to be written together.
    pub presence_batch: Duration,
    /// Most messages one `join-chat` replays before answering `resync: true`.
    pub replay_limit: usize,
    /// Most bytes of frames one `join-chat` replays before answering `resync: true`.
    pub replay_max_bytes: usize,
    pub max_connections_per_user: usize,
    /// Client frames per second (sustained) and back to back.
    pub frame_rate: (u32, u32),
    /// Rate-limited frames in a row tolerated before closing with 4008.
    pub abuse_limit: u32,
}

/// Why the loop ended: `None` when the peer is already gone (nothing to send).
pub(super) type Ending = Option<CloseReason>;

pub(super) fn closing(code: impl Into<CloseCode>, text: &str) -> Ending {
    Some(CloseReason { code: code.into(), description: Some(text.to_owned()) })
}

pub(super) struct Session<G> {
    pub(super) mouth: Mouth,
    pub(super) conn: Arc<ConnHandle>,
    pub(super) hub: Arc<Hub>,
    /// Told where a joining connection starts (`Fanout::subscribed`).
    pub(super) fanout: Arc<dyn Fanout>,
    pub(super) gate: G,
    pub(super) cfg: SessionConfig,
    /// Token expiry in Unix seconds; moved forward by `refresh-token`.
    pub(super) expires_at: u64,
    pub(super) last_seen: Instant,
    pub(super) frames: DefaultDirectRateLimiter,
    /// Rate-limited frames in a row.
    pub(super) strikes: u32,
    /// The random part of `socketId`.
    pub(super) public_id: String,
}

/// What of the push layer a session uses.
pub(super) struct Layer {
    pub(super) hub: Arc<Hub>,
    pub(super) presence: Arc<dyn Presence>,
    pub(super) fanout: Arc<dyn Fanout>,
}

/// Registers a connection and returns its writer (the response body) and its session
/// (to spawn), from the greeting to the close frame (through `Sockets::accept`).
pub(super) fn open<G: Gatekeeper>(
    stream: Frames,
    inbound: actix_web::body::BoxBody,
    layer: Layer,
    gate: G,
    cfg: SessionConfig,
    peer: Peer,
    shutdown: CancellationToken,
) -> (Writer, impl Future<Output = ()>) {
    let Some((conn, rx, first_here)) =
        layer.hub.register(peer.user.clone(), cfg.outbox_capacity, cfg.max_connections_per_user)
    else {
        tracing::info!(user = %peer.user, "websocket refused: too many connections");
        let (conn, rx) = Hub::unlisted(peer.user);
        let (writer, mouth) = writer(conn, rx, 1, Duration::ZERO, inbound);
        let refuse = async move {
            let _ = mouth.send(Own::Close(too_many())).await;
        };
        return (writer, futures_util::future::Either::Left(refuse));
    };
    // From here on the connection is unregistered however the task ends: by returning,
    // by a panic, or by the runtime dropping it (or never running it).
    let registration = Registration::new(layer.hub.clone(), conn.clone());
    let (writer, mouth) = writer(conn.clone(), rx, cfg.outbox_capacity, cfg.presence_batch, inbound);
    let session = run(Registered { conn, first_here, registration, mouth }, stream, layer, gate, cfg, peer, shutdown);
    (writer, futures_util::future::Either::Right(session))
}

/// The close of a connection past the per-user cap (on this node, or across the cluster).
fn too_many() -> Ending {
    closing(CLOSE_TOO_MANY, "too many connections")
}

/// A registered connection, before its session starts.
struct Registered {
    conn: Arc<ConnHandle>,
    first_here: bool,
    registration: Registration,
    mouth: Mouth,
}

async fn run<G: Gatekeeper>(
    registered: Registered,
    mut stream: Frames,
    layer: Layer,
    gate: G,
    cfg: SessionConfig,
    peer: Peer,
    shutdown: CancellationToken,
) {
    let Registered { conn, first_here, mut registration, mouth } = registered;
    let Layer { hub, presence, fanout } = layer;
    // Rare, heavy awaits (database work) are boxed: a future is as large as its largest
    // state, and this one lives as long as the socket, idle most of the time.
    let counted = Box::pin(presence.opened(&conn.user, first_here, cfg.max_connections_per_user)).await;
    if counted == Opened::Refused {
        // The cap counts the user's connections on every node.
        registration.end();
        tracing::info!(user = %conn.user, "websocket refused: too many connections across the cluster");
        let close = mouth.send(Own::Close(too_many()));
        let _ = Box::pin(tokio::time::timeout(WRITE_TIMEOUT, close)).await;
        return;
    }
    registration.counted(presence.clone());
    tracing::info!(conn = conn.id, user = %conn.user, "websocket connected");
    if counted == Opened::First {
        Box::pin(gate.user_online(&conn.user)).await;
    }
    let mut session = Session {
        mouth,
        conn: conn.clone(),
        hub,
        fanout,
        gate,
        expires_at: peer.expires_at,
        last_seen: Instant::now(),
        frames: frame_limiter(cfg.frame_rate),
        strikes: 0,
        public_id: uuid::Uuid::new_v4().simple().to_string(),
        cfg,
    };
    // A bug in one command must not take the connection's cleanup with it: the panic is
    // reported (by the panic hook) and the socket closes as if the server failed.
    let ending = match AssertUnwindSafe(session.drive(&mut stream, &shutdown)).catch_unwind().await {
        Ok(Err(ending)) => ending,
        Err(_panic) => closing(CloseCode::Error, "internal error"),
    };
    let last_here = registration.end();
    let code = ending.as_ref().map(|r| u16::from(r.code));
    if code == Some(super::hub::CLOSE_SLOW_CONSUMER) {
        metrics::counter!("missive_slow_consumer_closes_total").increment(1);
    }
    tracing::info!(conn = conn.id, user = %conn.user, close_code = ?code, "websocket closed");
    // Announced before the close frame, which may wait behind a stuck client's unread data.
    if Box::pin(presence.closed(&conn.user, last_here)).await {
        Box::pin(session.gate.user_offline(&conn.user)).await;
    }
    if ending.is_some() {
        // A slow consumer's close frame queues behind what it has not read yet; give it
        // time to arrive if the client resumes reading.
        let _ = Box::pin(tokio::time::timeout(CLOSE_TIMEOUT, session.mouth.send(Own::Close(ending)))).await;
    }
}

/// A connection's place in the hub and in the connection gauge, released exactly once:
/// by `end`, or on drop if the task never got there (a panic outside the session loop, or
/// the task dropped). Without it such a user would stay online and hold a connection
/// slot until restart.
struct Registration {
    hub: Arc<Hub>,
    conn: Arc<ConnHandle>,
    ended: bool,
    /// Set once the connection counts in `Presence`: an abnormal end takes it out there
    /// too (in cluster mode a count left behind would keep the user online everywhere).
    presence: Option<Arc<dyn Presence>>,
}

impl Registration {
    fn new(hub: Arc<Hub>, conn: Arc<ConnHandle>) -> Self {
        metrics::gauge!("missive_ws_connections").increment(1.0);
        Self { hub, conn, ended: false, presence: None }
    }

    fn counted(&mut self, presence: Arc<dyn Presence>) {
        self.presence = Some(presence);
    }

    /// Unregisters now; true when it was the user's last connection.
    fn end(mut self) -> bool {
        self.ended = true;
        self.release()
    }

    fn release(&self) -> bool {
        metrics::gauge!("missive_ws_connections").decrement(1.0);
        self.hub.unregister(&self.conn)
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        if !self.ended {
            let last = self.release();
            tracing::warn!(conn = self.conn.id, user = %self.conn.user, last, "connection task ended abnormally");
            if let (Some(presence), Ok(runtime)) = (self.presence.take(), tokio::runtime::Handle::try_current()) {
                let user = self.conn.user.clone();
                runtime.spawn(async move {
                    presence.closed(&user, last).await;
                });
            }
        }
    }
}

impl<G: Gatekeeper> Session<G> {
    async fn drive(&mut self, stream: &mut Frames, shutdown: &CancellationToken) -> Result<Infallible, Ending> {
        let hello = ServerEvent::Connected(Connected {
            user_id: self.conn.user.to_string(),
            connection_id: self.socket_id(),
            heartbeat_interval_ms: self.cfg.heartbeat.as_millis() as u64,
        });
        // Sends outside the loop's reads are boxed too (the greeting, the heartbeat's ping,
        // the close): each would otherwise add its timer and channel wait to the state
        // every idle socket keeps (2,952 → 2,064 bytes).
        Box::pin(self.send(hello.encode())).await?;
        let period = self.cfg.heartbeat;
        let mut ticks = interval_at(Instant::now() + period, period);
        let expiry = sleep_until(instant_of_unix(self.expires_at));
        // Made once, not per turn of the loop.
        let kill = self.conn.killed().clone();
        let (stopping, killed) = (shutdown.cancelled(), kill.cancelled());
        tokio::pin!(expiry, stopping, killed);
        loop {
            tokio::select! {
                biased;
                _ = &mut stopping => return Err(closing(CloseCode::Away, "server shutting down")),
                _ = &mut killed => return Err(closing(self.conn.close_code(), "slow consumer")),
                _ = &mut expiry => return Err(closing(CLOSE_TOKEN_EXPIRED, "token expired")),
                msg = stream.recv() => {
                    self.last_seen = Instant::now();
                    let before = self.expires_at;
                    Box::pin(self.on_client_message(msg)).await?;
                    if self.expires_at != before {
                        expiry.as_mut().reset(instant_of_unix(self.expires_at));
                    }
                }
                _ = ticks.tick() => {
                    if self.last_seen.elapsed() >= period * 3 {
                        return Err(closing(CloseCode::Away, "heartbeat timeout"));
                    }
                    Box::pin(self.send_control(true, b"")).await?;
                }
            }
        }
    }

    /// `Err` ends the loop with that reason.
    async fn on_client_message(&mut self, msg: Option<Result<Inbound, WireError>>) -> Result<(), Ending> {
        // Every frame a client chooses to send counts, control frames too: a ping costs
        // the server a pong, and a flood of them must end like any other flood.
        if let Some(Ok(frame)) = &msg
            && !matches!(frame, Inbound::Close(_))
        {
            if self.frames.check().is_ok() {
                self.strikes = 0;
            } else {
                self.strikes += 1;
                if self.strikes > self.cfg.abuse_limit {
                    return Err(closing(CLOSE_RATE_LIMITED, "rate limited"));
                }
                if matches!(frame, Inbound::Ping(_) | Inbound::Pong(_)) {
                    return Ok(());
                }
                let err = FrameError {
                    code: "rate_limited",
                    message: "too many frames; slow down".into(),
                    event: None,
                    reference: None,
                };
                return self.reply_error(err).await;
            }
        }
        match msg {
            None => Err(None),
            Some(Ok(Inbound::Text(text))) => self.on_text(&text).await,
            Some(Ok(Inbound::Binary(_))) => {
                let err = FrameError {
                    code: "unsupported_frame",
                    message: "binary frames are not supported; send JSON text".into(),
                    event: None,
                    reference: None,
                };
                self.reply_error(err).await
            }
            // The payload comes back as it was (RFC 6455 §5.5.3).
            Some(Ok(Inbound::Ping(bytes))) => self.send_control(false, &bytes).await,
            // A fragment of a message still arriving: counted above, nothing to do yet.
            Some(Ok(Inbound::Fragment)) => Ok(()),
            Some(Ok(Inbound::Pong(_))) => Ok(()),
            // The client's close code is echoed (§5.5.1).
            Some(Ok(Inbound::Close(reason))) => Err(reason.or_else(|| closing(CloseCode::Normal, ""))),
            Some(Err(e)) => {
                tracing::debug!(conn = self.conn.id, error = ?e, "websocket framing error");
                Err(wire::close_for(&e))
            }
        }
    }

    async fn on_text(&mut self, text: &str) -> Result<(), Ending> {
        match ClientFrame::parse(text) {
            Ok(frame) => {
                let reference = frame.reference.as_deref();
                match self.execute(frame.command, reference).await? {
                    Some(reply) => self.send(reply.encode_with_ref(reference)).await,
                    None => Ok(()),
                }
            }
            Err(err) => self.reply_error(err).await,
        }
    }

    pub(super) async fn reply_error(&mut self, err: FrameError) -> Result<(), Ending> {
        let (event, reference) = ServerEvent::error(err);
        self.send(event.encode_with_ref(reference.as_deref())).await
    }

    /// Queues one frame for the writer. A client that does not take it within
    /// `WRITE_TIMEOUT`, or whose outbox overflowed meanwhile, is a slow consumer; one that
    /// is gone ends the loop without a close frame.
    pub(super) async fn send(&mut self, frame: ByteString) -> Result<(), Ending> {
        self.send_own(Own::Text(frame)).await
    }

    /// Queues any frame of the session's own, under the same rules as `send`.
    pub(super) async fn send_own(&mut self, own: Own) -> Result<(), Ending> {
        write(&self.conn, WRITE_TIMEOUT, self.mouth.send(own)).await
    }

    /// Waits until the writer took every event offered before now. Bounded like `send`,
    /// but by `BARRIER_TIMEOUT`: a live client on a slow link may have a whole outbox to
    /// read first (a stuck one overflows it and is killed).
    pub(super) async fn barrier(&mut self) -> Result<(), Ending> {
        let (done, taken) = tokio::sync::oneshot::channel();
        let mouth = self.mouth.clone();
        let waited = async move {
            mouth.send(Own::Barrier(done)).await?;
            taken.await.map_err(|_| ())
        };
        write(&self.conn, BARRIER_TIMEOUT, waited).await
    }

    /// Queues a control frame (ping, pong) under the same rules as `send`: a client that
    /// stops reading cannot hold the loop in a pong it will never take.
    async fn send_control(&mut self, ping: bool, payload: &[u8]) -> Result<(), Ending> {
        let payload = actix_web::web::Bytes::copy_from_slice(payload);
        self.send_own(if ping { Own::Ping(payload) } else { Own::Pong(payload) }).await
    }
}

/// Waits for a write to `conn`'s socket to be taken, at most `WRITE_TIMEOUT`, and never
/// past a kill. (A function of the connection, not of the session: the write borrows the
/// session's socket meanwhile.)
async fn write(
    conn: &ConnHandle,
    limit: Duration,
    written: impl Future<Output = Result<(), ()>>,
) -> Result<(), Ending> {
    let slow = || closing(super::hub::CLOSE_SLOW_CONSUMER, "slow consumer");
    tokio::select! {
        written = tokio::time::timeout(limit, written) => match written {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_closed)) => Err(None),
            Err(_elapsed) => Err(slow()),
        },
        _ = conn.killed().cancelled() => Err(closing(conn.close_code(), "slow consumer")),
    }
}

fn frame_limiter((per_second, burst): (u32, u32)) -> DefaultDirectRateLimiter {
    let per_second = NonZeroU32::new(per_second).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
    RateLimiter::direct(Quota::per_second(per_second).allow_burst(burst))
}

/// The `Instant` at which Unix time `secs` is reached (now, if already past). A token may
/// name any `exp`, so the wait is capped (at tokio's own "far future") instead of
/// overflowing `Instant`.
fn instant_of_unix(secs: u64) -> Instant {
    const FAR_FUTURE: Duration = Duration::from_secs(86_400 * 365 * 30);
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    Instant::now() + Duration::from_secs(secs).saturating_sub(now).min(FAR_FUTURE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_registration_dropped_without_end_still_unregisters() {
        let hub = Arc::new(Hub::new());
        let user = UserId::parse("alice").unwrap();
        let (conn, _rx, _) = hub.register(user.clone(), 8, 1).unwrap();
        let registration = Registration::new(hub.clone(), conn);
        assert!(hub.register(user.clone(), 8, 1).is_none(), "the one slot is taken");
        // What a panic in the task does: the guard is dropped, `end` never runs.
        drop(registration);
        assert!(!hub.is_online(&user));
        assert!(hub.register(user, 8, 1).is_some(), "the slot is free again");
    }

    #[test]
    fn any_expiry_gives_an_instant() {
        let far = instant_of_unix(u64::MAX);
        assert!(far > Instant::now() + Duration::from_secs(86_400 * 365));
        assert!(instant_of_unix(0) <= Instant::now());
    }
}
