//! The worker role: apalis-postgres workers that run delivery attempts. One task is one
//! attempt; what happens next is decided by the domain's retry policy and written, with
//! the next task, in the same transaction as the outcome.

mod alerts;
mod deliver;
pub mod mail;
mod maintenance;
pub mod outbound;
mod replays;
mod request;
pub mod sample;
mod upkeep;
mod wake;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use apalis::prelude::*;
use apalis_postgres::{Config, PostgresStorage};
use sqlx::PgPool;
use switchyard_domain::delivery::breaker::BreakerPolicy;
use switchyard_domain::netguard::Policy;
use switchyard_domain::secrets::SecretKey;
use switchyard_domain::store::queue::{
    ALERTS, AlertTask, DELIVERIES, DeliveryTask, MAIL, MAINTENANCE, MailTask, MaintenanceTask,
    REPLAYS, ReplayTask, SWEEPS, SweepTask,
};

pub use mail::Mailer;
pub use outbound::Outbound;

#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// How often the worker tells Postgres it is alive.
    pub heartbeat: Duration,
    /// Missed heartbeats after which another worker takes a dead worker's tasks.
    pub missed_heartbeats: usize,
    /// The fallback poll when no notification arrives (delayed retries become due).
    pub poll_interval: Duration,
    /// Attempts one process sends at once, across its workers.
    pub concurrency: usize,
    /// apalis workers per process. Each fetches, runs and acknowledges its own batches,
    /// so several keep the pipeline full while one waits on the database.
    pub workers: usize,
    /// How long shutdown waits for attempts in flight.
    pub shutdown_timeout: Duration,
    /// How often upkeep offers the sweep (stranded deliveries, breaker probes) and
    /// refreshes the gauges.
    pub upkeep_every: Duration,
    /// The most one send may take, answer included.
    pub send_timeout: Duration,
    /// When the circuit breaker opens and how long it waits between probes.
    pub breaker: BreakerPolicy,
    /// `SWITCHYARD_PUBLIC_URL`, for the links templates and alerts carry.
    pub public_base: String,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        WorkerSettings {
            heartbeat: Duration::from_secs(5),
            missed_heartbeats: 6,
            poll_interval: Duration::from_secs(1),
            concurrency: 32,
            workers: 4,
            shutdown_timeout: Duration::from_secs(35),
            upkeep_every: Duration::from_secs(60),
            send_timeout: Duration::from_secs(30),
            breaker: BreakerPolicy::default(),
            public_base: "http://localhost:8080".to_owned(),
        }
    }
}

/// What every attempt needs.
pub struct Deliverer {
    pub pool: PgPool,
    pub key: SecretKey,
    pub outbound: Outbound,
    pub mailer: Mailer,
    pub breaker: BreakerPolicy,
    /// `SWITCHYARD_PUBLIC_URL` without a trailing slash, for links in messages.
    pub public_base: String,
}

/// How long a worker that stopped on an error waits before it starts again.
const RESTART_PAUSE: Duration = Duration::from_millis(250);

/// The name a worker registers under, new each time it is started again. apalis takes a
/// worker's tasks back only once its name stops beating; a restarted worker that kept its
/// name would keep beating for the tasks its last run had fetched but not finished, so
/// they would never run. (Registration also takes a session advisory lock on the name,
/// which a pooled connection from the last run may still hold.) Under a new name, the old
/// run's tasks go back to the queue once its heartbeats are missed.
fn incarnation(name: &str, restarts: usize) -> String {
    if restarts == 0 {
        name.to_owned()
    } else {
        format!("{name}-r{restarts}")
    }
}

/// Runs the delivery workers until `shutdown` resolves, then lets attempts in flight
/// finish (up to the shutdown timeout) and returns.
/// `pool` carries claims and outcomes; `queue` carries apalis's own bookkeeping.
pub async fn run(
    pool: PgPool,
    queue: PgPool,
    key: SecretKey,
    policy: Policy,
    mailer: Mailer,
    settings: WorkerSettings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let upkeep_pool = pool.clone();
    let deliverer = Arc::new(Deliverer {
        pool: pool.clone(),
        key,
        outbound: Outbound::new(policy, settings.send_timeout)?,
        mailer,
        breaker: settings.breaker,
        public_base: settings.public_base.trim_end_matches('/').to_owned(),
    });
    // Unique per process: apalis keys heartbeats and orphan recovery on the name.
    let name = format!(
        "switchyard-worker-{}",
        switchyard_domain::secrets::random_token(9)
    );
    let config = Config::default()
        .queue(DELIVERIES)
        .heartbeat_interval(settings.heartbeat)
        .missed_heartbeats(settings.missed_heartbeats)
        .batch_size(settings.concurrency.div_ceil(settings.workers.max(1)))
        // A fetched task is already `Queued` under this worker's name, which orphan
        // recovery covers; marking each one `Running` as well would cost a commit per task.
        .lock_tasks(false);
    // One connection reads every new task's notification and wakes its queue's workers.
    let wakeups = wake::Wakeups::new(&[DELIVERIES, ALERTS, REPLAYS, MAINTENANCE, SWEEPS, MAIL]);
    let listener = tokio::spawn(wakeups.clone().listen(queue.clone()));
    // The side queues (alerts, account mail, bulk replays): few tasks, two at a time
    // each, polled like the deliveries.
    macro_rules! side_worker {
        ($queue:expr, $task:ty, $handler:path, $suffix:literal) => {{
            let pool = queue.clone();
            let config = Config::default()
                .queue($queue)
                .heartbeat_interval(settings.heartbeat)
                .missed_heartbeats(settings.missed_heartbeats);
            let deliverer = deliverer.clone();
            let name = format!("{name}-{}", $suffix);
            let poll_interval = settings.poll_interval;
            let wakeups = wakeups.clone();
            move |restarts| {
                let strategy = Strategy::new()
                    .stream(wakeups.stream($queue))
                    .interval(poll_interval);
                let backend = PostgresStorage::<$task>::new(&pool)
                    .with_config(config.clone())
                    .poll_with_strategy(strategy);
                WorkerBuilder::new(incarnation(&name, restarts))
                    .backend(backend)
                    .concurrency(2)
                    .catch_panic()
                    .data(deliverer.clone())
                    .build($handler)
            }
        }};
    }
    let mut monitor = Monitor::new()
        .shutdown_timeout(settings.shutdown_timeout)
        // A worker whose database went away (a restart, a failover, a network cut) ends
        // with an error; it is started again, after a pause so an outage that lasts is
        // not a busy loop. Without this, deliveries stopped for good after an outage.
        .should_restart(|worker, error| {
            tracing::warn!(worker = %worker.name(), %error, "worker stopped; restarting");
            std::thread::sleep(RESTART_PAUSE);
            true
        })
        .register(side_worker!(ALERTS, AlertTask, alerts::send, "alerts"))
        .register(side_worker!(REPLAYS, ReplayTask, replays::run, "replays"))
        .register(side_worker!(
            MAINTENANCE,
            MaintenanceTask,
            maintenance::run,
            "maintenance"
        ))
        .register(side_worker!(
            SWEEPS,
            SweepTask,
            maintenance::sweep,
            "sweeps"
        ));
    // Without SMTP nobody takes account emails: they wait in the queue, unspent, until a
    // worker that can send starts.
    if deliverer.mailer.is_configured() {
        monitor = monitor.register(side_worker!(
            MAIL,
            MailTask,
            alerts::send_account_mail,
            "mail"
        ));
    }
    let delivery_wakeups = wakeups.clone();
    let monitor = monitor.register_n(settings.workers.max(1), move |index, restarts| {
        let strategy = Strategy::new()
            .stream(delivery_wakeups.stream(DELIVERIES))
            .interval(settings.poll_interval);
        let backend = PostgresStorage::<DeliveryTask>::new(&queue)
            .with_config(config.clone())
            .poll_with_strategy(strategy);
        WorkerBuilder::new(incarnation(&format!("{name}-{index}"), restarts))
            .backend(backend)
            .concurrency(settings.concurrency.div_ceil(settings.workers.max(1)))
            .catch_panic()
            .data(deliverer.clone())
            .build(deliver::attempt)
    });
    let upkeep = tokio::spawn(upkeep::run(upkeep_pool, settings.upkeep_every));
    let result = monitor
        .run_with_signal(async move {
            shutdown.await;
            Ok(())
        })
        .await;
    upkeep.abort();
    listener.abort();
    result?;
    Ok(())
}
