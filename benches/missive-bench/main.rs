//! `missive-bench`: the load generator. Starts a `missive` server (the binary next to
//! this one) or targets a running one, runs a scenario bounded in time, prints a table
//! and writes the figures as JSON. Loopback only. See BENCHMARKS.md.

mod fanout;
mod fsync;
mod s1_idle;
mod s6_durable;
mod server;
mod stats;

use clap::{Parser, Subcommand};
use serde_json::Value;
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "missive-bench", about = "Load generator for Missive (loopback only)")]
struct Cli {
    /// Where to write the results as JSON.
    #[arg(long, global = true, default_value = "target/bench-results.json")]
    out: PathBuf,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand)]
enum Scenario {
    /// S1: server RSS per idle connection, each joined to a chat.
    S1(s1_idle::Args),
    /// S2: fan-out to chats of many members (e.g. --chats 100 --per-chat 100 --rates 10,50,100).
    S2(fanout::Args),
    /// S4: end to end, POST start to the last receiver (e.g. --chats 1000 --per-chat 10 --rates 1000).
    S4(fanout::Args),
    /// S6: acknowledged (durable) messages per second at several sender counts.
    S6(s6_durable::Args),
    /// The disk alone: latency of a small write plus fdatasync, as a durable commit pays.
    Fsync(fsync::Args),
    /// Internal: one receiver process of S1, S2 and S4.
    #[command(hide = true)]
    RecvWorker(fanout::WorkerArgs),
}

fn main() {
    let cli = Cli::parse();
    let result: Result<Option<Value>, String> = actix_web::rt::System::new().block_on(async move {
        match cli.scenario {
            Scenario::S1(args) => s1_idle::run(args).await.map(Some),
            Scenario::S2(args) => fanout::run(args, "s2").await.map(Some),
            Scenario::S4(args) => fanout::run(args, "s4").await.map(Some),
            Scenario::S6(args) => s6_durable::run(args).await.map(Some),
            Scenario::Fsync(args) => fsync::run(args).map(Some),
            Scenario::RecvWorker(args) => fanout::worker(args).await.map(|()| None),
        }
    });
    match result {
        Ok(Some(figures)) => {
            if let Some(dir) = cli.out.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            let text = serde_json::to_string_pretty(&figures).expect("JSON");
            match std::fs::write(&cli.out, text) {
                Ok(()) => println!("results written to {}", cli.out.display()),
                Err(e) => eprintln!("cannot write {}: {e}", cli.out.display()),
            }
        }
        Ok(None) => {}
        Err(e) => {
            eprintln!("missive-bench: {e}");
            std::process::exit(1);
        }
    }
}
