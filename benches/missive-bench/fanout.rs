//! S2 (fan-out) and S4 (end to end). Receivers live in worker processes (`recv-worker`)
//! that join their chats and record, for every `new-message`, the push latency (now minus
//! the send timestamp inside the message) and when they got it. The parent posts at a
//! fixed rate (open loop: a request is sent on its tick whether or not earlier ones were
//! answered), then merges what the workers report.

use futures_util::{SinkExt, StreamExt, stream};
use serde_json::{Value, json};
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::server::{PrivateRedis, Server, Servers, Target, create_chat, token};

fn now_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}

/// Log-scale latency histogram: bucket i covers [1.02^i, 1.02^(i+1)) microseconds.
#[derive(Default, Clone, serde::Serialize, serde::Deserialize)]
pub struct Histogram(BTreeMap<u32, u64>);

impl Histogram {
    fn record_us(&mut self, us: f64) {
        let bucket = if us < 1.0 { 0 } else { (us.ln() / 1.02f64.ln()) as u32 };
        *self.0.entry(bucket).or_default() += 1;
    }
    fn merge(&mut self, other: &Histogram) {
        for (b, n) in &other.0 {
            *self.0.entry(*b).or_default() += n;
        }
    }
    fn count(&self) -> u64 {
        self.0.values().sum()
    }
    /// The `q` quantile in milliseconds (upper edge of its bucket).
    fn quantile_ms(&self, q: f64) -> f64 {
        let total = self.count();
        if total == 0 {
            return 0.0;
        }
        let want = ((total as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (b, n) in &self.0 {
            seen += n;
            if seen >= want {
                return 1.02f64.powi(*b as i32 + 1) / 1000.0;
            }
        }
        0.0
    }
}

#[derive(Default, serde::Serialize, serde::Deserialize)]
pub struct Report {
    /// Per step: latency histogram of deliveries.
    steps: BTreeMap<u32, Histogram>,
    /// Per message key: the latest time (ns) one of this worker's receivers got it.
    last_seen: HashMap<u64, u64>,
    /// `new-message` frames that did not follow the receiver's previous one by exactly one
    /// `seq` (a gap, a duplicate or disorder).
    #[serde(default)]
    out_of_order: u64,
    /// `user-online` and `user-offline` frames received (a connect storm pushes them).
    #[serde(default)]
    presence: u64,
}

#[derive(clap::Args)]
pub struct WorkerArgs {
    /// The nodes' WebSocket URLs; receiver i connects to node i mod n.
    #[arg(long, value_delimiter = ',')]
    url: Vec<String>,
    #[arg(long)]
    secret: String,
    #[arg(long)]
    first: usize,
    #[arg(long)]
    count: usize,
    #[arg(long)]
    per_chat: usize,
    #[arg(long, value_delimiter = ',')]
    chats: Vec<String>,
}

/// Connects, joins, reports `ready`, records every `new-message` until stdin closes,
/// then prints its report as one JSON line.
pub async fn worker(args: WorkerArgs) -> Result<(), String> {
    let client =
        awc::Client::builder().connector(awc::Connector::new().limit(0)).timeout(Duration::from_secs(60)).finish();
    let report = Rc::new(RefCell::new(Report::default()));
    let opened = stream::iter(args.first..args.first + args.count)
        .map(|i| {
            let node = &args.url[i % args.url.len()];
            let url = format!("{node}?token={}", token(&args.secret, &format!("u{i}")));
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
    for mut ws in sockets {
        let report = report.clone();
        actix_web::rt::spawn(async move {
            let mut last_seq = 0;
            while let Some(Ok(frame)) = ws.next().await {
                match frame {
                    awc::ws::Frame::Text(t) => record(&report, &t, &mut last_seq),
                    awc::ws::Frame::Ping(p) => {
                        let _ = ws.send(awc::ws::Message::Pong(p)).await;
                    }
                    _ => {}
                }
            }
        });
    }
    println!("ready");
    std::io::stdout().flush().map_err(|e| e.to_string())?;
    // Stdin is read on a thread: the runtime must keep reading sockets meanwhile.
    let (done_tx, done) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
        let _ = done_tx.send(());
    });
    let _ = done.await;
    println!("{}", serde_json::to_string(&*report.borrow()).map_err(|e| e.to_string())?);
    Ok(())
}

/// The parts of a frame the receivers read, borrowed from it: the load generator shares
/// the machine with the server, and must stay far from its own limit (a generic JSON
/// value per frame cost it a core at 20,000 frames per second).
#[derive(serde::Deserialize)]
struct Frame<'a> {
    #[serde(borrow)]
    event: &'a str,
    #[serde(borrow, default)]
    data: Option<FrameData<'a>>,
}

#[derive(serde::Deserialize)]
struct FrameData<'a> {
    #[serde(borrow, default)]
    message: Option<FrameMessage<'a>>,
}

#[derive(serde::Deserialize)]
struct FrameMessage<'a> {
    seq: i64,
    #[serde(borrow)]
    content: std::borrow::Cow<'a, str>,
}

/// Content is `b <step> <key> <sent ns>`. Each receiver joined one chat before anything
/// was posted to it, so its `seq`s must be 1, 2, 3…
fn record(report: &RefCell<Report>, frame: &[u8], last_seq: &mut i64) {
    let now = now_ns();
    let Ok(v) = serde_json::from_slice::<Frame>(frame) else { return };
    if v.event != "new-message" {
        if matches!(v.event, "user-online" | "user-offline") {
            report.borrow_mut().presence += 1;
        }
        return;
    }
    let Some(message) = v.data.and_then(|d| d.message) else { return };
    let seq = message.seq;
    if seq != *last_seq + 1 {
        report.borrow_mut().out_of_order += 1;
    }
    *last_seq = (*last_seq).max(seq);
    let content = &*message.content;
    let mut parts = content.split(' ').skip(1).map(|p| p.parse::<u64>().unwrap_or(0));
    let (Some(step), Some(key), Some(sent)) = (parts.next(), parts.next(), parts.next()) else { return };
    let mut r = report.borrow_mut();
    r.steps.entry(step as u32).or_default().record_us(now.saturating_sub(sent) as f64 / 1000.0);
    let last = r.last_seen.entry(key).or_default();
    *last = (*last).max(now);
}

/// Receiver processes and the lines they print (`ready`, then one JSON report).
pub struct Workers {
    children: Vec<Child>,
    lines: mpsc::Receiver<String>,
}

/// Spawns receiver workers for `users` (user i joins chat i / per_chat) and waits until
/// each says `ready`.
pub fn spawn_workers(
    servers: &[Server],
    users: usize,
    per_chat: usize,
    per_worker: usize,
    chats: &[String],
) -> Result<Workers, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let urls = servers.iter().map(Server::ws_url).collect::<Vec<_>>().join(",");
    let (ready_tx, ready) = mpsc::channel();
    let mut workers = Vec::new();
    for first in (0..users).step_by(per_worker.max(1)) {
        let count = per_worker.min(users - first);
        let mut child = Command::new(&exe)
            .args(["recv-worker", "--url", &urls, "--secret", &servers[0].secret])
            .args(["--first", &first.to_string(), "--count", &count.to_string()])
            .args(["--per-chat", &per_chat.to_string(), "--chats", &chats.join(",")])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| e.to_string())?;
        let out = child.stdout.take().ok_or("worker stdout")?;
        let tx = ready_tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        workers.push(child);
    }
    drop(ready_tx);
    let mut pending = workers.len();
    while pending > 0 {
        let line = ready.recv_timeout(Duration::from_secs(180)).map_err(|_| "a worker did not get ready in time")?;
        if line == "ready" {
            pending -= 1;
        } else {
            return Err(format!("worker failed: {line}"));
        }
    }
    Ok(Workers { children: workers, lines: ready })
}

impl Workers {
    fn pids(&self) -> Vec<u32> {
        self.children.iter().map(Child::id).collect()
    }
}

/// Closes the workers' stdin and merges their reports.
pub fn collect(workers: Workers) -> Result<Report, String> {
    let n = workers.children.len();
    for mut w in workers.children {
        drop(w.stdin.take());
        std::thread::spawn(move || w.wait());
    }
    let mut merged = Report::default();
    for _ in 0..n {
        let line = workers.lines.recv_timeout(Duration::from_secs(60)).map_err(|_| "a worker did not report")?;
        let r: Report = serde_json::from_str(&line).map_err(|e| format!("worker report: {e}"))?;
        for (step, h) in &r.steps {
            merged.steps.entry(*step).or_default().merge(h);
        }
        for (k, t) in r.last_seen {
            let e = merged.last_seen.entry(k).or_default();
            *e = (*e).max(t);
        }
        merged.out_of_order += r.out_of_order;
        merged.presence += r.presence;
    }
    Ok(merged)
}

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    target: Target,
    #[arg(long)]
    chats: usize,
    #[arg(long)]
    per_chat: usize,
    /// POST rates to step through (messages per second, open loop).
    #[arg(long, value_delimiter = ',')]
    rates: Vec<u32>,
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    #[arg(long, default_value_t = 5_000)]
    per_worker: usize,
    /// Cluster mode with a private Redis: kill Redis this many seconds into the first
    /// step, start it again empty after --outage-seconds, and report how long after its
    /// return every message posted meanwhile had reached every receiver.
    #[arg(long)]
    redis_outage_at: Option<f64>,
    #[arg(long, default_value_t = 3.0)]
    outage_seconds: f64,
    /// The last N nodes get no receivers and no posts: their CPU is the cost of reading
    /// every envelope (`c_env`) plus their idle upkeep.
    #[arg(long, default_value_t = 0)]
    idle_nodes: usize,
    /// Measures every process's CPU for this many seconds with no load first (heartbeats,
    /// presence upkeep), and reports CPU per message with that idle rate taken out.
    #[arg(long)]
    idle_baseline: Option<u64>,
}

/// One rate's figures: its index, POSTs sent and acknowledged, and the CPU seconds the
/// servers used from its start until its last POST was answered.
struct Step {
    step: u32,
    sent: u64,
    acked: u64,
    cpu: f64,
    /// The load generator's CPU (this process and the receivers) per second of the step:
    /// near the cores it has, it measures itself.
    generator: f64,
}

/// When Redis was killed and when it accepted connections again (ns since the epoch).
#[derive(Default, Clone, Copy)]
struct Outage {
    killed: Option<u64>,
    back: Option<u64>,
}

/// Posts at each rate for `seconds`, through the nodes in turn; returns (step, key) →
/// send start ns and acked count.
async fn publish(
    servers: &[Server],
    mut redis: Option<&mut PrivateRedis>,
    cpu: &dyn Fn() -> (f64, f64),
    chats: &[String],
    per_chat: usize,
    args: &Args,
) -> (HashMap<u64, u64>, Vec<Step>, Outage) {
    let begun = Instant::now();
    let mut outage = Outage::default();
    let kill_at = args.redis_outage_at.map(Duration::from_secs_f64);
    let back_at = kill_at.map(|at| at + Duration::from_secs_f64(args.outage_seconds));
    let client =
        awc::Client::builder().connector(awc::Connector::new().limit(0)).timeout(Duration::from_secs(30)).finish();
    let started_at: Rc<RefCell<HashMap<u64, u64>>> = Rc::default();
    let mut per_step = Vec::new();
    let mut key = 0u64;
    for (step, &rate) in args.rates.iter().enumerate() {
        let cpu_before = cpu();
        let started = Instant::now();
        let acked = Rc::new(RefCell::new(0u64));
        let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate.max(1))));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let until = Instant::now() + Duration::from_secs(args.seconds);
        let mut sent = 0u64;
        let mut tasks = Vec::new();
        while Instant::now() < until {
            tick.tick().await;
            if let Some(redis) = redis.as_deref_mut() {
                // Blocking for a few milliseconds: the open loop's burst catches up.
                if outage.killed.is_none() && kill_at.is_some_and(|at| begun.elapsed() >= at) {
                    redis.kill();
                    outage.killed = Some(now_ns());
                } else if outage.back.is_none() && back_at.is_some_and(|at| begun.elapsed() >= at) {
                    if let Err(e) = redis.restart() {
                        eprintln!("redis did not restart: {e}");
                    }
                    outage.back = Some(now_ns());
                }
            }
            let chat_index = (key as usize) % chats.len();
            let server = &servers[(key as usize / chats.len()) % servers.len()];
            let url = format!("{}/v1/messaging/chats/{}/messages", server.base, chats[chat_index]);
            let sender = format!("u{}", chat_index * per_chat);
            let (client, acked, started_at, token) =
                (client.clone(), acked.clone(), started_at.clone(), server.token(&sender));
            let k = key;
            tasks.push(actix_web::rt::spawn(async move {
                let t = now_ns();
                started_at.borrow_mut().insert(k, t);
                let body = json!({"content": format!("b {step} {k} {t}")});
                if let Ok(mut res) = client.post(&url).bearer_auth(token).send_json(&body).await
                    && res.status() == 201
                {
                    let _ = res.body().await;
                    *acked.borrow_mut() += 1;
                }
            }));
            key += 1;
            sent += 1;
        }
        for t in tasks {
            let _ = t.await;
        }
        let (cpu, generator) = cpu();
        let seconds = started.elapsed().as_secs_f64();
        per_step.push(Step {
            step: step as u32,
            sent,
            acked: *acked.borrow(),
            cpu: cpu - cpu_before.0,
            generator: (generator - cpu_before.1) / seconds,
        });
    }
    let map = started_at.borrow().clone();
    (map, per_step, outage)
}

pub async fn run(args: Args, name: &str) -> Result<Value, String> {
    let mut servers = Servers::start(&args.target)?;
    if args.redis_outage_at.is_some() && servers.redis.is_none() {
        return Err("--redis-outage-at needs a private Redis (--nodes 2 or more, no --redis-url)".into());
    }
    let server = servers.first();
    let client = awc::Client::builder().timeout(Duration::from_secs(30)).finish();
    let users: Vec<String> = (0..args.chats * args.per_chat).map(|i| format!("u{i}")).collect();
    let mut chats = Vec::new();
    for group in users.chunks(args.per_chat.max(1)) {
        chats.push(create_chat(&client, server, &group[0], &group[1..]).await?);
    }
    let busy = servers.nodes.len().saturating_sub(args.idle_nodes).max(1);
    // Opening every socket (256 at a time) and joining is a connect storm: each user's first
    // connection is announced to their contacts already online.
    let (storm_cpu_before, _) = servers.cpu_seconds();
    let storm_started = Instant::now();
    let workers = spawn_workers(&servers.nodes[..busy], users.len(), args.per_chat, args.per_worker, &chats)?;
    let storm_seconds = storm_started.elapsed().as_secs_f64();
    let storm_cpu: f64 = servers.cpu_seconds().0.iter().zip(&storm_cpu_before).map(|(a, b)| a - b).sum::<f64>();
    // CPU per second of each process with no load at all.
    let idle_rate = match args.idle_baseline {
        Some(secs) => {
            let before = servers.cpu_seconds();
            tokio::time::sleep(Duration::from_secs(secs)).await;
            let after = servers.cpu_seconds();
            let nodes: Vec<f64> = after.0.iter().zip(&before.0).map(|(a, b)| (a - b) / secs as f64).collect();
            let redis = after.1.zip(before.1).map(|(a, b)| (a - b) / secs as f64);
            Some((nodes, redis))
        }
        None => None,
    };
    let (cpu_before, redis_before) = servers.cpu_seconds();
    let run_started = Instant::now();
    let pids: Vec<u32> = servers.nodes.iter().filter_map(|n| Some(n.child.as_ref()?.id())).collect();
    let mut generator = workers.pids();
    generator.push(std::process::id());
    let sum = |pids: &[u32]| pids.iter().filter_map(|p| crate::server::cpu_seconds(*p)).sum::<f64>();
    let nodes_cpu = move || (sum(&pids), sum(&generator));
    let (started_at, steps, outage) =
        publish(&servers.nodes[..busy], servers.redis.as_mut(), &nodes_cpu, &chats, args.per_chat, &args).await;
    // Let the last pushes land before the workers stop recording.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (cpu_after, redis_after) = servers.cpu_seconds();
    let run_seconds = run_started.elapsed().as_secs_f64();
    let report = collect(workers)?;
    let nodes = servers.nodes.len();
    println!(
        "{name}: {} chats x {} members, {} s per rate, open loop, {nodes} node(s)",
        args.chats, args.per_chat, args.seconds
    );
    println!(
        "{:>8} {:>8} {:>8} {:>12} {:>8} {:>9} {:>9} {:>10} {:>13} {:>10}",
        "POST/s",
        "sent",
        "acked",
        "deliveries/s",
        "ratio",
        "p50 ms",
        "p99 ms",
        "p99.9 ms",
        "server us/del",
        "gen CPU/s"
    );
    let mut rows = Vec::new();
    for (Step { step, sent, acked, cpu, generator }, rate) in steps.iter().zip(&args.rates) {
        let h = report.steps.get(step).cloned().unwrap_or_default();
        let expected = acked * args.per_chat as u64;
        let ratio = if expected == 0 { 0.0 } else { h.count() as f64 / expected as f64 };
        let per_sec = h.count() as f64 / args.seconds as f64;
        let (p50, p99, p999) = (h.quantile_ms(0.5), h.quantile_ms(0.99), h.quantile_ms(0.999));
        // The servers' CPU over the step's publish window, per delivery of that step.
        let us_per_delivery = if h.count() == 0 { 0.0 } else { cpu * 1e6 / h.count() as f64 };
        println!(
            "{rate:>8} {sent:>8} {acked:>8} {per_sec:>12.0} {ratio:>8.3} {p50:>9.2} {p99:>9.2} {p999:>10.2} {us_per_delivery:>13.1} {generator:>10.2}"
        );
        rows.push(json!({"rate": rate, "sent": sent, "acknowledged": acked, "deliveries": h.count(),
            "deliveries_per_second": per_sec, "delivery_ratio": ratio,
            "push_latency_ms": {"p50": p50, "p99": p99, "p99_9": p999},
            "server_cpu_seconds": cpu, "server_cpu_us_per_delivery": us_per_delivery,
            "generator_cpu_per_second": generator}));
    }
    // End to end: from POST start to the last receiver of that message.
    let mut e2e = Histogram::default();
    for (k, start) in &started_at {
        if let Some(last) = report.last_seen.get(k) {
            e2e.record_us(last.saturating_sub(*start) as f64 / 1000.0);
        }
    }
    let (p50, p99, p999) = (e2e.quantile_ms(0.5), e2e.quantile_ms(0.99), e2e.quantile_ms(0.999));
    println!(
        "end to end (POST start to last receiver): p50 {p50:.2} ms, p99 {p99:.2} ms, p99.9 {p999:.2} ms over {} messages",
        e2e.count()
    );
    // CPU over the whole run (every step and the 2 s drain), per delivery and per message.
    let deliveries: u64 = report.steps.values().map(Histogram::count).sum();
    let acked: u64 = steps.iter().map(|s| s.acked).sum();
    let node_cpu: Vec<f64> = cpu_after.iter().zip(&cpu_before).map(|(a, b)| a - b).collect();
    // A Redis restarted during the run is another process: its CPU is not comparable.
    let redis_cpu = redis_after.zip(redis_before).map(|(a, b)| a - b).filter(|_| outage.killed.is_none());
    let per = |cpu: f64, n: u64| if n == 0 { 0.0 } else { cpu * 1e6 / n as f64 };
    for (i, cpu) in node_cpu.iter().enumerate() {
        println!(
            "node {i}: {cpu:.2} CPU s, {:.1} us per delivery (all nodes' deliveries), {:.1} us per message",
            per(*cpu, deliveries),
            per(*cpu, acked)
        );
    }
    if let Some(cpu) = redis_cpu {
        println!("redis: {cpu:.2} CPU s, {:.1} us per message (one envelope each)", per(cpu, acked));
    }
    // The same with each process's idle CPU over the run's length taken out.
    let net = idle_rate.as_ref().map(|(nodes, redis)| {
        let nodes: Vec<f64> =
            node_cpu.iter().zip(nodes).map(|(cpu, idle)| per((cpu - idle * run_seconds).max(0.0), acked)).collect();
        let redis = redis_cpu.zip(*redis).map(|(cpu, idle)| per((cpu - idle * run_seconds).max(0.0), acked));
        println!(
            "idle upkeep taken out: us per message by node {nodes:.1?}, redis {:.1?} (idle CPU s/s: nodes {:.4?}, redis {:.4?})",
            redis, idle_rate.as_ref().map(|r| &r.0), idle_rate.as_ref().and_then(|r| r.1)
        );
        json!({"nodes": nodes, "redis": redis})
    });
    println!("order: {} new-message frames out of sequence (gap, duplicate or disorder)", report.out_of_order);
    println!(
        "connect storm: {} sockets opened and joined in {storm_seconds:.1} s, {storm_cpu:.2} server CPU s; \
         {} presence frames received over the run",
        users.len(),
        report.presence
    );
    let recovery = match (outage.killed, outage.back) {
        (Some(killed), Some(back)) => {
            // Messages posted while Redis was down: when the last of them reached its last
            // receiver, counted from Redis' return.
            let during: Vec<u64> =
                started_at.iter().filter(|(_, t)| (killed..back).contains(t)).map(|(k, _)| *k).collect();
            let reached = during.iter().filter_map(|k| report.last_seen.get(k)).count();
            let last = during.iter().filter_map(|k| report.last_seen.get(k)).max().copied().unwrap_or(back);
            let after_ms = last.saturating_sub(back) as f64 / 1e6;
            let worst_ms = during
                .iter()
                .filter_map(|k| Some(report.last_seen.get(k)?.saturating_sub(started_at[k])))
                .max()
                .unwrap_or(0) as f64
                / 1e6;
            println!(
                "redis outage: down {:.2} s; {} messages posted meanwhile, {} reached receivers; the last of them \
                 arrived {after_ms:.0} ms after Redis was back; the slowest took {worst_ms:.0} ms from its POST",
                (back - killed) as f64 / 1e9,
                during.len(),
                reached
            );
            Some(json!({"down_s": (back - killed) as f64 / 1e9, "posted_meanwhile": during.len(),
                "reached": reached, "last_arrival_after_return_ms": after_ms, "slowest_end_to_end_ms": worst_ms}))
        }
        _ => None,
    };
    Ok(json!({"scenario": name, "nodes": nodes, "chats": args.chats, "per_chat": args.per_chat, "steps": rows,
        "end_to_end_ms": {"p50": p50, "p99": p99, "p99_9": p999, "messages": e2e.count()},
        "out_of_order": report.out_of_order, "redis_outage": recovery, "idle_nodes": args.idle_nodes,
        "connect_storm": {"sockets": users.len(), "seconds": storm_seconds, "server_cpu_seconds": storm_cpu,
            "presence_frames": report.presence},
        "cpu_us_per_message_net_of_idle": net,
        "cpu_seconds": {"nodes": node_cpu, "redis": redis_cpu},
        "cpu_us_per_delivery": node_cpu.iter().map(|c| per(*c, deliveries)).collect::<Vec<_>>(),
        "cpu_us_per_message": {"nodes": node_cpu.iter().map(|c| per(*c, acked)).collect::<Vec<_>>(),
            "redis": redis_cpu.map(|c| per(c, acked))}}))
}
