//! Request headers as providers read them: case-insensitive lookup, and the lower-cased
//! JSON form stored with an event. This module must not interpret any header; what a
//! header means is each provider's business.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::fmt;

use serde_json::Value;

/// Header names are lower-cased once, on the way in, so lookups and the stored form agree
/// whatever spelling the sender or a proxy used.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Headers {
    by_name: BTreeMap<String, String>,
}

impl Headers {
    pub fn from_pairs<I: IntoIterator<Item = (String, String)>>(pairs: I) -> Headers {
        let mut by_name = BTreeMap::new();
        for (name, value) in pairs {
            // A repeated field means the same as one field with the values joined by
            // commas, in order (RFC 9110 §5.3); keeping only one would drop, say, the
            // second of two signature headers.
            match by_name.entry(name.to_ascii_lowercase()) {
                Entry::Vacant(slot) => {
                    slot.insert(value);
                }
                Entry::Occupied(mut slot) => {
                    let joined: &mut String = slot.get_mut();
                    joined.push_str(", ");
                    joined.push_str(&value);
                }
            }
        }
        Headers { by_name }
    }

    /// The value of `name`, matched case-insensitively.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.by_name
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    /// An object of lower-cased name to value, for storage with an event, a rejection or
    /// an attempt: the value of every header that carries a credential (`Authorization`,
    /// `X-Gitlab-Token`, and the `secret_headers` the caller knows of, …) is replaced by
    /// `[redacted]`.
    pub fn to_stored_json(&self, secret_headers: &[&str]) -> Value {
        Value::Object(
            self.by_name
                .iter()
                .map(|(name, value)| {
                    let named = secret_headers.iter().any(|h| h.eq_ignore_ascii_case(name));
                    let value = if carries_secret(name) || named {
                        REDACTED
                    } else {
                        value
                    };
                    (name.clone(), Value::String(value.to_owned()))
                })
                .collect(),
        )
    }
}

pub const REDACTED: &str = "[redacted]";

/// Whether a header (lower-cased name) carries a credential rather than describing the
/// request. Signatures are not credentials: they prove one body and help debugging.
fn carries_secret(name: &str) -> bool {
    matches!(
        name,
        "authorization" | "proxy-authorization" | "cookie" | "x-gitlab-token" | "x-api-key"
    ) || [
        "secret", "password", "passwd", "api-key", "apikey", "api_key",
    ]
    .iter()
    .any(|word| name.contains(word))
        || (name.contains("token") && !name.contains("idempotency"))
}

/// Names only: headers carry bearer tokens and shared secrets (`Authorization`,
/// `X-Gitlab-Token`), and a `?req` in a log line must not spill them.
impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.by_name.keys()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> Headers {
        Headers::from_pairs(
            pairs
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned())),
        )
    }

    #[test]
    fn lookup_ignores_the_case_of_the_name() {
        let h = headers(&[("X-GitHub-Event", "push")]);
        assert_eq!(h.get("x-github-event"), Some("push"));
        assert_eq!(h.get("X-GITHUB-EVENT"), Some("push"));
        assert_eq!(h.get("X-GitHub-Event"), Some("push"));
        assert_eq!(h.get("x-github-delivery"), None);
    }

    #[test]
    fn repeated_names_are_joined_with_a_comma_in_order() {
        let h = headers(&[("Accept", "a"), ("content-type", "x"), ("ACCEPT", "b")]);
        assert_eq!(h.get("accept"), Some("a, b"));
        assert_eq!(h.get("content-type"), Some("x"));
    }

    #[test]
    fn values_keep_their_case_and_empty_values_are_kept() {
        let h = headers(&[("X-Token", "AbC"), ("X-Empty", "")]);
        assert_eq!(h.get("x-token"), Some("AbC"));
        assert_eq!(h.get("x-empty"), Some(""));
    }

    #[test]
    fn json_form_has_lower_cased_names() {
        let h = headers(&[("Webhook-Id", "msg_1"), ("X-A", "1"), ("x-a", "2")]);
        assert_eq!(
            h.to_stored_json(&[]),
            serde_json::json!({"webhook-id": "msg_1", "x-a": "1, 2"})
        );
    }

    #[test]
    fn default_headers_are_empty() {
        let h = Headers::default();
        assert_eq!(h.get("anything"), None);
        assert_eq!(h.to_stored_json(&[]), serde_json::json!({}));
    }

    #[test]
    fn stored_form_redacts_credentials_but_keeps_signatures_and_ids() {
        let h = headers(&[
            ("Authorization", "Basic dTpw"),
            ("X-Gitlab-Token", "glpat"),
            ("X-Shared-Secret", "s"),
            ("X-Vendor-Key", "k"),
            ("I-Twilio-Idempotency-Token", "idem-1"),
            ("X-Hub-Signature-256", "sha256=ab"),
        ]);
        assert_eq!(
            h.to_stored_json(&["X-Vendor-Key"]),
            serde_json::json!({
                "authorization": REDACTED,
                "x-gitlab-token": REDACTED,
                "x-shared-secret": REDACTED,
                "x-vendor-key": REDACTED,
                "i-twilio-idempotency-token": "idem-1",
                "x-hub-signature-256": "sha256=ab",
            })
        );
    }

    #[test]
    fn debug_output_shows_names_but_not_values() {
        let h = headers(&[("Authorization", "Bearer hunter2")]);
        let shown = format!("{h:?}");
        assert!(shown.contains("authorization"));
        assert!(!shown.contains("hunter2"));
    }
}
