//! Routes in the dashboard: source → event types → filter → destination → template, with
//! a live preview of what the destination would get from the latest matching stored
//! event; and recipes, ready-made destination and route pairs applied in one form.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, get, post, web};
use askama::Template;
use askama_web::WebTemplate;
use serde::{Deserialize, Serialize};
use switchyard_domain::accounts::Action;
use switchyard_domain::app::NothingElse;
use switchyard_domain::app::recipes as recipe_use;
use switchyard_domain::app::routes::{self as manage, CreateRoute, RouteDraft, UpdateRoute};
use switchyard_domain::ids::{DestinationId, RouteId, SourceId};
use switchyard_domain::model::{Destination, PageRequest, Route, Source};
use switchyard_domain::routing::recipes::{self, RECIPES, Recipe};
use switchyard_domain::store::{destinations, routes, sources};

use super::destination_form::DestinationForm;
use super::error::{PageError, TeamPath};
use super::flash::{self, Flash, FlashQuery};
use super::forms::{Errors, NoFields, Posted, filled};
use super::route_preview::{PreviewPanel, panel};
use super::session::Member;
use super::{Nav, html, see_other};
use crate::WebState;
use crate::query::Query;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(list)
        .service(new)
        .service(super::route_preview::live_preview)
        .service(new_destination)
        .service(create)
        .service(show)
        .service(update)
        .service(pause)
        .service(delete)
        .service(recipe_cards)
        .service(recipe_form)
        .service(apply);
}

const ALL: PageRequest = PageRequest {
    cursor: None,
    limit: 200,
};

/// The team's sources and destinations, by name, for the pickers and the list.
async fn choices(
    state: &WebState,
    member: &Member,
) -> Result<(Vec<Source>, Vec<Destination>), PageError> {
    let mut s = sources::list(&state.pool, member.team_id(), &ALL)
        .await?
        .items;
    let mut d = destinations::list(&state.pool, member.team_id(), &ALL)
        .await?
        .items;
    s.sort_by_key(|x| x.name.to_lowercase());
    d.sort_by_key(|x| x.name.to_lowercase());
    Ok((s, d))
}

#[derive(Template, WebTemplate)]
#[template(path = "dashboard/routes.html")]
struct ListPage {
    nav: Nav,
    routes: Vec<Route>,
    sources: Vec<Source>,
    destinations: Vec<Destination>,
}

impl ListPage {
    fn source_name(&self, id: &SourceId) -> &str {
        self.sources
            .iter()
            .find(|s| s.id == *id)
            .map_or("?", |s| s.name.as_str())
    }

    fn destination_name(&self, id: &DestinationId) -> &str {
        self.destinations
            .iter()
            .find(|d| d.id == *id)
            .map_or("?", |d| d.name.as_str())
    }
}

#[get("/t/{team}/routes")]
async fn list(state: web::Data<WebState>, member: Member) -> Result<ListPage, PageError> {
    member.require(Action::Read)?;
    let (sources, destinations) = choices(&state, &member).await?;
    let mut routes = routes::list(&state.pool, member.team_id(), &ALL)
        .await?
        .items;
    routes.sort_by_key(|r| r.name.to_lowercase());
    Ok(ListPage {
        nav: Nav::new(&member, "routes", state.smtp_configured),
        routes,
        sources,
        destinations,
    })
}

/// The route form, as text.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(default)]
pub(super) struct RouteForm {
    pub(super) name: String,
    pub(super) source_id: String,
    pub(super) destination_id: String,
    /// Globs, one per line or comma-separated.
    pub(super) event_types: String,
    pub(super) filter: String,
    pub(super) template: String,
    pub(super) subject: String,
    /// `on` when ticked: fetch the Anthropic object the event names.
    pub(super) enrich: String,
    /// The preview's event: one of the source's recent events, or empty for the latest
    /// the event types match.
    pub(super) preview_event: String,
    /// A pasted sample to preview with instead: `Name: value` lines, and a JSON body.
    pub(super) sample_headers: String,
    pub(super) sample_body: String,
}

impl RouteForm {
    pub(super) fn patterns(&self) -> Vec<String> {
        let patterns: Vec<String> = self
            .event_types
            .split([',', '\n'])
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(str::to_owned)
            .collect();
        if patterns.is_empty() {
            vec!["*".to_owned()]
        } else {
            patterns
        }
    }

    /// Whether the enrich box was ticked.
    fn enriches(&self) -> bool {
        !self.enrich.is_empty()
    }

    pub(super) fn optional(text: &str) -> Option<String> {
        (!text.trim().is_empty()).then(|| text.replace("\r\n", "\n"))
    }

    fn of(route: &Route) -> RouteForm {
        RouteForm {
            name: route.name.clone(),
            source_id: route.source_id.to_string(),
            destination_id: route.destination_id.to_string(),
            event_types: route.event_types.join(", "),
            filter: route.filter.clone().unwrap_or_default(),
            template: route.template.clone().unwrap_or_default(),
            subject: route.subject.clone().unwrap_or_default(),
            enrich: if route.enrich {
                "on".to_owned()
            } else {
                String::new()
            },
            ..RouteForm::default()
        }
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "dashboard/route_form.html")]
struct FormPage {
    nav: Nav,
    /// The route being edited; `None` for a new one.
    route: Option<Route>,
    sources: Vec<Source>,
    destinations: Vec<Destination>,
    form: RouteForm,
    errors: Errors,
    preview: PreviewPanel,
}

#[derive(Debug, Deserialize)]
struct NewQuery {
    source_id: Option<String>,
    destination_id: Option<String>,
    /// Start from a recipe's event types, filter and template, towards a destination
    /// the team already has.
    recipe: Option<String>,
    /// Come back to a route form kept while its destination was made.
    draft: Option<String>,
    /// What making that destination said.
    flash: Option<String>,
}

#[get("/t/{team}/routes/new")]
async fn new(
    state: web::Data<WebState>,
    member: Member,
    q: Query<NewQuery>,
) -> Result<FormPage, PageError> {
    member.require(Action::Configure)?;
    let (sources, destinations) = choices(&state, &member).await?;
    let mut form = RouteForm {
        source_id: q.source_id.clone().unwrap_or_default(),
        destination_id: q.destination_id.clone().unwrap_or_default(),
        event_types: "*".to_owned(),
        ..RouteForm::default()
    };
    let kept = match q.draft.as_deref() {
        Some(id) => flash::read::<RouteForm>(&state, &member.viewer, id).await?,
        None => None,
    };
    if let Some(draft) = kept {
        form = RouteForm {
            destination_id: form.destination_id,
            ..draft
        };
    }
    let made = FlashQuery {
        flash: q.flash.clone(),
    };
    let notice = flash::notice(&state, &member.viewer, &made).await?;
    if let Some(recipe) = q.recipe.as_deref().and_then(recipes::find) {
        form.name = recipe.title.to_owned();
        form.event_types = recipe.event_types.join(", ");
        form.filter = recipe.filter.unwrap_or_default().to_owned();
        form.template = recipe.template.to_owned();
        form.subject = recipe.subject.unwrap_or_default().to_owned();
        if form.source_id.is_empty()
            && let Some(source) = sources
                .iter()
                .find(|s| s.provider.as_str() == recipe.provider)
        {
            form.source_id = source.id.to_string();
        }
    }
    let preview = panel(&state, &member, &form).await;
    let mut nav = Nav::new(&member, "routes", state.smtp_configured);
    nav.flash = notice;
    Ok(FormPage {
        nav,
        route: None,
        sources,
        destinations,
        form,
        errors: Errors::default(),
        preview,
    })
}

/// Keeps the route form as typed and opens a new destination's form; once that is made,
/// the route form comes back with it chosen.
#[post("/t/{team}/routes/new-destination")]
async fn new_destination(
    state: web::Data<WebState>,
    member: Member,
    Posted(form): Posted<RouteForm>,
) -> Result<HttpResponse, PageError> {
    member.require(Action::Configure)?;
    let draft = flash::keep(&state, &member.viewer, &form).await?;
    Ok(see_other(
        member.path(&format!("destinations/new?for_route={draft}")),
    ))
}

const FIELDS: &[&str] = &[
    "name",
    "source_id",
    "destination_id",
    "event_types",
    "filter",
    "template",
    "subject",
    "enrich",
];

async fn form_again(
    state: &WebState,
    member: &Member,
    route: Option<Route>,
    form: RouteForm,
    errors: Errors,
) -> Result<HttpResponse, PageError> {
    let (sources, destinations) = choices(state, member).await?;
    let preview = panel(state, member, &form).await;
    let page = FormPage {
        nav: Nav::new(member, "routes", state.smtp_configured),
        route,
        sources,
        destinations,
        form,
        errors,
        preview,
    };
    html(&page, StatusCode::UNPROCESSABLE_ENTITY)
}

#[post("/t/{team}/routes")]
async fn create(
    state: web::Data<WebState>,
    member: Member,
    Posted(form): Posted<RouteForm>,
) -> Result<HttpResponse, PageError> {
    member.require(Action::Configure)?;
    let request = CreateRoute {
        name: form.name.clone(),
        draft: RouteDraft {
            source_id: form.source_id.clone(),
            destination_id: form.destination_id.clone(),
            event_types: Some(form.patterns()),
            filter: RouteForm::optional(&form.filter),
            template: RouteForm::optional(&form.template),
            subject: RouteForm::optional(&form.subject),
        },
        paused: None,
        enrich: enrich_setting(&member, &form, false),
        ordering: None,
        coalesce: None,
        nothing_else: NothingElse,
    };
    if let Some(errors) = enrich_refused(&member, &form, false) {
        return form_again(&state, &member, None, form, errors).await;
    }
    match manage::create(member.scope(&state), request).await {
        Ok(route) => {
            let page = member.path(&format!("routes/{}", route.id));
            let notice = Flash::notice("Route created.");
            Ok(see_other(
                flash::put(&state, &member.viewer, &notice, &page).await?,
            ))
        }
        Err(e) => {
            let errors = Errors::from_app(e, FIELDS)?;
            form_again(&state, &member, None, form, errors).await
        }
    }
}

/// What the form sets enrichment to: only owners and admins change it.
fn enrich_setting(member: &Member, form: &RouteForm, was: bool) -> Option<bool> {
    (member.role.may(Action::Manage) && form.enriches() != was).then(|| form.enriches())
}

/// A member who is not an owner or admin asking to turn enrichment on.
fn enrich_refused(member: &Member, form: &RouteForm, was: bool) -> Option<Errors> {
    if member.role.may(Action::Manage) || !form.enriches() || was {
        return None;
    }
    let mut errors = Errors::default();
    errors.add("enrich", "Only owners and admins can turn on enrichment.");
    Some(errors)
}

#[get("/t/{team}/routes/{id}")]
async fn show(
    state: web::Data<WebState>,
    member: Member,
    path: web::Path<TeamPath<RouteId>>,
    q: Query<FlashQuery>,
) -> Result<FormPage, PageError> {
    member.require(Action::Read)?;
    let route = routes::get(&state.pool, member.team_id(), &path.id).await?;
    let (sources, destinations) = choices(&state, &member).await?;
    let form = RouteForm::of(&route);
    let preview = panel(&state, &member, &form).await;
    let mut nav = Nav::new(&member, "routes", state.smtp_configured);
    nav.flash = flash::notice(&state, &member.viewer, &q).await?;
    Ok(FormPage {
        nav,
        route: Some(route),
        sources,
        destinations,
        form,
        errors: Errors::default(),
        preview,
    })
}

#[post("/t/{team}/routes/{id}")]
async fn update(
    state: web::Data<WebState>,
    member: Member,
    path: web::Path<TeamPath<RouteId>>,
    Posted(form): Posted<RouteForm>,
) -> Result<HttpResponse, PageError> {
    member.require(Action::Configure)?;
    let id = path.into_inner().id;
    let route = routes::get(&state.pool, member.team_id(), &id).await?;
    let patch = UpdateRoute {
        name: Some(form.name.clone()),
        event_types: Some(form.patterns()),
        filter: Some(RouteForm::optional(&form.filter)),
        template: Some(RouteForm::optional(&form.template)),
        subject: Some(RouteForm::optional(&form.subject)),
        enrich: enrich_setting(&member, &form, route.enrich),
        ..UpdateRoute::default()
    };
    if let Some(errors) = enrich_refused(&member, &form, route.enrich) {
        return form_again(&state, &member, Some(route), form, errors).await;
    }
    match manage::update(member.scope(&state), &id, patch).await {
        Ok(_) => {
            let page = member.path(&format!("routes/{id}"));
            let notice = Flash::notice("Saved.");
            Ok(see_other(
                flash::put(&state, &member.viewer, &notice, &page).await?,
            ))
        }
        Err(e) => {
            let errors = Errors::from_app(e, FIELDS)?;
            // Source and destination are fixed once a route exists.
            let form = RouteForm {
                source_id: route.source_id.to_string(),
                destination_id: route.destination_id.to_string(),
                ..form
            };
            form_again(&state, &member, Some(route), form, errors).await
        }
    }
}

#[derive(Debug, Deserialize)]
struct PauseForm {
    #[serde(default)]
    paused: String,
}

#[post("/t/{team}/routes/{id}/paused")]
async fn pause(
    state: web::Data<WebState>,
    member: Member,
    path: web::Path<TeamPath<RouteId>>,
    Posted(form): Posted<PauseForm>,
) -> Result<HttpResponse, PageError> {
    member.require(Action::Configure)?;
    let id = path.into_inner().id;
    let patch = UpdateRoute {
        paused: Some(form.paused == "true"),
        ..UpdateRoute::default()
    };
    manage::update(member.scope(&state), &id, patch).await?;
    Ok(see_other(member.path(&format!("routes/{id}"))))
}

#[post("/t/{team}/routes/{id}/delete")]
async fn delete(
    state: web::Data<WebState>,
    member: Member,
    path: web::Path<TeamPath<RouteId>>,
    _form: Posted<NoFields>,
) -> Result<HttpResponse, PageError> {
    member.require(Action::Configure)?;
    let id = path.into_inner().id;
    manage::delete(member.scope(&state), &id).await?;
    Ok(see_other(member.path("routes")))
}

#[derive(Template, WebTemplate)]
#[template(path = "dashboard/recipes.html")]
struct RecipesPage {
    nav: Nav,
    recipes: &'static [Recipe],
}

#[get("/t/{team}/recipes")]
async fn recipe_cards(
    state: web::Data<WebState>,
    member: Member,
) -> Result<RecipesPage, PageError> {
    member.require(Action::Read)?;
    Ok(RecipesPage {
        nav: Nav::new(&member, "routes", state.smtp_configured),
        recipes: RECIPES,
    })
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RecipeForm {
    source_id: String,
    name: String,
    fire_url: String,
    token: String,
    url: String,
    to: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "dashboard/recipe.html")]
struct RecipePage {
    nav: Nav,
    recipe: &'static Recipe,
    /// The team's sources of the recipe's provider.
    sources: Vec<Source>,
    form: RecipeForm,
    errors: Errors,
}

async fn recipe_page(
    state: &WebState,
    member: &Member,
    recipe: &'static Recipe,
    form: RecipeForm,
    errors: Errors,
) -> Result<RecipePage, PageError> {
    let (sources, _) = choices(state, member).await?;
    Ok(RecipePage {
        nav: Nav::new(member, "routes", state.smtp_configured),
        recipe,
        sources: sources
            .into_iter()
            .filter(|s| s.provider.as_str() == recipe.provider)
            .collect(),
        form,
        errors,
    })
}

/// `/t/{team}/recipes/{name}`.
#[derive(Deserialize)]
struct RecipePath {
    name: String,
}

#[get("/t/{team}/recipes/{name}")]
async fn recipe_form(
    state: web::Data<WebState>,
    member: Member,
    path: web::Path<RecipePath>,
) -> Result<RecipePage, PageError> {
    member.require(Action::Configure)?;
    let recipe = recipes::find(&path.name).ok_or(PageError::NotFound)?;
    let form = RecipeForm {
        name: recipe.title.to_owned(),
        ..RecipeForm::default()
    };
    recipe_page(&state, &member, recipe, form, Errors::default()).await
}

#[post("/t/{team}/recipes/{name}")]
async fn apply(
    state: web::Data<WebState>,
    member: Member,
    path: web::Path<RecipePath>,
    Posted(form): Posted<RecipeForm>,
) -> Result<HttpResponse, PageError> {
    member.require(Action::Configure)?;
    let recipe = recipes::find(&path.name).ok_or(PageError::NotFound)?;
    let destination = DestinationForm::target(&form.fire_url, &form.token, &form.url, &form.to);
    // A recipe asks only for where to send, which always parses.
    let ((config, _), _) = destination.input(recipe.kind, false);
    let scope = member.scope(&state);
    let name = filled(&form.name);
    // Only owners and admins turn enrichment on: a member's route renders without it.
    let applying = recipes::Recipe {
        enrich: recipe.enrich && member.role.may(Action::Manage),
        ..*recipe
    };
    let applied =
        recipe_use::apply_configured(scope, &applying, &form.source_id, name, config).await;
    match applied {
        Ok(applied) => Ok(see_other(
            member.path(&format!("routes/{}", applied.route.id)),
        )),
        Err(e) => {
            let fields = ["source_id", "name", "fire_url", "token", "url", "to"];
            let errors = Errors::from_app(e, &fields)?;
            let page = recipe_page(&state, &member, recipe, form, errors).await?;
            html(&page, StatusCode::UNPROCESSABLE_ENTITY)
        }
    }
}
