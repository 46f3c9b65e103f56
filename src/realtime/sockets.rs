//! The push layer's front door for connections: the socket route hands each upgraded
//! connection here, and REST presence asks here. Behind it, the hub (this node's
//! registry) and the `Presence` seam (this node, or the cluster).

use std::future::Future;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

use super::fanout::Fanout;
use super::hub::Hub;
use super::presence::Presence;
use super::session::{self, Gatekeeper, SessionConfig};
use super::wire::Frames;
use super::writer::Writer;
use crate::domain::UserId;
use actix_web::body::BoxBody;

/// Cheap to clone.
#[derive(Clone)]
pub struct Sockets {
    hub: Arc<Hub>,
    presence: Arc<dyn Presence>,
    fanout: Arc<dyn Fanout>,
}

/// Who the connection is, as the upgrade authenticated it.
pub struct Peer {
    pub user: UserId,
    /// Token expiry, Unix seconds.
    pub expires_at: u64,
}

impl Sockets {
    pub fn new(hub: Arc<Hub>, presence: Arc<dyn Presence>, fanout: Arc<dyn Fanout>) -> Self {
        Self { hub, presence, fanout }
    }

    /// A new connection: its writer (the upgrade's response body) and its session, the
    /// connection's whole life from the greeting to the close frame (spawn it).
    /// `inbound` is actix-ws's response body, kept (unpolled) by the writer: when the
    /// connection ends it is dropped, which ends `stream`.
    pub fn accept<G: Gatekeeper>(
        &self,
        stream: Frames,
        inbound: BoxBody,
        gate: G,
        cfg: SessionConfig,
        peer: Peer,
        shutdown: CancellationToken,
    ) -> (Writer, impl Future<Output = ()> + use<G>) {
        let layer =
            session::Layer { hub: self.hub.clone(), presence: self.presence.clone(), fanout: self.fanout.clone() };
        session::open(stream, inbound, layer, gate, cfg, peer, shutdown)
    }

    /// For each of `users`, whether they have an open connection anywhere (REST presence).
    pub async fn online_among(&self, users: &[UserId]) -> Vec<bool> {
        self.presence.online_among(users).await
    }
}
