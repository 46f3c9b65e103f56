//! Identifier newtypes: a `ChatId` can never be passed where a `UserId` is expected.

use super::Invalid;
use serde::Serialize;
use std::fmt;

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
            pub fn into_string(self) -> String {
                self.0
            }
            /// Wraps a value read back from our own database, which only ever
            /// stored parsed ids.
            pub fn from_trusted(s: String) -> Self {
                Self(s)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

string_id!(
    /// An external user identifier taken from the JWT: 1–128 chars of `[A-Za-z0-9._@:-]`.
    UserId
);
string_id!(
    /// `chat_` followed by 32 lowercase hex digits (a UUIDv7, so ids sort by creation).
    ChatId
);
string_id!(
    /// `msg_` followed by 32 lowercase hex digits.
    MessageId
);
string_id!(
    /// The client's own idempotency key for a send: 1–128 printable characters.
    ClientMessageId
);

impl UserId {
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        let ok_len = (1..=128).contains(&s.len());
        let ok_chars = s.bytes().all(|b| b.is_ascii_alphanumeric() || b"._@:-".contains(&b));
        if ok_len && ok_chars {
            Ok(Self(s.to_owned()))
        } else {
            Err(Invalid::new(format!("invalid user id {s:?}: expected 1-128 characters of [A-Za-z0-9._@:-]")))
        }
    }
}

fn prefixed_uuid(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::now_v7().simple())
}

/// True when `s` is `prefix` followed by exactly 32 lowercase hex digits.
fn has_id_shape(s: &str, prefix: &str) -> bool {
    s.strip_prefix(prefix)
        .is_some_and(|hex| hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
}

impl ChatId {
    pub fn generate() -> Self {
        Self(prefixed_uuid("chat_"))
    }
    /// `None` for anything that is not shaped like one of our chat ids: such a chat
    /// cannot exist, so callers answer 404 without asking the database.
    pub fn parse(s: &str) -> Option<Self> {
        has_id_shape(s, "chat_").then(|| Self(s.to_owned()))
    }
}

impl MessageId {
    pub fn generate() -> Self {
        Self(prefixed_uuid("msg_"))
    }
    pub fn parse(s: &str) -> Option<Self> {
        has_id_shape(s, "msg_").then(|| Self(s.to_owned()))
    }
}

impl ClientMessageId {
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        let len = s.chars().count();
        if (1..=128).contains(&len) && !s.chars().any(char::is_control) {
            Ok(Self(s.to_owned()))
        } else {
            Err(Invalid::new("clientMessageId must be 1-128 characters without control characters"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_ids_accept_the_documented_alphabet() {
        for ok in ["alice", "user-123", "a.b@c:d_e", "550e8400-e29b-41d4-a716-446655440000"] {
            assert!(UserId::parse(ok).is_ok(), "{ok}");
        }
        let too_long = "x".repeat(129);
        for bad in ["", "al ice", "bob/1", "é", "a\0", too_long.as_str()] {
            assert!(UserId::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn generated_chat_ids_parse_back_and_other_shapes_do_not() {
        let id = ChatId::generate();
        assert_eq!(ChatId::parse(id.as_str()), Some(id.clone()));
        assert!(id.as_str().starts_with("chat_"));
        for bad in ["", "chat_", "chat_123", "msg_0123456789abcdef0123456789abcdef", "' OR 1=1 --"] {
            assert_eq!(ChatId::parse(bad), None, "{bad}");
        }
        assert_eq!(ChatId::parse(&id.as_str().to_uppercase()), None);
    }

    #[test]
    fn message_ids_have_their_own_prefix() {
        let id = MessageId::generate();
        assert!(MessageId::parse(id.as_str()).is_some());
        assert!(ChatId::parse(id.as_str()).is_none());
    }

    #[test]
    fn client_message_ids_reject_empty_long_and_control() {
        assert!(ClientMessageId::parse("abc-1").is_ok());
        assert!(ClientMessageId::parse("").is_err());
        assert!(ClientMessageId::parse(&"é".repeat(129)).is_err());
        assert!(ClientMessageId::parse("a\nb").is_err());
    }
}
