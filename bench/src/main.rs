//! Benchmarks, run in release mode:
//!
//! ```sh
//! cargo run --release -p switchyard-bench -- ingest [--seconds 10] [--concurrency 1,16,64]
//! cargo run --release -p switchyard-bench -- logs [--events 1000000] [--requests 50]
//! cargo run --release -p switchyard-bench -- soak [--minutes 10] [--window 30] [--rate R]
//! cargo run --release -p switchyard-bench -- storage [--events 10000000] [--days 10]
//! ```
//!
//! `ingest` starts Switchyard as a child process on a fresh database, routes a GitHub
//! source to a local sink, drives signed 1 KiB webhooks over loopback at each
//! concurrency for a fixed time, and prints accepted/s, ack latency, deliveries/s at the
//! sink and how they kept pace (delivered while the level ran over accepted), what was
//! left and how long it took to drain, end-to-end latency, the mean claim and outcome
//! batch sizes, and the server's peak RSS; then latency open loop at half the best rate.
//! In the same run it measures the raw baseline (the same payload, one `INSERT` + commit
//! per request through sqlx at the same concurrency, the median of three runs) and
//! prints `ingest / raw-insert`. Autovacuum is on for the run.
//!
//! `logs` seeds one team with a million events and measures the API's event list and
//! the dashboard's events page under each filter.
//!
//! `storage` seeds a team with ten million events over ten days, a partition a day, and
//! prints table sizes per million rows (partitioned and as one table), the dashboard's
//! and API's reads, and ingest latency while a day is dropped or deleted in batches.
//!
//! `soak` measures the maximum ingest rate, then sends at 70 % of it for ten minutes and
//! prints, every window, RSS, ack and end-to-end latency, deliveries/s, the delivery
//! backlog and dead rows.

mod ingest;
mod logs;
mod sink;
mod soak;
mod storage;

use clap::{Parser, Subcommand};

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Ingest throughput and latency against the raw-insert baseline.
    Ingest {
        /// Seconds per concurrency level.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Concurrency levels, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
        concurrency: Vec<usize>,
        /// Route events to the sink (off: measure ingest alone).
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
        deliver: bool,
        /// Server to create the benchmark database on.
        #[arg(
            long,
            env = "SWITCHYARD_BENCH_DATABASE_URL",
            default_value = "postgres://postgres@127.0.0.1:5432/postgres"
        )]
        admin_url: String,
    },
    /// The events list and page at a million events per team.
    Logs {
        #[arg(long, default_value_t = 1_000_000)]
        events: i64,
        /// Sequential requests per case.
        #[arg(long, default_value_t = 50)]
        requests: usize,
        #[arg(
            long,
            env = "SWITCHYARD_BENCH_DATABASE_URL",
            default_value = "postgres://postgres@127.0.0.1:5432/postgres"
        )]
        admin_url: String,
    },
    /// 70 % of the maximum ingest rate for a long stretch, watched over time.
    Soak {
        #[arg(long, default_value_t = 10)]
        minutes: u64,
        /// Seconds per reported window.
        #[arg(long, default_value_t = 30)]
        window: u64,
        /// Webhooks per second (default: 70 % of the measured maximum).
        #[arg(long)]
        rate: Option<f64>,
        #[arg(
            long,
            env = "SWITCHYARD_BENCH_DATABASE_URL",
            default_value = "postgres://postgres@127.0.0.1:5432/postgres"
        )]
        admin_url: String,
    },
    /// Table sizes, reads and retention at ten million events.
    Storage {
        #[arg(long, default_value_t = 10_000_000)]
        events: i64,
        /// Days the events span (a partition each).
        #[arg(long, default_value_t = 10)]
        days: i64,
        /// Sequential requests per read.
        #[arg(long, default_value_t = 100)]
        requests: usize,
        #[arg(
            long,
            env = "SWITCHYARD_BENCH_DATABASE_URL",
            default_value = "postgres://postgres@127.0.0.1:5432/postgres"
        )]
        admin_url: String,
    },
    /// Internal: run Switchyard in this process (the benchmark's child).
    #[command(hide = true)]
    Serve { database_url: String },
}

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match Cli::parse().command {
        Command::Ingest {
            seconds,
            concurrency,
            deliver,
            admin_url,
        } => runtime.block_on(ingest::run(&admin_url, seconds, &concurrency, deliver)),
        Command::Logs {
            events,
            requests,
            admin_url,
        } => runtime.block_on(logs::run(&admin_url, events, requests)),
        Command::Soak {
            minutes,
            window,
            rate,
            admin_url,
        } => runtime.block_on(soak::run(
            &admin_url,
            minutes,
            std::time::Duration::from_secs(window.max(1)),
            rate,
        )),
        Command::Storage {
            events,
            days,
            requests,
            admin_url,
        } => runtime.block_on(storage::run(&admin_url, events, days, requests)),
        Command::Serve { database_url } => runtime.block_on(ingest::serve(&database_url)),
    }
}
