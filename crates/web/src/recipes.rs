//! `/api/v1/recipes`: ready-made destination and route pairs for common jobs.

use actix_web::{HttpResponse, get, post, web};
use serde::{Deserialize, Serialize};
use switchyard_domain::app::Invalid;
use switchyard_domain::ids::SourceId;
use switchyard_domain::model::Route;
use switchyard_domain::routing::recipes::{self, RECIPES, Recipe};
use switchyard_domain::store::{routes, sources};
use switchyard_problem::Problem;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::destinations::{CreatedDestination, TargetInput, insert_new};
use crate::error::{ApiResult, not_found};
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

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplyRecipe {
    /// The source whose events the route takes.
    pub(crate) source_id: String,
    /// The new destination's name (default: the recipe's title).
    pub(crate) name: Option<String>,
    /// Routine recipes: the routine's fire URL and token.
    pub(crate) fire_url: Option<String>,
    pub(crate) token: Option<String>,
    /// Slack recipes: the incoming-webhook URL.
    pub(crate) url: Option<String>,
    /// Email recipes: the recipients (default: the team's owners and admins).
    pub(crate) to: Option<Vec<String>>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AppliedRecipe {
    pub(crate) destination: CreatedDestination,
    pub(crate) route: Route,
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
    body: web::Json<ApplyRecipe>,
) -> ApiResult<HttpResponse> {
    let applied = apply_recipe(&state, &team, &name, body.into_inner()).await?;
    Ok(HttpResponse::Created().json(applied))
}

/// Creates the recipe's destination and its route, for the API and the dashboard.
pub(crate) async fn apply_recipe(
    state: &WebState,
    team: &ApiTeam,
    name: &str,
    body: ApplyRecipe,
) -> ApiResult<AppliedRecipe> {
    let recipe = recipes::find(name).ok_or_else(|| not_found("recipe"))?;
    let mut invalid = Invalid::default();
    let source_id = invalid.check("source_id", body.source_id.parse::<SourceId>());
    invalid.finish()?;
    let Some(source_id) = source_id else {
        return Err(Problem::internal().into());
    };
    let mut tx = state.pool.begin().await?;
    let source = sources::get(&mut *tx, &team.team, &source_id)
        .await
        .map_err(|_| Problem::invalid_field("source_id", "no source of this team has this id"))?;
    if source.provider.as_str() != recipe.provider {
        return Err(Problem::invalid_field(
            "source_id",
            format!(
                "this recipe reads {} events; the source is a {} source",
                recipe.provider, source.provider
            ),
        )
        .into());
    }
    let input = TargetInput {
        url: body.url,
        fire_url: body.fire_url,
        token: body.token,
        to: body.to,
        ..TargetInput::default()
    };
    let destination_name = body.name.unwrap_or_else(|| recipe.title.to_owned());
    let destination = insert_new(
        &mut tx,
        state,
        &team.team,
        &team.actor,
        &destination_name,
        recipe.kind.as_str(),
        input,
    )
    .await?;
    let new = routes::NewRoute {
        name: recipe.title,
        source_id: &source_id,
        destination_id: &destination.destination.id,
        event_types: recipe.event_types.iter().map(|t| (*t).to_owned()).collect(),
        filter: recipe.filter.map(str::to_owned),
        template: Some(recipe.template.to_owned()),
        subject: recipe.subject.map(str::to_owned),
        paused: false,
    };
    let route = routes::insert(&mut *tx, &team.team, new).await?;
    team.audit(&mut *tx, "route.create", &route.name).await?;
    tx.commit().await?;
    Ok(AppliedRecipe { destination, route })
}
