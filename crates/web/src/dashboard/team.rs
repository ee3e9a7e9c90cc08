//! A team's overview and settings: its people and their roles, invitations, API keys,
//! the audit log, and deleting the team.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, get, post, web};
use askama::Template;
use askama_web::WebTemplate;
use chrono::{Duration, DurationRound, Utc};
use serde::Deserialize;
use switchyard_domain::StoreError;
use switchyard_domain::accounts::{self, Action, Role};
use switchyard_domain::delivery::DestinationState;
use switchyard_domain::ids::SourceId;
use switchyard_domain::ids::{ApiKeyId, InvitationId, UserId};
use switchyard_domain::model::{ApiKey, Name};
use switchyard_domain::model::{Destination, PageRequest};
use switchyard_domain::store::alerts::{self as alert_settings, AlertSettings};
use switchyard_domain::store::anthropic_keys::{self, KeyInfo};
use switchyard_domain::store::members::{self, Invitation, Member as TeamMember};
use switchyard_domain::store::{api_keys, audit, destinations, stats, teams};

use super::chart::{self, Chart};
use super::error::{PageError, TeamPath};
use super::flash::{self, Flash, FlashQuery};
use super::forms::{Errors, NoFields, Posted, items};
use super::session::Member;
use super::{Nav, html, mail, see_other};
use crate::WebState;
use crate::query::Query;
use crate::reads::Wrote;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(overview)
        .service(settings)
        .service(change_member)
        .service(invite)
        .service(revoke_invitation)
        .service(create_key)
        .service(revoke_key)
        .service(save_alerts)
        .service(delete_team);
}

#[derive(Template, WebTemplate)]
#[template(path = "dashboard/overview.html")]
struct OverviewPage {
    nav: Nav,
    counts: teams::Counts,
    /// `24h` or `7d`.
    window: &'static str,
    totals: stats::Totals,
    /// The team's deliveries that are not settled, now.
    backlog: stats::Backlog,
    chart: Chart,
    /// Destinations not taking deliveries, or failing, worst first.
    troubled: Vec<Destination>,
    rejecting: Vec<(SourceId, String, i64)>,
}

impl OverviewPage {
    fn badge(&self, d: &Destination) -> (&'static str, &'static str) {
        super::destinations::badge(d)
    }

    /// How long the oldest due delivery has waited.
    fn waited(&self) -> String {
        match self.backlog.oldest_due_seconds {
            Some(s) if s >= 60.0 => format!("{:.0} min", s / 60.0),
            Some(s) if s >= 1.0 => format!("{s:.0} s"),
            Some(s) => format!("{:.0} ms", s * 1000.0),
            None => "–".to_owned(),
        }
    }

    fn ms(&self, value: &Option<f64>) -> String {
        match value {
            Some(ms) if *ms >= 1000.0 => format!("{:.1} s", ms / 1000.0),
            Some(ms) => format!("{ms:.0} ms"),
            None => "–".to_owned(),
        }
    }
}

#[derive(Debug, Deserialize)]
struct OverviewQuery {
    window: Option<String>,
}

#[get("/t/{team}")]
async fn overview(
    state: web::Data<WebState>,
    wrote: Wrote,
    member: Member,
    q: Query<OverviewQuery>,
) -> Result<OverviewPage, PageError> {
    member.require(Action::Read)?;
    let db = wrote.pool(&state).await;
    let team = member.team_id();
    let now = Utc::now();
    // A day in hours, or a week in six-hour buckets, ending at the next whole hour.
    let (window, span, bucket) = match q.window.as_deref() {
        Some("7d") => ("7d", Duration::days(7), 6 * 3600),
        _ => ("24h", Duration::hours(24), 3600),
    };
    let end = now.duration_trunc(Duration::hours(1)).unwrap_or(now) + Duration::hours(1);
    let since = end - span;
    let (totals, buckets) = stats::overview(db, team, since, end, bucket).await?;
    let mut troubled: Vec<Destination> = destinations::list(
        db,
        team,
        &PageRequest {
            cursor: None,
            limit: 200,
        },
    )
    .await?
    .items
    .into_iter()
    .filter(|d| d.state != DestinationState::Active || d.consecutive_failures > 0)
    .collect();
    troubled.sort_by_key(|d| {
        (
            d.state == DestinationState::Active,
            std::cmp::Reverse(d.consecutive_failures),
        )
    });
    Ok(OverviewPage {
        nav: Nav::new(&member, "overview", state.smtp_configured),
        counts: teams::counts(db, team).await?,
        window,
        totals,
        backlog: stats::team_backlog(db, team, now).await?,
        chart: chart::draw(&buckets, bucket == 3600),
        troubled,
        rejecting: stats::rejecting_sources(db, team, now - span).await?,
    })
}

#[derive(Template, WebTemplate)]
#[template(path = "dashboard/settings.html")]
pub(super) struct SettingsPage {
    nav: Nav,
    members: Vec<TeamMember>,
    invitations: Vec<Invitation>,
    keys: Vec<ApiKey>,
    log: Vec<audit::Entry>,
    roles: [Role; 4],
    /// A key just created: its only showing.
    new_key: Option<String>,
    invite_email: String,
    invite_role: String,
    key_name: String,
    alerts: AlertSettings,
    /// The alert form's text fields as typed (kept when they are sent back with errors).
    alert_recipients: String,
    alert_threshold: String,
    /// The team's Anthropic API keys, its own first.
    pub(super) anthropic: Vec<KeyInfo>,
    /// The Anthropic form's fields as typed (the key only ever comes back empty).
    pub(super) anthropic_workspace: String,
    /// What checking a key came to, shown once.
    pub(super) anthropic_check: Option<String>,
    /// For admins: whether lists read a replica, and how far behind it is (seconds).
    read_database: Option<Option<f64>>,
    pub(super) errors: Errors,
}

impl SettingsPage {
    pub(super) async fn load(state: &WebState, member: &Member) -> Result<SettingsPage, PageError> {
        let team = member.team_id();
        let alerts = alert_settings::settings(&state.pool, team).await?;
        Ok(SettingsPage {
            nav: Nav::new(member, "settings", state.smtp_configured),
            members: members::list(&state.pool, team).await?,
            invitations: members::pending(&state.pool, team, Utc::now()).await?,
            keys: if member.role.may(Action::Manage) {
                api_keys::list(&state.pool, team).await?
            } else {
                Vec::new()
            },
            log: audit::latest(&state.pool, team, 50).await?,
            roles: Role::ALL,
            new_key: None,
            invite_email: String::new(),
            invite_role: "member".to_owned(),
            key_name: String::new(),
            anthropic: anthropic_keys::list(&state.pool, team).await?,
            anthropic_workspace: String::new(),
            anthropic_check: None,
            read_database: match member.role.may(Action::Manage) && state.reads.has_replica() {
                true => Some(state.reads.lag().await),
                false => None,
            },
            alert_recipients: alerts.extra_recipients.join("\n"),
            alert_threshold: alerts.rejection_threshold.to_string(),
            alerts,
            errors: Errors::default(),
        })
    }
}

#[get("/t/{team}/settings")]
async fn settings(
    state: web::Data<WebState>,
    member: Member,
    q: Query<FlashQuery>,
) -> Result<SettingsPage, PageError> {
    member.require(Action::Read)?;
    let mut page = SettingsPage::load(&state, &member).await?;
    if let Some(flash) = flash::take::<Flash>(&state, &member.viewer, &q).await? {
        page.nav.flash = flash.notice;
        page.new_key = flash.secret;
        page.anthropic_check = flash.problem;
    }
    Ok(page)
}

#[derive(Debug, Deserialize)]
struct MemberForm {
    /// A role, or `remove`.
    #[serde(default)]
    role: String,
}

#[post("/t/{team}/members/{id}")]
async fn change_member(
    state: web::Data<WebState>,
    member: Member,
    path: web::Path<TeamPath<UserId>>,
    Posted(form): Posted<MemberForm>,
) -> Result<HttpResponse, PageError> {
    let user = path.into_inner().id;
    let leaving = user == member.viewer.user.id && form.role == "remove";
    if !leaving {
        member.require(Action::Manage)?;
    }
    let role = match form.role.as_str() {
        "remove" => None,
        other => Some(other.parse::<Role>().map_err(PageError::BadRequest)?),
    };
    if let Some(role) = role
        && !member.role.may_grant(role)
    {
        return Err(PageError::Forbidden(
            "You cannot give a role above your own.",
        ));
    }
    let mut tx = state.pool.begin().await?;
    let people = members::list(&mut *tx, member.team_id()).await?;
    let target = people
        .iter()
        .find(|m| m.user_id == user)
        .ok_or(PageError::NotFound)?;
    // An admin manages admins and below; only an owner changes an owner (the store
    // checks again under its lock).
    let may_change_owners = member.role == Role::Owner || leaving;
    if target.role == Role::Owner && !may_change_owners {
        return Err(PageError::Forbidden(
            "Only an owner can change another owner.",
        ));
    }
    match members::change(&mut tx, member.team_id(), &user, role, may_change_owners).await {
        Ok(()) => {}
        Err(StoreError::Conflict(why)) => {
            let mut page = SettingsPage::load(&state, &member).await?;
            page.errors.add("members", super::forms::sentence(&why));
            return html(&page, StatusCode::CONFLICT);
        }
        Err(e) => return Err(e.into()),
    }
    let action = match role {
        Some(_) => "member.role",
        None => "member.remove",
    };
    let detail = match role {
        Some(role) => format!("{} → {role}", target.email),
        None => target.email.clone(),
    };
    member.audit(&mut *tx, action, &detail).await?;
    tx.commit().await?;
    Ok(see_other(if leaving {
        "/account".to_owned()
    } else {
        member.path("settings#members")
    }))
}

#[derive(Debug, Deserialize)]
struct InviteForm {
    #[serde(default)]
    invite_email: String,
    #[serde(default)]
    invite_role: String,
}

#[post("/t/{team}/invitations")]
async fn invite(
    state: web::Data<WebState>,
    member: Member,
    Posted(form): Posted<InviteForm>,
) -> Result<HttpResponse, PageError> {
    member.require(Action::Manage)?;
    let mut errors = Errors::default();
    let email = accounts::email_address(&form.invite_email)
        .map_err(|_| {
            errors.add(
                "invite_email",
                "Enter an email address such as ada@example.com.",
            )
        })
        .ok();
    let role = form
        .invite_role
        .parse::<Role>()
        .ok()
        .filter(|r| *r != Role::Owner && member.role.may_grant(*r));
    if role.is_none() {
        errors.add("invite_role", "Choose admin, member or viewer.");
    }
    let (Some(email), Some(role)) = (email, role) else {
        let mut page = SettingsPage::load(&state, &member).await?;
        page.invite_email = form.invite_email;
        page.invite_role = form.invite_role;
        page.errors = errors;
        return html(&page, StatusCode::UNPROCESSABLE_ENTITY);
    };
    let mut tx = state.pool.begin().await?;
    let (_, token) = members::invite(
        &mut tx,
        member.team_id(),
        &email,
        role,
        &member.viewer.user.id,
        Utc::now(),
    )
    .await?;
    mail::invitation(
        &mut tx,
        &state,
        &email,
        member.actor(),
        &member.team.name,
        role.as_str(),
        &token,
    )
    .await?;
    member
        .audit(&mut *tx, "invitation.create", &format!("{email} as {role}"))
        .await?;
    tx.commit().await?;
    Ok(see_other(member.path("settings#invitations")))
}

#[post("/t/{team}/invitations/{id}/revoke")]
async fn revoke_invitation(
    state: web::Data<WebState>,
    member: Member,
    path: web::Path<TeamPath<InvitationId>>,
    _form: Posted<NoFields>,
) -> Result<HttpResponse, PageError> {
    member.require(Action::Manage)?;
    let invitation = path.into_inner().id;
    let mut tx = state.pool.begin().await?;
    members::revoke(&mut *tx, member.team_id(), &invitation).await?;
    member
        .audit(&mut *tx, "invitation.revoke", invitation.as_str())
        .await?;
    tx.commit().await?;
    Ok(see_other(member.path("settings#invitations")))
}

#[derive(Debug, Deserialize)]
struct KeyForm {
    #[serde(default)]
    key_name: String,
}

/// Creates a key and shows it on the answer to this form: its one and only showing.
#[post("/t/{team}/api-keys")]
async fn create_key(
    state: web::Data<WebState>,
    member: Member,
    Posted(form): Posted<KeyForm>,
) -> Result<HttpResponse, PageError> {
    member.require(Action::Manage)?;
    let name = match Name::parse(&form.key_name) {
        Ok(name) => name,
        Err(e) => {
            let mut page = SettingsPage::load(&state, &member).await?;
            page.key_name = form.key_name;
            page.errors.add(
                "key_name",
                super::forms::sentence(&format!("the key's {e}")),
            );
            return html(&page, StatusCode::UNPROCESSABLE_ENTITY);
        }
    };
    let mut tx = state.pool.begin().await?;
    let (key, plaintext) = api_keys::create(&mut *tx, member.team_id(), name.as_str()).await?;
    member.audit(&mut *tx, "api_key.create", &key.name).await?;
    tx.commit().await?;
    let flash = Flash::secret(format!("API key \"{}\" created.", key.name), plaintext);
    let page = member.path("settings#api-keys");
    Ok(see_other(
        flash::put(&state, &member.viewer, &flash, &page).await?,
    ))
}

#[post("/t/{team}/api-keys/{id}/revoke")]
async fn revoke_key(
    state: web::Data<WebState>,
    member: Member,
    path: web::Path<TeamPath<ApiKeyId>>,
    _form: Posted<NoFields>,
) -> Result<HttpResponse, PageError> {
    member.require(Action::Manage)?;
    let key = path.into_inner().id;
    let mut tx = state.pool.begin().await?;
    let key = api_keys::revoke(&mut *tx, member.team_id(), &key).await?;
    member.audit(&mut *tx, "api_key.revoke", &key.name).await?;
    tx.commit().await?;
    Ok(see_other(member.path("settings#api-keys")))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct AlertForm {
    destination_disabled: Option<String>,
    delivery_failed: Option<String>,
    unknown_outcome: Option<String>,
    source_rejecting: Option<String>,
    anthropic_key: Option<String>,
    source_quiet: Option<String>,
    alert_threshold: String,
    notify_admins: Option<String>,
    alert_recipients: String,
}

/// The most extra addresses alerts go to.
const MAX_ALERT_RECIPIENTS: usize = 20;

#[post("/t/{team}/alerts")]
async fn save_alerts(
    state: web::Data<WebState>,
    member: Member,
    Posted(form): Posted<AlertForm>,
) -> Result<HttpResponse, PageError> {
    member.require(Action::Manage)?;
    let mut errors = Errors::default();
    let threshold = form
        .alert_threshold
        .trim()
        .parse::<i32>()
        .ok()
        .filter(|n| (1..=100).contains(n));
    if threshold.is_none() {
        errors.add("alert_threshold", "Enter a number from 1 to 100.");
    }
    let mut recipients = Vec::new();
    for raw in items(&form.alert_recipients) {
        match accounts::email_address(&raw) {
            Ok(address) => recipients.push(address),
            Err(_) => errors.add(
                "alert_recipients",
                format!("{raw:?} is not an email address."),
            ),
        }
    }
    if recipients.len() > MAX_ALERT_RECIPIENTS {
        errors.add(
            "alert_recipients",
            format!("At most {MAX_ALERT_RECIPIENTS} addresses."),
        );
    }
    let wanted = AlertSettings {
        destination_disabled: form.destination_disabled.is_some(),
        delivery_failed: form.delivery_failed.is_some(),
        unknown_outcome: form.unknown_outcome.is_some(),
        source_rejecting: form.source_rejecting.is_some(),
        anthropic_key: form.anthropic_key.is_some(),
        source_quiet: form.source_quiet.is_some(),
        rejection_threshold: threshold.unwrap_or(20),
        notify_admins: form.notify_admins.is_some(),
        extra_recipients: recipients,
    };
    if !errors.is_empty() {
        let mut page = SettingsPage::load(&state, &member).await?;
        page.alerts = wanted;
        page.alert_recipients = form.alert_recipients;
        page.alert_threshold = form.alert_threshold;
        page.errors = errors;
        return html(&page, StatusCode::UNPROCESSABLE_ENTITY);
    }
    let mut tx = state.pool.begin().await?;
    alert_settings::save(&mut *tx, member.team_id(), &wanted).await?;
    member
        .audit(&mut *tx, "alerts.update", "alert settings")
        .await?;
    tx.commit().await?;
    Ok(see_other(member.path("settings#alerts")))
}

#[derive(Debug, Deserialize)]
struct DeleteForm {
    #[serde(default)]
    confirm: String,
}

#[post("/t/{team}/delete")]
async fn delete_team(
    state: web::Data<WebState>,
    member: Member,
    Posted(form): Posted<DeleteForm>,
) -> Result<HttpResponse, PageError> {
    member.require(Action::DeleteTeam)?;
    if form.confirm.trim() != member.team.slug {
        let mut page = SettingsPage::load(&state, &member).await?;
        page.errors
            .add("confirm", format!("Type {} to confirm.", member.team.slug));
        return html(&page, StatusCode::UNPROCESSABLE_ENTITY);
    }
    teams::delete(&state.pool, member.team_id()).await?;
    Ok(see_other("/account"))
}
