//! `switchyard`: parse the configuration, run what was asked, report how it ended.

use std::process::ExitCode;

use clap::Parser;
use switchyard::config::{ApiKeyCommand, Cli, Command, TeamCommand};
use switchyard::{Roles, db};
use switchyard_domain::store::{api_keys, secrets, teams};

#[tokio::main]
async fn main() -> ExitCode {
    dotenvy::dotenv().ok();
    let cli = Cli::parse();
    switchyard::logs::init(cli.config.log_format, std::io::stderr);
    if let Err(reason) = cli.config.validate() {
        eprintln!("switchyard: {reason}");
        return ExitCode::from(2);
    }
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("switchyard: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = cli.config;
    let roles = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => Roles::ALL,
        Command::Ingress => Roles {
            ingress: true,
            web: false,
            worker: false,
        },
        Command::Web => Roles {
            ingress: false,
            web: true,
            worker: false,
        },
        Command::Worker => Roles {
            ingress: false,
            web: false,
            worker: true,
        },
        Command::Migrate => {
            let options = db::prepare(&config.database_url).await?;
            return db::migrate(&options).await;
        }
        Command::Team {
            command: TeamCommand::Create { slug, name },
        } => {
            let pool = admin_pool(&config).await?;
            if !teams::valid_slug(&slug) {
                anyhow::bail!(
                    "team slug must be 2-40 lower-case letters, digits or dashes, starting with a letter"
                );
            }
            let team = teams::insert(&pool, &slug, name.as_deref().unwrap_or(&slug)).await?;
            println!("{}", team.id);
            return Ok(());
        }
        Command::Rekey => {
            let pool = admin_pool(&config).await?;
            let key = config.secret_key().map_err(anyhow::Error::msg)?;
            let resealed = secrets::rekey(&pool, &key).await?;
            println!("{resealed}");
            return Ok(());
        }
        Command::ApiKey {
            command: ApiKeyCommand::Create { team, name },
        } => {
            let pool = admin_pool(&config).await?;
            let team = teams::find_by_slug(&pool, &team)
                .await
                .map_err(|_| anyhow::anyhow!("no team with slug {team:?}"))?;
            let (_, key) = api_keys::create(&pool, &team.id, &name).await?;
            println!("{key}");
            return Ok(());
        }
    };
    let listener = std::net::TcpListener::bind(&config.bind)?;
    let running = switchyard::start(&config, roles, config.worker_settings(), listener).await?;
    running.wait().await
}

async fn admin_pool(config: &switchyard::Config) -> anyhow::Result<sqlx::PgPool> {
    let options = db::prepare(&config.database_url).await?;
    if config.auto_migrate {
        db::migrate(&options).await?;
    }
    Ok(sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await?)
}
