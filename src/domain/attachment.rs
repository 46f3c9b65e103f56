use super::Invalid;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A link to a file stored elsewhere. Missive keeps only the metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Attachment {
    /// An http or https URL.
    pub url: String,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
}

/// The attachments of one message, each with an http(s) URL.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Attachments(Vec<Attachment>);

const MAX_URL: usize = 2048;
const MAX_FIELD: usize = 255;

impl Attachments {
    /// Accepts objects `{"url","type"?,"name"?,"size"?}` or plain URL strings (seed 000),
    /// and normalises both to objects.
    pub fn parse(raw: Vec<Value>, max_count: usize) -> Result<Self, Invalid> {
        if raw.len() > max_count {
            return Err(Invalid::new(format!("a message has at most {max_count} attachments, got {}", raw.len())));
        }
        raw.into_iter()
            .enumerate()
            .map(|(i, v)| parse_one(v).map_err(|e| Invalid::new(format!("attachments[{i}]: {e}"))))
            .collect::<Result<_, _>>()
            .map(Self)
    }
    pub fn as_slice(&self) -> &[Attachment] {
        &self.0
    }
    pub fn into_vec(self) -> Vec<Attachment> {
        self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The JSON array stored with the message.
    pub fn to_json(&self) -> String {
        // Plain structs with string keys: serde_json cannot fail on them.
        serde_json::to_string(&self.0).unwrap_or_else(|_| "[]".into())
    }
}

fn parse_one(v: Value) -> Result<Attachment, Invalid> {
    let att = match v {
        Value::String(url) => Attachment { url, kind: None, name: None, size: None },
        Value::Object(_) => serde_json::from_value::<Attachment>(v)
            .map_err(|e| Invalid::new(format!("expected {{\"url\",\"type\"?,\"name\"?,\"size\"?}}: {e}")))?,
        _ => return Err(Invalid::new("expected a URL string or an object")),
    };
    check_url(&att.url)?;
    for (field, value) in [("type", &att.kind), ("name", &att.name)] {
        if value.as_ref().is_some_and(|s| s.chars().count() > MAX_FIELD || s.contains('\0')) {
            return Err(Invalid::new(format!("{field} must be at most {MAX_FIELD} characters without NUL")));
        }
    }
    Ok(att)
}

fn check_url(s: &str) -> Result<(), Invalid> {
    if s.len() > MAX_URL {
        return Err(Invalid::new(format!("url is longer than {MAX_URL} bytes")));
    }
    // The URL parser forgives (strips or escapes) these, but the string is stored as sent.
    if s.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(Invalid::new("url must not contain spaces or control characters"));
    }
    let parsed = url::Url::parse(s).map_err(|e| Invalid::new(format!("url {s:?} is not valid: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none_or(str::is_empty) {
        return Err(Invalid::new(format!("url {s:?} must be an http or https URL with a host")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn plain_strings_become_objects() {
        let a = Attachments::parse(vec![json!("https://example.com/doc.pdf")], 10).unwrap();
        assert_eq!(a.as_slice()[0].url, "https://example.com/doc.pdf");
        assert_eq!(serde_json::to_value(&a.as_slice()[0]).unwrap(), json!({"url": "https://example.com/doc.pdf"}));
    }

    #[test]
    fn objects_keep_their_metadata() {
        let v = json!({"url": "http://x.io/a.png", "type": "image/png", "name": "a.png", "size": 12});
        let a = Attachments::parse(vec![v.clone()], 10).unwrap();
        assert_eq!(serde_json::to_value(&a.as_slice()[0]).unwrap(), v);
    }

    #[test]
    fn only_http_and_https_urls_pass() {
        for bad in [
            "javascript:alert(1)",
            "file:///etc/passwd",
            "ftp://x.io/a",
            "not a url",
            "https://",
            "https://x.io/a\0",
            " https://x.io",
        ] {
            assert!(Attachments::parse(vec![json!(bad)], 10).is_err(), "{bad}");
        }
        assert!(Attachments::parse(vec![json!(42)], 10).is_err());
        assert!(Attachments::parse(vec![json!({"url": "https://x.io", "size": -1})], 10).is_err());
    }

    #[test]
    fn count_is_limited() {
        let many = vec![json!("https://x.io/a"); 3];
        assert!(Attachments::parse(many.clone(), 3).is_ok());
        assert!(Attachments::parse(many, 2).is_err());
    }
}
