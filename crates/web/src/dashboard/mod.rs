//! The dashboard: server-rendered pages (askama templates in `templates/dashboard`), a
//! stylesheet and a little script embedded in the binary, htmx for partial updates.
//! Every page works without script. The rules are the application layer's
//! (`switchyard_domain::app`), as they are for the API, scoped to the team in the URL,
//! with a role check on every handler.

mod account;
mod anthropic;
mod catalog;
mod chart;
mod destination_form;
mod destinations;
mod error;
mod events;
mod flash;
mod forms;
mod invitation;
mod limits;
mod logs;
mod mail;
mod replays;
mod reset;
mod route_preview;
mod routes;
mod session;
mod source_form;
mod source_secrets;
mod sources;
mod team;
mod test_send;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::DefaultHeaders;
use actix_web::{HttpResponse, web};
use askama::Template;
use switchyard_domain::accounts::{Action, Role};

pub use error::PageError;
use session::{Member, TeamChoice};

/// Pages may load only this site's own script, styles and images, and no one may frame
/// them. Reset and invitation links carry tokens, so no referrer leaves the site.
fn security_headers() -> DefaultHeaders {
    DefaultHeaders::new()
        .add((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; \
             frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ))
        .add((header::X_FRAME_OPTIONS, "DENY"))
        .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .add((header::REFERRER_POLICY, "no-referrer"))
        .add((header::CACHE_CONTROL, "no-store"))
}

/// Registers the dashboard. It owns every path the API and ingest do not, so it goes
/// last.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("")
            .wrap(actix_web::middleware::from_fn(
                crate::reads::remember_browser_writes,
            ))
            .wrap(security_headers())
            .app_data(web::PayloadConfig::new(forms::FORM_LIMIT))
            .service(static_file)
            .configure(account::routes)
            .configure(reset::routes)
            .configure(team::routes)
            .configure(anthropic::routes)
            .configure(sources::routes)
            .configure(destinations::routes)
            .service(test_send::send_test)
            .configure(routes::routes)
            .configure(events::routes)
            .configure(logs::routes)
            .configure(replays::routes)
            .configure(invitation::routes)
            .default_service(web::to(|| async {
                Err::<HttpResponse, _>(PageError::NotFound)
            })),
    );
}

/// A 303 to `location`: POST-redirect-GET.
pub fn see_other(location: impl Into<String>) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location.into()))
        .finish()
}

/// A rendered page with a status other than 200 (a form sent back with its errors).
pub fn html(template: &impl Template, status: StatusCode) -> Result<HttpResponse, PageError> {
    Ok(HttpResponse::build(status)
        .insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        ))
        .body(template.render()?))
}

struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const ASSETS: &[Asset] = &[
    Asset {
        name: "app.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../../../../static/app.css"),
    },
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../../../static/app.js"),
    },
    Asset {
        name: "htmx.min.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../../../static/htmx.min.js"),
    },
    Asset {
        name: "favicon.svg",
        content_type: "image/svg+xml",
        body: include_bytes!("../../../../static/favicon.svg"),
    },
];

#[actix_web::get("/static/{name}")]
async fn static_file(name: web::Path<String>) -> Result<HttpResponse, PageError> {
    let asset = ASSETS
        .iter()
        .find(|a| a.name == name.as_str())
        .ok_or(PageError::NotFound)?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, asset.content_type))
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(asset.body))
}

pub struct NavLink {
    pub label: &'static str,
    pub href: String,
    pub current: bool,
}

/// What the signed-in shell shows around every team page.
pub struct Nav {
    pub email: String,
    pub verified: bool,
    pub csrf: String,
    pub team_slug: String,
    pub team_name: String,
    pub role: Role,
    pub teams: Vec<TeamChoice>,
    pub section: &'static str,
    pub smtp_configured: bool,
    /// A one-time message on a page rendered straight from a form.
    pub flash: Option<String>,
}

impl Nav {
    pub fn new(member: &Member, section: &'static str, smtp_configured: bool) -> Nav {
        Nav {
            email: member.viewer.user.email.clone(),
            verified: member.viewer.user.email_verified_at.is_some(),
            csrf: member.viewer.csrf.clone(),
            team_slug: member.team.slug.clone(),
            team_name: member.team.name.clone(),
            role: member.role,
            teams: member.teams.clone(),
            section,
            smtp_configured,
            flash: None,
        }
    }

    /// The left navigation.
    pub fn links(&self) -> Vec<NavLink> {
        [
            ("overview", "Overview"),
            ("sources", "Sources"),
            ("destinations", "Destinations"),
            ("routes", "Routes"),
            ("events", "Events"),
            ("deliveries", "Deliveries"),
            ("settings", "Settings"),
        ]
        .into_iter()
        .map(|(section, label)| NavLink {
            label,
            href: match section {
                "overview" => format!("/t/{}", self.team_slug),
                _ => format!("/t/{}/{section}", self.team_slug),
            },
            current: section == self.section,
        })
        .collect()
    }

    pub fn can_configure(&self) -> bool {
        self.role.may(Action::Configure)
    }

    pub fn can_manage(&self) -> bool {
        self.role.may(Action::Manage)
    }

    pub fn is_owner(&self) -> bool {
        self.role.may(Action::DeleteTeam)
    }
}

#[cfg(test)]
mod tests {
    /// A field's `name` comes from the macro's first argument; a second `name` in its
    /// attributes would be ignored by browsers, and the form would send the wrong field.
    #[test]
    fn form_macros_are_never_given_a_second_name() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../templates/dashboard");
        for entry in std::fs::read_dir(dir).expect("templates") {
            let path = entry.expect("entry").path();
            let text = std::fs::read_to_string(&path).expect("template");
            for line in text.lines().filter(|l| l.contains("call ui::")) {
                assert!(!line.contains("name=\\\""), "{}: {line}", path.display());
            }
        }
    }
}
