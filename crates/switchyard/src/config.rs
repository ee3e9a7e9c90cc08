//! The typed configuration, read once from flags, the environment and `.env`. Each field's
//! doc comment is its `--help` text.

use clap::{Args, Parser, Subcommand, ValueEnum};
use secrecy::{ExposeSecret, SecretString};
use switchyard_domain::netguard::Policy;
use switchyard_domain::secrets::{DEV_KEY_HEX, SecretKey};

pub const DEFAULT_DATABASE_URL: &str = "postgres://localhost/switchyard";

#[derive(Debug, Parser)]
#[command(
    name = "switchyard",
    version,
    about = "An event gateway for AI-agent workflows"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub config: Config,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run every role in one process (the default).
    Serve,
    /// Run only the data plane (POST /hooks/{token}).
    Ingress,
    /// Run only the control plane (the API and the dashboard).
    Web,
    /// Run only the delivery workers (serves /healthz, /readyz, /metrics).
    Worker,
    /// Apply database migrations and exit.
    Migrate,
    /// Manage teams.
    Team {
        #[command(subcommand)]
        command: TeamCommand,
    },
    /// Manage API keys.
    ApiKey {
        #[command(subcommand)]
        command: ApiKeyCommand,
    },
    /// Re-seal every stored secret with the current SWITCHYARD_SECRET_KEY (after a key
    /// change, with the old key in SWITCHYARD_PREVIOUS_SECRET_KEYS); prints how many.
    Rekey,
}

#[derive(Debug, Subcommand)]
pub enum TeamCommand {
    /// Create a team; prints its id.
    Create {
        /// Lower-case letters, digits and dashes.
        slug: String,
        /// Display name (defaults to the slug).
        #[arg(long)]
        name: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ApiKeyCommand {
    /// Create an API key for a team; prints exactly the key and a newline.
    Create {
        /// The team's slug.
        #[arg(long)]
        team: String,
        /// A name to tell keys apart.
        #[arg(long, default_value = "cli")]
        name: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Environment {
    Development,
    Production,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone, Args)]
pub struct Config {
    /// PostgreSQL URL; the database is created if missing.
    #[arg(long, env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL, hide_env_values = true)]
    pub database_url: String,
    /// PostgreSQL URL of a replica for the dashboard's lists, search and charts and the
    /// API's GETs; without it they read the primary. Writes, and the reads a write
    /// decides on, always go to DATABASE_URL, and a client's reads go there too until
    /// the replica has replayed that client's last write.
    #[arg(long, env = "SWITCHYARD_READ_DATABASE_URL", hide_env_values = true)]
    pub read_database_url: Option<String>,
    /// Address every role listens on.
    #[arg(long, env = "SWITCHYARD_BIND", default_value = "127.0.0.1:8080")]
    pub bind: String,
    /// Base of ingest URLs and of links in emails.
    #[arg(
        long,
        env = "SWITCHYARD_PUBLIC_URL",
        default_value = "http://localhost:8080"
    )]
    pub public_url: url::Url,
    /// `production` refuses the development secret key and a non-HTTPS public URL.
    #[arg(
        long,
        env = "SWITCHYARD_ENV",
        value_enum,
        default_value = "development"
    )]
    pub env: Environment,
    /// 64 hex characters (32 bytes) that seal secrets at rest: `openssl rand -hex 32`.
    #[arg(long, env = "SWITCHYARD_SECRET_KEY", hide_env_values = true)]
    pub secret_key: Option<SecretString>,
    /// Keys that sealed secrets before the current one, comma-separated: what they sealed
    /// still opens, and `switchyard rekey` re-seals it with the current key.
    #[arg(long, env = "SWITCHYARD_PREVIOUS_SECRET_KEYS", hide_env_values = true)]
    pub previous_secret_keys: Option<SecretString>,
    /// SMTP server for email, e.g. `smtp://localhost:1025`.
    #[arg(long, env = "SWITCHYARD_SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<SecretString>,
    /// Sender of emails.
    #[arg(
        long,
        env = "SWITCHYARD_SMTP_FROM",
        default_value = "Switchyard <noreply@localhost>"
    )]
    pub smtp_from: String,
    /// Allow destinations on private addresses and plain http:// (tests, self-hosting).
    #[arg(long, env = "SWITCHYARD_ALLOW_PRIVATE_DESTINATIONS", default_value_t = false, action = clap::ArgAction::Set)]
    pub allow_private_destinations: bool,
    /// Proxies (addresses or CIDR ranges, comma-separated) whose `X-Forwarded-For` names
    /// the client, so per-address sign-in limits count clients rather than the proxy.
    #[arg(long, env = "SWITCHYARD_TRUSTED_PROXIES", value_delimiter = ',', value_parser = proxy)]
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Anthropic API base, for fetching full objects behind thin events.
    #[arg(
        long,
        env = "SWITCHYARD_ANTHROPIC_API_URL",
        default_value = "https://api.anthropic.com"
    )]
    pub anthropic_api_url: url::Url,
    /// Seconds a claimed delivery belongs to its worker process. Once it runs out (the
    /// process died or stalled) the delivery is claimed again: sent again, or for a
    /// routine made `unknown_outcome`. Must outlast a send (30 s).
    #[arg(long, env = "SWITCHYARD_DELIVERY_LEASE", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(35..=3600))]
    pub delivery_lease: u64,
    /// Requests each worker process has out at once (each holds its event's body); one
    /// destination takes at most half. Limit a destination's own share with its
    /// `max_in_flight`.
    #[arg(long, env = "SWITCHYARD_DELIVERY_SLOTS", default_value_t = 512,
          value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub delivery_slots: u64,
    /// Seconds a request's whole body may take to arrive; a slower one is answered 408
    /// and its connection closed.
    #[arg(long, env = "SWITCHYARD_BODY_TIMEOUT", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub body_timeout: u64,
    /// Connections one client address may hold open at once; over it a new connection
    /// is closed at once. 0 removes the cap. Connections from a trusted proxy are not
    /// counted (the proxy carries many clients).
    #[arg(
        long,
        env = "SWITCHYARD_MAX_CONNECTIONS_PER_CLIENT",
        default_value_t = 256
    )]
    pub max_connections_per_client: usize,
    /// The most days any team keeps its events, deliveries and attempts; a team set to
    /// keep longer keeps this long. Days past it are dropped whole.
    #[arg(long, env = "SWITCHYARD_MAX_RETENTION_DAYS", default_value_t = 90,
          value_parser = clap::value_parser!(u32).range(1..=3650))]
    pub max_retention_days: u32,
    /// Apply migrations when a role starts.
    #[arg(long, env = "SWITCHYARD_AUTO_MIGRATE", default_value_t = true, action = clap::ArgAction::Set)]
    pub auto_migrate: bool,
    /// `pretty` or `json` logs.
    #[arg(
        long,
        env = "SWITCHYARD_LOG_FORMAT",
        value_enum,
        default_value = "pretty"
    )]
    pub log_format: LogFormat,
}

impl Config {
    /// The key that seals secrets, refusing a missing or development key in production.
    pub fn secret_key(&self) -> Result<SecretKey, String> {
        let hex = match (&self.secret_key, self.env) {
            (Some(key), _) => key.expose_secret().to_owned(),
            (None, Environment::Development) => DEV_KEY_HEX.to_owned(),
            (None, Environment::Production) => {
                return Err("SWITCHYARD_SECRET_KEY must be set in production".to_owned());
            }
        };
        if self.env == Environment::Production && hex.eq_ignore_ascii_case(DEV_KEY_HEX) {
            return Err(
                "SWITCHYARD_SECRET_KEY must not be the development key in production".to_owned(),
            );
        }
        let key = SecretKey::from_hex(&hex).map_err(|e| format!("SWITCHYARD_SECRET_KEY: {e}"))?;
        let previous = self
            .previous_secret_keys
            .as_ref()
            .map(|keys| keys.expose_secret().to_owned())
            .unwrap_or_default();
        key.with_previous(previous.split(',').map(str::trim).filter(|k| !k.is_empty()))
            .map_err(|e| format!("SWITCHYARD_PREVIOUS_SECRET_KEYS: {e}"))
    }

    /// Everything that can be wrong before touching the network.
    pub fn validate(&self) -> Result<SecretKey, String> {
        if self.env == Environment::Production && self.public_url.scheme() != "https" {
            return Err("SWITCHYARD_PUBLIC_URL must be https:// in production".to_owned());
        }
        self.bind
            .parse::<std::net::SocketAddr>()
            .map_err(|e| format!("SWITCHYARD_BIND {:?}: {e}", self.bind))?;
        self.secret_key()
    }

    /// The delivery engine's settings: the defaults, with the lease and the slots set.
    pub fn worker_settings(&self) -> switchyard_worker::WorkerSettings {
        let slots = usize::try_from(self.delivery_slots).unwrap_or(512);
        switchyard_worker::WorkerSettings {
            send_slots: slots,
            per_destination: slots.div_ceil(2),
            lease: std::time::Duration::from_secs(self.delivery_lease),
            max_retention_days: self.max_retention_days,
            ..switchyard_worker::WorkerSettings::default()
        }
    }

    pub fn policy(&self) -> Policy {
        Policy {
            allow_private: self.allow_private_destinations,
        }
    }

    /// The public URL without its trailing slash.
    /// The SMTP client, or one that fails every send with "SMTP not configured".
    pub fn mailer(&self) -> anyhow::Result<switchyard_worker::Mailer> {
        let url = self.smtp_url.as_ref().map(|u| u.expose_secret().to_owned());
        switchyard_worker::Mailer::new(
            url.as_deref(),
            &self.smtp_from,
            std::time::Duration::from_secs(30),
        )
        .map_err(anyhow::Error::msg)
    }

    pub fn public_base(&self) -> String {
        self.public_url.as_str().trim_end_matches('/').to_owned()
    }
}

/// The configuration reference in docs/deploy.md: one row per setting, from the same
/// definitions `--help` prints.
pub fn reference() -> String {
    use clap::CommandFactory;
    let command = Cli::command();
    let mut out =
        String::from("| Environment variable | Flag | Default | Meaning |\n|---|---|---|---|\n");
    for arg in command.get_arguments() {
        let Some(env) = arg.get_env() else {
            continue;
        };
        let default = arg
            .get_default_values()
            .iter()
            .map(|v| format!("`{}`", v.to_string_lossy()))
            .collect::<Vec<_>>()
            .join(", ");
        let help = arg
            .get_long_help()
            .or(arg.get_help())
            .map(|h| h.to_string().replace('\n', " "))
            .unwrap_or_default();
        out.push_str(&format!(
            "| `{}` | `--{}` | {} | {} |\n",
            env.to_string_lossy(),
            arg.get_long().unwrap_or_default(),
            if default.is_empty() {
                "unset".to_owned()
            } else {
                default
            },
            help.replace('|', "\\|"),
        ));
    }
    out
}

/// One trusted proxy: an address (`10.0.0.7`) or a range (`10.0.0.0/8`).
fn proxy(value: &str) -> Result<ipnet::IpNet, String> {
    let value = value.trim();
    value
        .parse::<ipnet::IpNet>()
        .or_else(|_| value.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("{value:?} is neither an IP address nor a CIDR range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trusted_proxies_are_addresses_or_ranges() {
        let parse = |value: &str| {
            Cli::try_parse_from(["switchyard", "--trusted-proxies", value]).map(|c| c.config)
        };
        let config = parse("10.0.0.0/8, 192.168.1.5,::1").expect("valid");
        let nets: Vec<String> = config
            .trusted_proxies
            .iter()
            .map(|n| n.to_string())
            .collect();
        assert_eq!(nets, ["10.0.0.0/8", "192.168.1.5/32", "::1/128"]);
        let refused = parse("10.0.0.0/8,proxy.internal").expect_err("refused");
        assert!(refused.to_string().contains("proxy.internal"), "{refused}");
    }

    fn repo_file(name: &str) -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(name)
    }

    /// docs/deploy.md carries the reference between two markers; `SWITCHYARD_UPDATE_DOCS=1`
    /// rewrites it after a setting changes.
    #[test]
    fn the_deploy_guide_lists_every_setting_as_the_code_defines_it() {
        let path = repo_file("docs/deploy.md");
        let doc = std::fs::read_to_string(&path).expect("docs/deploy.md");
        let (start, end) = ("<!-- config:start -->\n", "<!-- config:end -->");
        let from = doc.find(start).expect("the start marker") + start.len();
        let to = doc.find(end).expect("the end marker");
        let wanted = reference();
        if std::env::var("SWITCHYARD_UPDATE_DOCS").as_deref() == Ok("1") {
            let updated = format!("{}{wanted}{}", &doc[..from], &doc[to..]);
            std::fs::write(&path, updated).expect("write docs/deploy.md");
            return;
        }
        assert_eq!(
            &doc[from..to],
            wanted,
            "docs/deploy.md is out of date: run SWITCHYARD_UPDATE_DOCS=1 cargo test -p switchyard the_deploy_guide"
        );
    }

    /// No Docker engine runs here, so the compose file is checked by reading: it parses,
    /// and Switchyard's service sets only variables the configuration knows, and runs a
    /// real subcommand.
    #[test]
    fn the_compose_file_uses_only_settings_switchyard_knows() {
        use clap::CommandFactory;
        let text = std::fs::read_to_string(repo_file("docker-compose.yml")).expect("compose");
        let docs = yaml_rust2::YamlLoader::load_from_str(&text).expect("valid YAML");
        let service = &docs[0]["services"]["switchyard"];
        let known: Vec<String> = Cli::command()
            .get_arguments()
            .filter_map(|a| a.get_env().map(|e| e.to_string_lossy().into_owned()))
            .collect();
        let env = service["environment"]
            .as_hash()
            .expect("an environment map");
        assert!(!env.is_empty());
        for (name, value) in env {
            let name = name.as_str().expect("a variable name");
            assert!(known.iter().any(|k| k == name), "{name} is not a setting");
            assert!(value.as_str().is_some(), "{name} has a string value");
        }
        let command = service["command"][0].as_str().expect("a command");
        assert!(
            Cli::command()
                .get_subcommands()
                .any(|c| c.get_name() == command),
            "{command} is not a subcommand"
        );
        // The whole environment parses as a configuration.
        let mut args = vec!["switchyard".to_owned()];
        for (name, value) in env {
            let arg = Cli::command()
                .get_arguments()
                .find(|a| {
                    a.get_env()
                        .is_some_and(|e| e == name.as_str().unwrap_or_default())
                })
                .and_then(|a| a.get_long().map(str::to_owned))
                .expect("a flag");
            args.push(format!("--{arg}={}", value.as_str().unwrap_or_default()));
        }
        Cli::try_parse_from(args).expect("the compose settings parse");
        for service in ["postgres", "mail"] {
            assert!(
                docs[0]["services"][service]["image"].as_str().is_some(),
                "{service}"
            );
        }
    }
}
