//! S6: acknowledged messages per second. N senders each post as fast as they get answers
//! (closed loop by definition: it measures the most the server acknowledges at a given
//! concurrency). A 201 means committed with the backend's durable settings.

use futures_util::future::join_all;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

use crate::server::{Server, Target, create_chat};
use crate::stats::Latencies;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    target: Target,
    /// Concurrent senders, one run each.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    senders: Vec<usize>,
    /// Length of each run.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// All senders post into one chat (one seq lock) instead of one chat each.
    #[arg(long)]
    shared_chat: bool,
}

struct Tally {
    ok: u64,
    failed: u64,
    latencies: Latencies,
}

async fn sender(client: &awc::Client, server: &Server, user: &str, chat: &str, until: Instant) -> Tally {
    let url = format!("{}/v1/messaging/chats/{chat}/messages", server.base);
    let token = server.token(user);
    let mut tally = Tally { ok: 0, failed: 0, latencies: Latencies::default() };
    let mut n = 0u64;
    while Instant::now() < until {
        n += 1;
        let started = Instant::now();
        let body = json!({"content": format!("bench {user} {n}")});
        match client.post(&url).bearer_auth(&token).send_json(&body).await {
            Ok(mut res) if res.status() == 201 => {
                let _ = res.body().await;
                tally.ok += 1;
                tally.latencies.record(started.elapsed());
            }
            _ => tally.failed += 1,
        }
    }
    tally
}

pub async fn run(args: Args) -> Result<Value, String> {
    let server = Server::start(&args.target, None)?;
    let connector = awc::Connector::new().limit(0);
    let client = awc::Client::builder().connector(connector).timeout(Duration::from_secs(30)).finish();
    println!("S6 durable throughput, {} s per run, {}", args.seconds, server.base);
    println!(
        "{:>8} {:>10} {:>12} {:>9} {:>9} {:>9} {:>7}",
        "senders", "acked", "msgs/s", "p50 ms", "p99 ms", "max ms", "errors"
    );
    let mut runs = Vec::new();
    for &n in &args.senders {
        let users: Vec<String> = (0..n).map(|i| format!("s6-{n}-{i}")).collect();
        let mut chats: Vec<String> = Vec::new();
        for (i, user) in users.iter().enumerate() {
            if args.shared_chat && i > 0 {
                chats.push(chats[0].clone());
            } else {
                let others = if args.shared_chat { users[1..].to_vec() } else { Vec::new() };
                chats.push(create_chat(&client, &server, user, &others).await?);
            }
        }
        let started = Instant::now();
        let until = started + Duration::from_secs(args.seconds);
        let tallies = join_all(users.iter().zip(&chats).map(|(u, c)| sender(&client, &server, u, c, until))).await;
        let elapsed = started.elapsed().as_secs_f64();
        let (mut ok, mut failed, mut lat) = (0, 0, Latencies::default());
        for t in tallies {
            ok += t.ok;
            failed += t.failed;
            lat.extend(t.latencies);
        }
        let rate = ok as f64 / elapsed;
        let (p50, p99, max) = (lat.quantile_ms(0.5), lat.quantile_ms(0.99), lat.quantile_ms(1.0));
        println!("{n:>8} {ok:>10} {rate:>12.0} {p50:>9.2} {p99:>9.2} {max:>9.2} {failed:>7}");
        runs.push(json!({"senders": n, "acknowledged": ok, "messages_per_second": rate,
            "latency_ms": {"p50": p50, "p99": p99, "max": max}, "errors": failed, "seconds": elapsed}));
    }
    let backend = if args.target.database_url.as_deref().is_some_and(|u| u.starts_with("postgres")) {
        "postgresql"
    } else {
        "sqlite"
    };
    Ok(json!({"scenario": "s6", "backend": backend, "shared_chat": args.shared_chat, "runs": runs}))
}
