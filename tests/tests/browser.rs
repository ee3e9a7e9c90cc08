//! The dashboard in a real headless Chromium: a newcomer signs up, wires GitHub to an
//! HTTP endpoint with a recipe's template, and sees a signed webhook arrive, at the
//! receiver and in the UI. Screenshots of the main pages land in docs/screenshots/.

use std::time::Duration;

use fantoccini::Locator;
use switchyard_tests::browser::Browser;
use switchyard_tests::visitor::PASSWORD;
use switchyard_tests::{Receiver, Reply, TestApp, sign};

const SECRET: &str = "browser-test-secret";

#[tokio::test]
async fn a_newcomer_signs_up_wires_github_to_an_endpoint_and_sees_an_issue_arrive() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::start(vec![Reply::status(200)]).await;
    let b = Browser::start().await;

    b.go(&app.url("/signup")).await;
    b.screenshot("signup").await;
    b.fill("email", "ada@example.com").await;
    b.fill("password", PASSWORD).await;
    b.fill("team_name", "Analytical Engines").await;
    b.click("button[type=submit]").await;
    b.wait_for_path("/t/analytical-engines").await;
    b.wait_for_text("Get started", None).await;
    b.screenshot("overview-new-team").await;

    // A GitHub source (the form's default provider).
    b.click("a[href='/t/analytical-engines/sources/new']").await;
    b.fill("name", "acme/api").await;
    b.fill("secret", SECRET).await;
    b.screenshot("source-new").await;
    b.click("#source-form button[type=submit]").await;
    b.wait_for_text("Set up GitHub", None).await;
    let ingest = b.value("ingest-url").await;
    assert!(ingest.starts_with(&app.url("/hooks/")), "{ingest}");
    let source_page = b.client.current_url().await.expect("url").to_string();
    b.screenshot("source").await;

    // An HTTP destination pointing at the receiver.
    b.go(&app.url("/t/analytical-engines/destinations/new?kind=http"))
        .await;
    b.fill("name", "triage service").await;
    b.fill("url", &receiver.url("/hooks/github")).await;
    b.click("form.panel button[type=submit]").await;
    b.wait_for_text("Copy the signing secret now", None).await;
    b.screenshot("destination").await;

    // The GitHub recipe, towards the destination the team already has.
    b.go(&app.url("/t/analytical-engines/recipes")).await;
    b.screenshot("recipes").await;
    b.click("a[href='/t/analytical-engines/routes/new?recipe=github-issue-to-routine']")
        .await;
    b.wait_for_text("New route", None).await;
    b.choose("destination_id", "triage service (http)").await;
    b.click("#route-form button[type=submit]").await;
    b.wait_for_path("/t/analytical-engines/routes/rte_").await;

    // A signed webhook, as GitHub would send it.
    let body = br#"{"action":"opened","issue":{"number":42,"title":"Crash on save","user":{"login":"octocat"},"labels":[{"name":"bug"}],"html_url":"https://github.com/acme/api/issues/42","body":"It crashes."},"repository":{"full_name":"acme/api"}}"#;
    let status = app
        .client
        .post(&ingest)
        .header("content-type", "application/json")
        .header("x-github-event", "issues")
        .header("x-github-delivery", "b-1")
        .header("x-hub-signature-256", sign::github(SECRET, body))
        .body(body.to_vec())
        .send()
        .await
        .expect("webhook")
        .status();
    assert_eq!(status, 200);
    let got = receiver.wait_for(1, Duration::from_secs(10)).await;
    let text = String::from_utf8_lossy(&got[0].body);
    assert!(
        text.contains("#42: Crash on save") && text.contains("Labels: bug"),
        "{text}"
    );

    // The UI shows it: on the source page, and in the route's preview.
    b.go(&source_page).await;
    b.wait_for_text("issues.opened", Some(&source_page)).await;
    b.client.find(Locator::Css("code")).await.expect("code");
    b.go(&app.url("/t/analytical-engines/routes")).await;
    b.click("td a[href^='/t/analytical-engines/routes/rte_']")
        .await;
    b.wait_for_text("#42: Crash on save", None).await;
    b.screenshot("route").await;
    // People and keys, through the real forms.
    b.go(&app.url("/t/analytical-engines/settings")).await;
    b.wait_for_text("route.create", None).await;
    b.fill("key_name", "ci").await;
    b.click("form[action$='/api-keys'] button[type=submit]")
        .await;
    b.wait_for_text("Copy this key now", None).await;
    b.fill("invite_email", "bob@example.com").await;
    b.click("form[action$='/invitations'] button[type=submit]")
        .await;
    b.wait_for_text("invitation.create", None).await;
    b.screenshot("settings").await;

    // The same team on a phone, in the dark theme, for the docs.
    if Browser::screenshots_wanted() {
        let phone = Browser::phone(true).await;
        phone.go(&app.url("/login")).await;
        phone.fill("email", "ada@example.com").await;
        phone.fill("password", PASSWORD).await;
        phone.click("button[type=submit]").await;
        phone.wait_for_path("/t/analytical-engines").await;
        phone.go(&app.url("/t/analytical-engines/sources")).await;
        phone.wait_for_text("acme/api", None).await;
        phone.screenshot("sources-phone-dark").await;
    }
}

#[tokio::test]
async fn a_failed_delivery_is_replayed_from_its_page_and_three_more_in_bulk() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::start(vec![Reply::status(400).body("no such repository")]).await;
    let b = Browser::start().await;
    b.go(&app.url("/signup")).await;
    b.fill("email", "ada@example.com").await;
    b.fill("password", PASSWORD).await;
    b.fill("team_name", "Replays").await;
    b.click("button[type=submit]").await;
    b.wait_for_path("/t/replays").await;

    b.go(&app.url("/t/replays/sources/new")).await;
    b.fill("name", "acme/api").await;
    b.fill("secret", SECRET).await;
    b.click("#source-form button[type=submit]").await;
    b.wait_for_text("Set up GitHub", None).await;
    let ingest = b.value("ingest-url").await;
    b.go(&app.url("/t/replays/destinations/new?kind=http"))
        .await;
    b.fill("name", "svc").await;
    b.fill("url", &receiver.url("/in")).await;
    b.click("form.panel button[type=submit]").await;
    b.wait_for_text("Copy the signing secret now", None).await;
    b.go(&app.url("/t/replays/routes/new")).await;
    b.fill("name", "everything").await;
    for (id, label) in [
        ("source_id", "acme/api (github)"),
        ("destination_id", "svc (http)"),
    ] {
        b.choose(id, label).await;
    }
    b.click("#route-form button[type=submit]").await;
    b.wait_for_path("/t/replays/routes/rte_").await;

    for n in 0..4 {
        let body = format!(r#"{{"action":"opened","issue":{{"number":{n}}}}}"#);
        let status = app
            .client
            .post(&ingest)
            .header("content-type", "application/json")
            .header("x-github-event", "issues")
            .header("x-github-delivery", format!("b-{n}"))
            .header("x-hub-signature-256", sign::github(SECRET, body.as_bytes()))
            .body(body)
            .send()
            .await
            .expect("webhook")
            .status();
        assert_eq!(status, 200);
    }
    receiver.wait_for(4, Duration::from_secs(10)).await;

    // The failures show on the deliveries page, which refreshes itself.
    let deliveries = app.url("/t/replays/deliveries?status=failed");
    b.go(&deliveries).await;
    b.wait_for_text("HTTP 400", Some(&deliveries)).await;
    b.screenshot("deliveries").await;

    // Fix the receiver; replay the newest from its page.
    receiver.script(vec![Reply::status(200)]);
    b.click("td a[href^='/t/replays/deliveries/dlv_']").await;
    b.wait_for_text("Attempts", None).await;
    b.click("form[action$='/replay'] button[type=submit]").await;
    let here = b.client.current_url().await.expect("url");
    b.wait_for_text("succeeded", Some(here.as_str())).await;
    b.screenshot("delivery").await;

    // The three others, in bulk.
    b.go(&deliveries).await;
    b.click("a[href^='/t/replays/replays/new']").await;
    b.wait_for_text("Replay 3 failed deliveries", None).await;
    b.click("form[action='/t/replays/replays'] button[type=submit]")
        .await;
    b.wait_for_path("/t/replays/replays/rpl_").await;
    b.wait_for_text("3/3", None).await;
    b.wait_for_text("done", None).await;
    b.screenshot("replay").await;
    receiver.wait_for(8, Duration::from_secs(10)).await;
    b.go(&app.url("/t/replays")).await;
    b.wait_for_text("Deliveries by outcome", None).await;
    b.screenshot("overview").await;
}

#[tokio::test]
async fn every_dashboard_page_fits_a_phone_in_light_and_dark() {
    let app = TestApp::spawn().await;
    let furnished = switchyard_tests::furnished::furnish(&app).await;
    for dark in [false, true] {
        let phone = Browser::phone(dark).await;
        phone.go(&app.url("/login")).await;
        phone.fill("email", "ada@example.com").await;
        phone.fill("password", PASSWORD).await;
        phone.click("button[type=submit]").await;
        phone.wait_for_path(&furnished.team).await;
        let account = ["/account".to_owned()];
        let team_pages = furnished
            .pages
            .iter()
            .map(|p| format!("{}{p}", furnished.team));
        for path in team_pages.chain(account) {
            phone.go(&app.url(&path)).await;
            let (laid_out, shown) = phone.widths().await;
            assert!(shown <= 400, "{path}: the window is {shown} px wide");
            assert!(
                laid_out <= shown,
                "{path} ({}): laid out {laid_out} px wide in a {shown} px window",
                if dark { "dark" } else { "light" }
            );
        }
    }
}

#[tokio::test]
async fn times_read_in_the_viewer_s_time_zone_with_utc_on_hover() {
    let app = TestApp::spawn().await;
    let furnished = switchyard_tests::furnished::furnish(&app).await;
    let b = Browser::in_zone("Asia/Tokyo").await;
    b.go(&app.url("/login")).await;
    b.fill("email", "ada@example.com").await;
    b.fill("password", PASSWORD).await;
    b.click("button[type=submit]").await;
    b.wait_for_path(&furnished.team).await;
    b.go(&app.url(&format!("{}/events", furnished.team))).await;
    let (shown, utc) = b.first_time().await;
    assert!(utc.ends_with(" UTC"), "{utc}");
    assert!(
        shown.contains("GMT+9") || shown.contains("JST"),
        "{shown} (UTC {utc})"
    );
}
