//! `POST /hooks/{token}`: the hot path, in DESIGN's order: look the source up, read the
//! body within its limit, verify, extract type and dedup key, match routes, commit,
//! answer.

use actix_web::http::header::{CONNECTION, CONTENT_LENGTH, CONTENT_TYPE};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use chrono::{Duration, Utc};
use futures::StreamExt;
use serde_json::json;
use switchyard_domain::ids::EventId;
use switchyard_domain::model::{NewEvent, StatusChange};
use switchyard_domain::providers::{
    DedupKind, Headers, Inbound, VerifyError, checked_event_type, resolve_event_type, structured,
};
use switchyard_domain::routing::{EventFacts, RoutedEvent, pipeline};
use switchyard_domain::store::events::Ingested;
use switchyard_domain::store::sources::Rejection;
use switchyard_problem::Problem;

use crate::IngressState;

/// How long a content-derived dedup key holds.
const CONTENT_DEDUP_WINDOW: Duration = Duration::hours(1);

pub async fn receive(
    req: HttpRequest,
    token: web::Path<String>,
    mut payload: web::Payload,
    state: web::Data<IngressState>,
) -> HttpResponse {
    // Every token Switchyard issues has this shape; anything else is unknown without
    // asking the database.
    if !crate::cache::well_formed(&token) {
        return Problem::not_found("no source has this ingest URL").error_response();
    }
    let source = match state.cache.get(&token).await {
        Ok(Some(source)) => source,
        Ok(None) => return Problem::not_found("no source has this ingest URL").error_response(),
        Err(e) => return Problem::from(e).error_response(),
    };
    // The request's span (opened by the server's middleware) names the source.
    tracing::Span::current().record("source", tracing::field::display(&source.config.source.id));
    let limit = usize::try_from(source.config.source.body_limit).unwrap_or(crate::MAX_BODY_LIMIT);

    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > limit) {
        return too_large(limit);
    }
    let mut body = web::BytesMut::with_capacity(declared.unwrap_or(0).min(limit));
    while let Some(chunk) = payload.next().await {
        let Ok(chunk) = chunk else {
            return Problem::bad_request("the request body could not be read").error_response();
        };
        if body.len() + chunk.len() > limit {
            return too_large(limit);
        }
        body.extend_from_slice(&chunk);
    }

    let headers = Headers::from_pairs(req.headers().iter().filter_map(|(name, value)| {
        Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned()))
    }));
    let content_type = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let json = structured(content_type, &body);
    let url = format!("{}{}", state.public_base, req.uri());
    let inbound = Inbound {
        url: &url,
        headers: &headers,
        body: &body,
        json: json.as_ref(),
    };
    let now = Utc::now();

    let kind = source.config.source.provider.as_str();
    let provider = source.config.source.provider.provider();
    let settings = &source.config.source.settings.0;
    let secrets: Vec<&[u8]> = source.secrets.iter().map(Vec::as_slice).collect();
    // Headers as stored: a basic_auth or api_key source's credential is never kept.
    let api_key_header: Vec<&str> = settings.api_key_header.iter().map(String::as_str).collect();
    let stored_headers = headers.to_stored_json(&api_key_header);
    let verified = match source.config.source.provider.needs_secret() && secrets.is_empty() {
        true => Err(VerifyError::AwaitingSecret),
        false => provider.verify(&inbound, &secrets, settings, now),
    };
    if let Err(e) = verified {
        state.rejections.note(
            source.config.source.team_id.clone(),
            source.config.source.id.clone(),
            Rejection::new(e.to_string(), stored_headers, &body),
        );
        metrics::counter!("switchyard_ingest_total", "provider" => kind, "result" => "rejected")
            .increment(1);
        return Problem::signature_rejected(e.slug(), e.to_string()).error_response();
    }

    if let Some(answer) = provider.handshake(&inbound) {
        return HttpResponse::Ok().json(answer);
    }
    let event_type = match checked_event_type(resolve_event_type(provider, &inbound, settings)) {
        Ok(event_type) => event_type,
        Err(reason) => return Problem::bad_request(reason).error_response(),
    };
    let dedup_key = provider.dedup_key(&inbound, settings).bounded();
    let dedup_until = match dedup_key.kind {
        DedupKind::ProviderId => now + Duration::days(i64::from(source.config.retention_days)),
        DedupKind::ContentHash => now + CONTENT_DEDUP_WINDOW,
    };
    let id = EventId::generate();
    // A reconciling source notes each session's status as its webhooks tell it.
    let status = match source.config.source.reconcile {
        true => json.as_ref().and_then(StatusChange::of),
        false => None,
    };
    let deliveries = {
        let facts = EventFacts {
            id: id.as_str(),
            event_type: event_type.as_deref(),
            headers: &stored_headers,
            body: &body,
            received_at: now,
            dedup_key: &dedup_key.value,
            source_name: &source.config.source.name,
            source_provider: kind,
            team_slug: &source.config.team_slug,
        };
        let event = RoutedEvent::new(facts, &state.public_base).with_payload(json);
        pipeline::plan(&source.routes, &event)
    };
    let event = NewEvent {
        id,
        team_id: source.config.source.team_id.clone(),
        source_id: source.config.source.id.clone(),
        event_type,
        dedup_key,
        dedup_until,
        headers: stored_headers,
        // The buffer becomes the event's body without a copy.
        body: Vec::from(body),
        received_at: now,
        deliveries,
        status,
        synthesized: false,
    };

    let committing = std::time::Instant::now();
    let result = state.committer.submit(event).await;
    metrics::histogram!("switchyard_ingest_commit_wait_seconds")
        .record(committing.elapsed().as_secs_f64());
    match result {
        Ok(Ingested::Accepted(id)) => {
            tracing::Span::current().record("event_id", tracing::field::display(&id));
            metrics::counter!("switchyard_ingest_total", "provider" => kind, "result" => "accepted")
                .increment(1);
            HttpResponse::Ok().json(json!({"status": "accepted", "event_id": id}))
        }
        Ok(Ingested::Duplicate(id)) => {
            tracing::Span::current().record("event_id", tracing::field::display(&id));
            metrics::counter!("switchyard_ingest_total", "provider" => kind, "result" => "duplicate")
                .increment(1);
            HttpResponse::Ok().json(json!({"status": "duplicate", "event_id": id}))
        }
        Err(e) => Problem::from(e).error_response(),
    }
}

fn too_large(limit: usize) -> HttpResponse {
    let mut res = Problem::payload_too_large(limit).error_response();
    // The rest of the body is not read; the connection cannot be reused.
    res.headers_mut().insert(
        CONNECTION,
        actix_web::http::header::HeaderValue::from_static("close"),
    );
    res
}
