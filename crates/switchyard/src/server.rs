//! Running the roles: one HTTP server on the bind address carrying the routes of the
//! roles asked for (every role gets `/healthz`, `/readyz` and `/metrics`), plus the
//! delivery workers. Stopping is graceful: the server stops accepting and finishes its
//! requests, then the workers finish their attempts.

use std::net::{SocketAddr, TcpListener};
use std::sync::OnceLock;
use std::time::Duration;

use actix_web::{App, HttpResponse, HttpServer, dev::ServerHandle, web};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use switchyard_domain::secrets::SecretKey;
use switchyard_ingress::IngressState;
use switchyard_send::anthropic::AnthropicApi;
use switchyard_web::WebState;
use switchyard_web::reads::Reads;
use switchyard_worker::WorkerSettings;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::db::Pools;
use crate::guard;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roles {
    pub ingress: bool,
    pub web: bool,
    pub worker: bool,
}

impl Roles {
    pub const ALL: Roles = Roles {
        ingress: true,
        web: true,
        worker: true,
    };
}

/// A started process: its address, and the handles to stop it.
pub struct Running {
    pub addr: SocketAddr,
    server: ServerHandle,
    server_task: JoinHandle<std::io::Result<()>>,
    worker: Option<(oneshot::Sender<()>, JoinHandle<()>)>,
    metrics_upkeep: JoinHandle<()>,
    /// Checks the read database, when there is one.
    replica_watch: Option<JoinHandle<()>>,
}

impl Running {
    /// Waits until the server stops by itself (SIGTERM or ctrl-c), then stops the workers.
    pub async fn wait(self) -> anyhow::Result<()> {
        let result = self.server_task.await;
        self.metrics_upkeep.abort();
        if let Some(watch) = &self.replica_watch {
            watch.abort();
        }
        if let Some((stop, task)) = self.worker {
            let _ = stop.send(());
            let _ = task.await;
        }
        result??;
        Ok(())
    }

    /// Graceful stop, as on SIGTERM.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.server.stop(true).await;
        self.wait().await
    }
}

/// How often histogram samples are folded into their summaries.
const METRICS_UPKEEP: Duration = Duration::from_secs(5);

fn metrics() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        // Another recorder may already be installed (several apps in one test process).
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}

pub async fn start(
    config: &Config,
    key: SecretKey,
    pools: Pools,
    roles: Roles,
    worker_settings: WorkerSettings,
    listener: TcpListener,
) -> anyhow::Result<Running> {
    let ingress = roles
        .ingress
        .then(|| IngressState::start(pools.ingress.clone(), key.clone(), 8, &config.public_base()));
    let anthropic = AnthropicApi::connect(config.policy(), config.anthropic_api_url.as_str())?;
    let web_state = roles.web.then(|| WebState {
        pool: pools.web.clone(),
        reads: Reads::new(pools.web.clone(), pools.read.clone()),
        key: key.clone(),
        policy: config.policy(),
        public_url: config.public_base(),
        anthropic: anthropic.clone(),
        smtp_configured: config.smtp_url.is_some(),
        trusted_proxies: config.trusted_proxies.clone(),
    });
    // Ready when the pool this process leans on answers.
    let ready_pool = if roles.ingress {
        pools.ingress.clone()
    } else if roles.web {
        pools.web.clone()
    } else {
        pools.worker.clone()
    };
    // Whether the read database answers, and its lag.
    let reads = web_state
        .as_ref()
        .map(|s| s.reads.clone())
        .filter(Reads::has_replica);
    let handle = metrics().clone();
    let addr = listener.local_addr()?;
    let body_timeout = Duration::from_secs(config.body_timeout);
    let connections = guard::Connections::default();
    let cap = config.max_connections_per_client;
    let trusted = config.trusted_proxies.clone();
    let server = HttpServer::new(move || {
        let ready_pool = ready_pool.clone();
        let handle = handle.clone();
        let mut app = App::new()
            .wrap(actix_web::middleware::from_fn(move |req, next| {
                guard::body_deadline(body_timeout, req, next)
            }))
            .wrap(actix_web::middleware::from_fn(crate::logs::requests))
            .route(
                "/healthz",
                web::get().to(|| async { HttpResponse::Ok().body("ok") }),
            )
            .route(
                "/readyz",
                web::get().to(move || {
                    let pool = ready_pool.clone();
                    async move {
                        match sqlx::query("SELECT 1").execute(&pool).await {
                            Ok(_) => HttpResponse::Ok().body("ready"),
                            Err(_) => {
                                HttpResponse::ServiceUnavailable().body("database unreachable")
                            }
                        }
                    }
                }),
            )
            .route(
                "/metrics",
                web::get().to(move || {
                    let body = handle.render();
                    async move {
                        HttpResponse::Ok()
                            .content_type("text/plain; version=0.0.4")
                            .body(body)
                    }
                }),
            );
        if let Some(state) = &ingress {
            app = app.configure(switchyard_ingress::configure(state.clone()));
        }
        if let Some(state) = &web_state {
            app = app.configure(switchyard_web::configure(state.clone()));
        }
        app
    })
    // Without TCP_NODELAY a response written in two parts waits for the client's delayed
    // ACK: ~40 ms added to a fraction of webhooks.
    .on_connect(move |conn, extensions| {
        let Some(tcp) = conn.downcast_ref::<actix_web::rt::net::TcpStream>() else {
            return;
        };
        let _ = tcp.set_nodelay(true);
        let Ok(peer) = tcp.peer_addr() else {
            return;
        };
        let proxied = trusted.iter().any(|net| net.contains(&peer.ip().to_canonical()));
        if cap == 0 || proxied {
            return;
        }
        match connections.admit(peer, cap) {
            Some(counted) => {
                extensions.insert(counted);
            }
            None => {
                tracing::warn!(client = %peer.ip(), cap, "connection refused: too many open from this address");
                let _ = socket2::SockRef::from(tcp).shutdown(std::net::Shutdown::Both);
            }
        }
    })
    .listen(listener)?
    .shutdown_timeout(30)
    .run();
    let server_handle = server.handle();
    let server_task = tokio::spawn(server);

    let mailer = config.mailer()?;
    let worker_settings = WorkerSettings {
        public_base: config.public_base(),
        anthropic_api_url: config.anthropic_api_url.to_string(),
        ..worker_settings
    };
    let worker = roles.worker.then(|| {
        let (stop, stopped) = oneshot::channel::<()>();
        let (pool, policy) = (pools.worker.clone(), config.policy());
        let mailer = mailer.clone();
        let task = tokio::spawn(async move {
            let shutdown = async move {
                let _ = stopped.await;
            };
            if let Err(e) =
                switchyard_worker::run(pool, key, policy, mailer, worker_settings, shutdown).await
            {
                tracing::error!(error = %e, "delivery workers stopped");
            }
        });
        (stop, task)
    });
    // Histograms keep every sample until upkeep folds them into their summaries; without
    // it a process nobody scrapes grows by every request's timing.
    let metrics_upkeep = tokio::spawn(async {
        let mut every = tokio::time::interval(METRICS_UPKEEP);
        loop {
            every.tick().await;
            metrics().run_upkeep();
        }
    });
    let replica_watch = reads.map(|reads| tokio::spawn(reads.watch()));
    tracing::info!(%addr, ?roles, "switchyard listening");
    Ok(Running {
        addr,
        server: server_handle,
        server_task,
        worker,
        metrics_upkeep,
        replica_watch,
    })
}
