//! A team with one of everything a dashboard page shows (a source, a destination, a
//! route, an event and its delivery, a bulk replay, an API key, an invitation), and the
//! paths of every team page and form, for the tests that visit them all.

use reqwest::StatusCode;

use crate::{TestApp, Visitor, sign};

pub struct Furnished {
    /// The team's owner, signed in.
    pub ada: Visitor,
    /// `/t/acme-two`.
    pub team: String,
    /// Every page of the team, relative to `team`.
    pub pages: Vec<String>,
    /// Every form the team's pages post, relative to `team`.
    pub forms: Vec<String>,
    pub src: String,
    pub dst: String,
    pub evt: String,
    /// The Anthropic source's signing secret and ingest token.
    whsec: String,
    token: String,
}

impl Furnished {
    /// One more signed event to the source (`id` is its webhook id); its delivery id.
    pub async fn send_event(&self, app: &TestApp, id: &str) -> String {
        let body = format!(
            r#"{{"type":"event","id":"{id}","data":{{"type":"session.status_idled","id":"sesn_1"}}}}"#
        );
        let now = chrono::Utc::now().timestamp();
        let res = app
            .client
            .post(app.url(&format!("/hooks/{}", self.token)))
            .header("content-type", "application/json")
            .header("webhook-id", id)
            .header("webhook-timestamp", now.to_string())
            .header(
                "webhook-signature",
                sign::standard_webhooks(&self.whsec, id, now, body.as_bytes()),
            )
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let answer: serde_json::Value = res.json().await.unwrap();
        sqlx::query_scalar("SELECT id FROM deliveries WHERE event_id = $1")
            .bind(answer["event_id"].as_str().unwrap())
            .fetch_one(&app.pool)
            .await
            .unwrap()
    }
}

async fn one(pool: &sqlx::PgPool, sql: &str) -> String {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Signs ada@example.com up with the team "Acme Two" and fills it.
pub async fn furnish(app: &TestApp) -> Furnished {
    let mut ada = Visitor::new(app);
    let team = ada.sign_up("ada@example.com", "Acme Two").await;
    ada.get(&format!("{team}/sources/new")).await;
    let whsec = sign::new_whsec();
    let page = ada
        .post(
            &format!("{team}/sources"),
            &[
                ("provider", "anthropic"),
                ("name", "agents"),
                ("secret", &whsec),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    ada.post(
        &format!("{team}/destinations"),
        &[
            ("kind", "email"),
            ("name", "inbox"),
            ("to", "ops@example.com"),
        ],
    )
    .await;
    let src = one(
        &app.pool,
        "SELECT s.id FROM sources s JOIN teams t ON t.id = s.team_id WHERE t.slug = 'acme-two'",
    )
    .await;
    let dst = one(&app.pool, "SELECT d.id FROM destinations d JOIN teams t ON t.id = d.team_id WHERE t.slug = 'acme-two'").await;
    ada.post(
        &format!("{team}/routes"),
        &[
            ("name", "all"),
            ("source_id", &src),
            ("destination_id", &dst),
        ],
    )
    .await;
    ada.get(&format!("{team}/settings")).await;
    ada.post(&format!("{team}/api-keys"), &[("key_name", "ci")])
        .await;
    ada.post(
        &format!("{team}/invitations"),
        &[
            ("invite_email", "carol@example.com"),
            ("invite_role", "member"),
        ],
    )
    .await;
    // One event, hence one delivery, and one (empty) bulk replay.
    let token = one(&app.pool, "SELECT token FROM sources").await;
    let body =
        br#"{"type":"event","id":"whe_1","data":{"type":"session.status_idled","id":"sesn_1"}}"#;
    let now = chrono::Utc::now().timestamp();
    let res = app
        .client
        .post(app.url(&format!("/hooks/{token}")))
        .header("content-type", "application/json")
        .header("webhook-id", "whe_1")
        .header("webhook-timestamp", now.to_string())
        .header(
            "webhook-signature",
            sign::standard_webhooks(&whsec, "whe_1", now, body),
        )
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    ada.get(&format!("{team}/deliveries")).await;
    ada.post(
        &format!("{team}/replays"),
        &[
            ("status", "failed"),
            ("destination", ""),
            ("since", ""),
            ("until", ""),
        ],
    )
    .await;
    let rte = one(&app.pool, "SELECT id FROM routes").await;
    let evt = one(&app.pool, "SELECT id FROM events").await;
    let dlv = one(&app.pool, "SELECT id FROM deliveries").await;
    let rpl = one(&app.pool, "SELECT id FROM replays").await;
    let sec = one(
        &app.pool,
        &format!("SELECT id FROM source_secrets WHERE source_id = '{src}'"),
    )
    .await;
    let usr = one(
        &app.pool,
        "SELECT id FROM users WHERE email = 'ada@example.com'",
    )
    .await;
    let inv = one(&app.pool, "SELECT id FROM invitations").await;
    let key = one(
        &app.pool,
        "SELECT k.id FROM api_keys k JOIN teams t ON t.id = k.team_id WHERE t.slug = 'acme-two'",
    )
    .await;

    let pages = vec![
        String::new(),
        "/sources".into(),
        "/sources/new".into(),
        format!("/sources/{src}"),
        format!("/sources/{src}/edit"),
        "/destinations".into(),
        "/destinations/new".into(),
        format!("/destinations/{dst}"),
        format!("/destinations/{dst}/edit"),
        "/routes".into(),
        "/routes/new".into(),
        format!("/routes/{rte}"),
        "/recipes".into(),
        "/recipes/vault-refresh-failed-to-email".into(),
        "/events".into(),
        format!("/events/{evt}"),
        "/deliveries".into(),
        format!("/deliveries/{dlv}"),
        "/sessions".into(),
        "/replays".into(),
        "/replays/new?status=failed".into(),
        format!("/replays/{rpl}"),
        "/settings".into(),
    ];
    let forms = vec![
        "/sources".to_owned(),
        format!("/sources/{src}"),
        format!("/sources/{src}/secrets"),
        format!("/sources/{src}/secrets/{sec}/retire"),
        format!("/sources/{src}/delete"),
        "/destinations".into(),
        format!("/destinations/{dst}"),
        format!("/destinations/{dst}/state"),
        format!("/destinations/{dst}/test"),
        format!("/destinations/{dst}/delete"),
        "/routes".into(),
        "/routes/preview".into(),
        format!("/routes/{rte}"),
        format!("/routes/{rte}/paused"),
        format!("/routes/{rte}/delete"),
        "/recipes/vault-refresh-failed-to-email".into(),
        format!("/members/{usr}"),
        "/invitations".into(),
        format!("/invitations/{inv}/revoke"),
        "/api-keys".into(),
        format!("/api-keys/{key}/revoke"),
        format!("/deliveries/{dlv}/replay"),
        format!("/events/{evt}/rerun"),
        "/replays".into(),
        format!("/replays/{rpl}/cancel"),
        "/delete".into(),
    ];

    Furnished {
        ada,
        team,
        pages,
        forms,
        src,
        dst,
        evt,
        whsec,
        token,
    }
}
