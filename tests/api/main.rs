//! One integration-test binary: a real server per test on an ephemeral port, a real
//! database (SQLite file or fresh PostgreSQL database), real HTTP and WebSocket clients.

mod helpers;

mod auth;
mod chats;
mod concurrency;
mod edits_membership;
mod fanout;
mod faults;
mod lifecycle;
mod messages;
mod read_state;
mod typing_presence;
mod websocket;
