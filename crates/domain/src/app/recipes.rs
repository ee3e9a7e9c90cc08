//! Recipes: a ready-made destination and a route to it from one of the team's sources,
//! created together in one transaction.

use serde::{Deserialize, Serialize};

use super::destinations::{ConfigInput, CreatedDestination, KindFields, LimitsInput, insert_new};
use super::{AppError, Scope};
use crate::StoreError;
use crate::ids::SourceId;
use crate::model::Route;
use crate::routing::recipes::{self, Recipe};
use crate::store::{anthropic_keys, routes, sources};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct ApplyRecipe {
    /// The source whose events the route takes.
    #[serde(default)]
    pub source_id: String,
    /// The new destination's name (default: the recipe's title).
    #[schema(min_length = 1, max_length = 100)]
    pub name: Option<String>,
    /// The fields of the recipe's kind of destination: a routine's `fire_url` and
    /// `token`, Slack's `url`, email's `to` (default: the team's owners and admins).
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub fields: KindFields,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AppliedRecipe {
    pub destination: CreatedDestination,
    pub route: Route,
}

/// Creates the recipe's destination and its route from the source `body` names.
pub async fn apply(
    scope: Scope<'_>,
    name: &str,
    body: ApplyRecipe,
) -> Result<AppliedRecipe, AppError> {
    let recipe = recipes::find(name).ok_or(AppError::NotFound("recipe"))?;
    let config = body.fields.read(recipe.kind)?;
    apply_configured(scope, recipe, &body.source_id, body.name, config).await
}

/// Creates `recipe`'s destination, named `destination_name` (default: the recipe's
/// title) and configured by `config`, and its route from `source_id`.
pub async fn apply_configured(
    scope: Scope<'_>,
    recipe: &Recipe,
    source_id: &str,
    destination_name: Option<String>,
    config: ConfigInput,
) -> Result<AppliedRecipe, AppError> {
    if config.kind() != recipe.kind {
        return Err(AppError::field(
            "kind",
            format!("this recipe makes a {} destination", recipe.kind),
        ));
    }
    let source_id = source_id
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
    // An enriching recipe's templates read well without the object, and a route that
    // enriches without a key fails its deliveries: it enriches once the team has one.
    let enrich = recipe.enrich && !anthropic_keys::list(&mut *tx, scope.team).await?.is_empty();
    let destination_name = destination_name.unwrap_or_else(|| recipe.title.to_owned());
    let destination = insert_new(
        &mut tx,
        scope,
        &destination_name,
        config,
        LimitsInput::default(),
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
        enrich,
        ordering: None,
        coalesce: None,
    };
    let route = routes::insert(&mut *tx, scope.team, new).await?;
    scope.audit(&mut *tx, "route.create", &route.name).await?;
    tx.commit().await?;
    Ok(AppliedRecipe { destination, route })
}
