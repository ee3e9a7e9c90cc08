//! Who is asking: the signed-in person behind the session cookie (`Viewer`), and their
//! membership of the team a `/t/{team}/…` URL names (`Member`). A team the person is not
//! in answers 404, exactly like a team that does not exist.

use actix_web::cookie::{Cookie, SameSite, time};
use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use futures::future::LocalBoxFuture;
use switchyard_domain::accounts::{Action, Role};
use switchyard_domain::app::Scope;
use switchyard_domain::ids::TeamId;
use switchyard_domain::model::Team;
use switchyard_domain::store::accounts::{self, User};
use switchyard_domain::store::{audit, members};

use super::error::PageError;
use crate::WebState;

pub const SESSION_COOKIE: &str = "sy_session";

/// The session cookie for a new session: HttpOnly, SameSite=Lax, Secure behind HTTPS,
/// kept as long as a session may sit idle.
pub fn session_cookie(state: &WebState, token: String) -> Cookie<'static> {
    Cookie::build(SESSION_COOKIE, token)
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(state.secure_cookies())
        .max_age(time::Duration::days(accounts::IDLE_EXPIRY.num_days()))
        .finish()
}

/// A cookie that tells the browser to forget the session.
pub fn cleared_session_cookie(state: &WebState) -> Cookie<'static> {
    let mut cookie = session_cookie(state, String::new());
    cookie.make_removal();
    cookie
}

/// A signed-in person.
#[derive(Debug, Clone)]
pub struct Viewer {
    pub user: User,
    /// The session's CSRF token, for the forms on the pages it sees.
    pub csrf: String,
    /// The session's own token, to end it.
    pub token: String,
}

/// The viewer if the request carries a live session; looked up once per request.
#[derive(Debug, Clone)]
pub struct MaybeViewer(pub Option<Viewer>);

async fn lookup(req: &HttpRequest) -> Result<Option<Viewer>, PageError> {
    if let Some(found) = req.extensions().get::<MaybeViewer>() {
        return Ok(found.0.clone());
    }
    let Some(token) = req.cookie(SESSION_COOKIE).map(|c| c.value().to_owned()) else {
        return Ok(None);
    };
    let state = state(req)?;
    let mut conn = state.pool.acquire().await?;
    let found = accounts::session_user(&mut conn, &token, chrono::Utc::now())
        .await?
        .map(|(user, csrf)| Viewer { user, csrf, token });
    req.extensions_mut().insert(MaybeViewer(found.clone()));
    Ok(found)
}

pub fn state(req: &HttpRequest) -> Result<web::Data<WebState>, PageError> {
    req.app_data::<web::Data<WebState>>()
        .cloned()
        .ok_or(PageError::Internal)
}

impl FromRequest for MaybeViewer {
    type Error = PageError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move { lookup(&req).await.map(MaybeViewer) })
    }
}

/// Where to come back to after signing in: the page asked for, if it is one of ours.
fn sign_in(req: &HttpRequest) -> PageError {
    let next = if req.method() == actix_web::http::Method::GET {
        req.uri()
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_default()
    } else {
        String::new()
    };
    PageError::SignIn { next }
}

impl FromRequest for Viewer {
    type Error = PageError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move { lookup(&req).await?.ok_or_else(|| sign_in(&req)) })
    }
}

/// One of the viewer's teams, for the team switcher.
#[derive(Debug, Clone)]
pub struct TeamChoice {
    pub slug: String,
    pub name: String,
    pub role: String,
}

/// The viewer as a member of the team in the URL's `{team}` segment.
#[derive(Debug, Clone)]
pub struct Member {
    pub viewer: Viewer,
    pub team: Team,
    pub role: Role,
    pub teams: Vec<TeamChoice>,
}

impl Member {
    pub fn team_id(&self) -> &TeamId {
        &self.team.id
    }

    /// The permission table's answer for this member, as a 403 page when it is no.
    pub fn require(&self, action: Action) -> Result<(), PageError> {
        if self.role.may(action) {
            Ok(())
        } else {
            Err(PageError::Forbidden(match action {
                Action::Read => "You cannot see this team.",
                Action::Configure => "Viewers cannot change the team's configuration.",
                Action::Manage => "Only the team's admins and owners manage people and keys.",
                Action::DeleteTeam => "Only an owner can delete the team.",
            }))
        }
    }

    /// How the audit log names this person.
    pub fn actor(&self) -> &str {
        &self.viewer.user.email
    }

    /// The application layer's view of what this person does.
    pub fn scope<'a>(&'a self, state: &'a WebState) -> Scope<'a> {
        state.scope(self.team_id(), self.actor())
    }

    /// Notes in the team's audit log that this person did `action` to `target`.
    pub async fn audit(
        &self,
        db: impl sqlx::PgExecutor<'_>,
        action: &str,
        target: &str,
    ) -> Result<(), PageError> {
        audit::record(db, self.team_id(), self.actor(), action, target).await?;
        Ok(())
    }

    /// A dashboard path inside this team: `path("sources")` → `/t/acme/sources`.
    pub fn path(&self, rest: &str) -> String {
        if rest.is_empty() {
            format!("/t/{}", self.team.slug)
        } else {
            format!("/t/{}/{rest}", self.team.slug)
        }
    }
}

impl FromRequest for Member {
    type Error = PageError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let viewer = lookup(&req).await?.ok_or_else(|| sign_in(&req))?;
            let slug = req.match_info().get("team").unwrap_or_default().to_owned();
            let state = state(&req)?;
            let (team, role) = members::membership(&state.pool, &viewer.user.id, &slug)
                .await?
                .ok_or(PageError::NotFound)?;
            let teams = accounts::teams_of(&state.pool, &viewer.user.id)
                .await?
                .into_iter()
                .map(|(_, slug, name, role)| TeamChoice { slug, name, role })
                .collect();
            Ok(Member {
                viewer,
                team,
                role,
                teams,
            })
        })
    }
}
