//! Frames the server sends, as types. Each is serialised once per event and shared by
//! every recipient; `Deserialize` lets tests and docs parse them back.

use bytestring::ByteString;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;

use super::FrameError;
use super::resources::{ChatView, MessageView};

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
    Resync(Resync),
}

/// Cluster mode only: events may have been lost between nodes and could not be re-read.
/// With `rejoin`, the server dropped this connection's subscription to `chatId`: send
/// `join-chat` with your `lastSeq` (messages are replayed). Without it, messages keep
/// flowing; re-read what else may have changed (the chat, or without `chatId` your chats)
/// over REST.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Resync {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chat_id: Option<String>,
    pub rejoin: bool,
    pub reason: String,
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
    /// Cluster mode only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterScope>,
}

/// In cluster mode, what holds right now: the broker `ok` or `degraded`; presence and the
/// rate limits counted over the `cluster`, or on this `node` alone while Redis is down.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterScope {
    pub broker: String,
    pub presence: String,
    pub limits: String,
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
    pub const EVENTS: [&'static str; 22] = [
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
        "resync",
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
            Self::Resync(_) => "resync",
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
