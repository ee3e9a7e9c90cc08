//! Getting a database: connect (creating the database if it is missing), migrate, and
//! size one pool per purpose. With no server answering on localhost, a private cluster
//! is started under `./.switchyard/postgres` when PostgreSQL's binaries are installed.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, bail};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool};

use crate::Roles;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");

/// Pools per purpose, each with its own `application_name`. Sized so two processes of
/// each role fit in PostgreSQL's default 100 connections (a test keeps it so).
#[derive(Clone)]
pub struct Pools {
    /// The data plane: a short acquire timeout, so a request answers 503 within ~1 s.
    pub ingress: PgPool,
    /// The control plane: statements time out rather than pile up.
    pub web: PgPool,
    /// The workers: claims, outcomes, side jobs and the listener that wakes them.
    pub worker: PgPool,
    /// The control plane's reads, on `SWITCHYARD_READ_DATABASE_URL` when it is set.
    pub read: Option<PgPool>,
}

pub fn options(url: &str) -> anyhow::Result<PgConnectOptions> {
    let mut options =
        PgConnectOptions::from_str(url).context("DATABASE_URL is not a valid PostgreSQL URL")?;
    // No user in the URL: connect as the OS user, else `postgres`.
    let named_user = url::Url::parse(url).is_ok_and(|u| !u.username().is_empty());
    if !named_user && std::env::var_os("PGUSER").is_none() {
        options = options.username(&current_user());
    }
    Ok(options.log_statements(tracing::log::LevelFilter::Trace))
}

fn current_user() -> String {
    std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "postgres".to_owned())
}

/// Connects to the configured database, creating it if the server has no such database.
pub async fn prepare(url: &str) -> anyhow::Result<PgConnectOptions> {
    let options = options(url)?;
    match PgConnection::connect_with(&options).await {
        Ok(conn) => {
            conn.close().await.ok();
            Ok(prefer_local_socket(options).await)
        }
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("3D000") => {
            create_database(&options).await?;
            Ok(prefer_local_socket(options).await)
        }
        Err(e) if is_refused(&e) && url == crate::config::DEFAULT_DATABASE_URL => {
            let private = start_private_cluster().await?;
            let options = options
                .host(&private.to_string_lossy())
                .port(PRIVATE_PORT)
                .username("postgres");
            if let Err(sqlx::Error::Database(e)) = PgConnection::connect_with(&options).await
                && e.code().as_deref() == Some("3D000")
            {
                create_database(&options).await?;
            }
            Ok(options)
        }
        Err(e) => Err(e).context(NO_POSTGRES),
    }
}

/// A server on this machine is reached through its Unix socket when it accepts us there
/// (else over TCP as configured). sqlx cannot set TCP_NODELAY, and over loopback Nagle's
/// algorithm holds the tail of a large statement (a batch of webhook bodies) until the
/// server's delayed ACK: ~40 ms on a share of webhooks.
async fn prefer_local_socket(options: PgConnectOptions) -> PgConnectOptions {
    if options.get_socket().is_some()
        || !matches!(options.get_host(), "localhost" | "127.0.0.1" | "::1")
    {
        return options;
    }
    let socket_name = format!(".s.PGSQL.{}", options.get_port());
    for dir in ["/var/run/postgresql", "/run/postgresql", "/tmp"] {
        if Path::new(dir).join(&socket_name).exists() {
            let local = options.clone().socket(dir);
            if let Ok(conn) = PgConnection::connect_with(&local).await {
                conn.close().await.ok();
                tracing::debug!(socket = dir, "using the local server's Unix socket");
                return local;
            }
        }
    }
    options
}

const NO_POSTGRES: &str = "cannot reach PostgreSQL. Switchyard keeps everything in PostgreSQL: \
install it (e.g. `apt-get install postgresql`, which lets Switchyard start a private \
cluster under ./.switchyard/postgres by itself), run `docker compose up -d postgres` from \
this repository, or point DATABASE_URL at a server you have";

fn is_refused(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused)
}

async fn create_database(options: &PgConnectOptions) -> anyhow::Result<()> {
    let name = options.get_database().unwrap_or("switchyard").to_owned();
    let mut admin = PgConnection::connect_with(&options.clone().database("postgres"))
        .await
        .context("connecting to the postgres database to create the switchyard database")?;
    let quoted = format!("\"{}\"", name.replace('"', "\"\""));
    let result = sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {quoted}")))
        .execute(&mut admin)
        .await;
    match result {
        // Another process created it first.
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P04") => Ok(()),
        other => other
            .map(|_| ())
            .with_context(|| format!("creating database {name}")),
    }
}

pub async fn migrate(options: &PgConnectOptions) -> anyhow::Result<()> {
    // The job queue's schema first: Switchyard's migrations adjust its wake-up trigger.
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(options.clone())
        .await?;
    apalis_postgres::PostgresStorage::<()>::setup(&pool)
        .await
        .context("setting up the job queue")?;
    MIGRATOR.run(&pool).await.context("applying migrations")?;
    // The days' partitions, so no insert waits for the first maintenance run.
    switchyard_worker::partitions::ensure(&pool, chrono::Utc::now())
        .await
        .context("making the coming days' partitions")?;
    pool.close().await;
    Ok(())
}

/// The most connections each pool opens. A process opens only the pools its roles use
/// (they connect lazily), so its share of the server is [`Roles::connections`].
pub const INGRESS_CONNECTIONS: u32 = 12;
pub const WEB_CONNECTIONS: u32 = 8;
/// One listens for new work; one claims; two commit outcomes; the rest serve the side
/// jobs' workers (fetch, heartbeat, acknowledge), email recipients and upkeep.
pub const WORKER_CONNECTIONS: u32 = 16;
/// The control plane's reads, when `SWITCHYARD_READ_DATABASE_URL` names a database of
/// their own (a replica, or the same server under another name).
pub const READ_CONNECTIONS: u32 = 6;

impl Roles {
    /// The most connections a process with these roles opens.
    pub fn connections(self) -> u32 {
        let Roles {
            ingress,
            web,
            worker,
        } = self;
        u32::from(ingress) * INGRESS_CONNECTIONS
            + u32::from(web) * (WEB_CONNECTIONS + READ_CONNECTIONS)
            + u32::from(worker) * WORKER_CONNECTIONS
    }
}

pub async fn pools(
    options: &PgConnectOptions,
    read: Option<&PgConnectOptions>,
    roles: Roles,
) -> anyhow::Result<Pools> {
    let named = |name: &str| options.clone().application_name(name);
    let ingress = PgPoolOptions::new()
        .max_connections(INGRESS_CONNECTIONS)
        // Two kept open where webhooks arrive; none in a process that takes none.
        .min_connections(if roles.ingress { 2 } else { 0 })
        .acquire_timeout(Duration::from_secs(1))
        .connect_lazy_with(named("switchyard-ingress").options([("statement_timeout", "5s")]));
    let web = PgPoolOptions::new()
        .max_connections(WEB_CONNECTIONS)
        .acquire_timeout(Duration::from_secs(5))
        .connect_lazy_with(named("switchyard-web").options([("statement_timeout", "15s")]));
    let worker = PgPoolOptions::new()
        .max_connections(WORKER_CONNECTIONS)
        .acquire_timeout(Duration::from_secs(5))
        .connect_lazy_with(named("switchyard-worker").options([("statement_timeout", "30s")]));
    let read = read.map(|read| {
        PgPoolOptions::new()
            .max_connections(READ_CONNECTIONS)
            // A replica that went away costs a read little before the primary is read.
            .acquire_timeout(Duration::from_secs(2))
            .connect_lazy_with(
                read.clone()
                    .application_name("switchyard-read")
                    .options([("statement_timeout", "15s")]),
            )
    });
    Ok(Pools {
        ingress,
        web,
        worker,
        read,
    })
}

const PRIVATE_PORT: u16 = 5439;

/// Starts (or reuses) a cluster under `./.switchyard/postgres`, listening only on a Unix
/// socket in that folder. PostgreSQL refuses to run as root, so as root the cluster
/// belongs to `nobody`.
async fn start_private_cluster() -> anyhow::Result<PathBuf> {
    let Some(bin) = find_pg_bin() else {
        bail!(NO_POSTGRES)
    };
    let root = std::env::current_dir()?.join(".switchyard");
    let data = root.join("postgres");
    let socket = root.join("socket");
    std::fs::create_dir_all(&socket)?;
    let as_root = run_output("id", &["-u"])
        .await
        .is_some_and(|o| o.trim() == "0");
    if as_root {
        run("chown", &["-R", "nobody", &root.to_string_lossy()], false).await?;
    }
    if !data.join("PG_VERSION").exists() {
        let initdb = bin.join("initdb");
        run(
            &initdb.to_string_lossy(),
            &[
                "-D",
                &data.to_string_lossy(),
                "-U",
                "postgres",
                "--auth=trust",
            ],
            as_root,
        )
        .await?;
    }
    let opts = format!(
        "-k {} -c listen_addresses='' -p {PRIVATE_PORT}",
        socket.display()
    );
    let pg_ctl = bin.join("pg_ctl");
    let log = root.join("postgres.log");
    // Already running is fine: `status` exits 0 then.
    if run(
        &pg_ctl.to_string_lossy(),
        &["-D", &data.to_string_lossy(), "status"],
        as_root,
    )
    .await
    .is_err()
    {
        run(
            &pg_ctl.to_string_lossy(),
            &[
                "-D",
                &data.to_string_lossy(),
                "-o",
                &opts,
                "-l",
                &log.to_string_lossy(),
                "-w",
                "start",
            ],
            as_root,
        )
        .await?;
    }
    tracing::info!(path = %data.display(), "using a private PostgreSQL cluster");
    Ok(socket)
}

fn find_pg_bin() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .find(|dir| dir.join("initdb").exists() && dir.join("pg_ctl").exists())
    });
    on_path.or_else(|| {
        let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|bin| bin.join("initdb").exists())
            .collect();
        versions.sort();
        versions.pop()
    })
}

async fn run(program: &str, args: &[&str], as_nobody: bool) -> anyhow::Result<()> {
    let mut command = if as_nobody {
        let mut c = tokio::process::Command::new("runuser");
        c.args(["-u", "nobody", "--", program]);
        c
    } else {
        tokio::process::Command::new(program)
    };
    let output = command
        .args(args)
        .current_dir(Path::new("/"))
        .output()
        .await?;
    if !output.status.success() {
        bail!(
            "{program} failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

async fn run_output(program: &str, args: &[&str]) -> Option<String> {
    let output = tokio::process::Command::new(program)
        .args(args)
        .output()
        .await
        .ok()?;
    Some(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Deliveries and attempts leave dead rows behind with every attempt; without autovacuum
/// they are never cleaned up and claiming slows down until deliveries fall behind for
/// good. Says so once, at start, if the server has it off.
pub async fn warn_without_autovacuum(pool: &PgPool) {
    let setting: Result<String, _> = sqlx::query_scalar("SELECT current_setting('autovacuum')")
        .fetch_one(pool)
        .await;
    if setting.is_ok_and(|on| on == "off") {
        tracing::warn!(
            "PostgreSQL runs with autovacuum off: the deliveries and attempts tables will \
             fill with dead rows and deliveries slow down under sustained load; turn it on"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(ingress: bool, web: bool, worker: bool) -> Roles {
        Roles {
            ingress,
            web,
            worker,
        }
    }

    /// The design's budget: two processes of each role within PostgreSQL's default
    /// `max_connections` (100), less the 3 it reserves for superusers.
    #[test]
    fn two_processes_of_each_role_fit_in_a_default_postgres() {
        let scaled_out = 2 * one(true, false, false).connections()
            + 2 * one(false, true, false).connections()
            + 2 * one(false, false, true).connections();
        assert!(scaled_out <= 97, "{scaled_out} connections");
        assert!(Roles::ALL.connections() <= 97);
    }

    #[test]
    fn the_deploy_guide_states_the_budget() {
        let guide = include_str!("../../../docs/deploy.md");
        for (role, roles) in [
            ("ingress", one(true, false, false)),
            ("web", one(false, true, false)),
            ("worker", one(false, false, true)),
            ("serve", Roles::ALL),
        ] {
            let row = format!("| `{role}`");
            let line = guide.lines().find(|l| l.starts_with(&row));
            let stated = line.and_then(|l| l.split('|').nth(2)).map(str::trim);
            let count = roles.connections().to_string();
            assert!(
                stated.is_some_and(|s| s == count || s.starts_with(&format!("{count} "))),
                "docs/deploy.md should say `{role}` opens {count} connections, says {stated:?}"
            );
        }
    }
}
