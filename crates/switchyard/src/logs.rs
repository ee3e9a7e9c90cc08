//! Logs: tracing to stderr, readable or one JSON object per line
//! (`SWITCHYARD_LOG_FORMAT=json`), and one line per HTTP request carrying its request id
//! (and its time, in the `switchyard_http_request_seconds{route}` histogram).
//!
//! Every request runs inside a `request` span with `request_id` (the caller's
//! `X-Request-Id` when it is a plain token, else a new one, echoed in the answer),
//! `method` and `route`, the pattern and never the path, which for ingest holds the
//! source's token. Ingress records `source` and `event_id` on it and the worker's attempt
//! span carries `delivery`, so a JSON line names the request, event or delivery it
//! concerns. Secrets never reach a field: sealed values are opened only where they are
//! sent, and headers are logged by nobody.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::error::InternalError;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use tracing::Instrument;
use tracing::field::Empty;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::config::LogFormat;

/// What is logged unless `RUST_LOG` says otherwise.
const DEFAULT_FILTER: &str = "info,sqlx=warn,apalis=warn";

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Installs the process's subscriber, writing to `writer` (stderr in the binary).
pub fn init<W>(format: LogFormat, writer: W)
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match format {
        LogFormat::Pretty => builder.init(),
        // The event's fields at the top level, the innermost span's under `span` and
        // every enclosing span's under `spans`, so a line logged deep inside a request
        // or an attempt still names it.
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(true)
            .init(),
    }
}

/// The middleware that opens each request's span and logs its outcome.
pub async fn requests(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let request_id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|id| well_formed(id))
        .map_or_else(
            || switchyard_domain::secrets::random_token(12),
            str::to_owned,
        );
    let route = req
        .match_pattern()
        .unwrap_or_else(|| "(unmatched)".to_owned());
    let span = tracing::info_span!(
        target: "switchyard::http",
        "request",
        request_id = %request_id,
        method = %req.method(),
        route = %route,
        source = Empty,
        event_id = Empty,
    );
    let outcome = next.call(req).instrument(span.clone()).await;
    let elapsed = started.elapsed().as_secs_f64();
    // By route pattern: ingest's latency is the `/hooks/{token}` series.
    metrics::histogram!("switchyard_http_request_seconds", "route" => route).record(elapsed);
    let ms = (elapsed * 1e6).round() / 1e3;
    let id = HeaderValue::from_str(&request_id).ok();
    match outcome {
        Ok(mut res) => {
            if let Some(id) = id {
                res.headers_mut().insert(REQUEST_ID, id);
            }
            log(&span, res.status().as_u16(), ms);
            Ok(res)
        }
        // A request a middleware refused (the API's key check): actix answers it from
        // the error later, so the answer is made here, with the id header.
        Err(e) => {
            let mut answer = e.error_response();
            if let Some(id) = id {
                answer.headers_mut().insert(REQUEST_ID, id);
            }
            log(&span, answer.status().as_u16(), ms);
            Err(InternalError::from_response(e, answer).into())
        }
    }
}

/// The request's one line, inside its span.
fn log(span: &tracing::Span, status: u16, ms: f64) {
    span.in_scope(|| {
        if status >= 500 {
            tracing::warn!(target: "switchyard::http", status, ms, "request");
        } else {
            tracing::info!(target: "switchyard::http", status, ms, "request");
        }
    });
}

/// A request id a caller may choose: short, and only characters that cannot forge a log
/// line or a header.
fn well_formed(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_short_request_ids_are_taken_from_the_caller() {
        assert!(well_formed("req-01HZX.abc_9"));
        assert!(!well_formed(""));
        assert!(!well_formed(&"a".repeat(65)));
        assert!(!well_formed("a\"b"));
        assert!(!well_formed("a b"));
        assert!(!well_formed("a\nb"));
    }
}
