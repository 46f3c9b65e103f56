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
use crate::domain::UserId;

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

    /// The connection's whole life, from the greeting to the close frame: spawn it.
    pub fn accept<G: Gatekeeper>(
        &self,
        ws: actix_ws::Session,
        stream: Frames,
        gate: G,
        cfg: SessionConfig,
        peer: Peer,
        shutdown: CancellationToken,
    ) -> impl Future<Output = ()> + use<G> {
        let layer =
            session::Layer { hub: self.hub.clone(), presence: self.presence.clone(), fanout: self.fanout.clone() };
        session::run(ws, stream, layer, gate, cfg, peer, shutdown)
    }

    /// For each of `users`, whether they have an open connection anywhere (REST presence).
    pub async fn online_among(&self, users: &[UserId]) -> Vec<bool> {
        self.presence.online_among(users).await
    }
}
