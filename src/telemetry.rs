//! Logging: readable lines by default, JSON lines with `MISSIVE_LOG_FORMAT=json`.
//! Filter with `RUST_LOG` (default `info`, without actix-http's codec; see `init`).

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use tracing_subscriber::EnvFilter;

/// Seconds: from 100 µs to 10 s.
const LATENCY_BUCKETS: &[f64] =
    &[0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Messages per group-commit batch, from 1 to the most a batch takes.
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];

/// Every metric with its help text. Counters and gauges start at 0, so a scrape shows
/// them (a slow-consumer count of 0 is information) before the first event.
fn describe_metrics() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_gauge!("missive_ws_connections", "Open WebSocket connections");
    describe_counter!("missive_messages_posted_total", "Messages stored (201)");
    describe_counter!("missive_events_pushed_total", "Event frames queued to connections");
    describe_counter!("missive_outbox_overflows_total", "Events refused by a full connection outbox");
    describe_counter!("missive_slow_consumer_closes_total", "Connections closed with 4009 (slow consumer)");
    describe_histogram!("missive_push_latency_seconds", Unit::Seconds, "From publish to written on the socket");
    describe_histogram!("missive_db_pool_wait_seconds", Unit::Seconds, "Wait for a database connection");
    describe_histogram!("missive_post_batch_size", "Messages committed per group-commit batch");
    describe_histogram!(
        "missive_post_batch_seconds",
        Unit::Seconds,
        "Group-commit batch: from taking the batch to the last sender answered"
    );
    describe_histogram!("missive_post_commit_seconds", Unit::Seconds, "Group-commit batch: the transaction alone");
    describe_counter!("missive_http_requests_total", "HTTP requests by route pattern, method and status");
    describe_histogram!("missive_http_request_duration_seconds", Unit::Seconds, "HTTP request latency");
    metrics::gauge!("missive_ws_connections").increment(0.0);
    for name in [
        "missive_messages_posted_total",
        "missive_events_pushed_total",
        "missive_outbox_overflows_total",
        "missive_slow_consumer_closes_total",
    ] {
        metrics::counter!(name).increment(0);
    }
}

/// How often histogram samples are folded into their buckets.
const UPKEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// The process-wide Prometheus recorder (the `metrics` macros write to one global
/// recorder, so every `Application` in a process shares it).
pub fn metrics() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new();
        // Fixed, valid buckets: setting them cannot fail.
        let builder = builder
            .set_buckets(LATENCY_BUCKETS)
            .and_then(|b| b.set_buckets_for_metric(Matcher::Full("missive_post_batch_size".into()), BATCH_BUCKETS))
            .expect("non-empty buckets");
        let handle = builder.install_recorder().unwrap_or_else(|e| {
            tracing::warn!(error = %e, "another metrics recorder is installed; /metrics will be empty");
            PrometheusBuilder::new().build_recorder().handle()
        });
        describe_metrics();
        // Histogram samples wait in the recorder until an upkeep folds them into their
        // buckets; `install_recorder` runs none. Without one, a server nobody scrapes keeps
        // every push-latency sample (20,000 a second under load: about half a gigabyte an
        // hour), and the first scrape then folds them all at once on a worker thread. One
        // thread for the process, like the recorder.
        let upkeep = handle.clone();
        let spawned = std::thread::Builder::new().name("metrics-upkeep".into()).spawn(move || {
            loop {
                std::thread::sleep(UPKEEP_INTERVAL);
                upkeep.run_upkeep();
            }
        });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "metrics upkeep not started: histograms fold only when scraped");
        }
        handle
    })
}

/// The `method` label of the HTTP metrics. Any token is a valid HTTP method, so taking
/// the request's own would let anyone add series without bound: the standard methods
/// keep their name and everything else is `OTHER`.
pub fn method_label(method: &actix_web::http::Method) -> &'static str {
    use actix_web::http::Method;
    const KNOWN: [(Method, &str); 9] = [
        (Method::GET, "GET"),
        (Method::HEAD, "HEAD"),
        (Method::POST, "POST"),
        (Method::PUT, "PUT"),
        (Method::PATCH, "PATCH"),
        (Method::DELETE, "DELETE"),
        (Method::OPTIONS, "OPTIONS"),
        (Method::CONNECT, "CONNECT"),
        (Method::TRACE, "TRACE"),
    ];
    KNOWN.iter().find(|(m, _)| m == method).map_or("OTHER", |(_, name)| name)
}

/// The `route` label: the pattern the request matched (from the URL table, a closed
/// set), or `unmatched` (never the path, which the client chooses).
pub fn route_label(pattern: Option<String>) -> String {
    pattern.unwrap_or_else(|| "unmatched".to_owned())
}

pub fn init(format: &str) {
    // actix-http's codec logs a client's fragmented control frame at ERROR (its only log
    // line): a client's mistake, already answered with close 1002, is not our error.
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,actix_http::ws::codec=off"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    // A second init (tests) is harmless: the first subscriber stays.
    let _ = if format.eq_ignore_ascii_case("json") {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::Method;

    #[test]
    fn only_standard_methods_name_their_series() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::PATCH), "PATCH");
        for made_up in ["FOO", "get", "X-1", "BREW"] {
            assert_eq!(method_label(&Method::from_bytes(made_up.as_bytes()).unwrap()), "OTHER", "{made_up}");
        }
        assert_eq!(route_label(None), "unmatched");
    }
}
