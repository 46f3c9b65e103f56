//! No frame of a chat reaches a connection that is not a confirmed member of it: not an
//! outsider who knows the chat id, not a removed participant, however fast they loop
//! `join-chat` while the members edit, delete, read, type and change membership.

use actix_web::http::StatusCode;
use futures_util::future::join_all;
use serde_json::{Value, json};
use std::cell::Cell;
use std::rc::Rc;

use crate::helpers::{Backend, Incoming, TestApp, WsClient, lift_rate_limits, spawn_app_with};

crate::both_backends!(outsiders_and_removed_participants_looping_join_chat_never_see_a_frame_of_it);

/// Attacking sockets per user (two users: an outsider and a removed participant).
const SOCKETS_PER_ATTACKER: usize = 6;
/// Rounds of member activity; each round makes about ten chat-scoped frames.
const ROUNDS: usize = 60;

/// Every limit this test would otherwise hit lifted: it is about scope, not rates.
fn unlimited(s: &mut missive::config::Settings) {
    lift_rate_limits(s);
    s.typing_timeout_ms = 50;
}

async fn outsiders_and_removed_participants_looping_join_chat_never_see_a_frame_of_it(backend: Backend) {
    let app = spawn_app_with(backend, unlimited).await;
    let chat = app.create_chat("alice", &["bob", "carol"]).await;
    let mut bob = app.ws("bob").await;
    bob.join(&chat).await;
    // Carol was a member with a joined socket; she is removed before the attack starts,
    // and that socket (which once had the chat) attacks too.
    let mut carol_before = app.ws("carol").await;
    carol_before.join(&chat).await;
    let (status, _) =
        app.call("DELETE", &format!("/v1/messaging/chats/{chat}/participants/carol"), Some("alice"), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(carol_before.expect("participant-removed").await["data"]["userId"], "carol");

    let stop = Rc::new(Cell::new(false));
    let mut attackers = vec![actix_web::rt::spawn(loop_join_chat(carol_before, chat.clone(), stop.clone()))];
    for user in ["mallory", "carol"] {
        for _ in 0..SOCKETS_PER_ATTACKER {
            let ws = app.ws(user).await;
            attackers.push(actix_web::rt::spawn(loop_join_chat(ws, chat.clone(), stop.clone())));
        }
    }
    let expected = members_act(&app, &chat, &mut bob).await;
    stop.set(true);
    let mut joins = 0;
    for result in join_all(attackers).await {
        let (attempts, leaked) = result.expect("attacker task");
        assert!(leaked.is_empty(), "frames of the chat reached a non-member: {leaked:#?}");
        joins += attempts;
    }
    assert!(joins > 10 * attackers_count(), "the attackers kept trying ({joins} joins)");
    // The member saw everything: the test exercised every kind of chat-scoped frame.
    for (event, count) in expected {
        assert!(count > 0, "bob received no {event}");
    }
}

fn attackers_count() -> usize {
    2 * SOCKETS_PER_ATTACKER + 1
}

/// Sends `join-chat` as fast as the replies come back until `stop`; returns how many
/// joins were tried and every frame that was not the refusal of one.
async fn loop_join_chat(mut ws: WsClient, chat: String, stop: Rc<Cell<bool>>) -> (usize, Vec<Value>) {
    let mut leaked = Vec::new();
    let mut attempts = 0;
    while !stop.get() {
        attempts += 1;
        let reference = format!("j{attempts}");
        ws.send_json(json!({"event": "join-chat", "data": {"chatId": chat}, "ref": reference})).await;
        loop {
            match ws.next_incoming().await {
                Incoming::Event(e) if e["ref"] == reference.as_str() => {
                    if !(e["event"] == "error" && e["data"]["code"] == "not_found") {
                        leaked.push(e);
                    }
                    break;
                }
                Incoming::Event(e) => leaked.push(e),
                Incoming::Closed(reason) => {
                    leaked.push(json!({"closed": format!("{reason:?}")}));
                    return (attempts, leaked);
                }
            }
        }
    }
    (attempts, leaked)
}

/// Rounds of every kind of member activity; returns how many frames of each kind bob
/// (a member, joined) received, read as they come so his outbox never fills.
async fn members_act(app: &TestApp, chat: &str, bob: &mut WsClient) -> Vec<(&'static str, usize)> {
    let kinds = [
        "new-message",
        "message-updated",
        "message-deleted",
        "message-read",
        "user-typing",
        "participant-added",
        "participant-removed",
    ];
    let mut counts = vec![0usize; kinds.len()];
    let messages = format!("/v1/messaging/chats/{chat}/messages");
    for round in 0..ROUNDS {
        let sent = app.send("alice", chat, &format!("secret {round}")).await;
        let id = sent["id"].as_str().expect("id");
        let (status, _) = app
            .call("PATCH", &format!("{messages}/{id}"), Some("alice"), Some(json!({"content": "edited secret"})))
            .await;
        assert_eq!(status, StatusCode::OK);
        let (status, _) =
            app.post(&format!("/v1/messaging/chats/{chat}/read"), "bob", json!({"seq": sent["seq"]})).await;
        assert_eq!(status, StatusCode::OK);
        let typing = format!("/v1/messaging/chats/{chat}/typing");
        app.post(&typing, "alice", json!({"isTyping": true})).await;
        let dave = format!("dave{round}");
        let (status, _) =
            app.post(&format!("/v1/messaging/chats/{chat}/participants"), "alice", json!({"userIds": [dave]})).await;
        assert_eq!(status, StatusCode::OK);
        let (status, _) =
            app.call("DELETE", &format!("/v1/messaging/chats/{chat}/participants/{dave}"), Some("alice"), None).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let (status, _) = app.call("DELETE", &format!("{messages}/{id}"), Some("alice"), None).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        // Bob reads what this round pushed (the barrier: queued events come first).
        bob.send_json(json!({"event": "ping", "data": {}, "ref": "barrier"})).await;
        loop {
            let event = bob.next_event().await;
            if event["ref"] == "barrier" {
                break;
            }
            let name = event["event"].as_str().unwrap_or("");
            if let Some(i) = kinds.iter().position(|k| *k == name) {
                counts[i] += 1;
            }
        }
    }
    kinds.into_iter().zip(counts).collect()
}
