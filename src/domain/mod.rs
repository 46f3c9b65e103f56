//! Validated domain types. Request bodies are parsed into these once, at the edge
//! ("parse, don't validate"); everything past the handlers can trust them.
//! This module imports nothing from the rest of the crate.

mod attachment;
mod content;
mod ids;
mod time;

pub use attachment::{Attachment, Attachments};
pub use content::{ChatName, MessageContent, Participants};
pub use ids::{ChatId, ClientMessageId, MessageId, UserId};
pub use time::{Millis, now_millis, rfc3339_millis};

/// A domain rule was broken; the text is shown to the client as is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

impl Invalid {
    pub fn new(msg: impl Into<String>) -> Self {
        Self(msg.into())
    }
}
