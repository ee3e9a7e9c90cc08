//! API keys: `Authorization: Bearer <key>` → the team the key acts for (as an admin).
//! Every handler takes `ApiTeam` first, so none runs without a team.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use switchyard_domain::app::Scope;
use switchyard_domain::ids::TeamId;
use switchyard_domain::store::api_keys;
use switchyard_problem::Problem;
use utoipa::Modify;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

use crate::WebState;
use crate::error::ApiError;
use crate::reads::{self, Wrote};

/// The team the request's API key acts for, and how the audit log names the key. Set by
/// `authenticate` before any extractor runs, so a request with a bad key is refused with
/// 401 whatever its body looks like.
#[derive(Debug, Clone)]
pub struct ApiTeam {
    pub team: TeamId,
    /// How the audit log names the key.
    pub actor: String,
}

impl ApiTeam {
    /// The application layer's view of this request.
    pub fn scope<'a>(&'a self, state: &'a WebState) -> Scope<'a> {
        state.scope(&self.team, &self.actor)
    }
}

impl FromRequest for ApiTeam {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(
            req.extensions()
                .get::<ApiTeam>()
                .cloned()
                .ok_or_else(unauthorized),
        )
    }
}

fn unauthorized() -> ApiError {
    ApiError(Problem::unauthorized(
        "send a valid API key as `Authorization: Bearer <key>`",
    ))
}

/// Middleware for `/api/v1`: resolves the bearer key to its team, or answers 401.
pub async fn authenticate(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let state = req.app_data::<web::Data<WebState>>().cloned();
    let presented = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|v| v.trim().to_owned());
    let (Some(state), Some(key)) = (state, presented) else {
        return Err(unauthorized().into());
    };
    let found = api_keys::authenticate(&state.pool, &key)
        .await
        .map_err(ApiError::from)?;
    match found {
        Some(found) => {
            req.extensions_mut().insert(ApiTeam {
                team: found.team_id,
                actor: format!("API key \"{}\"", found.name),
            });
            req.extensions_mut().insert(Wrote(found.wrote_lsn));
            let method = req.method().clone();
            let res = next.call(req).await?.map_into_boxed_body();
            if res.status().is_success() {
                reads::remember_key_write(&state, &method, &key).await;
            }
            Ok(res)
        }
        None => Err(unauthorized().into()),
    }
}

pub struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}
