//! Faults: the database going away and coming back, and a hard kill right after a 201.

use actix_web::http::StatusCode;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::helpers::{Backend, WAIT, admin_sql, spawn_app_with, with_database};
use crate::process::{missive, start_with, token_for};

crate::both_backends!(an_acknowledged_message_survives_sigkill,);

#[actix_web::test]
async fn with_postgres_down_posts_fail_fast_with_503_sockets_stay_up_and_it_recovers() {
    let Some(Backend::Postgres(admin)) = Backend::postgres() else {
        eprintln!("skipped: set MISSIVE_TEST_POSTGRES_URL to run the PostgreSQL tests");
        return;
    };
    let proxy = Proxy::start(host_port(&admin));
    let via_proxy = proxy.addr.to_string();
    let app = spawn_app_with(Backend::Postgres(admin.clone()), |s| {
        let url = s.database_url.take().expect("a PostgreSQL URL");
        s.database_url = Some(url.replacen(&host_port(&url), &via_proxy, 1));
        s.db_timeout_ms = 1000;
    })
    .await;
    let chat = app.create_chat("alice", &["bob"]).await;
    let mut bob = app.ws("bob").await;
    bob.join(&chat).await;
    let path = format!("/v1/messaging/chats/{chat}/messages");

    proxy.down();
    let started = Instant::now();
    let (status, body) = app.post(&path, "alice", json!({"content": "lost?"})).await;
    assert_eq!((status, body["error"].clone()), (StatusCode::SERVICE_UNAVAILABLE, json!("unavailable")), "{body}");
    assert!(started.elapsed() < Duration::from_secs(5), "no hang: {:?}", started.elapsed());
    let (status, _) = app.call("GET", "/readyz", None, None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    bob.expect_nothing_pending().await; // the socket is up and nothing was pushed

    proxy.up();
    let (status, _) = app.call("GET", "/readyz", None, None).await;
    assert_eq!(status, StatusCode::OK, "ready again without a restart");
    let sent = app.send("alice", &chat, "back").await;
    assert_eq!(sent["seq"], 1, "the failed post stored nothing");
    assert_eq!(bob.expect("new-message").await["data"]["message"], sent);
}

/// `host:port` of a `postgres://user@host:port/db` URL.
fn host_port(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    rest.split(['/', '?']).next().expect("host").to_owned()
}

async fn an_acknowledged_message_survives_sigkill(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let (url, pg) = match &backend {
        Backend::Sqlite => (dir.path().join("kill.db").to_string_lossy().into_owned(), None),
        Backend::Postgres(admin) => {
            let name = format!("missive_k_{}", uuid::Uuid::new_v4().simple());
            admin_sql(admin.clone(), format!("CREATE DATABASE {name}"));
            (with_database(admin, &name), Some((admin.clone(), name)))
        }
    };
    let token = token_for(dir.path(), "alice");
    let server = start_with(with_db(dir.path(), &url));
    let client = awc::Client::builder().timeout(WAIT).finish();
    let base = format!("http://{}/v1/messaging/chats", server.addr);
    let mut res = client.post(&base).bearer_auth(&token).send_json(&json!({"participants": ["bob"]})).await.unwrap();
    let chat: Value = res.json().await.unwrap();
    let chat = chat["id"].as_str().unwrap().to_owned();
    let mut acknowledged = Vec::new();
    for i in 0..20 {
        let mut res = client
            .post(format!("{base}/{chat}/messages"))
            .bearer_auth(&token)
            .send_json(&json!({"content": format!("m{i}")}))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::CREATED);
        acknowledged.push(res.json::<Value>().await.unwrap()["id"].clone());
    }
    server.sigkill();

    let server = start_with(with_db(dir.path(), &url));
    let base = format!("http://{}/v1/messaging/chats", server.addr);
    let mut res = client.get(format!("{base}/{chat}/messages")).bearer_auth(&token).send().await.unwrap();
    let history: Value = res.json().await.unwrap();
    let ids: Vec<Value> = history["messages"].as_array().unwrap().iter().map(|m| m["id"].clone()).collect();
    assert_eq!(ids, acknowledged, "every acknowledged message is there after SIGKILL");
    server.sigterm_and_wait(Duration::from_secs(5));
    if let Some((admin, name)) = pg {
        admin_sql(admin, format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
    }
}

fn with_db(data_dir: &Path, url: &str) -> std::process::Command {
    let mut cmd = missive(data_dir);
    cmd.env("MISSIVE_DATABASE_URL", url);
    cmd
}

/// A TCP forwarder to the database that the test can take down and bring back.
struct Proxy {
    addr: SocketAddr,
    control: mpsc::UnboundedSender<(bool, std::sync::mpsc::Sender<()>)>,
}

impl Proxy {
    fn start(target: String) -> Self {
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (control, mut commands) = mpsc::unbounded_channel::<(bool, std::sync::mpsc::Sender<()>)>();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            rt.block_on(async move {
                let mut listener = Some(TcpListener::bind("127.0.0.1:0").await.expect("bind proxy"));
                let addr = listener.as_ref().expect("listener").local_addr().expect("addr");
                addr_tx.send(addr).expect("address to the test");
                let mut links = JoinSet::new();
                loop {
                    tokio::select! {
                        command = commands.recv() => {
                            let Some((up, done)) = command else { return };
                            if up {
                                listener = Some(TcpListener::bind(addr).await.expect("rebind proxy"));
                            } else {
                                listener = None;
                                links.abort_all();
                                while links.join_next().await.is_some() {}
                            }
                            let _ = done.send(());
                        }
                        accepted = async { listener.as_ref().expect("guarded").accept().await }, if listener.is_some() => {
                            let Ok((mut inbound, _)) = accepted else { continue };
                            let target = target.clone();
                            links.spawn(async move {
                                if let Ok(mut outbound) = TcpStream::connect(&target).await {
                                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                                }
                            });
                        }
                    }
                }
            })
        });
        let addr = addr_rx.recv_timeout(WAIT).expect("proxy address");
        Self { addr, control }
    }

    fn set(&self, up: bool) {
        let (done, wait) = std::sync::mpsc::channel();
        self.control.send((up, done)).expect("proxy running");
        wait.recv_timeout(WAIT).expect("proxy obeys");
    }

    fn down(&self) {
        self.set(false);
    }

    fn up(&self) {
        self.set(true);
    }
}
