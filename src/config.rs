//! One `Settings` struct. Sources, lowest to highest priority: built-in defaults,
//! an optional TOML file (`--config` / `MISSIVE_CONFIG`), `DATABASE_URL`,
//! `MISSIVE_*` environment variables, then command-line flags.

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Listen address, `127.0.0.1:4000` by default (loopback: safe for dev auth).
    pub bind: String,
    /// `postgres://…` selects PostgreSQL; anything else is a SQLite path or `sqlite://` URL.
    /// Unset means `<data_dir>/missive.db`.
    pub database_url: Option<String>,
    /// Holds the SQLite file and the dev-auth secret.
    pub data_dir: PathBuf,
    /// HS256 secret, at least 32 bytes.
    pub jwt_secret: Option<String>,
    /// PEM file with an EdDSA, ES256 or RS256 public key.
    pub jwt_public_key: Option<PathBuf>,
    /// Pins the algorithm for `jwt_public_key` (`EdDSA`, `ES256`, `RS256`); inferred from the key when unset.
    pub jwt_algorithm: Option<String>,
    pub jwt_issuer: Option<String>,
    pub jwt_audience: Option<String>,
    /// Comma-separated exact `Origin` values allowed to open a WebSocket.
    pub allowed_origins: Option<String>,
    /// Serves `/metrics` on this address instead of `bind` (where it then answers 404):
    /// a port the scraper reaches and the public does not.
    pub metrics_bind: Option<String>,
    /// `redis://…` turns cluster mode on: every node shares this Redis and one PostgreSQL
    /// database (docs/cluster.md).
    pub redis_url: Option<String>,
    /// Cluster mode: each node's heartbeat on the broker (loss of the last envelope is
    /// noticed within it) and presence lease renewal.
    pub cluster_heartbeat_ms: u64,
    /// Cluster mode: how long a gap in a chat's messages is waited out before the missing
    /// ones are read from the database.
    pub cluster_gap_wait_ms: u64,
    /// Cluster mode: a node silent this long is dead; its users are announced offline.
    pub cluster_node_timeout_ms: u64,
    /// `text` (default) or `json`.
    pub log_format: String,
    /// HTTP worker threads; defaults to the number of cores.
    pub workers: Option<usize>,
    /// Server ping interval; a connection silent for three intervals is closed.
    pub heartbeat_interval_ms: u64,
    /// A typing indicator lapses (server pushes `isTyping: false`) after this much quiet.
    pub typing_timeout_ms: u64,
    /// Presence changes (`user-online`, `user-offline`) a connection gets within this
    /// window are written together, at its end or with the next other frame (0: at once).
    pub presence_batch_ms: u64,
    /// Events queued per connection before it counts as a slow consumer (closed with 4009).
    pub outbox_capacity: usize,
    /// Most missed messages one `join-chat` replays; past it the client pages over REST.
    pub replay_limit: usize,
    /// Most bytes of frames one `join-chat` replays; past it the client pages over REST.
    pub replay_max_bytes: usize,
    /// Largest WebSocket frame accepted from a client (close 1009 above it).
    pub max_frame_bytes: usize,
    /// Largest REST body accepted (413 above it).
    pub max_body_bytes: usize,
    pub max_message_chars: usize,
    pub max_attachments: usize,
    /// Messages a user may post per second, sustained, and back to back (429 beyond).
    pub post_rate_per_sec: u32,
    pub post_rate_burst: u32,
    /// Typing calls per user per second, sustained, and back to back (429 beyond).
    pub typing_rate_per_sec: u32,
    pub typing_rate_burst: u32,
    /// Read-marker moves per user.
    pub read_rate_per_sec: u32,
    pub read_rate_burst: u32,
    /// Edits and deletes per user.
    pub edit_rate_per_sec: u32,
    pub edit_rate_burst: u32,
    /// Chat creations and participant changes per user.
    pub membership_rate_per_sec: u32,
    pub membership_rate_burst: u32,
    /// Frames a connection may send per second, sustained, and back to back. Beyond it
    /// each frame gets a `rate_limited` error; `ws_abuse_limit` more close it with 4008.
    pub ws_rate_per_sec: u32,
    pub ws_rate_burst: u32,
    pub ws_abuse_limit: u32,
    /// Open WebSockets per user on this node (close 4029 beyond).
    pub max_connections_per_user: usize,
    /// Connections in the pool (PostgreSQL) or readers (SQLite, which has one writer).
    pub db_pool_size: usize,
    /// How long a request waits for a database connection before answering 503.
    pub db_timeout_ms: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1:4000".into(),
            database_url: None,
            data_dir: PathBuf::from("data"),
            jwt_secret: None,
            jwt_public_key: None,
            jwt_algorithm: None,
            jwt_issuer: None,
            jwt_audience: None,
            allowed_origins: None,
            metrics_bind: None,
            redis_url: None,
            cluster_heartbeat_ms: 1_000,
            cluster_gap_wait_ms: 200,
            cluster_node_timeout_ms: 10_000,
            log_format: "text".into(),
            workers: None,
            heartbeat_interval_ms: 20_000,
            typing_timeout_ms: 6_000,
            presence_batch_ms: 500,
            outbox_capacity: 1024,
            replay_limit: 1000,
            replay_max_bytes: 2 * 1024 * 1024,
            max_frame_bytes: 64 * 1024,
            max_body_bytes: 256 * 1024,
            max_message_chars: 10_000,
            post_rate_per_sec: 20,
            post_rate_burst: 50,
            typing_rate_per_sec: 5,
            typing_rate_burst: 20,
            read_rate_per_sec: 20,
            read_rate_burst: 50,
            edit_rate_per_sec: 10,
            edit_rate_burst: 30,
            membership_rate_per_sec: 5,
            membership_rate_burst: 30,
            ws_rate_per_sec: 20,
            ws_rate_burst: 50,
            ws_abuse_limit: 20,
            max_connections_per_user: 16,
            max_attachments: 10,
            db_pool_size: 8,
            db_timeout_ms: 5_000,
        }
    }
}

/// Which database a URL selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseKind {
    Postgres(String),
    /// A file path (SQLite creates it).
    Sqlite(PathBuf),
}

impl Settings {
    /// Reads every source. `overrides` are the command-line flags that were given.
    pub fn load(config_file: Option<&Path>, overrides: impl Serialize) -> Result<Self, Box<figment::Error>> {
        let mut fig = Figment::from(Serialized::defaults(Settings::default()));
        let file = config_file.map(Path::to_path_buf).or_else(|| std::env::var_os("MISSIVE_CONFIG").map(PathBuf::from));
        if let Some(file) = file {
            fig = fig.merge(Toml::file_exact(file));
        }
        fig.merge(Env::raw().only(&["DATABASE_URL"]))
            .merge(Env::prefixed("MISSIVE_").ignore(&["CONFIG"]))
            .merge(Serialized::defaults(overrides))
            .extract()
            .map_err(Box::new)
    }

    pub fn database(&self) -> DatabaseKind {
        match self.database_url.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                DatabaseKind::Postgres(url.to_owned())
            }
            Some(url) => {
                let path = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")).unwrap_or(url);
                DatabaseKind::Sqlite(PathBuf::from(path))
            }
            None => DatabaseKind::Sqlite(self.data_dir.join("missive.db")),
        }
    }

    pub fn allowed_origins(&self) -> Vec<String> {
        self.allowed_origins
            .as_deref()
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls_select_the_backend() {
        let mut s = Settings::default();
        assert_eq!(s.database(), DatabaseKind::Sqlite(PathBuf::from("data/missive.db")));
        s.database_url = Some("postgres://u@h/db".into());
        assert!(matches!(s.database(), DatabaseKind::Postgres(_)));
        s.database_url = Some("sqlite:///tmp/x.db".into());
        assert_eq!(s.database(), DatabaseKind::Sqlite(PathBuf::from("/tmp/x.db")));
        s.database_url = Some("chat.db".into());
        assert_eq!(s.database(), DatabaseKind::Sqlite(PathBuf::from("chat.db")));
    }

    #[test]
    fn origins_are_split_and_trimmed() {
        let s = Settings { allowed_origins: Some(" https://a.io, https://b.io ,".into()), ..Default::default() };
        assert_eq!(s.allowed_origins(), ["https://a.io", "https://b.io"]);
    }
}
