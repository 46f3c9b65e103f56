//! Missive: REST for actions, WebSocket for push.
//!
//! A request flows `routes` (URL table, one file per resource) → `auth` (who is calling)
//! → `domain` (parse the body into validated types) → `writes::Writes` (the chat's order
//! stripe, the `db` work, then the effects it returned; `posting` is its batched form for
//! messages) → `realtime::Publisher` (only after commit; encodes once) → `realtime::Fanout`
//! (the seam: `LocalFanout` over this node's `realtime::Hub`, the registry of sockets;
//! evictions too) → each connection's bounded outbox → `realtime::session` (one task per
//! socket, framing by `realtime::wire`). The socket route hands each new connection to
//! `realtime::Sockets`, whose `Presence` seam says who is online (this node, or the cluster).
//! Query functions in `db` take a borrowed `db::Conn`, so a handler composes them in one
//! transaction (`Db::write`). In cluster mode (`MISSIVE_REDIS_URL`), `cluster` provides the
//! fan-out (a Redis broker, with `realtime::sequencer` ordering each chat), the presence
//! and the shared rate limits behind the same seams (docs/cluster.md).
//!
//! Dependency direction (no cycles): routes and the application modules (`posting`,
//! `views`, `state`, `startup`, `announce`, `cluster`) use auth, db, realtime and domain;
//! `realtime` imports only `domain` (its wire types, `protocol::resources`, are built from
//! rows by `views`); `db` imports only `domain`; `auth` takes its verifier as `web::Data<Auth>`, not the
//! application state; `domain` imports nothing from the crate.

pub mod announce;
pub mod auth;
pub mod cluster;
pub mod config;
pub mod db;
pub mod domain;
pub mod error;
pub mod limits;
pub mod posting;
pub mod private_fs;
pub mod realtime;
pub mod routes;
pub mod startup;
pub mod state;
pub mod telemetry;
pub mod views;
pub mod writes;
