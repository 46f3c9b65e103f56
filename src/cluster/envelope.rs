//! What crosses the broker: one envelope per event. A compact JSON header, a newline, then
//! the frame exactly as local connections get it (encoded once, by the node that
//! committed). Receivers read the header alone unless they must look inside the frame.

use bytestring::ByteString;
use serde::{Deserialize, Serialize};

use crate::domain::{ChatId, UserId};
use crate::realtime::Audience;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    /// The node that published it (random per process start).
    pub o: String,
    /// The origin's publish counter: consecutive, so a receiver sees a loss as a gap.
    pub n: u64,
    #[serde(flatten)]
    pub kind: Kind,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "k")]
pub enum Kind {
    /// `new-message` of chat `c` with `seq` `s`; `m` are the chat's members when it
    /// committed, with their read markers (each node builds its listeners' `chat-updated`,
    /// and only these members' connections get the message).
    #[serde(rename = "m")]
    Message { c: String, s: i64, m: Vec<(String, i64)> },
    /// Any other event, for audience `a`; `f` is the `seq` of the message it follows.
    #[serde(rename = "e")]
    Event {
        a: WireAudience,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        f: Option<i64>,
    },
    /// `user-typing` of user `u` in chat `c` (`on`: a spell started), for members `m`
    /// (without `u`). A kind of its own: receivers keep the spells of other nodes, to
    /// tell joiners and to end them when their node dies.
    #[serde(rename = "t")]
    Typing { c: String, u: String, on: bool, m: Vec<String> },
    /// User `u` left chat `c`, or was removed: every node unsubscribes their connections.
    #[serde(rename = "x")]
    Evict { c: String, u: String },
    /// "I have published up to `n`": a receiver behind it lost the tail.
    #[serde(rename = "h")]
    Heartbeat {},
}

impl Kind {
    /// Roughly the bytes its header takes (queues are bounded in bytes): member lists of
    /// 1,000 users weigh more than most frames.
    pub fn weight(&self) -> usize {
        let ids = |users: &[String]| users.iter().map(|u| u.len() + 4).sum::<usize>();
        128 + match self {
            Kind::Message { c, m, .. } => c.len() + m.iter().map(|(u, _)| u.len() + 24).sum::<usize>(),
            Kind::Event { a, .. } => match a {
                WireAudience::Chat(c) => c.len(),
                WireAudience::ChatExcept(c, u) => c.len() + u.len(),
                WireAudience::ChatMembers(c, users) => c.len() + ids(users),
                WireAudience::Users(users) | WireAudience::Listening(users) => ids(users),
            },
            Kind::Typing { c, u, m, .. } => c.len() + u.len() + ids(m),
            Kind::Evict { c, u } => c.len() + u.len(),
            Kind::Heartbeat {} => 0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", content = "v")]
pub enum WireAudience {
    #[serde(rename = "c")]
    Chat(String),
    #[serde(rename = "ce")]
    ChatExcept(String, String),
    #[serde(rename = "cm")]
    ChatMembers(String, Vec<String>),
    #[serde(rename = "u")]
    Users(Vec<String>),
    #[serde(rename = "l")]
    Listening(Vec<String>),
}

impl From<&Audience> for WireAudience {
    fn from(a: &Audience) -> Self {
        let ids = |users: &[UserId]| users.iter().map(ToString::to_string).collect();
        match a {
            Audience::Chat(c) => Self::Chat(c.to_string()),
            Audience::ChatExcept(c, u) => Self::ChatExcept(c.to_string(), u.to_string()),
            Audience::ChatMembers(c, users) => Self::ChatMembers(c.to_string(), ids(users)),
            Audience::Users(users) => Self::Users(ids(users)),
            Audience::ListeningUsers(users) => Self::Listening(ids(users)),
        }
    }
}

impl From<WireAudience> for Audience {
    fn from(a: WireAudience) -> Self {
        let ids = |users: Vec<String>| users.into_iter().map(UserId::from_trusted).collect();
        match a {
            WireAudience::Chat(c) => Self::Chat(ChatId::from_trusted(c)),
            WireAudience::ChatExcept(c, u) => Self::ChatExcept(ChatId::from_trusted(c), UserId::from_trusted(u)),
            WireAudience::ChatMembers(c, users) => Self::ChatMembers(ChatId::from_trusted(c), ids(users)),
            WireAudience::Users(users) => Self::Users(ids(users)),
            WireAudience::Listening(users) => Self::ListeningUsers(ids(users)),
        }
    }
}

/// Header, newline, frame.
pub fn encode(header: &Header, frame: &str) -> Vec<u8> {
    // Plain data with string keys: serde_json cannot fail on it.
    let mut out = serde_json::to_vec(header).unwrap_or_default();
    out.push(b'\n');
    out.extend_from_slice(frame.as_bytes());
    out
}

/// The header and the frame; `None` for anything that is not an envelope of ours.
pub fn decode(payload: &[u8]) -> Option<(Header, ByteString)> {
    let split = payload.iter().position(|b| *b == b'\n')?;
    let header: Header = serde_json::from_slice(&payload[..split]).ok()?;
    let frame = std::str::from_utf8(&payload[split + 1..]).ok()?;
    Some((header, ByteString::from(frame)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips() {
        let kinds = [
            Kind::Message { c: "chat_1".into(), s: 7, m: vec![("alice".into(), 7), ("bob".into(), 3)] },
            Kind::Event { a: WireAudience::ChatExcept("chat_1".into(), "bob".into()), f: Some(3) },
            Kind::Event { a: WireAudience::Users(vec!["bob".into()]), f: None },
            Kind::Event { a: WireAudience::ChatMembers("chat_1".into(), vec!["alice".into()]), f: Some(9) },
            Kind::Typing { c: "chat_1".into(), u: "bob".into(), on: true, m: vec!["alice".into()] },
            Kind::Evict { c: "chat_1".into(), u: "bob".into() },
            Kind::Heartbeat {},
        ];
        for kind in kinds {
            let header = Header { o: "node".into(), n: 42, kind };
            let bytes = encode(&header, "{\"event\":\"x\",\"data\":\"a\\nb\"}");
            let (back, frame) = decode(&bytes).unwrap();
            assert_eq!(back, header);
            assert_eq!(&*frame, "{\"event\":\"x\",\"data\":\"a\\nb\"}");
        }
        assert!(decode(b"no header").is_none());
        assert!(decode(b"{\"o\":1}\n{}").is_none());
    }
}
