//! What a session does with each client command: subscriptions, resume with replay,
//! debug status, token refresh, ping. Split from `session` (the socket loop) to keep
//! each file about one thing.

use super::protocol::*;
use super::session::{Ending, Gatekeeper, Session};
use super::writer::Own;
use crate::domain::{ChatId, now_millis, rfc3339_millis};

/// Messages read and held per replay page: with the largest messages (control
/// characters escape to six bytes each) a page stays near a megabyte.
const REPLAY_PAGE: usize = 16;

impl<G: Gatekeeper> Session<G> {
    /// The reply to a command; `None` when it was already queued (`join-chat` replies
    /// through the writer, after its replay).
    pub(super) async fn execute(
        &mut self,
        command: ClientCommand,
        reference: Option<&str>,
    ) -> Result<Option<ServerEvent>, Ending> {
        Ok(Some(match command {
            ClientCommand::JoinChat { chat_id, last_seq } => {
                Box::pin(self.join(chat_id, last_seq, reference)).await?;
                return Ok(None);
            }
            // Events queued before the command go out before the subscription ends.
            ClientCommand::LeaveChat { chat_id } => {
                self.barrier().await?;
                let left = ChatId::parse(&chat_id).is_some_and(|chat| self.hub.leave(&self.conn, &chat));
                let message = (!left).then_some("not in chat".into());
                ServerEvent::ChatLeft(ChatLeft { chat_id, status: "success".into(), message })
            }
            ClientCommand::ListenAllChats {} => {
                self.hub.listen_all(&self.conn);
                ServerEvent::ListeningAllChats(Status::SUCCESS)
            }
            ClientCommand::LeaveAllChats {} => {
                self.barrier().await?;
                self.hub.leave_all(&self.conn);
                ServerEvent::LeftAllChats(Status::SUCCESS)
            }
            // The joins the writer settled so far included.
            ClientCommand::DebugStatus {} => {
                self.barrier().await?;
                ServerEvent::DebugStatus(DebugStatus {
                    user_id: self.conn.user.to_string(),
                    connected: true,
                    socket_id: self.socket_id(),
                    chats: self.conn.joined_chats(),
                    listening_all: self.conn.is_listening_all(),
                    cluster: self.gate.cluster_scope(),
                })
            }
            ClientCommand::RefreshToken { token } => self.refresh(&token),
            ClientCommand::Ping {} => ServerEvent::Pong(Pong { server_time: rfc3339_millis(now_millis()) }),
        }))
    }

    /// Subscribes first (pending), then checks membership, replays, and settles through
    /// the writer: whatever commits after the subscription arrives live, after the replay
    /// and the reply, and nothing of the chat is written before the check passed (the
    /// writer holds the chat's events until the settle). A removal that commits meanwhile
    /// is either seen by the check or evicts the subscription, which stops the replay and
    /// makes the settle drop what was held.
    async fn join(&mut self, chat_id: String, since: Option<i64>, reference: Option<&str>) -> Result<(), Ending> {
        let fail = |code: &'static str, message: &str| {
            let event = Some("join-chat".to_owned());
            ServerEvent::Error(ErrorData { code: code.into(), message: message.to_owned(), event })
                .encode_with_ref(reference)
        };
        if since.is_some_and(|s| s < 0) {
            return self.send(fail("validation_failed", "lastSeq must be >= 0")).await;
        }
        let Some(chat) = ChatId::parse(&chat_id) else { return self.send(fail("not_found", "chat not found")).await };
        let Some(join) = self.hub.join(&self.conn, &chat) else {
            // The floor is the writer's: once an earlier join's settle was applied.
            self.barrier().await?;
            let event = ServerEvent::ChatJoined(ChatJoined {
                last_seq: self.conn.floor(&chat),
                chat_id,
                status: "success".into(),
                message: Some("already in chat".into()),
                resync: false,
            });
            return self.send(event.encode_with_ref(reference)).await;
        };
        let refused = match self.gate.chat_position(&self.conn.user, &chat).await {
            Ok(Some(last_seq)) if self.conn.is_subscribed(&chat) => {
                // In cluster mode the node's stream of the chat may already be past what
                // this connection read: what lies between is replayed, not awaited live.
                let last_seq = self.fanout.subscribed(&chat, last_seq).map_or(last_seq, |s| s.max(last_seq));
                if let Some((floor, resync)) = Box::pin(self.replay(&chat, join, since, last_seq)).await? {
                    self.tell_typists(&chat, join).await?;
                    // A removal may commit while a slow client takes the replay.
                    if self.conn.is_subscribed(&chat) {
                        let event = ServerEvent::ChatJoined(ChatJoined {
                            chat_id,
                            status: "success".into(),
                            last_seq: Some(floor),
                            message: None,
                            resync,
                        });
                        let joined = event.encode_with_ref(reference);
                        let refused = fail("not_found", "chat not found");
                        return self.send_own(Own::Settle { chat, join, floor, joined, refused }).await;
                    }
                }
                fail("not_found", "chat not found")
            }
            Ok(_) => fail("not_found", "chat not found"),
            Err(cause) => {
                tracing::warn!(%cause, "join-chat: database unavailable");
                fail("unavailable", "try again shortly")
            }
        };
        self.hub.leave(&self.conn, &chat);
        // Settled too: what the writer held for this join is dropped.
        self.send_own(Own::Settle { chat, join, floor: 0, joined: refused.clone(), refused }).await
    }

    /// Writes the messages after `since` in pages, so at most one page is held in memory,
    /// and stops at the replay limits (messages and bytes). Returns the floor (the highest
    /// `seq` the client now has) and whether the client must page the rest over REST;
    /// `None` when the membership ended meanwhile.
    async fn replay(
        &mut self,
        chat: &ChatId,
        join: u64,
        since: Option<i64>,
        last_seq: i64,
    ) -> Result<Option<(i64, bool)>, Ending> {
        let Some(since) = since else { return Ok(Some((last_seq, false))) };
        let mut floor = since.min(last_seq);
        let (mut sent, mut bytes) = (0usize, 0usize);
        let mut more = floor < last_seq;
        // The client pages the rest over REST up to `lastSeq`; what came after it (and
        // was written here) stays covered by the floor.
        let resync = |floor: i64| Ok(Some((floor.max(last_seq), true)));
        while more {
            if sent >= self.cfg.replay_limit {
                return resync(floor);
            }
            let limit = REPLAY_PAGE.min(self.cfg.replay_limit - sent);
            let page = match self.gate.replay_page(&self.conn.user, chat, floor, limit).await {
                Ok(Some(page)) if self.conn.is_subscribed(chat) => page,
                Ok(_) => return Ok(None),
                Err(cause) => {
                    // Resume is an optimisation: the client pages the rest over REST.
                    tracing::warn!(%cause, "join-chat replay: database unavailable");
                    return resync(floor);
                }
            };
            for (seq, frame) in page.frames {
                bytes += frame.len();
                if bytes > self.cfg.replay_max_bytes {
                    return resync(floor);
                }
                // A removal may commit while a slow client takes the page (the writer
                // checks again when it writes).
                if !self.conn.is_subscribed(chat) {
                    return Ok(None);
                }
                sent += 1;
                self.send_own(Own::Joining(chat.clone(), join, frame)).await?;
                floor = floor.max(seq);
            }
            // Past `last_seq`, messages arrive live (the subscription came first).
            more = page.more && floor < last_seq;
        }
        Ok(Some((floor.max(last_seq), false)))
    }

    /// A joining connection missed the starts of the typing spells under way: it is told
    /// of them as if they started now (their ends come live).
    async fn tell_typists(&mut self, chat: &ChatId, join: u64) -> Result<(), Ending> {
        let mut typists = self.gate.typists(chat);
        typists.retain(|t| *t != self.conn.user);
        for typist in typists {
            if !self.conn.is_subscribed(chat) {
                break;
            }
            let event = ServerEvent::UserTyping(UserTyping {
                chat_id: chat.to_string(),
                user_id: typist.to_string(),
                is_typing: true,
            });
            self.send_own(Own::Joining(chat.clone(), join, event.encode())).await?;
        }
        Ok(())
    }

    fn refresh(&mut self, token: &str) -> ServerEvent {
        let fail = |code: &'static str, message: String| {
            ServerEvent::Error(ErrorData { code: code.into(), message, event: Some("refresh-token".into()) })
        };
        match self.gate.verify_token(token) {
            Err(e) => fail("unauthorized", e),
            Ok((user, _)) if user != self.conn.user => fail("forbidden", "the token belongs to another user".into()),
            Ok((_, exp)) => {
                self.expires_at = self.expires_at.max(exp);
                let secs = i64::try_from(self.expires_at).unwrap_or(i64::MAX);
                let expires_at = rfc3339_millis(secs.saturating_mul(1000));
                ServerEvent::TokenRefreshed(TokenRefreshed { expires_at })
            }
        }
    }

    /// The connection's public name: random, so that it tells nothing about how many
    /// connections the node accepted (its registry number stays in the logs).
    pub(super) fn socket_id(&self) -> String {
        format!("conn_{}", self.public_id)
    }
}
