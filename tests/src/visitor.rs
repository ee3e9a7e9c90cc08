//! A person at the dashboard without a browser: a cookie jar, no automatic redirects (so
//! tests see each 303), and the CSRF token of the last page seen, sent with each form
//! the way the page's hidden field would be.

use reqwest::StatusCode;
use reqwest::redirect::Policy;

use serde_json::{Value, json};

use crate::TestApp;

pub struct Visitor {
    client: reqwest::Client,
    base: String,
    /// The `csrf_token` of the last page that had a form.
    pub csrf: Option<String>,
}

#[derive(Debug)]
pub struct Page {
    pub status: StatusCode,
    pub location: Option<String>,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

/// A location without its `flash` parameter.
pub fn without_flash(location: &str) -> String {
    let (rest, anchor) = match location.split_once('#') {
        Some((rest, anchor)) => (rest, format!("#{anchor}")),
        None => (location, String::new()),
    };
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let kept: Vec<&str> = query
        .split('&')
        .filter(|p| !p.is_empty() && !p.starts_with("flash="))
        .collect();
    if kept.is_empty() {
        format!("{path}{anchor}")
    } else {
        format!("{path}?{}{anchor}", kept.join("&"))
    }
}

impl Page {
    /// The `value` of the input with this id.
    #[track_caller]
    pub fn input_value(&self, id: &str) -> String {
        let html = &self.body;
        let at = html
            .find(&format!("id=\"{id}\""))
            .unwrap_or_else(|| panic!("no #{id} in {html}"));
        let rest = &html[at..];
        let v = rest.find("value=\"").expect("a value") + "value=\"".len();
        rest[v..v + rest[v..].find('"').unwrap()].to_owned()
    }

    #[track_caller]
    /// The answer redirects to `to`, whatever one-time message it carries aside.
    pub fn assert_redirect(&self, to: &str) {
        assert_eq!(self.status, StatusCode::SEE_OTHER, "{}", self.body);
        assert_eq!(
            self.location.as_deref().map(without_flash),
            Some(to.to_owned())
        );
    }

    #[track_caller]
    pub fn assert_contains(&self, text: &str) {
        assert!(
            self.body.contains(text),
            "{text:?} not on the page ({}):\n{}",
            self.status,
            self.body
        );
    }
}

/// The value of the first `name="csrf_token"` hidden field.
pub fn csrf_in(html: &str) -> Option<String> {
    let at = html.find("name=\"csrf_token\" value=\"")? + "name=\"csrf_token\" value=\"".len();
    let end = html[at..].find('"')?;
    Some(html[at..at + end].to_owned())
}

impl Visitor {
    pub fn new(app: &TestApp) -> Visitor {
        Self::with_headers(app, reqwest::header::HeaderMap::new())
    }

    /// A visitor whose every request carries `X-Forwarded-For: {client}`, as one that
    /// comes through a proxy.
    pub fn forwarded_for(app: &TestApp, client: &str) -> Visitor {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("x-forwarded-for", client.parse().expect("header value"));
        Self::with_headers(app, headers)
    }

    fn with_headers(app: &TestApp, headers: reqwest::header::HeaderMap) -> Visitor {
        Visitor {
            client: reqwest::Client::builder()
                .cookie_store(true)
                .redirect(Policy::none())
                .default_headers(headers)
                // The server closes a connection idle for 5 s (actix's keep-alive); one
                // reused at that moment fails with an incomplete message.
                .pool_idle_timeout(std::time::Duration::from_secs(2))
                .build()
                .expect("client"),
            base: app.base.clone(),
            csrf: None,
        }
    }

    async fn read(&mut self, res: reqwest::Response) -> Page {
        let status = res.status();
        let headers = res.headers().clone();
        let location = headers
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = res.text().await.expect("body");
        if let Some(token) = csrf_in(&body) {
            self.csrf = Some(token);
        }
        Page {
            status,
            location,
            headers,
            body,
        }
    }

    pub async fn get(&mut self, path: &str) -> Page {
        let res = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("GET");
        self.read(res).await
    }

    /// Reloads `path` until it shows `text` (what a background writer adds); panics
    /// after five seconds.
    pub async fn get_until(&mut self, path: &str, text: &str) -> Page {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let page = self.get(path).await;
            if page.body.contains(text) || tokio::time::Instant::now() > deadline {
                page.assert_contains(text);
                return page;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    /// Posts a form with the CSRF token of the last page.
    pub async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        let token = self.csrf.clone().unwrap_or_default();
        let mut all: Vec<(&str, &str)> = vec![("csrf_token", token.as_str())];
        all.extend_from_slice(fields);
        self.post_raw(path, &all).await
    }

    /// Posts the form and, when the answer redirects (Post/Redirect/Get), follows it:
    /// the page a person lands on.
    pub async fn submit(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        let page = self.post(path, fields).await;
        match (page.status, page.location.clone()) {
            (StatusCode::SEE_OTHER, Some(location)) => self.get(&location).await,
            _ => page,
        }
    }

    /// Posts exactly these fields: no token added.
    pub async fn post_raw(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        let res = self
            .client
            .post(format!("{}{path}", self.base))
            .form(fields)
            .send()
            .await
            .expect("POST");
        self.read(res).await
    }

    /// Someone signed up with a team of their own, and a `role` in team `slug` too.
    pub async fn member_of(app: &TestApp, email: &str, slug: &str, role: &str) -> Visitor {
        let mut visitor = Visitor::new(app);
        visitor.sign_up(email, &format!("{email}'s team")).await;
        sqlx::query(
            "INSERT INTO memberships (team_id, user_id, role)
             SELECT t.id, u.id, $3 FROM teams t, users u WHERE t.slug = $1 AND u.email = $2",
        )
        .bind(slug)
        .bind(email)
        .bind(role)
        .execute(&app.pool)
        .await
        .expect("membership");
        visitor
    }

    /// Signs up through the form and returns the new team's path (`/t/{slug}`).
    pub async fn sign_up(&mut self, email: &str, team: &str) -> String {
        self.get("/signup").await;
        let page = self
            .post(
                "/signup",
                &[
                    ("email", email),
                    ("password", PASSWORD),
                    ("team_name", team),
                ],
            )
            .await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
        let to = page.location.expect("a redirect to the team");
        self.get(&to).await;
        to
    }

    /// A signed-up visitor whose team has a GitHub source (signed with `secret`) routed
    /// to `url` (an HTTP destination); the team's path and the source as the API shows it.
    pub async fn wired(app: &TestApp, secret: &str, url: &str) -> (Visitor, String, Value) {
        Self::wired_to(
            app,
            secret,
            &[("kind", "http"), ("name", "svc"), ("url", url)],
        )
        .await
    }

    /// As [`Visitor::wired`], to the destination the form `destination` creates.
    pub async fn wired_to(
        app: &TestApp,
        secret: &str,
        destination: &[(&str, &str)],
    ) -> (Visitor, String, Value) {
        let mut v = Visitor::new(app);
        let team = v.sign_up("ada@example.com", "Acme Two").await;
        v.get(&format!("{team}/sources/new")).await;
        v.post(
            &format!("{team}/sources"),
            &[("provider", "github"), ("name", "api"), ("secret", secret)],
        )
        .await;
        v.post(&format!("{team}/destinations"), destination).await;
        // The new team's only source and destination.
        let (src, dst): (String, String) =
            sqlx::query_as("SELECT s.id, d.id FROM sources s, destinations d")
                .fetch_one(&app.pool)
                .await
                .unwrap();
        v.post(
            &format!("{team}/routes"),
            &[
                ("name", "all"),
                ("source_id", &src),
                ("destination_id", &dst),
            ],
        )
        .await;
        let token: String = sqlx::query_scalar("SELECT token FROM sources WHERE id = $1")
            .bind(&src)
            .fetch_one(&app.pool)
            .await
            .unwrap();
        let source = json!({"id": src, "ingest_url": app.url(&format!("/hooks/{token}"))});
        (v, team, source)
    }

    /// Creates a GitHub source (`acme/api`, signed with `secret`) through the form; its
    /// page path and ingest URL.
    pub async fn github_source(&mut self, team: &str, secret: &str) -> (String, String) {
        self.get(&format!("{team}/sources/new?provider=github"))
            .await;
        let page = self
            .post(
                &format!("{team}/sources"),
                &[
                    ("provider", "github"),
                    ("name", "acme/api"),
                    ("secret", secret),
                ],
            )
            .await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
        let shown = page.location.expect("the source's page");
        let page = self.get(&shown).await;
        (without_flash(&shown), page.input_value("ingest-url"))
    }

    pub async fn log_in(&mut self, email: &str, password: &str) -> Page {
        self.get("/login").await;
        self.post("/login", &[("email", email), ("password", password)])
            .await
    }
}

/// The password the helpers sign up with.
pub const PASSWORD: &str = "correct horse battery";
