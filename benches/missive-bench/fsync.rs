//! The disk under the server, alone: how long a flush (`fdatasync`) of a small write
//! takes, as a durable commit does. Its tail bounds every durable end-to-end latency.

use serde_json::{Value, json};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::stats::Latencies;

#[derive(clap::Args)]
pub struct Args {
    /// A directory on the filesystem to probe (default: the system temp directory).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Bytes written before each flush.
    #[arg(long, default_value_t = 16384)]
    bytes: usize,
    #[arg(long, default_value_t = 10)]
    seconds: u64,
}

pub fn run(args: Args) -> Result<Value, String> {
    let dir = args.dir.unwrap_or_else(std::env::temp_dir);
    let path = dir.join(format!("missive-bench-fsync-{}", std::process::id()));
    let file = std::fs::File::create(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let block = vec![0x5a_u8; args.bytes.max(1)];
    let (mut lat, mut offset, mut slow) = (Latencies::default(), 0u64, [0u64; 3]);
    let until = Instant::now() + Duration::from_secs(args.seconds);
    let result = (|| {
        while Instant::now() < until {
            file.write_all_at(&block, offset).map_err(|e| e.to_string())?;
            offset = (offset + block.len() as u64) % (64 << 20);
            let started = Instant::now();
            file.sync_data().map_err(|e| e.to_string())?;
            let took = started.elapsed();
            lat.record(took);
            for (n, limit) in slow.iter_mut().zip([10, 50, 100]) {
                *n += u64::from(took >= Duration::from_millis(limit));
            }
        }
        Ok::<(), String>(())
    })();
    let _ = std::fs::remove_file(&path);
    result?;
    let flushes = lat.len();
    let (p50, p99, p999, max) =
        (lat.quantile_ms(0.5), lat.quantile_ms(0.99), lat.quantile_ms(0.999), lat.quantile_ms(1.0));
    println!("fsync probe: {} bytes then fdatasync, {} s, in {}", args.bytes, args.seconds, dir.display());
    println!(
        "{:>9} {:>9} {:>9} {:>10} {:>10} {:>7} {:>7} {:>8}",
        "flushes", "p50 ms", "p99 ms", "p99.9 ms", "max ms", ">10ms", ">50ms", ">100ms"
    );
    println!(
        "{flushes:>9} {p50:>9.2} {p99:>9.2} {p999:>10.2} {max:>10.1} {:>7} {:>7} {:>8}",
        slow[0], slow[1], slow[2]
    );
    let _ = std::io::stdout().flush();
    Ok(json!({"scenario": "fsync", "dir": dir, "bytes": args.bytes, "flushes": flushes,
        "latency_ms": {"p50": p50, "p99": p99, "p99_9": p999, "max": max},
        "over_10ms": slow[0], "over_50ms": slow[1], "over_100ms": slow[2]}))
}
