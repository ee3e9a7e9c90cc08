//! The body as data, read once per request: JSON as parsed, or an
//! `application/x-www-form-urlencoded` form (Slack slash commands and interactivity,
//! Twilio) as a JSON object of its fields, so that providers and a source's
//! `event_type_pointer` / `dedup_pointer` read both shapes alike (`/command`,
//! `/payload/type`, `/MessageSid`).

use std::borrow::Cow;

use serde_json::{Map, Value};
use url::form_urlencoded;

const FORM: &str = "application/x-www-form-urlencoded";

/// The structured form of `body`: JSON whatever the declared type (senders mislabel it),
/// else the fields of a form when the request says it is one. A field that holds JSON
/// (Slack's `payload`) is kept parsed; of a repeated field the first value counts.
pub fn structured(content_type: Option<&str>, body: &[u8]) -> Option<Value> {
    if let Ok(json) = serde_json::from_slice(body) {
        return Some(json);
    }
    if !is_form(content_type?) {
        return None;
    }
    let mut fields = Map::new();
    for (name, value) in form_pairs(body) {
        if fields.contains_key(name.as_ref()) {
            continue;
        }
        let value = match serde_json::from_str::<Value>(&value) {
            Ok(nested @ (Value::Object(_) | Value::Array(_))) => nested,
            _ => Value::String(value.into_owned()),
        };
        fields.insert(name.into_owned(), value);
    }
    Some(Value::Object(fields))
}

/// The decoded name/value pairs of a form body, in order, repeats kept (`+` is a space;
/// invalid UTF-8 is replaced).
pub fn form_pairs(body: &[u8]) -> impl Iterator<Item = (Cow<'_, str>, Cow<'_, str>)> {
    form_urlencoded::parse(body)
}

pub(super) fn is_form(content_type: &str) -> bool {
    content_type
        .split(';')
        .next()
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case(FORM))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_is_parsed_whatever_the_content_type() {
        assert_eq!(
            structured(Some("text/plain"), br#"{"a":1}"#),
            Some(json!({"a": 1}))
        );
        assert_eq!(structured(None, br#"[1]"#), Some(json!([1])));
    }

    #[test]
    fn a_form_becomes_an_object_of_decoded_fields_with_nested_json_kept() {
        let body = b"command=%2Fdeploy&text=hello+w%6Frld&text=second&payload=%7B%22type%22%3A%22block_actions%22%7D&flag";
        let value = structured(
            Some("application/x-www-form-urlencoded; charset=utf-8"),
            body,
        );
        assert_eq!(
            value,
            Some(json!({
                "command": "/deploy",
                "text": "hello world",
                "payload": {"type": "block_actions"},
                "flag": "",
            }))
        );
    }

    #[test]
    fn a_body_that_is_neither_has_no_structure() {
        assert_eq!(structured(Some("text/plain"), b"a=1"), None);
        assert_eq!(structured(None, b"a=1"), None);
        assert_eq!(structured(Some("application/json"), b"{oops"), None);
    }

    #[test]
    fn form_pairs_keep_order_and_repeats_and_survive_bad_escapes() {
        let pairs: Vec<_> = form_pairs(b"b=2&a=%zz&b=1")
            .map(|(n, v)| (n.into_owned(), v.into_owned()))
            .collect();
        assert_eq!(
            pairs,
            [("b", "2"), ("a", "%zz"), ("b", "1")].map(|(n, v)| (n.to_owned(), v.to_owned()))
        );
    }
}
