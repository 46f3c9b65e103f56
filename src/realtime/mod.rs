//! Push. `protocol` is the WebSocket contract as types, `hub` the registry of open
//! connections and their subscriptions, `publisher` the one entry point through which
//! committed changes become events (handed to a `fanout`), `sockets` the one entry point
//! for new connections and presence (behind the `presence` seam), `session` the task that
//! reads one socket and runs its commands, `writer` the body that writes to it (events
//! from the outbox, the session's replies), `wire` the framing every socket shares
//! (limits, reassembly, close codes).
//!
//! Nothing here touches the database: what a session needs to know about chats it asks
//! through the `Gatekeeper` trait, implemented by the routes layer.

mod commands;
pub mod fanout;
pub mod hub;
pub mod presence;
pub mod protocol;
pub mod publisher;
pub mod sequencer;
pub mod session;
pub mod sockets;
pub mod typing;
pub mod wire;
pub mod writer;

pub use fanout::{Fanout, LocalFanout};
pub use hub::{ConnHandle, Hub, Outbound};
pub use presence::{LocalPresence, Opened, Presence};
pub use publisher::{Audience, Publisher};
pub use session::{Gatekeeper, ReplayPage, SessionConfig};
pub use sockets::{Peer, Sockets};
pub use typing::{MembersOf, Typing, WithMembers};
