//! What a session does with each client command: subscriptions, resume with replay,
//! debug status, token refresh, ping. Split from `session` (the socket loop) to keep
//! each file about one thing.

use super::protocol::*;
use super::session::{Ending, Gatekeeper, Session};
use crate::domain::{ChatId, now_millis, rfc3339_millis};

impl<G: Gatekeeper> Session<G> {
    /// The reply to a command. Only a join can fail to write (its replay frames).
    pub(super) async fn execute(&mut self, command: ClientCommand) -> Result<ServerEvent, Ending> {
        Ok(match command {
            ClientCommand::JoinChat { chat_id, last_seq } => return self.join(chat_id, last_seq).await,
            ClientCommand::LeaveChat { chat_id } => {
                self.floors.remove(&chat_id);
                let left = ChatId::parse(&chat_id).is_some_and(|chat| self.hub.leave(&self.conn, &chat));
                let message = (!left).then_some("not in chat".into());
                ServerEvent::ChatLeft(ChatLeft { chat_id, status: "success".into(), message })
            }
            ClientCommand::ListenAllChats {} => {
                self.hub.listen_all(&self.conn);
                ServerEvent::ListeningAllChats(Status::SUCCESS)
            }
            ClientCommand::LeaveAllChats {} => {
                self.floors.clear();
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
        })
    }

    /// Subscribes first, then reads the chat: whatever commits later arrives live, and
    /// the floor drops live frames the replay (or the reported `lastSeq`) already covers.
    /// A removal that commits meanwhile is either seen here or evicts the subscription.
    async fn join(&mut self, chat_id: String, since: Option<i64>) -> Result<ServerEvent, Ending> {
        let event = Some("join-chat".to_owned());
        let fail = |code: &'static str, message: &str| {
            ServerEvent::Error(ErrorData { code: code.into(), message: message.to_owned(), event: event.clone() })
        };
        if since.is_some_and(|s| s < 0) {
            return Ok(fail("validation_failed", "lastSeq must be >= 0"));
        }
        let Some(chat) = ChatId::parse(&chat_id) else { return Ok(fail("not_found", "chat not found")) };
        let newly = self.hub.join(&self.conn, &chat);
        if !newly {
            let last_seq = self.floors.get(&chat_id).copied();
            return Ok(ServerEvent::ChatJoined(ChatJoined {
                chat_id,
                status: "success".into(),
                last_seq,
                message: Some("already in chat".into()),
                resync: false,
            }));
        }
        let state = match self.gate.join_state(&self.conn.user, &chat, since, self.cfg.replay_limit).await {
            Ok(Some(state)) => state,
            Ok(None) => {
                self.hub.leave(&self.conn, &chat);
                return Ok(fail("not_found", "chat not found"));
            }
            Err(cause) => {
                self.hub.leave(&self.conn, &chat);
                tracing::warn!(%cause, "join-chat: database unavailable");
                return Ok(fail("unavailable", "try again shortly"));
            }
        };
        let mut floor = since.map_or(state.last_seq, |s| s.min(state.last_seq));
        for (seq, frame) in state.missed {
            self.send(frame).await?;
            floor = floor.max(seq);
        }
        if state.truncated {
            floor = floor.max(state.last_seq);
        }
        self.floors.insert(chat_id.clone(), floor);
        Ok(ServerEvent::ChatJoined(ChatJoined {
            chat_id,
            status: "success".into(),
            last_seq: Some(floor),
            message: None,
            resync: state.truncated,
        }))
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
                let expires_at = rfc3339_millis((self.expires_at as i64).saturating_mul(1000));
                ServerEvent::TokenRefreshed(TokenRefreshed { expires_at })
            }
        }
    }

    pub(super) fn socket_id(&self) -> String {
        format!("conn_{}", self.conn.id)
    }
}
