//! What the OpenAPI document says of request values, in one place. utoipa's attributes
//! take only literal patterns, so the rules are applied to the generated document here,
//! each next to the parse function it mirrors: a client (or a fuzzer) can tell from the
//! document alone what the server accepts and what it refuses.

use serde_json::{Value, json};

/// `UserId::parse`: 1-128 characters of `[A-Za-z0-9._@:-]`.
const USER_ID: &str = r"^[A-Za-z0-9._@:-]{1,128}$";
/// `ChatId::parse`.
const CHAT_ID: &str = r"^chat_[0-9a-f]{32}$";
/// `MessageId::parse`.
const MESSAGE_ID: &str = r"^msg_[0-9a-f]{32}$";
/// Something visible (not only Unicode `White_Space`, which `str::trim` removes) and no
/// NUL: `MessageContent::parse`, `ChatName::parse`.
const VISIBLE_TEXT: &str = "^[^\\u0000]*[^\\u0000\\t\\n\\u000B\\f\\r \\u0085\\u00A0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000][^\\u0000]*$";
/// No NUL anywhere: content may be empty when the message has attachments.
const NO_NUL: &str = "^[^\\u0000]*$";
/// `ClientMessageId::parse`: no control character (Unicode `Cc`).
const NO_CONTROL: &str = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$";
/// `check_url`, conservatively: http(s), a host whose last label starts with a letter (a
/// numeric one would be read as an IPv4 address), an optional port, then no whitespace
/// or control character.
const HTTP_URL: &str = "^https?://([A-Za-z0-9-]+\\.)*[A-Za-z][A-Za-z0-9-]*(:[0-9]{1,4})?(/[^\\u0000-\\u0020\\u007F-\\u00A0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000]*)?$";
/// `chats::parse_cursor`: `<updated_at millis>.<chat id>`.
const CHAT_CURSOR: &str = r"^-?[0-9]{1,18}\.chat_[0-9a-f]{32}$";
/// `Participants::parse`: the caller plus at most 999 others.
const MAX_OTHERS: usize = 999;
const I64_MAX: i64 = i64::MAX;

/// Applies every rule; returns the places that were not in the document (a renamed field
/// would otherwise lose its rule silently: a unit test asserts there are none).
pub fn constrain(doc: &mut Value) -> Vec<String> {
    let mut missing = Vec::new();
    let user_ids =
        |most: usize| json!({"type": "array", "maxItems": most, "items": {"type": "string", "pattern": USER_ID}});
    let schemas: [(&str, &str, Value); 10] = [
        ("CreateChat", "participants", user_ids(MAX_OTHERS)),
        ("CreateChat", "name", json!({"minLength": 1, "maxLength": 200, "pattern": VISIBLE_TEXT})),
        ("AddParticipants", "userIds", user_ids(super::participants::MAX_ADDED_AT_ONCE)),
        ("EditMessage", "content", json!({"minLength": 1, "maxLength": 10_000, "pattern": VISIBLE_TEXT})),
        ("PostMessage", "content", json!({"maxLength": 10_000, "pattern": NO_NUL})),
        ("PostMessage", "attachments", json!({"maxItems": 10})),
        ("PostMessage", "replyTo", json!({"pattern": MESSAGE_ID})),
        ("PostMessage", "clientMessageId", json!({"minLength": 1, "maxLength": 128, "pattern": NO_CONTROL})),
        ("Attachment", "url", json!({"maxLength": 2048, "pattern": HTTP_URL})),
        ("DevTokenRequest", "userId", json!({"pattern": USER_ID})),
    ];
    for (schema, field, rule) in schemas {
        match doc.pointer_mut(&format!("/components/schemas/{schema}/properties/{field}")) {
            Some(target) => merge(target, rule),
            None => missing.push(format!("{schema}.{field}")),
        }
    }
    for (schema, field) in [("Attachment", "name"), ("Attachment", "type")] {
        match doc.pointer_mut(&format!("/components/schemas/{schema}/properties/{field}")) {
            Some(target) => merge(target, json!({"maxLength": 255, "pattern": NO_NUL})),
            None => missing.push(format!("{schema}.{field}")),
        }
    }
    let schemas = &mut doc["components"]["schemas"];
    // `MessageContent::parse`: text with something visible, or at least one attachment.
    schemas["PostMessage"]["anyOf"] = json!([
        {"required": ["content"], "properties": {"content": {"type": "string", "pattern": VISIBLE_TEXT}}},
        {"required": ["attachments"], "properties": {"attachments": {"type": "array", "minItems": 1}}},
    ]);
    // `Attachments::parse`: a plain URL string is a URL too.
    schemas["AttachmentInput"]["oneOf"][0] = json!({"type": "string", "maxLength": 2048, "pattern": HTTP_URL});
    schemas["Attachment"]["properties"]["size"]["maximum"] = json!(u64::MAX);
    // `MarkRead`: exactly one of the two, nothing else.
    schemas["MarkRead"] = json!({
        "description": "Exactly one of `seq` and `messageId`.",
        "oneOf": [
            {"type": "object", "required": ["seq"], "additionalProperties": false,
                "properties": {"seq": {"type": "integer", "format": "int64", "minimum": 0, "maximum": I64_MAX}}},
            {"type": "object", "required": ["messageId"], "additionalProperties": false,
                "properties": {"messageId": {"type": "string", "pattern": MESSAGE_ID}}},
        ],
    });
    constrain_parameters(doc);
    missing
}

/// Path ids have their shapes; paging parameters their ranges.
fn constrain_parameters(doc: &mut Value) {
    let Some(paths) = doc["paths"].as_object_mut() else { return };
    for (path, item) in paths.iter_mut() {
        let most = if path.ends_with("/messages") { 200 } else { 100 };
        for op in item.as_object_mut().into_iter().flat_map(|ops| ops.values_mut()) {
            // `get_mut`: indexing would add `"parameters": null` where there are none.
            let params = op.get_mut("parameters").and_then(Value::as_array_mut);
            for param in params.into_iter().flatten() {
                let rule = match param["name"].as_str() {
                    Some("chat_id") => json!({"pattern": CHAT_ID}),
                    Some("message_id") => json!({"pattern": MESSAGE_ID}),
                    Some("user_id") => json!({"pattern": USER_ID}),
                    Some("limit") => json!({"minimum": 1, "maximum": most}),
                    Some("before" | "after") if param["schema"]["type"] == "integer" => json!({"minimum": 0}),
                    // `parse_cursor`: the `nextCursor` of a chat list page.
                    Some("before") => json!({"pattern": CHAT_CURSOR}),
                    _ => continue,
                };
                merge(&mut param["schema"], rule);
            }
        }
    }
}

fn merge(target: &mut Value, rule: Value) {
    if let (Some(target), Value::Object(rule)) = (target.as_object_mut(), rule) {
        target.extend(rule);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_rule_finds_its_place_in_the_document() {
        let mut doc = serde_json::to_value(<super::super::ApiDoc as utoipa::OpenApi>::openapi()).unwrap();
        assert_eq!(super::constrain(&mut doc), Vec::<String>::new());
    }
}
