//! S1: server memory per idle connection. Worker processes (this binary, `s1-worker`)
//! each hold a share of the connections, because one process may hold at most 20,000
//! open files here. Every connection joins a chat of `per-chat` members. The figure is
//! (server RSS with every connection joined − RSS before) / connections.

use futures_util::{SinkExt, StreamExt, stream};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::server::{Server, Target, create_chat, token};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    target: Target,
    #[arg(long, default_value_t = 10_000)]
    connections: usize,
    /// Members per chat.
    #[arg(long, default_value_t = 100)]
    per_chat: usize,
    /// Connections per client process.
    #[arg(long, default_value_t = 5_000)]
    per_worker: usize,
}

#[derive(clap::Args)]
pub struct WorkerArgs {
    #[arg(long)]
    url: String,
    #[arg(long)]
    secret: String,
    /// First user index and how many connections this worker opens.
    #[arg(long)]
    first: usize,
    #[arg(long)]
    count: usize,
    #[arg(long)]
    per_chat: usize,
    /// Every chat id, comma-separated; user i joins chat i / per_chat.
    #[arg(long, value_delimiter = ',')]
    chats: Vec<String>,
}

pub async fn run(args: Args) -> Result<Value, String> {
    let server = Server::start(&args.target)?;
    let client = awc::Client::builder().timeout(Duration::from_secs(30)).finish();
    let users: Vec<String> = (0..args.connections).map(|i| format!("u{i}")).collect();
    let mut chats = Vec::new();
    for group in users.chunks(args.per_chat.max(1)) {
        chats.push(create_chat(&client, &server, &group[0], &group[1..]).await?);
    }
    let before = server.rss_bytes().ok_or("S1 measures a server it starts (no --target)")?;
    let started = Instant::now();
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut workers = Vec::new();
    let (ready_tx, ready) = mpsc::channel();
    for first in (0..args.connections).step_by(args.per_worker.max(1)) {
        let count = args.per_worker.min(args.connections - first);
        let mut child = Command::new(&exe)
            .args(["s1-worker", "--url", &server.ws_url(), "--secret", &server.secret])
            .args(["--first", &first.to_string(), "--count", &count.to_string()])
            .args(["--per-chat", &args.per_chat.to_string(), "--chats", &chats.join(",")])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| e.to_string())?;
        let out = child.stdout.take().ok_or("worker stdout")?;
        let tx = ready_tx.clone();
        std::thread::spawn(move || {
            let line = BufReader::new(out).lines().next().and_then(Result::ok).unwrap_or_default();
            let _ = tx.send(line);
        });
        workers.push(child);
    }
    for _ in 0..workers.len() {
        let line = ready.recv_timeout(Duration::from_secs(180)).map_err(|_| "a worker did not get ready in time")?;
        if !line.starts_with("ready") {
            return Err(format!("worker failed: {line}"));
        }
    }
    let connect_secs = started.elapsed().as_secs_f64();
    let after = server.rss_bytes().ok_or("server gone")?;
    for mut w in workers {
        drop(w.stdin.take());
        let _ = w.wait();
    }
    let per_conn = (after.saturating_sub(before)) as f64 / args.connections as f64;
    println!("S1 idle memory: {} connections in {} chats of {}", args.connections, chats.len(), args.per_chat);
    println!(
        "{:>12} {:>14} {:>14} {:>16} {:>12}",
        "connections", "RSS before MiB", "RSS after MiB", "bytes per conn", "connect s"
    );
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    println!(
        "{:>12} {:>14.1} {:>14.1} {:>16.0} {:>12.1}",
        args.connections,
        mib(before),
        mib(after),
        per_conn,
        connect_secs
    );
    Ok(json!({"scenario": "s1", "connections": args.connections, "per_chat": args.per_chat,
        "rss_before_bytes": before, "rss_after_bytes": after, "bytes_per_connection": per_conn, "connect_seconds": connect_secs}))
}

/// Opens `count` connections, joins each to its chat, says `ready`, holds until stdin closes.
pub async fn worker(args: WorkerArgs) -> Result<(), String> {
    let client =
        awc::Client::builder().connector(awc::Connector::new().limit(0)).timeout(Duration::from_secs(60)).finish();
    let opened = stream::iter(args.first..args.first + args.count)
        .map(|i| {
            let url = format!("{}?token={}", args.url, token(&args.secret, &format!("u{i}")));
            let chat = args.chats[i / args.per_chat.max(1)].clone();
            let client = &client;
            async move {
                let (_, mut ws) = client.ws(url).connect().await.map_err(|e| format!("connect u{i}: {e}"))?;
                let join = json!({"event": "join-chat", "data": {"chatId": chat}}).to_string();
                ws.send(awc::ws::Message::Text(join.into())).await.map_err(|e| e.to_string())?;
                while let Some(frame) = ws.next().await {
                    if let Ok(awc::ws::Frame::Text(t)) = frame
                        && String::from_utf8_lossy(&t).contains("chat-joined")
                    {
                        return Ok(ws);
                    }
                }
                Err(format!("u{i}: closed before joining"))
            }
        })
        .buffer_unordered(256)
        .collect::<Vec<_>>()
        .await;
    let sockets: Vec<_> = opened.into_iter().collect::<Result<_, String>>()?;
    println!("ready {}", sockets.len());
    std::io::stdout().flush().map_err(|e| e.to_string())?;
    // Idle until the parent is done measuring (it closes our stdin).
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
    drop(sockets);
    Ok(())
}
