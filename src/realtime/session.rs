//! One task per WebSocket: a single `select!` loop over shutdown, kill (slow consumer),
//! token expiry, client frames, the outbox and the heartbeat. The loop evaluates to the
//! close reason; registration and cleanup happen in one place, `run`.

use actix_ws::{AggregatedMessage, AggregatedMessageStream, CloseCode, CloseReason, ProtocolError};
use bytestring::ByteString;
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;
use tokio::time::{Instant, interval_at, sleep_until};
use tokio_util::sync::CancellationToken;

use super::hub::{ConnHandle, Hub};
use super::protocol::*;
use crate::domain::{ChatId, UserId, now_millis, rfc3339_millis};

/// A write to a client that takes longer than this marks it as a slow consumer.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
pub const CLOSE_TOKEN_EXPIRED: u16 = 4001;

/// What a session must ask outside the realtime layer.
pub trait Gatekeeper {
    /// The chat's current last `seq` if `user` participates in it, `None` otherwise.
    fn chat_position(&self, user: &UserId, chat: &ChatId) -> impl Future<Output = Result<Option<i64>, String>>;
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
}

/// Why the loop ended: `None` when the peer is already gone (nothing to send).
type Ending = Option<CloseReason>;

fn closing(code: impl Into<CloseCode>, text: &str) -> Ending {
    Some(CloseReason { code: code.into(), description: Some(text.to_owned()) })
}

struct Session<G> {
    ws: actix_ws::Session,
    conn: Arc<ConnHandle>,
    hub: Arc<Hub>,
    gate: G,
    cfg: SessionConfig,
    /// Token expiry in Unix seconds; moved forward by `refresh-token`.
    expires_at: u64,
    last_seen: Instant,
}

/// Runs a connection from the greeting to the close frame.
#[allow(clippy::too_many_arguments)]
pub async fn run<G: Gatekeeper>(
    ws: actix_ws::Session,
    mut stream: AggregatedMessageStream,
    hub: Arc<Hub>,
    gate: G,
    cfg: SessionConfig,
    user: UserId,
    expires_at: u64,
    shutdown: CancellationToken,
) {
    let (conn, mut rx, first) = hub.register(user, cfg.outbox_capacity);
    tracing::info!(conn = conn.id, user = %conn.user, "websocket connected");
    if first {
        gate.user_online(&conn.user).await;
    }
    let mut session =
        Session { ws, conn: conn.clone(), hub: hub.clone(), gate, cfg, expires_at, last_seen: Instant::now() };
    let Err(ending) = session.drive(&mut stream, &mut rx, &shutdown).await;
    let last = hub.unregister(&conn);
    let code = ending.as_ref().map(|r| u16::from(r.code));
    tracing::info!(conn = conn.id, user = %conn.user, close_code = ?code, "websocket closed");
    if ending.is_some() {
        let _ = tokio::time::timeout(WRITE_TIMEOUT, session.ws.close(ending)).await;
    }
    if last {
        session.gate.user_offline(&conn.user).await;
    }
}

impl<G: Gatekeeper> Session<G> {
    async fn drive(
        &mut self,
        stream: &mut AggregatedMessageStream,
        rx: &mut mpsc::Receiver<ByteString>,
        shutdown: &CancellationToken,
    ) -> Result<Infallible, Ending> {
        let hello = ServerEvent::Connected(Connected {
            user_id: self.conn.user.to_string(),
            connection_id: self.socket_id(),
            heartbeat_interval_ms: self.cfg.heartbeat.as_millis() as u64,
        });
        self.send(hello.encode()).await?;
        let period = self.cfg.heartbeat;
        let mut ticks = interval_at(Instant::now() + period, period);
        let expiry = sleep_until(instant_of_unix(self.expires_at));
        tokio::pin!(expiry);
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => return Err(closing(CloseCode::Away, "server shutting down")),
                _ = self.conn.killed().cancelled() => return Err(closing(self.conn.close_code(), "slow consumer")),
                _ = &mut expiry => return Err(closing(CLOSE_TOKEN_EXPIRED, "token expired")),
                // Queued events go out before the next client frame is read, so a reply
                // never overtakes an event that was committed before the frame arrived.
                Some(frame) = rx.recv() => self.send(frame).await?,
                msg = stream.recv() => {
                    self.last_seen = Instant::now();
                    let before = self.expires_at;
                    self.on_client_message(msg).await?;
                    if self.expires_at != before {
                        expiry.as_mut().reset(instant_of_unix(self.expires_at));
                    }
                }
                _ = ticks.tick() => {
                    if self.last_seen.elapsed() >= period * 3 {
                        return Err(closing(CloseCode::Away, "heartbeat timeout"));
                    }
                    if self.ws.ping(b"").await.is_err() {
                        return Err(None);
                    }
                }
            }
        }
    }

    /// `Err` ends the loop with that reason.
    async fn on_client_message(&mut self, msg: Option<Result<AggregatedMessage, ProtocolError>>) -> Result<(), Ending> {
        match msg {
            None => Err(None),
            Some(Ok(AggregatedMessage::Text(text))) => self.on_text(&text).await,
            Some(Ok(AggregatedMessage::Binary(_))) => {
                let err = FrameError {
                    code: "unsupported_frame",
                    message: "binary frames are not supported; send JSON text".into(),
                    event: None,
                    reference: None,
                };
                self.reply_error(err).await
            }
            Some(Ok(AggregatedMessage::Ping(bytes))) => self.ws.pong(&bytes).await.map_err(|_| None),
            Some(Ok(AggregatedMessage::Pong(_))) => Ok(()),
            Some(Ok(AggregatedMessage::Close(reason))) => Err(reason.or_else(|| closing(CloseCode::Normal, ""))),
            Some(Err(ProtocolError::Overflow)) => Err(closing(CloseCode::Size, "frame too large")),
            Some(Err(e)) => {
                tracing::debug!(conn = self.conn.id, error = %e, "websocket protocol error");
                Err(closing(CloseCode::Protocol, "protocol error"))
            }
        }
    }

    async fn on_text(&mut self, text: &str) -> Result<(), Ending> {
        match ClientFrame::parse(text) {
            Ok(frame) => {
                let reply = self.execute(frame.command).await;
                self.send(reply.encode_with_ref(frame.reference.as_deref())).await
            }
            Err(err) => self.reply_error(err).await,
        }
    }

    async fn reply_error(&mut self, err: FrameError) -> Result<(), Ending> {
        let (event, reference) = ServerEvent::error(err);
        self.send(event.encode_with_ref(reference.as_deref())).await
    }

    async fn execute(&mut self, command: ClientCommand) -> ServerEvent {
        match command {
            ClientCommand::JoinChat { chat_id, .. } => self.join(chat_id).await,
            ClientCommand::LeaveChat { chat_id } => {
                let left = ChatId::parse(&chat_id).is_some_and(|chat| self.hub.leave(&self.conn, &chat));
                let message = (!left).then_some("not in chat");
                ServerEvent::ChatLeft(ChatLeft { chat_id, status: "success", message })
            }
            ClientCommand::ListenAllChats {} => {
                self.hub.listen_all(&self.conn);
                ServerEvent::ListeningAllChats(Status::SUCCESS)
            }
            ClientCommand::LeaveAllChats {} => {
                self.hub.leave_all(&self.conn);
                ServerEvent::LeftAllChats(Status::SUCCESS)
            }
            ClientCommand::DebugStatus {} => ServerEvent::DebugStatus(DebugStatus {
                user_id: self.conn.user.to_string(),
                connected: true,
                socket_id: self.socket_id(),
                chats: self.conn.joined_chats(),
                listening_all: self.conn.is_listening_all(),
                total_users: self.hub.online_users(),
                total_chats: self.hub.active_chats(),
            }),
            ClientCommand::RefreshToken { token } => self.refresh(&token),
            ClientCommand::Ping {} => ServerEvent::Pong(Pong { server_time: rfc3339_millis(now_millis()) }),
        }
    }

    /// Subscribes first, then asks whether the user is a participant: a removal that
    /// commits meanwhile either is seen by the check or evicts the new subscription.
    async fn join(&mut self, chat_id: String) -> ServerEvent {
        let event = Some("join-chat".to_owned());
        let not_found = || {
            ServerEvent::Error(ErrorData { code: "not_found", message: "chat not found".into(), event: event.clone() })
        };
        let Some(chat) = ChatId::parse(&chat_id) else { return not_found() };
        let newly = self.hub.join(&self.conn, &chat);
        let position = self.gate.chat_position(&self.conn.user, &chat).await;
        if newly && !matches!(position, Ok(Some(_))) {
            self.hub.leave(&self.conn, &chat);
        }
        match position {
            Ok(Some(last_seq)) => {
                let message = (!newly).then_some("already in chat");
                ServerEvent::ChatJoined(ChatJoined { chat_id, status: "success", last_seq: Some(last_seq), message })
            }
            Ok(None) => not_found(),
            Err(cause) => {
                tracing::warn!(%cause, "join-chat: database unavailable");
                ServerEvent::Error(ErrorData { code: "unavailable", message: "try again shortly".into(), event })
            }
        }
    }

    fn refresh(&mut self, token: &str) -> ServerEvent {
        let fail = |code, message: String| {
            ServerEvent::Error(ErrorData { code, message, event: Some("refresh-token".into()) })
        };
        match self.gate.verify_token(token) {
            Err(e) => fail("unauthorized", e),
            Ok((user, _)) if user != self.conn.user => fail("forbidden", "the token belongs to another user".into()),
            Ok((_, exp)) => {
                self.expires_at = self.expires_at.max(exp);
                let expires_at = rfc3339_millis((self.expires_at as i64).saturating_mul(1000));
                ServerEvent::TokenRefreshed(TokenRefreshed { expires_at })
            }
        }
    }

    fn socket_id(&self) -> String {
        format!("conn_{}", self.conn.id)
    }

    /// Writes one frame. A client that does not take it within `WRITE_TIMEOUT` is a
    /// slow consumer; one that is gone ends the loop without a close frame.
    async fn send(&mut self, frame: ByteString) -> Result<(), Ending> {
        match tokio::time::timeout(WRITE_TIMEOUT, self.ws.text(frame)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_closed)) => Err(None),
            Err(_elapsed) => Err(closing(super::hub::CLOSE_SLOW_CONSUMER, "slow consumer")),
        }
    }
}

/// The `Instant` at which Unix time `secs` is reached (now, if already past).
fn instant_of_unix(secs: u64) -> Instant {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    Instant::now() + Duration::from_secs(secs).saturating_sub(now)
}
