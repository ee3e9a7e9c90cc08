//! `TestApp`: Switchyard with every role on port 0 over a fresh database, plus helpers
//! that speak its API the way a user's script would.

use crate::contract::Contract;
use std::net::TcpListener;
use std::time::Duration;

use clap_free::parse_config;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;
use switchyard::{Roles, Running, WorkerSettings};
use switchyard_domain::delivery::breaker::BreakerPolicy;
use switchyard_domain::store::{api_keys, teams};

use crate::{DbProxy, db};

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    /// The API key of the test's team.
    pub key: String,
    /// A direct pool on the test database, for setting up and checking what the API
    /// does not show.
    pub pool: PgPool,
    pub database: String,
    pub proxy: Option<DbProxy>,
    /// A URL of the server the database is on (where it is dropped).
    admin: String,
    running: Option<Running>,
    /// The served OpenAPI document every API answer is checked against.
    contract: tokio::sync::OnceCell<Contract>,
}

#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Route the app's database traffic through a proxy the test can cut.
    pub db_proxy: bool,
    /// Run no delivery workers in the app (the test brings its own).
    pub no_worker: bool,
    /// Take no webhooks in the app (the test runs ingress processes of its own).
    pub no_ingress: bool,
    /// Apply the production SSRF policy: no private addresses, https only.
    pub strict_destinations: bool,
    /// `SWITCHYARD_SMTP_URL` for the app.
    pub smtp_url: Option<String>,
    /// The circuit breaker's policy, where the test default (one-second cool-downs)
    /// would let a probe run in the middle of the test.
    pub breaker: Option<BreakerPolicy>,
    /// `SWITCHYARD_TRUSTED_PROXIES` for the app.
    pub trusted_proxies: Vec<String>,
    /// Another PostgreSQL server (a URL of it) to run on, such as a test's own
    /// [`Cluster`](crate::cluster::Cluster) that it restarts.
    pub server: Option<String>,
    /// A database the test made and filled itself (it is migrated on start and dropped
    /// with the app) instead of a fresh one.
    pub database: Option<String>,
    /// `SWITCHYARD_BODY_TIMEOUT`, in seconds.
    pub body_timeout: Option<u64>,
    /// `SWITCHYARD_MAX_CONNECTIONS_PER_CLIENT`.
    pub max_connections_per_client: Option<usize>,
    /// `SWITCHYARD_ANTHROPIC_API_URL`: a [`FakeAnthropic`](crate::FakeAnthropic)'s base.
    pub anthropic_api_url: Option<String>,
    /// The most API calls one reconciliation pass makes.
    pub reconcile_calls: Option<u32>,
    /// `SWITCHYARD_READ_DATABASE_URL` for the app.
    pub read_database_url: Option<String>,
}

impl Options {
    /// Everything as usual, with email through `smtp`.
    pub fn mail(smtp: &crate::SmtpServer) -> Options {
        Options {
            smtp_url: Some(smtp.url.clone()),
            ..Options::default()
        }
    }
}

/// Workers tuned for tests: short leases and quick heartbeats, so a dead worker's
/// deliveries and jobs are taken over in seconds.
pub fn test_worker_settings() -> WorkerSettings {
    WorkerSettings {
        send_slots: 16,
        per_destination: 8,
        lease: Duration::from_secs(8),
        send_timeout: Duration::from_secs(5),
        heartbeat: Duration::from_secs(1),
        missed_heartbeats: 3,
        poll_interval: Duration::from_millis(250),
        upkeep_every: Duration::from_secs(1),
        shutdown_timeout: Duration::from_secs(5),
        // DESIGN's threshold, with cool-downs short enough to watch a probe.
        breaker: BreakerPolicy {
            threshold: 10,
            first_cooldown: chrono::Duration::seconds(1),
            max_cooldown: chrono::Duration::seconds(4),
        },
        ..WorkerSettings::default()
    }
}

mod clap_free {
    use clap::Parser;
    use switchyard::config::Cli;

    pub fn parse_config(
        database_url: &str,
        public_url: &str,
        allow_private: bool,
        smtp_url: Option<&str>,
    ) -> switchyard::Config {
        let smtp = smtp_url
            .map(|url| vec!["--smtp-url", url])
            .unwrap_or_default();
        Cli::try_parse_from(
            [
                "switchyard",
                "--database-url",
                database_url,
                "--public-url",
                public_url,
                "--bind",
                "127.0.0.1:0",
                "--allow-private-destinations",
                if allow_private { "true" } else { "false" },
                "--env",
                "development",
                "--smtp-from",
                "Switchyard <alerts@switchyard.test>",
            ]
            .into_iter()
            .chain(smtp),
        )
        .expect("test config")
        .config
    }
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(Options::default()).await
    }

    pub async fn spawn_with(options: Options) -> TestApp {
        let admin = options.server.clone().unwrap_or_else(db::admin_url);
        let database = match &options.database {
            Some(name) => name.clone(),
            None => db::create_on(&admin).await,
        };
        let direct_url = db::url_on(&admin, &database);
        let proxy = if options.db_proxy {
            Some(DbProxy::start(upstream_addr(&direct_url)).await)
        } else {
            None
        };
        let app_url = match &proxy {
            Some(p) => direct_url.replacen(
                &upstream_addr(&direct_url),
                &format!("127.0.0.1:{}", p.port),
                1,
            ),
            None => direct_url.clone(),
        };
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind app");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let mut config = parse_config(
            &app_url,
            &base,
            !options.strict_destinations,
            options.smtp_url.as_deref(),
        );
        if let Some(seconds) = options.body_timeout {
            config.body_timeout = seconds;
        }
        if let Some(cap) = options.max_connections_per_client {
            config.max_connections_per_client = cap;
        }
        config.read_database_url = options.read_database_url.clone();
        if let Some(url) = &options.anthropic_api_url {
            config.anthropic_api_url = url.parse().expect("an Anthropic API URL");
        }
        config.trusted_proxies = options
            .trusted_proxies
            .iter()
            .map(|p| p.parse().expect("a CIDR range"))
            .collect();
        let roles = Roles {
            worker: !options.no_worker,
            ingress: !options.no_ingress,
            ..Roles::ALL
        };
        let mut settings = test_worker_settings();
        if let Some(breaker) = options.breaker {
            settings.breaker = breaker;
        }
        if let Some(calls) = options.reconcile_calls {
            settings.reconcile_calls = calls;
        }
        let running = switchyard::start(&config, roles, settings, listener)
            .await
            .expect("start switchyard");
        let pool = PgPool::connect(&direct_url).await.expect("test pool");
        let team = teams::insert(&pool, "acme", "Acme").await.expect("team");
        let (_, key) = api_keys::create(&pool, &team.id, "test")
            .await
            .expect("key");
        TestApp {
            base,
            client: reqwest::Client::new(),
            key,
            pool,
            database,
            proxy,
            admin,
            running: Some(running),
            contract: tokio::sync::OnceCell::new(),
        }
    }

    /// Sends the team's alerts to `address` too (the team has no members to get them).
    pub async fn alert_to(&self, address: &str) {
        sqlx::query(
            "INSERT INTO alert_settings (team_id, extra_recipients)
             SELECT id, ARRAY[$1] FROM teams WHERE slug = 'acme'",
        )
        .bind(address)
        .execute(&self.pool)
        .await
        .expect("alert settings");
    }

    /// Another team on the same app, with its own key.
    pub async fn other_team_key(&self, slug: &str) -> String {
        let team = teams::insert(&self.pool, slug, slug).await.expect("team");
        api_keys::create(&self.pool, &team.id, "other")
            .await
            .expect("key")
            .1
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The Prometheus text a process serving on `base` answers at `/metrics`.
    pub async fn metrics_at(&self, base: &str) -> String {
        self.client
            .get(format!("{base}/metrics"))
            .send()
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("metrics text")
    }

    /// A request with this team's API key.
    pub fn api(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, self.url(path))
            .bearer_auth(&self.key)
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.api(method.clone(), path);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let res = req.send().await.expect("request");
        let status = res.status();
        let body = res.json::<Value>().await.unwrap_or(Value::Null);
        self.contract().await.check(&method, path, status, &body);
        (status, body)
    }

    /// Checks an API answer a test read itself against the OpenAPI document the server
    /// serves; the answer's body, as JSON (`Null` when it has none).
    pub async fn checked(
        &self,
        method: &Method,
        path: &str,
        res: reqwest::Response,
    ) -> (StatusCode, Value) {
        let status = res.status();
        let body = res.json::<Value>().await.unwrap_or(Value::Null);
        self.contract().await.check(method, path, status, &body);
        (status, body)
    }

    /// The served OpenAPI document, read once.
    async fn contract(&self) -> &Contract {
        self.contract
            .get_or_init(|| async { Contract::new(self.openapi().await) })
            .await
    }

    /// The OpenAPI document the server serves.
    pub async fn openapi(&self) -> Value {
        self.client
            .get(self.url("/api/openapi.json"))
            .send()
            .await
            .expect("openapi.json")
            .json()
            .await
            .expect("openapi.json is JSON")
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(body)).await
    }

    /// Polls `probe` until it yields something; panics after five seconds.
    pub async fn eventually<T, F, Fut>(&self, probe: F) -> T
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(found) = probe().await {
                return found;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "nothing turned up within five seconds"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// POSTs `body` to `path` and insists on 422 naming `field` among the bad fields.
    pub async fn refused(&self, path: &str, body: Value, field: &str) {
        let (status, problem) = self.post(path, body.clone()).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body} -> {problem}"
        );
        let named = problem["errors"]
            .as_array()
            .is_some_and(|errors| errors.iter().any(|e| e["field"] == field));
        assert!(named, "{body} -> {problem}");
    }

    /// Sends a signed GitHub `issues` event and returns the id of its one delivery.
    pub async fn send_issue(
        &self,
        source: &Value,
        secret: &str,
        guid: &str,
        body: &[u8],
    ) -> String {
        let (status, answer) = self.send_github(source, secret, "issues", guid, body).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        let delivery = self
            .delivery_of(answer["event_id"].as_str().expect("event_id"))
            .await;
        delivery["id"].as_str().expect("delivery id").to_owned()
    }

    /// POSTs `body` and insists on 201 Created.
    pub async fn created(&self, path: &str, body: Value) -> Value {
        let (status, body) = self.post(path, body).await;
        assert_eq!(status, StatusCode::CREATED, "POST {path}: {body}");
        body
    }

    pub async fn create_source(&self, provider: &str, secret: Option<&str>) -> Value {
        self.created(
            "/api/v1/sources",
            json!({"name": provider, "provider": provider, "secret": secret}),
        )
        .await
    }

    pub async fn create_destination(&self, url: &str) -> Value {
        self.created(
            "/api/v1/destinations",
            json!({"name": "app", "kind": "http", "url": url}),
        )
        .await
    }

    pub async fn create_route(
        &self,
        source: &Value,
        destination: &Value,
        event_types: &[&str],
    ) -> Value {
        self.created(
            "/api/v1/routes",
            json!({"name": "r", "source_id": source["id"], "destination_id": destination["id"], "event_types": event_types}),
        )
        .await
    }

    /// A GitHub source routed to `destination_url`, returning the source.
    pub async fn github_to(
        &self,
        secret: &str,
        destination_url: &str,
        event_types: &[&str],
    ) -> Value {
        let source = self.create_source("github", Some(secret)).await;
        let destination = self.create_destination(destination_url).await;
        self.create_route(&source, &destination, event_types).await;
        source
    }

    /// Polls a delivery until `done` holds for it; panics after `within`.
    pub async fn wait_delivery(
        &self,
        id: &str,
        within: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let (_, delivery) = self.get(&format!("/api/v1/deliveries/{id}")).await;
            if done(&delivery) {
                return delivery;
            }
            if tokio::time::Instant::now() > deadline {
                panic!("delivery {id} did not get there within {within:?}: {delivery:#}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The one delivery of an event.
    pub async fn delivery_of(&self, event_id: &str) -> Value {
        let (status, event) = self.get(&format!("/api/v1/events/{event_id}")).await;
        assert_eq!(status, StatusCode::OK, "{event}");
        let deliveries = event["deliveries"].as_array().expect("deliveries");
        assert_eq!(deliveries.len(), 1, "{event:#}");
        deliveries[0].clone()
    }
}

/// Starts delivery workers in a process of their own, for tests that kill it with
/// SIGKILL: the test binary runs itself with only the ignored `worker_process` test,
/// which serves until killed. Returns once the worker has registered.
pub async fn spawn_worker_process(database: &str) -> tokio::process::Child {
    spawn_worker_process_serving(database).await.0
}

/// [`spawn_worker_process`], with the base URL the worker serves `/metrics` on.
pub async fn spawn_worker_process_serving(database: &str) -> (tokio::process::Child, String) {
    let (child, addr) = spawn_role_process("worker_process", database, None).await;
    (child, format!("http://{addr}"))
}

/// Starts an ingress in a process of their own, listening on `bind` (an address a
/// killed one used, to restart it) or a free port; the test binary runs itself with only
/// the ignored `ingress_process` test. Returns once it listens, with its base URL.
pub async fn spawn_ingress_process(
    database: &str,
    bind: Option<&str>,
) -> (tokio::process::Child, String) {
    let (child, addr) = spawn_role_process("ingress_process", database, bind).await;
    (child, format!("http://{addr}"))
}

async fn spawn_role_process(
    test: &str,
    database: &str,
    bind: Option<&str>,
) -> (tokio::process::Child, String) {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            test,
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("SWITCHYARD_TEST_WORKER_DATABASE", db::url_for(database))
        .env("SWITCHYARD_TEST_BIND", bind.unwrap_or("127.0.0.1:0"))
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn a role process");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    while let Some(line) = lines.next_line().await.expect("child output") {
        // libtest may print "test worker_process ... " on the same line.
        if let Some((_, addr)) = line.trim_end().split_once(READY) {
            let addr = addr.trim().to_owned();
            tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
            return (child, addr);
        }
    }
    panic!("the {test} process exited before it was ready");
}

/// What a role process prints, followed by its address, once it serves.
const READY: &str = "role ready on ";

/// The body of the process `spawn_worker_process` starts: delivery workers on the
/// database named by `SWITCHYARD_TEST_WORKER_DATABASE`, until the process is killed.
pub async fn run_worker_process() {
    run_role_process(Roles {
        ingress: false,
        web: false,
        worker: true,
    })
    .await;
}

/// The body of the process `spawn_ingress_process` starts.
pub async fn run_ingress_process() {
    run_role_process(Roles {
        ingress: true,
        web: false,
        worker: false,
    })
    .await;
}

async fn run_role_process(roles: Roles) {
    let Ok(url) = std::env::var("SWITCHYARD_TEST_WORKER_DATABASE") else {
        panic!("a role process only runs as the child of a test");
    };
    let bind = std::env::var("SWITCHYARD_TEST_BIND").unwrap_or_else(|_| "127.0.0.1:0".to_owned());
    let listener = TcpListener::bind(&bind).expect("bind");
    let addr = listener.local_addr().expect("addr");
    let config = parse_config(&url, &format!("http://{addr}"), true, None);
    let running = switchyard::start(&config, roles, test_worker_settings(), listener)
        .await
        .expect("start");
    println!("{READY}{addr}");
    running.wait().await.expect("role process");
}

fn upstream_addr(url: &str) -> String {
    let parsed = reqwest::Url::parse(url).expect("database url");
    format!(
        "{}:{}",
        parsed.host_str().unwrap_or("127.0.0.1"),
        parsed.port().unwrap_or(5432)
    )
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.running.take();
        db::drop_blocking(&self.admin, std::mem::take(&mut self.database));
    }
}
