//! docs/asyncapi.yaml cannot drift from the code: every example is parsed through the
//! real protocol types and validated against the document's own schemas, and every
//! frame the code knows is documented.

use serde_json::Value;
use std::collections::BTreeSet;

use missive::realtime::protocol::{ClientCommand, ClientFrame, ServerEvent};

fn document() -> Value {
    let yaml = include_str!("../../docs/asyncapi.yaml");
    serde_saphyr::from_str(yaml).expect("docs/asyncapi.yaml is valid YAML")
}

/// Validates `payload` against `schema`, resolving `#/components/...` in `doc`.
fn validate(doc: &Value, schema: &Value, payload: &Value, what: &str) {
    let mut root = schema.clone();
    root["components"] = doc["components"].clone();
    let validator = jsonschema::validator_for(&root).unwrap_or_else(|e| panic!("schema of {what}: {e}"));
    let errors: Vec<String> = validator.iter_errors(payload).map(|e| format!("{e} at {}", e.instance_path())).collect();
    assert!(errors.is_empty(), "{what}: example does not match its schema: {errors:#?}");
}

#[test]
fn every_example_parses_through_the_protocol_types_and_matches_its_schema() {
    let doc = document();
    assert_eq!(doc["asyncapi"], "3.0.0");
    let (mut client, mut server) = (BTreeSet::new(), BTreeSet::new());
    for (key, message) in doc["components"]["messages"].as_object().expect("components.messages") {
        let name = message["name"].as_str().expect("a message name");
        let examples = message["examples"].as_array().filter(|e| !e.is_empty());
        for example in examples.unwrap_or_else(|| panic!("{key} has no example")) {
            let payload = &example["payload"];
            assert_eq!(payload["event"], name, "{key}: example of another event");
            validate(&doc, &message["payload"], payload, key);
            if key.starts_with("client_") {
                let frame = ClientFrame::parse(&payload.to_string())
                    .unwrap_or_else(|e| panic!("{key}: the server refuses its own example: {e:?}"));
                assert_eq!(frame.reference.as_deref(), payload["ref"].as_str());
                client.insert(name.to_owned());
            } else {
                let mut bare = payload.clone();
                bare.as_object_mut().expect("an object").remove("ref");
                let event: ServerEvent = serde_json::from_value(bare.clone())
                    .unwrap_or_else(|e| panic!("{key}: not a frame the server sends: {e}"));
                assert_eq!(event.name(), name);
                let reencoded: Value = serde_json::from_str(&event.encode()).expect("JSON");
                assert_eq!(reencoded, bare, "{key}: the server would send this example differently");
                server.insert(name.to_owned());
            }
        }
    }
    let expected_client: BTreeSet<String> = ClientCommand::EVENTS.iter().map(|s| s.to_string()).collect();
    let expected_server: BTreeSet<String> = ServerEvent::EVENTS.iter().map(|s| s.to_string()).collect();
    assert_eq!(client, expected_client, "client frames documented vs. understood");
    assert_eq!(server, expected_server, "server frames documented vs. sent");
}

#[test]
fn every_message_is_used_by_an_operation_in_the_right_direction() {
    let doc = document();
    let mut used = BTreeSet::new();
    for (name, op) in doc["operations"].as_object().expect("operations") {
        let action = op["action"].as_str().expect("action");
        for m in op["messages"].as_array().expect("messages") {
            let key = m["$ref"].as_str().expect("$ref").rsplit('/').next().expect("key").to_owned();
            let expected = if key.starts_with("client_") { "receive" } else { "send" };
            assert_eq!(action, expected, "{name} uses {key}");
            used.insert(key);
        }
    }
    let all: BTreeSet<String> = doc["components"]["messages"].as_object().unwrap().keys().cloned().collect();
    assert_eq!(used, all);
}
