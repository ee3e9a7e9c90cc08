//! `/api/v1/recipes`: ready-made destination and route pairs for common jobs.

use actix_web::{HttpResponse, get, post, web};
use serde::Serialize;
use switchyard_domain::app;
use switchyard_domain::app::recipes::{AppliedRecipe, ApplyRecipe};
use switchyard_domain::routing::recipes::{RECIPES, Recipe};
use utoipa_actix_web::service_config::ServiceConfig;

use crate::body::JsonBody;
use crate::error::ApiResult;
use crate::{ApiTeam, WebState};

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(list).service(apply);
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RecipeView {
    #[serde(flatten)]
    recipe: Recipe,
    /// The destination fields `POST /api/v1/recipes/{name}` takes besides `source_id`.
    inputs: &'static [&'static str],
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RecipeList {
    data: Vec<RecipeView>,
}

/// Every recipe, with the inputs it takes.
#[utoipa::path(tag = "recipes", responses((status = 200, body = RecipeList)))]
#[get("/recipes")]
async fn list(_team: ApiTeam) -> web::Json<RecipeList> {
    web::Json(RecipeList {
        data: RECIPES
            .iter()
            .map(|recipe| RecipeView {
                recipe: *recipe,
                inputs: recipe.inputs(),
            })
            .collect(),
    })
}

/// Creates the recipe's destination and a route to it from `source_id`, in one
/// transaction.
#[utoipa::path(tag = "recipes", request_body = ApplyRecipe,
    responses((status = 201, body = AppliedRecipe), (status = 404), (status = 422)))]
#[post("/recipes/{name}")]
async fn apply(
    team: ApiTeam,
    state: web::Data<WebState>,
    name: web::Path<String>,
    body: JsonBody<ApplyRecipe>,
) -> ApiResult<HttpResponse> {
    let applied = app::recipes::apply(team.scope(&state), &name, body.into_inner()).await?;
    Ok(HttpResponse::Created().json(applied))
}
