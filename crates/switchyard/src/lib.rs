//! The `switchyard` process: configuration, database bootstrap and role wiring. The
//! binary and the black-box tests both start Switchyard through `start`.

pub mod config;
pub mod db;
mod guard;
pub mod logs;
pub mod server;

pub use config::Config;
pub use server::{Roles, Running};
pub use switchyard_worker::WorkerSettings;

/// Prepares the database (create, migrate) and starts the roles on `listener`.
pub async fn start(
    config: &Config,
    roles: Roles,
    worker_settings: WorkerSettings,
    listener: std::net::TcpListener,
) -> anyhow::Result<Running> {
    let key = config.validate().map_err(anyhow::Error::msg)?;
    let options = db::prepare(&config.database_url).await?;
    if config.auto_migrate {
        db::migrate(&options).await?;
    }
    let read_options = config
        .read_database_url
        .as_deref()
        .map(db::options)
        .transpose()
        .map_err(|e| e.context("SWITCHYARD_READ_DATABASE_URL is not a valid PostgreSQL URL"))?;
    let pools = db::pools(&options, read_options.as_ref(), roles).await?;
    if roles.worker {
        db::warn_without_autovacuum(&pools.worker).await;
    }
    server::start(config, key, pools, roles, worker_settings, listener).await
}
