//! API keys: `Authorization: Bearer <key>` → the team the key acts for (as an admin).
//! Every handler takes `ApiTeam` first, so none runs without a team.

use std::future::Future;
use std::pin::Pin;

use actix_web::{FromRequest, HttpRequest, dev::Payload, web};
use switchyard_domain::ids::TeamId;
use switchyard_domain::problem::Problem;
use switchyard_domain::store::api_keys;
use utoipa::Modify;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

use crate::WebState;
use crate::error::ApiError;

pub struct ApiTeam(pub TeamId);

impl FromRequest for ApiTeam {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<WebState>>().cloned();
        let presented = req
            .headers()
            .get(actix_web::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(|v| v.trim().to_owned());
        Box::pin(async move {
            let unauthorized =
                || ApiError(Problem::unauthorized("send a valid API key as `Authorization: Bearer <key>`"));
            let (Some(state), Some(key)) = (state, presented) else {
                return Err(unauthorized());
            };
            match api_keys::authenticate(&state.pool, &key).await? {
                Some(team) => Ok(ApiTeam(team)),
                None => Err(unauthorized()),
            }
        })
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
