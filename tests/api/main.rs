//! One integration-test binary: a real server per test on an ephemeral port, a real
//! database (SQLite file or fresh PostgreSQL database), real HTTP and WebSocket clients.

mod helpers;
mod process;
mod raw_ws;

mod asyncapi;
mod auth;
mod chats;
mod churn;
mod concurrency;
mod demo;
mod edits_membership;
mod fanout;
mod faults;
mod hostile;
mod lifecycle;
mod limits;
mod messages;
mod observability;
mod openapi;
mod origin_tokens;
mod read_state;
mod resume;
mod security_auth;
mod security_limits;
mod security_memory;
mod security_scope;
mod slow_consumer;
mod transport;
mod typing_presence;
mod websocket;
mod ws_frames;
