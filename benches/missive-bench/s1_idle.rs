//! S1: server memory per idle connection. Worker processes (this binary's receiver
//! workers, shared with S2 and S4) each hold a share of the connections, because one process may hold at most 20,000
//! open files here. Every connection joins a chat of `per-chat` members. The figure is
//! (server RSS with every connection joined − RSS before) / connections.

use serde_json::{Value, json};
use std::time::{Duration, Instant};

use crate::fanout::{collect, spawn_workers};
use crate::server::{Server, Target, create_chat};

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

pub async fn run(args: Args) -> Result<Value, String> {
    let server = Server::start(&args.target, None)?;
    let client = awc::Client::builder().timeout(Duration::from_secs(30)).finish();
    let users: Vec<String> = (0..args.connections).map(|i| format!("u{i}")).collect();
    let mut chats = Vec::new();
    for group in users.chunks(args.per_chat.max(1)) {
        chats.push(create_chat(&client, &server, &group[0], &group[1..]).await?);
    }
    let before = server.rss_bytes().ok_or("S1 measures a server it starts (no --target)")?;
    let started = Instant::now();
    let workers =
        spawn_workers(std::slice::from_ref(&server), args.connections, args.per_chat, args.per_worker, &chats)?;
    let connect_secs = started.elapsed().as_secs_f64();
    let after = server.rss_bytes().ok_or("server gone")?;
    collect(workers)?;
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
