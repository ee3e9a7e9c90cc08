//! Recipes: a ready-made destination and a route to it from one of the team's sources,
//! created together in one transaction.

use serde::{Deserialize, Serialize};

use super::destinations::{CreatedDestination, TargetInput, insert_new};
use super::{AppError, Scope};
use crate::StoreError;
use crate::ids::SourceId;
use crate::model::Route;
use crate::routing::recipes;
use crate::store::{routes, sources};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplyRecipe {
    /// The source whose events the route takes.
    pub source_id: String,
    /// The new destination's name (default: the recipe's title).
    pub name: Option<String>,
    /// Routine recipes: the routine's fire URL and token.
    pub fire_url: Option<String>,
    pub token: Option<String>,
    /// Slack recipes: the incoming-webhook URL.
    pub url: Option<String>,
    /// Email recipes: the recipients (default: the team's owners and admins).
    pub to: Option<Vec<String>>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AppliedRecipe {
    pub destination: CreatedDestination,
    pub route: Route,
}

/// Creates the recipe's destination and its route from `source_id`.
pub async fn apply(
    scope: Scope<'_>,
    name: &str,
    body: ApplyRecipe,
) -> Result<AppliedRecipe, AppError> {
    let recipe = recipes::find(name).ok_or(AppError::NotFound("recipe"))?;
    let source_id = body
        .source_id
        .parse::<SourceId>()
        .map_err(|e| AppError::field("source_id", e))?;
    let mut tx = scope.pool.begin().await?;
    let source = sources::get(&mut *tx, scope.team, &source_id)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => {
                AppError::field("source_id", "no source of this team has this id")
            }
            other => other.into(),
        })?;
    if source.provider.as_str() != recipe.provider {
        return Err(AppError::field(
            "source_id",
            format!(
                "this recipe reads {} events; the source is a {} source",
                recipe.provider, source.provider
            ),
        ));
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
        scope,
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
    let route = routes::insert(&mut *tx, scope.team, new).await?;
    scope.audit(&mut *tx, "route.create", &route.name).await?;
    tx.commit().await?;
    Ok(AppliedRecipe { destination, route })
}
