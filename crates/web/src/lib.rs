//! The control plane: the team-scoped JSON API under `/api/v1` and its OpenAPI document.
//! Handlers are thin: extract the team from the API key, parse the body into domain types,
//! call the store in one transaction, answer. The dashboard (`dashboard`) serves every
//! other path: pages for people, with the same rules.

mod auth;
mod body;
mod dashboard;
mod deliveries;
mod destinations;
mod error;
mod events;
mod integrations;
mod list;
mod openapi;
mod query;
pub mod reads;
mod recipes;
mod replays;
mod route_preview;
mod routes;
mod sources;

use actix_web::web;
use sqlx::PgPool;
use switchyard_domain::model::Source;
use switchyard_domain::netguard::Policy;
use switchyard_domain::secrets::SecretKey;
use utoipa::OpenApi;
use utoipa_actix_web::AppExt;

pub use auth::ApiTeam;
use auth::BearerScheme;

/// What the control plane needs.
#[derive(Clone)]
pub struct WebState {
    /// The primary: writes, and every read a write decides on.
    pub pool: PgPool,
    /// Where lists, search, charts and the API's GETs read.
    pub reads: reads::Reads,
    pub key: SecretKey,
    pub policy: Policy,
    /// Base of ingest URLs and of links in emails, without a trailing slash.
    pub public_url: String,
    /// The Anthropic API, for checking a team's key.
    pub anthropic: switchyard_send::anthropic::AnthropicApi,
    /// Whether account emails can go out now (else they wait and the pages say so).
    pub smtp_configured: bool,
    /// Proxies whose `X-Forwarded-For` names the client (for per-address limits).
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

impl WebState {
    /// The application layer's view of `actor` acting on `team`.
    pub fn scope<'a>(
        &'a self,
        team: &'a switchyard_domain::ids::TeamId,
        actor: &'a str,
    ) -> switchyard_domain::app::Scope<'a> {
        switchyard_domain::app::Scope {
            pool: &self.pool,
            key: &self.key,
            policy: self.policy,
            public_url: &self.public_url,
            team,
            actor,
        }
    }

    /// Cookies are `Secure` when people reach Switchyard over HTTPS.
    pub fn secure_cookies(&self) -> bool {
        self.public_url.starts_with("https://")
    }

    /// Where a source's sender posts: the source's token is the credential in the path.
    pub fn ingest_url(&self, source: &Source) -> String {
        format!("{}/hooks/{}", self.public_url, source.token)
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Switchyard API", description = "Team-scoped control plane. Authenticate with `Authorization: Bearer <api key>`."),
    modifiers(&BearerScheme),
    security(("api_key" = []))
)]
struct ApiDoc;

/// The routes of the control plane, and `/api/openapi.json` describing them.
pub fn configure(state: WebState) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        let (app, api) = actix_web::App::new()
            .into_utoipa_app()
            .openapi(ApiDoc::openapi())
            .service(
                utoipa_actix_web::scope("/api/v1")
                    .configure(sources::routes)
                    .configure(destinations::routes)
                    .configure(routes::routes)
                    .configure(events::routes)
                    .configure(deliveries::routes)
                    .configure(recipes::routes)
                    .configure(replays::routes)
                    .configure(integrations::routes),
            )
            .split_for_parts();
        drop(app);
        let doc = openapi::exact(api);
        cfg.app_data(web::Data::new(state))
            .app_data(error::json_config())
            .app_data(error::query_config())
            .app_data(error::path_config())
            .service(
                web::scope("/api/v1")
                    .wrap(actix_web::middleware::from_fn(auth::authenticate))
                    .configure(|c| register(c, sources::routes))
                    .configure(|c| register(c, destinations::routes))
                    .configure(|c| register(c, routes::routes))
                    .configure(|c| register(c, events::routes))
                    .configure(|c| register(c, deliveries::routes))
                    .configure(|c| register(c, recipes::routes))
                    .configure(|c| register(c, replays::routes))
                    .configure(|c| register(c, integrations::routes)),
            )
            .route(
                "/api/openapi.json",
                web::get().to(move || {
                    let doc = doc.clone();
                    async move { web::Json(doc) }
                }),
            )
            .configure(dashboard::configure);
    }
}

fn register(
    cfg: &mut web::ServiceConfig,
    f: fn(&mut utoipa_actix_web::service_config::ServiceConfig),
) {
    let mut c = utoipa_actix_web::service_config::ServiceConfig::new(cfg);
    f(&mut c);
}
