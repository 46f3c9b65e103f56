//! Building and running the application. Tests start this very code on port 0.

use actix_web::dev::{Server, ServerHandle, Service};
use actix_web::middleware::DefaultHeaders;
use actix_web::{App, HttpServer, web};
use std::future::Future;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::Auth;
use crate::cluster;
use crate::config::{DatabaseKind, Settings};
use crate::db::{self, Db};
use crate::domain::ChatId;
use crate::limits::Limits;
use crate::limits::SharedRates;
use crate::posting::Poster;
use crate::realtime::{
    Fanout, Hub, LocalFanout, LocalPresence, MembersOf, Presence, Publisher, Sockets, Typing, WithMembers,
};
use crate::routes;
use crate::state::AppState;
use crate::writes::{ChatOrder, Writes};

pub type StartupError = Box<dyn std::error::Error + Send + Sync>;

/// How long sockets get to send their 1001 close frames before the server stops.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

pub struct Application {
    addr: std::net::SocketAddr,
    server: Server,
    /// The operations listener (`metrics_bind`), when configured: already serving.
    operations: Option<(std::net::SocketAddr, ServerHandle)>,
    state: web::Data<AppState>,
}

impl Application {
    /// Migrates the database, binds the listener and starts the workers.
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        let settings = Arc::new(settings);
        crate::telemetry::metrics();
        let auth = Arc::new(Auth::from_settings(&settings)?);
        let listener =
            TcpListener::bind(&settings.bind).map_err(|e| format!("cannot listen on {}: {e}", settings.bind))?;
        let addr = listener.local_addr()?;
        refuse_public_dev_auth(&auth, addr)?;
        let cluster_url = settings.redis_url.as_deref().map(str::trim).filter(|u| !u.is_empty());
        if cluster_url.is_some() && !matches!(settings.database(), DatabaseKind::Postgres(_)) {
            return Err("cluster mode (MISSIVE_REDIS_URL) needs PostgreSQL: every node must share one database; \
                set MISSIVE_DATABASE_URL to a postgres:// URL"
                .into());
        }
        let db = open_database(&settings).await?;
        let hub = Arc::new(Hub::new());
        let cluster = cluster_url
            .map(|url| {
                let timing = cluster::Timing {
                    heartbeat: Duration::from_millis(settings.cluster_heartbeat_ms.max(10)),
                    gap_wait: Duration::from_millis(settings.cluster_gap_wait_ms),
                };
                let lease = Duration::from_millis(settings.cluster_node_timeout_ms.max(100));
                let typing_window = Duration::from_millis(settings.typing_timeout_ms);
                cluster::Cluster::new(url, db.clone(), hub.clone(), timing, lease, typing_window)
            })
            .transpose()?;
        let (fanout, presence): (Arc<dyn Fanout>, Arc<dyn Presence>) = match &cluster {
            Some(c) => (Arc::new(c.fanout.clone()), c.presence.clone()),
            None => (Arc::new(LocalFanout::new(hub.clone())), Arc::new(LocalPresence::new(hub.clone()))),
        };
        let publisher = Publisher::new(fanout.clone());
        let sockets = Sockets::new(hub, presence, fanout);
        let typing =
            Typing::new(publisher.clone(), members_of(db.clone()), Duration::from_millis(settings.typing_timeout_ms));
        if let Some(cluster) = &cluster {
            cluster.fanout.end_typing_on_evict(&typing);
        }
        let shutdown = CancellationToken::new();
        let handles = cluster.as_ref().map(cluster::Cluster::handles);
        let shared_rates = cluster.as_ref().map(|c| c.rates.clone() as Arc<dyn SharedRates>);
        if let Some(cluster) = cluster {
            let (db, publisher, typing) = (db.clone(), publisher.clone(), typing.clone());
            let announce: cluster::Announce = Arc::new(move |user, seen| {
                let (db, publisher, typing) = (db.clone(), publisher.clone(), typing.clone());
                Box::pin(async move {
                    match seen {
                        cluster::Seen::Offline(at) => {
                            crate::announce::offline(&db, &publisher, &typing, &user, at).await;
                        }
                        cluster::Seen::Online => {
                            crate::announce::online(&db, &publisher, &user, crate::domain::now_millis()).await;
                        }
                    }
                })
            });
            cluster.start(announce, shutdown.clone());
        }
        // SQLite has one writer connection. PostgreSQL could commit on several, but fewer
        // writers make bigger batches, and a batch costs about the same few round trips
        // whatever its size: two writers (one filling while the other commits) acknowledged
        // more than four at 64 senders (BENCHMARKS.md). Half the pool at most, for reads.
        let writers = if matches!(db, Db::Sqlite { .. }) { 1 } else { (settings.db_pool_size / 2).clamp(1, 2) };
        let order = Arc::new(ChatOrder::default());
        let poster =
            Poster::start(db.clone(), publisher.clone(), order.clone(), writers, &tokio::runtime::Handle::current())?;
        let writes = Writes::new(order, publisher.clone(), typing.clone());
        let state = web::Data::new(AppState {
            db,
            poster,
            publisher,
            sockets,
            writes,
            typing,
            limits: Limits::new(&settings, shared_rates),
            auth,
            settings: settings.clone(),
            cluster: handles,
            shutdown,
            sessions: TaskTracker::new(),
        });
        let app_state = state.clone();
        let max_body = settings.max_body_bytes;
        let mut server = HttpServer::new(move || {
            App::new()
                .app_data(app_state.clone())
                .app_data(web::Data::from(app_state.auth.clone()))
                .wrap(DefaultHeaders::new().add(("X-Content-Type-Options", "nosniff")))
                .wrap_fn(|req, srv| {
                    let started = Instant::now();
                    let method = req.method().clone();
                    let path = req.path().to_owned();
                    let call = srv.call(req);
                    async move {
                        let res = call.await?;
                        let route = crate::telemetry::route_label(res.request().match_pattern());
                        let status = res.status().as_u16();
                        let seconds = started.elapsed().as_secs_f64();
                        // The path only: query strings may carry a token.
                        tracing::info!(
                            target: "missive::access",
                            %method,
                            %path,
                            route = %route,
                            status,
                            duration_ms = seconds * 1000.0,
                        );
                        // Every label from a closed set (see `telemetry::method_label`).
                        let labels = [
                            ("route", route),
                            ("method", crate::telemetry::method_label(&method).to_owned()),
                            ("status", status.to_string()),
                        ];
                        metrics::counter!("missive_http_requests_total", &labels).increment(1);
                        metrics::histogram!("missive_http_request_duration_seconds", &labels).record(seconds);
                        Ok(res)
                    }
                })
                .configure(|cfg| routes::configure(cfg, max_body))
        })
        // Pushes are small frames written as they happen. With Nagle's algorithm a frame
        // written while the previous one is unacknowledged would wait for the client's
        // delayed ACK (40 ms or more).
        .tcp_nodelay(true)
        .listen(listener)?
        .disable_signals()
        .shutdown_timeout(2);
        if let Some(workers) = settings.workers {
            server = server.workers(workers.max(1));
        }
        spawn_pruning(state.clone());
        let operations = settings.metrics_bind.as_deref().map(operations_server).transpose()?;
        if operations.is_none() && !addr.ip().to_canonical().is_loopback() {
            tracing::warn!(
                %addr,
                "/metrics is served on a non-loopback address: set MISSIVE_METRICS_BIND to move it to a private \
                 listener, or block it at your proxy"
            );
        }
        Ok(Self { addr, server: server.run(), operations, state })
    }

    /// Where `/metrics` is served when `metrics_bind` is set.
    pub fn metrics_addr(&self) -> Option<std::net::SocketAddr> {
        self.operations.as_ref().map(|(addr, _)| *addr)
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn local_addr(&self) -> std::net::SocketAddr {
        self.addr
    }

    pub fn describe_auth(&self) -> &str {
        self.state.auth.describe()
    }

    pub fn is_dev_auth(&self) -> bool {
        self.state.auth.is_dev()
    }

    pub fn database_backend(&self) -> &'static str {
        self.state.db.backend_name()
    }

    /// Serves until `stop` resolves, then closes every WebSocket with 1001 and stops.
    pub async fn run_until_stopped(self, stop: impl Future<Output = ()>) -> std::io::Result<()> {
        let handle = self.server.handle();
        let mut server = self.server;
        tokio::select! {
            result = &mut server => return result,
            () = stop => {}
        }
        if let Some((_, operations)) = &self.operations {
            operations.stop(true).await;
        }
        tracing::info!("shutting down: closing WebSockets with 1001");
        self.state.shutdown.cancel();
        // Each session ends once its close frame is sent (or its grace runs out).
        self.state.sessions.close();
        if tokio::time::timeout(CLOSE_GRACE, self.state.sessions.wait()).await.is_err() {
            tracing::warn!(left = self.state.sessions.len(), "some sockets did not close in time");
        }
        // The server handles the stop command only while it is polled: drive both.
        let ((), result) = tokio::join!(handle.stop(true), server);
        result
    }
}

/// Rate-limit state is kept per user; users whose allowance is full again are forgotten
/// every minute, so memory follows active users only.
fn spawn_pruning(state: web::Data<AppState>) {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(Duration::from_secs(60));
        loop {
            tokio::select! {
                _ = state.shutdown.cancelled() => return,
                _ = ticks.tick() => state.limits.prune(),
            }
        }
    });
}

/// A small listener for `/metrics` alone (one worker: a scrape is a few per minute),
/// running from now on; stopped by `run_until_stopped`.
fn operations_server(bind: &str) -> Result<(std::net::SocketAddr, ServerHandle), StartupError> {
    let listener = TcpListener::bind(bind).map_err(|e| format!("cannot listen on {bind} (metrics): {e}"))?;
    let addr = listener.local_addr()?;
    let server = HttpServer::new(|| App::new().configure(routes::configure_operations))
        .listen(listener)?
        .workers(1)
        .disable_signals()
        .shutdown_timeout(1)
        .run();
    let handle = server.handle();
    // A server handles its stop command only while polled: it runs as a task of its own.
    tokio::spawn(server);
    Ok((addr, handle))
}

/// Dev auth signs tokens with a secret nobody configured and `POST /dev/token` trusts
/// loopback callers: fine on a developer's machine, never on an address others reach.
/// Refusing to start is the safe choice (a warning scrolls away in a container's logs).
fn refuse_public_dev_auth(auth: &Auth, addr: std::net::SocketAddr) -> Result<(), StartupError> {
    if auth.is_dev() && !addr.ip().to_canonical().is_loopback() {
        return Err(format!(
            "refusing to serve dev auth on {addr}: anyone who can reach that address would talk to a server whose \
             tokens are signed by a generated secret. Set MISSIVE_JWT_SECRET or MISSIVE_JWT_PUBLIC_KEY, or bind a \
             loopback address (127.0.0.1)"
        )
        .into());
    }
    Ok(())
}

async fn open_database(settings: &Settings) -> Result<Db, StartupError> {
    let (url, postgres) = match settings.database() {
        DatabaseKind::Postgres(url) => (url, true),
        DatabaseKind::Sqlite(path) => {
            crate::private_fs::prepare_sqlite_file(&path)
                .map_err(|e| format!("cannot prepare {}: {e}", path.display()))?;
            (path.to_string_lossy().into_owned(), false)
        }
    };
    let applied = db::run_migrations(url.clone(), postgres).await.map_err(|e| format!("migrations failed: {e}"))?;
    let opts = db::pool::PoolOptions {
        size: settings.db_pool_size.max(1),
        timeout: Duration::from_millis(settings.db_timeout_ms),
        runtime: tokio::runtime::Handle::current(),
    };
    let db = db::connect(&url, postgres, opts).await?;
    let shown = if postgres { redact(&url) } else { url };
    tracing::info!(backend = db.backend_name(), database = %shown, migrations_applied = applied, "database ready");
    Ok(db)
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch SIGTERM; Ctrl-C only");
            let _ = ctrl_c.await;
            return;
        }
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
}

/// The members of a chat, for typing frames. On PostgreSQL the callback runs in the
/// transaction that share-locks the chat's row (as an edit does), so a removal through
/// another node commits wholly before the read or after the push. SQLite has one node,
/// where a removal's eviction is local and at once: a plain read is enough.
fn members_of(db: Db) -> MembersOf {
    Arc::new(move |chat: ChatId, then: WithMembers| {
        let db = db.clone();
        Box::pin(async move {
            let then = std::sync::Mutex::new(Some(then));
            let run = |members| {
                if let Some(f) = then.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take() {
                    f(members);
                }
            };
            let read = match db {
                Db::Postgres(_) => {
                    db.write(async |c| {
                        db::chats::lock(c, &chat, db::ChatLock::Reader).await?;
                        run(Some(db::members::of_chat(c, &chat).await?));
                        Ok::<_, db::DbError>(())
                    })
                    .await
                }
                Db::Sqlite { .. } => {
                    db.read(async |c| db::members::of_chat(c, &chat).await).await.map(|m| run(Some(m)))
                }
            };
            if let Err(e) = read {
                tracing::warn!(error = %e, %chat, "typing: cannot read the chat's members");
                run(None);
            }
        })
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_are_redacted() {
        assert_eq!(super::redact("postgres://u:pw@h:5432/db"), "postgres://u:***@h:5432/db");
        assert_eq!(super::redact("postgres://h/db"), "postgres://h/db");
    }
}
