//! The WebSocket protocol (contract §4) as types. Every frame is JSON text
//! `{"event": "<name>", "data": {…}, "ref"?: "<client tag>"}`. Inbound text that does not
//! fit becomes a typed `FrameError`, answered with an `error` frame; never a panic.

use bytestring::ByteString;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::borrow::Cow;

use crate::views::{ChatView, MessageView};

/// Frames a client may send.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "event", content = "data", rename_all = "kebab-case")]
pub enum ClientCommand {
    #[serde(rename_all = "camelCase")]
    JoinChat {
        chat_id: String,
        last_seq: Option<i64>,
    },
    #[serde(rename_all = "camelCase")]
    LeaveChat {
        chat_id: String,
    },
    ListenAllChats {},
    LeaveAllChats {},
    DebugStatus {},
    RefreshToken {
        token: String,
    },
    Ping {},
}

impl ClientCommand {
    pub const EVENTS: [&'static str; 7] =
        ["join-chat", "leave-chat", "listen-all-chats", "leave-all-chats", "debug-status", "refresh-token", "ping"];
}

/// A parsed client frame with its optional correlation tag.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientFrame {
    pub command: ClientCommand,
    pub reference: Option<String>,
}

/// Why a client frame was refused; becomes an `error` frame.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameError {
    pub code: &'static str,
    pub message: String,
    pub event: Option<String>,
    pub reference: Option<String>,
}

#[derive(Deserialize)]
struct RawFrame {
    event: String,
    #[serde(default)]
    data: Value,
    #[serde(rename = "ref")]
    reference: Option<String>,
}

impl ClientFrame {
    pub fn parse(text: &str) -> Result<Self, FrameError> {
        let invalid = |e: String| FrameError {
            code: "invalid_frame",
            message: format!("expected a JSON object {{\"event\", \"data\", \"ref\"?}}: {e}"),
            event: None,
            reference: None,
        };
        // Through a map first: serde would otherwise accept `["ping", {}]` by position.
        let object: serde_json::Map<String, Value> = serde_json::from_str(text).map_err(|e| invalid(e.to_string()))?;
        let raw = RawFrame::deserialize(Value::Object(object)).map_err(|e| invalid(e.to_string()))?;
        let fail = |code, message: String| FrameError {
            code,
            message,
            event: Some(raw.event.clone()),
            reference: raw.reference.clone(),
        };
        if !ClientCommand::EVENTS.contains(&raw.event.as_str()) {
            return Err(fail("unknown_event", format!("unknown event {:?}", raw.event)));
        }
        let data = match raw.data {
            Value::Null => Value::Object(Default::default()),
            obj @ Value::Object(_) => obj,
            _ => return Err(fail("validation_failed", "data must be an object".into())),
        };
        let tagged = serde_json::json!({ "event": raw.event, "data": data });
        let command = ClientCommand::deserialize(tagged)
            .map_err(|e| fail("validation_failed", format!("invalid data for {}: {e}", raw.event)))?;
        Ok(Self { command, reference: raw.reference })
    }
}

/// Frames the server sends.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "event", content = "data", rename_all = "kebab-case")]
pub enum ServerEvent {
    Connected(Connected),
    NewMessage(MessageEvent),
    ChatUpdated(ChatUpdated),
    ChatCreated(ChatCreated),
    ChatJoined(ChatJoined),
    ChatLeft(ChatLeft),
    ListeningAllChats(Status),
    LeftAllChats(Status),
    DebugStatus(DebugStatus),
    TokenRefreshed(TokenRefreshed),
    Pong(Pong),
    Error(ErrorData),
    MessageUpdated(MessageEvent),
    MessageDeleted(MessageDeleted),
    MessageRead(MessageRead),
    UnreadCountUpdated(UnreadCountUpdated),
    UserTyping(UserTyping),
    UserOnline(UserOnline),
    UserOffline(UserOffline),
    ParticipantAdded(Participant),
    ParticipantRemoved(Participant),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageDeleted {
    pub chat_id: String,
    pub message_id: String,
    pub seq: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageRead {
    pub chat_id: String,
    pub user_id: String,
    pub last_read_seq: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UnreadCountUpdated {
    pub chat_id: String,
    pub unread_count: i64,
    pub total_unread: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserTyping {
    pub chat_id: String,
    pub user_id: String,
    pub is_typing: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserOnline {
    pub user_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserOffline {
    pub user_id: String,
    pub last_seen: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Participant {
    pub chat_id: String,
    pub user_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Connected {
    pub user_id: String,
    pub connection_id: String,
    pub heartbeat_interval_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageEvent {
    pub chat_id: String,
    pub message: MessageView,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatUpdated {
    pub chat_id: String,
    pub last_message: Option<MessageView>,
    pub unread_count: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChatCreated {
    pub chat: ChatView,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatJoined {
    pub chat_id: String,
    pub status: Cow<'static, str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_seq: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<Cow<'static, str>>,
    /// More was missed than one replay holds: page the rest over REST up to `lastSeq`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub resync: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatLeft {
    pub chat_id: String,
    pub status: Cow<'static, str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<Cow<'static, str>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Status {
    pub status: Cow<'static, str>,
}

impl Status {
    pub const SUCCESS: Self = Self { status: Cow::Borrowed("success") };
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DebugStatus {
    pub user_id: String,
    pub connected: bool,
    pub socket_id: String,
    pub chats: Vec<String>,
    pub listening_all: bool,
    pub total_users: usize,
    pub total_chats: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenRefreshed {
    pub expires_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pong {
    pub server_time: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorData {
    pub code: Cow<'static, str>,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
}

#[derive(Serialize)]
struct Envelope<'a> {
    #[serde(flatten)]
    event: &'a ServerEvent,
    #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
    reference: Option<&'a str>,
}

impl ServerEvent {
    /// Every server event name (the AsyncAPI test checks each is documented).
    pub const EVENTS: [&'static str; 21] = [
        "connected",
        "new-message",
        "chat-updated",
        "chat-created",
        "chat-joined",
        "chat-left",
        "listening-all-chats",
        "left-all-chats",
        "debug-status",
        "token-refreshed",
        "pong",
        "error",
        "message-updated",
        "message-deleted",
        "message-read",
        "unread-count-updated",
        "user-typing",
        "user-online",
        "user-offline",
        "participant-added",
        "participant-removed",
    ];

    /// The wire name; exhaustive, so a new variant cannot go unnamed.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Connected(_) => "connected",
            Self::NewMessage(_) => "new-message",
            Self::ChatUpdated(_) => "chat-updated",
            Self::ChatCreated(_) => "chat-created",
            Self::ChatJoined(_) => "chat-joined",
            Self::ChatLeft(_) => "chat-left",
            Self::ListeningAllChats(_) => "listening-all-chats",
            Self::LeftAllChats(_) => "left-all-chats",
            Self::DebugStatus(_) => "debug-status",
            Self::TokenRefreshed(_) => "token-refreshed",
            Self::Pong(_) => "pong",
            Self::Error(_) => "error",
            Self::MessageUpdated(_) => "message-updated",
            Self::MessageDeleted(_) => "message-deleted",
            Self::MessageRead(_) => "message-read",
            Self::UnreadCountUpdated(_) => "unread-count-updated",
            Self::UserTyping(_) => "user-typing",
            Self::UserOnline(_) => "user-online",
            Self::UserOffline(_) => "user-offline",
            Self::ParticipantAdded(_) => "participant-added",
            Self::ParticipantRemoved(_) => "participant-removed",
        }
    }

    /// Serialises once; the result is reference-counted, so every recipient shares it.
    pub fn encode(&self) -> ByteString {
        self.encode_with_ref(None)
    }

    /// A reply to a client frame, echoing its `ref`.
    pub fn encode_with_ref(&self, reference: Option<&str>) -> ByteString {
        // Serialising these plain structs cannot fail: no maps with non-string keys,
        // no fallible Serialize impls.
        let json = serde_json::to_string(&Envelope { event: self, reference }).expect("server events always serialise");
        ByteString::from(json)
    }

    pub fn error(err: FrameError) -> (Self, Option<String>) {
        let event = Self::Error(ErrorData { code: err.code.into(), message: err.message, event: err.event });
        (event, err.reference)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_client_event() {
        let f =
            ClientFrame::parse(r#"{"event":"join-chat","data":{"chatId":"chat_1","lastSeq":4},"ref":"r1"}"#).unwrap();
        assert_eq!(f.command, ClientCommand::JoinChat { chat_id: "chat_1".into(), last_seq: Some(4) });
        assert_eq!(f.reference.as_deref(), Some("r1"));
        for (text, cmd) in [
            (r#"{"event":"leave-chat","data":{"chatId":"c"}}"#, ClientCommand::LeaveChat { chat_id: "c".into() }),
            (r#"{"event":"listen-all-chats","data":{}}"#, ClientCommand::ListenAllChats {}),
            (r#"{"event":"leave-all-chats"}"#, ClientCommand::LeaveAllChats {}),
            (r#"{"event":"debug-status","data":null}"#, ClientCommand::DebugStatus {}),
            (r#"{"event":"refresh-token","data":{"token":"t"}}"#, ClientCommand::RefreshToken { token: "t".into() }),
            (r#"{"event":"ping","data":{}}"#, ClientCommand::Ping {}),
        ] {
            assert_eq!(ClientFrame::parse(text).unwrap().command, cmd, "{text}");
        }
    }

    #[test]
    fn bad_frames_get_distinct_codes_and_keep_the_ref() {
        assert_eq!(ClientFrame::parse("not json").unwrap_err().code, "invalid_frame");
        assert_eq!(ClientFrame::parse(r#"{"data":{}}"#).unwrap_err().code, "invalid_frame");
        let unknown = ClientFrame::parse(r#"{"event":"explode","ref":"x"}"#).unwrap_err();
        assert_eq!((unknown.code, unknown.reference.as_deref()), ("unknown_event", Some("x")));
        let missing = ClientFrame::parse(r#"{"event":"join-chat","data":{}}"#).unwrap_err();
        assert_eq!(missing.code, "validation_failed");
        assert!(missing.message.contains("chatId"), "{}", missing.message);
        let wrong_type = ClientFrame::parse(r#"{"event":"join-chat","data":{"chatId":5}}"#).unwrap_err();
        assert_eq!(wrong_type.code, "validation_failed");
        assert_eq!(ClientFrame::parse(r#"{"event":"ping","data":[1]}"#).unwrap_err().code, "validation_failed");
        assert_eq!(ClientFrame::parse(r#"["ping",{},"r"]"#).unwrap_err().code, "invalid_frame");
    }

    #[test]
    fn replies_echo_the_ref_and_events_do_not() {
        let pong = ServerEvent::Pong(Pong { server_time: "t".into() });
        let v: Value = serde_json::from_str(&pong.encode_with_ref(Some("abc"))).unwrap();
        assert_eq!(v, serde_json::json!({"event":"pong","data":{"serverTime":"t"},"ref":"abc"}));
        let v: Value = serde_json::from_str(&ServerEvent::LeftAllChats(Status::SUCCESS).encode()).unwrap();
        assert_eq!(v, serde_json::json!({"event":"left-all-chats","data":{"status":"success"}}));
    }
}
