//! The worker role: the delivery engine (batches claimed from the deliveries table, sent
//! by an apalis worker, outcomes group-committed; see `engine`) and the apalis-postgres
//! workers of the side queues: alerts, account mail, bulk replays and maintenance.

mod alerts;
mod deliver;
mod engine;
mod enrich;
pub mod mail;
mod maintenance;
pub mod partitions;
mod reconcile;
mod replays;
mod rested;
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
    ALERTS, AlertTask, MAIL, MAINTENANCE, MailTask, MaintenanceTask, REPLAYS, ReplayTask,
};

use crate::engine::{Deliveries, Engine, EngineSettings};
pub use mail::Mailer;
pub use switchyard_send::Outbound;
use switchyard_send::anthropic::AnthropicApi;

#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// Requests one process has out at once; twice as many attempts may be in progress
    /// (the rest waiting for their outcome's commit).
    pub send_slots: usize,
    /// Requests one destination may have out from one process at once, so a slow or
    /// flooded destination never takes every slot.
    pub per_destination: usize,
    /// How long a claimed delivery belongs to its process. A delivery whose lease ran
    /// out (its worker died or stalled) is claimed again. Longer than `send_timeout`.
    pub lease: Duration,
    /// The most one send may take, answer included.
    pub send_timeout: Duration,
    /// How often the side queues' workers tell Postgres they are alive.
    pub heartbeat: Duration,
    /// Missed heartbeats after which another worker takes a dead worker's side jobs.
    pub missed_heartbeats: usize,
    /// The side queues' fallback poll when no notification arrives.
    pub poll_interval: Duration,
    /// How long shutdown waits for attempts in flight.
    pub shutdown_timeout: Duration,
    /// How often upkeep offers the hour's maintenance and refreshes the gauges.
    pub upkeep_every: Duration,
    /// When the circuit breaker opens and how long it waits between probes.
    pub breaker: BreakerPolicy,
    /// `SWITCHYARD_PUBLIC_URL`, for the links templates and alerts carry.
    pub public_base: String,
    /// `SWITCHYARD_ANTHROPIC_API_URL`: where enrichment fetches objects.
    pub anthropic_api_url: String,
    /// The most Managed Agents API calls one reconciliation pass makes; a pass that needs
    /// more says it was cut short, and the next goes on.
    pub reconcile_calls: u32,
    /// The most days any team keeps its events (`SWITCHYARD_MAX_RETENTION_DAYS`).
    pub max_retention_days: u32,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        WorkerSettings {
            send_slots: 512,
            per_destination: 256,
            lease: Duration::from_secs(60),
            send_timeout: Duration::from_secs(30),
            heartbeat: Duration::from_secs(5),
            missed_heartbeats: 6,
            poll_interval: Duration::from_secs(1),
            shutdown_timeout: Duration::from_secs(35),
            upkeep_every: Duration::from_secs(60),
            breaker: BreakerPolicy::default(),
            public_base: "http://localhost:8080".to_owned(),
            anthropic_api_url: "https://api.anthropic.com".to_owned(),
            reconcile_calls: 500,
            max_retention_days: 90,
        }
    }
}

/// What every job needs: sends, side jobs and maintenance.
pub struct WorkerContext {
    pub pool: PgPool,
    pub key: SecretKey,
    pub outbound: Outbound,
    pub mailer: Mailer,
    /// The Anthropic API, for enrichment.
    pub anthropic: AnthropicApi,
    pub breaker: BreakerPolicy,
    /// `SWITCHYARD_PUBLIC_URL` without a trailing slash, for links in messages.
    pub public_base: String,
    /// The most days any team keeps its events.
    pub max_retention_days: u32,
}

/// The name a side worker registers under, new each time it is started again.
/// apalis-postgres takes a worker's fetched jobs back only once its name stops beating;
/// a restarted worker that kept its name would keep beating for the jobs its last run
/// had fetched but not finished, so they would never run. (Registration also takes a
/// session advisory lock on the name, which a pooled connection from the last run may
/// still hold.) Under a new name, the old run's jobs go back to the queue once its
/// heartbeats are missed. The delivery engine registers nothing: leases replace this.
fn incarnation(name: &str, restarts: usize) -> String {
    if restarts == 0 {
        name.to_owned()
    } else {
        format!("{name}-r{restarts}")
    }
}

/// How long a side worker that stopped on an error waits before it starts again.
const RESTART_PAUSE: Duration = Duration::from_millis(250);

/// Runs the delivery engine and the side workers until `shutdown` resolves, then lets
/// attempts in flight finish (up to the shutdown timeout) and returns.
pub async fn run(
    pool: PgPool,
    key: SecretKey,
    policy: Policy,
    mailer: Mailer,
    settings: WorkerSettings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    if settings.lease <= settings.send_timeout {
        return Err(format!(
            "the delivery lease ({:?}) must be longer than a send may take ({:?})",
            settings.lease, settings.send_timeout
        )
        .into());
    }
    let context = Arc::new(WorkerContext {
        pool: pool.clone(),
        key,
        outbound: Outbound::new(policy, settings.send_timeout)?,
        anthropic: AnthropicApi::connect(policy, &settings.anthropic_api_url)?,
        mailer,
        breaker: settings.breaker,
        public_base: settings.public_base.trim_end_matches('/').to_owned(),
        max_retention_days: settings.max_retention_days,
    });
    // One connection reads every notification and wakes the claimer and the side queues.
    let wakeups = wake::Wakeups::new(&[ALERTS, REPLAYS, MAINTENANCE, MAIL]);
    let listener = tokio::spawn(wakeups.clone().listen(pool.clone()));
    let engine = Arc::new(Engine::new(
        context.clone(),
        EngineSettings {
            send_slots: settings.send_slots,
            per_destination: settings
                .per_destination
                .clamp(1, settings.send_slots.max(1)),
            lease: settings.lease,
            send_timeout: settings.send_timeout,
        },
        wakeups.deliveries(),
    ));
    // Unique per process: apalis-postgres keys heartbeats and orphan recovery on it.
    let name = format!(
        "switchyard-worker-{}",
        switchyard_domain::secrets::random_token(9)
    );
    // The side queues (alerts, account mail, bulk replays, maintenance): few jobs, two at
    // a time each.
    macro_rules! side_worker {
        ($queue:expr, $task:ty, $handler:path, $suffix:literal) => {{
            let pool = pool.clone();
            let config = Config::default()
                .queue($queue)
                .heartbeat_interval(settings.heartbeat)
                .missed_heartbeats(settings.missed_heartbeats);
            let context = context.clone();
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
                    .backend(rested::Rested::new(backend, restarts, RESTART_PAUSE))
                    .concurrency(2)
                    .catch_panic()
                    .data(context.clone())
                    .build($handler)
            }
        }};
    }
    // Attempts whose send is over wait for their outcome's commit without a send slot:
    // the worker runs as many at once as the slots allow in progress (see `Slots`).
    let attempts_at_once = settings.send_slots.max(1) * engine::IN_PROGRESS_PER_SLOT;
    let deliveries = {
        let engine = engine.clone();
        move |_restarts| {
            WorkerBuilder::new("switchyard-deliveries")
                .backend(Deliveries::new(engine.clone()))
                .concurrency(attempts_at_once)
                .catch_panic()
                .data(engine.clone())
                .build(deliver::attempt)
        }
    };
    let mut monitor = Monitor::new()
        .shutdown_timeout(settings.shutdown_timeout)
        // A side worker whose database went away ends with an error; it is started again
        // (after a pause, see `rested`). The delivery worker's backend never fails: its
        // claimer waits out an outage by itself.
        .should_restart(|worker, error| {
            tracing::warn!(worker = %worker.name(), %error, "worker stopped; restarting");
            true
        })
        .register(deliveries)
        .register(side_worker!(ALERTS, AlertTask, alerts::send, "alerts"))
        .register(side_worker!(REPLAYS, ReplayTask, replays::run, "replays"))
        .register(side_worker!(
            MAINTENANCE,
            MaintenanceTask,
            maintenance::run,
            "maintenance"
        ));
    // Without SMTP nobody takes account emails: they wait in the queue, unspent, until a
    // worker that can send starts.
    if context.mailer.is_configured() {
        monitor = monitor.register(side_worker!(
            MAIL,
            MailTask,
            alerts::send_account_mail,
            "mail"
        ));
    }
    let upkeep = tokio::spawn(upkeep::run(pool, settings.upkeep_every));
    let reconciling = tokio::spawn(reconcile::run(
        context.clone(),
        settings.upkeep_every,
        settings.reconcile_calls,
    ));
    let result = monitor
        .run_with_signal(async move {
            shutdown.await;
            Ok(())
        })
        .await;
    upkeep.abort();
    reconciling.abort();
    listener.abort();
    result?;
    Ok(())
}
