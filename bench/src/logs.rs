//! The logs benchmark: one team with a million events (and another team beside it), then
//! the API's event list and the dashboard's events page, each filter measured by
//! sequential requests over loopback.

use std::time::{Duration, Instant};

use anyhow::Context;
use sqlx::PgPool;
use switchyard_domain::store::{accounts, api_keys, sources, teams};

use crate::ingest::{Server, cpu_model, ms, num_cpus, percentile};

const BATCH: i64 = 100_000;

/// Inserts `count` GitHub-like events for `team`'s `source`, a quarter of each type,
/// received one every `spacing_ms` up to now, with ids made at that time (as ingest
/// makes them).
pub async fn seed(
    pool: &PgPool,
    team: &str,
    source: &str,
    count: i64,
    offset: i64,
    spacing_ms: f64,
) -> anyhow::Result<()> {
    let now = chrono::Utc::now();
    let mut start = 0;
    while start < count {
        let end = (start + BATCH).min(count);
        let mut ids = Vec::with_capacity(BATCH as usize);
        let mut times = Vec::with_capacity(BATCH as usize);
        for g in start..end {
            let at = now - chrono::Duration::milliseconds(((count - g) as f64 * spacing_ms) as i64);
            let ms = u64::try_from(at.timestamp_millis()).unwrap_or(0);
            let id = ulid::Ulid::from_parts(ms, u128::from(g as u64) + u128::from(offset as u64));
            ids.push(format!("evt_{}", id.to_string().to_ascii_lowercase()));
            times.push(at);
        }
        let numbers: Vec<i64> = (start..end).collect();
        sqlx::query(
            "INSERT INTO events (id, team_id, source_id, event_type, dedup_key, headers, body, received_at)
             SELECT e.id, $1, $2,
                    (ARRAY['issues.opened', 'push', 'pull_request.opened', 'issue_comment.created'])[1 + e.g % 4],
                    'key-' || ($6 + e.g),
                    '{\"content-type\":\"application/json\"}'::jsonb,
                    convert_to('{\"action\":\"opened\",\"issue\":{\"number\":' || e.g || '}}', 'UTF8'),
                    e.at
             FROM unnest($3::text[], $4::timestamptz[], $5::bigint[]) AS e (id, at, g)",
        )
        .bind(team)
        .bind(source)
        .bind(&ids)
        .bind(&times)
        .bind(&numbers)
        .bind(offset)
        .execute(pool)
        .await?;
        start = end;
    }
    Ok(())
}

/// Times `n` GETs of `url`, each sent with the header that signs it in.
pub async fn measure(
    client: &reqwest::Client,
    url: &str,
    credential: (&str, &str),
    n: usize,
) -> anyhow::Result<Vec<Duration>> {
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let req = client.get(url).header(credential.0, credential.1);
        let started = Instant::now();
        let res = req.send().await?;
        let status = res.status();
        res.bytes().await?;
        samples.push(started.elapsed());
        anyhow::ensure!(status.is_success(), "{url}: {status}");
    }
    Ok(samples)
}

pub async fn run(admin_url: &str, events: i64, requests: usize) -> anyhow::Result<()> {
    let server = Server::start(admin_url).await?;
    let pool = PgPool::connect(&server.database_url).await?;
    let team = teams::insert(&pool, "bench", "Bench").await?;
    let other = teams::insert(&pool, "other", "Other").await?;
    let (_, key) = api_keys::create(&pool, &team.id, "bench").await?;
    let client = reqwest::Client::new();
    let source: serde_json::Value = client
        .post(format!("{}/api/v1/sources", server.app))
        .bearer_auth(&key)
        .json(&serde_json::json!({"name": "gh", "provider": "github", "secret": "s"}))
        .send()
        .await?
        .json()
        .await?;
    let source_id = source["id"].as_str().context("source id")?.to_owned();
    let other_source = sources::insert(
        &mut *pool.acquire().await?,
        &other.id,
        sources::NewSource {
            name: "gh",
            provider: switchyard_domain::providers::ProviderKind::None,
            settings: &Default::default(),
            body_limit: 1024 * 1024,
            quiet_after_minutes: None,
            reconciling: sources::Reconciling::OFF,
            sealed_secret: None,
        },
        "other-token",
    )
    .await?;
    let seeding = Instant::now();
    seed(&pool, team.id.as_str(), &source_id, events, 0, 500.0).await?;
    seed(
        &pool,
        other.id.as_str(),
        other_source.id.as_str(),
        events / 10,
        events,
        500.0,
    )
    .await?;
    sqlx::query("ANALYZE").execute(&pool).await?;
    println!(
        "seeded {events} events for one team and {} for another in {:.0} s",
        events / 10,
        seeding.elapsed().as_secs_f64()
    );
    // A member of the team, signed in, for the dashboard.
    let user = teams::add_member(
        &mut *pool.acquire().await?,
        &team.id,
        "bench@example.com",
        "owner",
    )
    .await?;
    let session = accounts::start_session(&pool, &user, chrono::Utc::now()).await?;
    let cookie = format!("sy_session={}", session.token);
    let bearer = format!("Bearer {key}");
    let middle = switchyard_domain::ids::EventId::first_at(
        chrono::Utc::now() - chrono::Duration::milliseconds(events * 250),
    );

    println!("machine: {} cores, {}", num_cpus(), cpu_model());
    println!("{requests} sequential requests each, 50 events a page\n");
    println!("{:<62} {:>9} {:>9}", "request", "p50", "p95");
    let api = |q: &str| format!("{}/api/v1/events?limit=50{q}", server.app);
    let page = |q: &str| format!("{}/t/bench/events{q}", server.app);
    let cases: Vec<(String, String, bool, usize)> = vec![
        ("API: newest page".into(), api(""), false, requests),
        (
            "API: one source, one type".into(),
            api(&format!("&source_id={source_id}&event_type=push")),
            false,
            requests,
        ),
        (
            "API: a page from the middle (cursor)".into(),
            api(&format!("&cursor={middle}")),
            false,
            requests,
        ),
        (
            "API: by dedup key".into(),
            api(&format!("&dedup_key=key-{}", events / 3)),
            false,
            requests,
        ),
        (
            "dashboard: events, newest page".into(),
            page(""),
            true,
            requests,
        ),
        (
            "dashboard: event type glob issue*".into(),
            page("?event_type=issue*"),
            true,
            requests,
        ),
        (
            "dashboard: by dedup key".into(),
            page(&format!("?dedup_key=key-{}", events / 3)),
            true,
            requests,
        ),
        (
            "dashboard: time range (one hour, a day ago)".into(),
            page(&time_range()),
            true,
            requests,
        ),
        (
            "dashboard: filter payload.issue.number == n (reads 5,000 bodies)".into(),
            page(&format!(
                "?filter=payload.issue.number+%3D%3D+{}",
                events - 100
            )),
            true,
            requests.min(10),
        ),
    ];
    for (name, url, signed_in, n) in cases {
        let credential = match signed_in {
            true => ("cookie", cookie.as_str()),
            false => ("authorization", bearer.as_str()),
        };
        let samples = measure(&client, &url, credential, n).await?;
        println!(
            "{:<62} {:>9} {:>9}",
            name,
            ms(percentile(&samples, 0.50)),
            ms(percentile(&samples, 0.95))
        );
    }
    pool.close().await;
    server.stop(admin_url).await
}

fn time_range() -> String {
    let from = chrono::Utc::now() - chrono::Duration::hours(25);
    let until = from + chrono::Duration::hours(1);
    format!(
        "?since={}&until={}",
        from.format("%Y-%m-%dT%H:%M"),
        until.format("%Y-%m-%dT%H:%M")
    )
}
