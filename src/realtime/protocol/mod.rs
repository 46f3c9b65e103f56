//! The WebSocket protocol (contract §4) as types. Every frame is JSON text
//! `{"event": "<name>", "data": {…}, "ref"?: "<client tag>"}`. Inbound text that does not
//! fit becomes a typed `FrameError`, answered with an `error` frame; never a panic.

use serde::Deserialize;
use serde_json::Value;

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

mod resources;
mod server;

pub use resources::{ChatView, MessageView};
pub use server::*;

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
