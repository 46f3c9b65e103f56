use super::{Invalid, UserId};

/// The text of a message, stored verbatim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageContent(String);

impl MessageContent {
    /// `max_chars` counts Unicode scalar values, which is what users see as length.
    /// Empty text is allowed only when the message carries attachments.
    pub fn parse(s: String, max_chars: usize, has_attachments: bool) -> Result<Self, Invalid> {
        if s.contains('\0') {
            return Err(Invalid::new("content must not contain NUL characters"));
        }
        if s.trim().is_empty() && !has_attachments {
            return Err(Invalid::new("content must not be empty"));
        }
        let len = s.chars().count();
        if len > max_chars {
            return Err(Invalid::new(format!("content is {len} characters long; the limit is {max_chars}")));
        }
        Ok(Self(s))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    pub fn into_string(self) -> String {
        self.0
    }
}

/// An optional display name for a chat: 1–200 characters, not only spaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatName(String);

impl ChatName {
    pub fn parse(s: String) -> Result<Self, Invalid> {
        if s.trim().is_empty() || s.contains('\0') {
            return Err(Invalid::new("name must be a non-empty string without NUL"));
        }
        if s.chars().count() > 200 {
            return Err(Invalid::new("name is longer than 200 characters"));
        }
        Ok(Self(s))
    }
    pub fn into_string(self) -> String {
        self.0
    }
}

/// The members of a new chat: distinct, in the order given, creator first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Participants(Vec<UserId>);

impl Participants {
    pub const MAX: usize = 1000;

    /// The creator (or the caller adding people) first, then `raw` in order without
    /// repeats. `raw` holds at most `MAX - 1` names, counted as sent (a rule a client can
    /// check before sending: the OpenAPI document's `maxItems`); a longer list is refused
    /// before any work on its items, and repeats are found through a set, so the cost
    /// stays linear in the body's size.
    pub fn parse(creator: &UserId, raw: Vec<String>) -> Result<Self, Invalid> {
        if raw.len() >= Self::MAX {
            return Err(Self::too_many());
        }
        let mut seen = std::collections::HashSet::with_capacity(raw.len() + 1);
        seen.insert(creator.as_str().to_owned());
        let mut users = vec![creator.clone()];
        for s in raw {
            let id = UserId::parse(&s)?;
            if seen.insert(s) {
                users.push(id);
            }
        }
        Ok(Self(users))
    }

    fn too_many() -> Invalid {
        Invalid::new(format!("a chat has at most {} participants", Self::MAX))
    }
    pub fn as_slice(&self) -> &[UserId] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_rejects_empty_nul_and_too_long() {
        assert!(MessageContent::parse("hi".into(), 10, false).is_ok());
        assert!(MessageContent::parse("  ".into(), 10, false).is_err());
        assert!(MessageContent::parse("".into(), 10, true).is_ok());
        assert!(MessageContent::parse("a\0b".into(), 10, false).is_err());
        assert!(MessageContent::parse("é".repeat(10), 10, false).is_ok());
        assert!(MessageContent::parse("é".repeat(11), 10, false).is_err());
    }

    #[test]
    fn content_is_kept_verbatim() {
        let raw = "  <b>'; DROP TABLE messages; --</b>  ";
        let c = MessageContent::parse(raw.into(), 100, false).unwrap();
        assert_eq!(c.as_str(), raw);
    }

    #[test]
    fn participants_put_the_creator_first_and_drop_duplicates() {
        let alice = UserId::parse("alice").unwrap();
        let p = Participants::parse(&alice, vec!["bob".into(), "alice".into(), "bob".into()]).unwrap();
        let names: Vec<_> = p.as_slice().iter().map(UserId::as_str).collect();
        assert_eq!(names, ["alice", "bob"]);
        assert!(Participants::parse(&alice, vec!["not valid".into()]).is_err());
        assert_eq!(Participants::parse(&alice, vec![]).unwrap().as_slice().len(), 1);
        let most: Vec<String> = (1..Participants::MAX).map(|i| format!("u{i}")).collect();
        assert_eq!(Participants::parse(&alice, most.clone()).unwrap().as_slice().len(), Participants::MAX);
        let one_more: Vec<String> = (0..Participants::MAX).map(|i| format!("u{i}")).collect();
        assert!(Participants::parse(&alice, one_more).is_err(), "the creator makes 1,001");
        let repeats = vec!["bob".to_owned(); Participants::MAX];
        assert!(Participants::parse(&alice, repeats).is_err(), "refused by length, before de-duplication");
    }

    #[test]
    fn chat_names_must_have_visible_text() {
        assert!(ChatName::parse("Team".into()).is_ok());
        assert!(ChatName::parse("   ".into()).is_err());
        assert!(ChatName::parse("x".repeat(201)).is_err());
    }
}
