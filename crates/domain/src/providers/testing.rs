//! Test helpers shared by the provider modules' unit tests.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{Headers, Inbound};

pub(super) fn headers(pairs: &[(&str, &str)]) -> Headers {
    Headers::from_pairs(
        pairs
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned())),
    )
}

/// Runs `f` on a request whose structured body is read from `body` as the ingest path
/// reads it.
pub(super) fn with_json<T>(headers: &Headers, body: &[u8], f: impl FnOnce(&Inbound<'_>) -> T) -> T {
    with_url("", headers, body, f)
}

/// As [`with_json`], for a request the sender made to `url`.
pub(super) fn with_url<T>(
    url: &str,
    headers: &Headers,
    body: &[u8],
    f: impl FnOnce(&Inbound<'_>) -> T,
) -> T {
    let json: Option<Value> = super::structured(headers.get("content-type"), body);
    f(&Inbound {
        url,
        headers,
        body,
        json: json.as_ref(),
    })
}

pub(super) fn at(ts: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(ts, 0).unwrap()
}
