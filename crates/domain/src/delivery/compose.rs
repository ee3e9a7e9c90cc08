//! What each destination kind sends when its route has no template of its own: a
//! routine's `text`, a Slack message. Pure: the event comes in, text goes out.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;

/// The longest `text` a routine's `/fire` takes, in characters.
pub const ROUTINE_TEXT_MAX: usize = 65_536;

/// The longest Slack message text composed by default; Slack truncates at 40,000.
pub const SLACK_TEXT_MAX: usize = 3_000;

/// What the default messages say about an event.
#[derive(Debug, Clone, Copy)]
pub struct EventView<'a> {
    pub id: &'a str,
    pub event_type: Option<&'a str>,
    pub source_name: &'a str,
    pub received_at: DateTime<Utc>,
    pub body: &'a [u8],
}

impl EventView<'_> {
    fn summary(&self) -> String {
        format!(
            "{} from {} ({}, received {})",
            self.event_type.unwrap_or("An event"),
            self.source_name,
            self.id,
            self.received_at.to_rfc3339_opts(SecondsFormat::Secs, true),
        )
    }

    fn json(&self) -> Option<Value> {
        serde_json::from_slice(self.body).ok()
    }
}

/// A summary line, then the payload: pretty JSON, or the body as text. At most
/// [`ROUTINE_TEXT_MAX`] characters, a longer one cut with a marker saying so.
pub fn routine_text(event: &EventView<'_>) -> String {
    let payload = match event.json() {
        Some(json) => serde_json::to_string_pretty(&json).unwrap_or_default(),
        None => String::from_utf8_lossy(event.body).into_owned(),
    };
    truncate(
        format!("{}\n\n{payload}", event.summary()),
        ROUTINE_TEXT_MAX,
    )
}

/// `*type* from source`, then up to eight of the payload's scalar fields, shallowest
/// first, as a bulleted list.
pub fn slack_text(event: &EventView<'_>) -> String {
    let mut text = format!(
        "*{}* from {}",
        event.event_type.unwrap_or("Event"),
        event.source_name
    );
    if let Some(json) = event.json() {
        for (path, value) in key_fields(&json, 8) {
            text.push_str(&format!("\n• `{path}`: {value}"));
        }
    }
    truncate(text, SLACK_TEXT_MAX)
}

/// Scalar fields breadth-first to a depth of three, as (`a.b`, shortened value).
fn key_fields(json: &Value, most: usize) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let mut level: Vec<(String, &Value)> = vec![(String::new(), json)];
    for _ in 0..3 {
        let mut next = Vec::new();
        for (path, value) in level {
            let Value::Object(map) = value else { continue };
            for (key, child) in map {
                let child_path = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                match child {
                    Value::String(s) if !s.is_empty() => found.push((child_path, shorten(s, 100))),
                    Value::Number(n) => found.push((child_path, n.to_string())),
                    Value::Bool(b) => found.push((child_path, b.to_string())),
                    Value::Object(_) => next.push((child_path, child)),
                    _ => {}
                }
                if found.len() == most {
                    return found;
                }
            }
        }
        level = next;
    }
    found
}

fn shorten(text: &str, max: usize) -> String {
    let mut chars = text.chars();
    let head: String = chars.by_ref().take(max).collect();
    if chars.next().is_some() {
        format!("{head}…")
    } else {
        head
    }
}

/// The default subject: `[Switchyard] {event_type} from {source}`.
pub fn email_subject(event: &EventView<'_>) -> String {
    shorten(
        &format!(
            "[Switchyard] {} from {}",
            event.event_type.unwrap_or("Event"),
            event.source_name
        ),
        200,
    )
}

/// The longest email text composed by default, in characters.
pub const EMAIL_TEXT_MAX: usize = 100_000;

/// The default text body: the summary line and the payload, as a routine gets it.
pub fn email_text(event: &EventView<'_>) -> String {
    truncate(routine_text(event), EMAIL_TEXT_MAX)
}

/// The HTML alternative of a text body: each paragraph (lines between blank lines) a
/// paragraph that keeps its line breaks and indentation, every `http(s)://` URL a link,
/// everything else escaped.
pub fn html_from_text(text: &str) -> String {
    let paragraphs: Vec<String> = text
        .replace("\r\n", "\n")
        .split("\n\n")
        .filter(|p| !p.trim().is_empty())
        .map(|p| {
            format!(
                "<p style=\"white-space: pre-wrap; margin: 0 0 1em\">{}</p>",
                linked(p.trim_matches('\n'))
            )
        })
        .collect();
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"></head>\
         <body style=\"font-family: system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif; line-height: 1.5\">\n{}\n</body></html>",
        paragraphs.join("\n")
    )
}

/// `text` escaped, with each `http://` or `https://` URL in it a link. A URL ends at
/// whitespace or a quote or angle bracket; punctuation that ends a sentence is not part
/// of it.
fn linked(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 64);
    let mut rest = text;
    while let Some(at) = ["https://", "http://"]
        .iter()
        .filter_map(|scheme| rest.find(scheme))
        .min()
    {
        out.push_str(&escape(&rest[..at]));
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>'))
            .unwrap_or(tail.len());
        let url = tail[..end].trim_end_matches(['.', ',', ';', ':', '!', '?', ')', ']', '}']);
        let url = if url.len() > "https://".len() {
            url
        } else {
            &tail[..end]
        };
        let href = escape(url);
        out.push_str(&format!("<a href=\"{href}\">{href}</a>"));
        rest = &tail[url.len()..];
    }
    out.push_str(&escape(rest));
    out
}

fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            other => escaped.push(other),
        }
    }
    escaped
}

/// `text` within `max` characters: a longer one keeps its start and ends with a marker
/// that says how much was dropped, the marker counted within `max`.
pub fn truncate(text: String, max: usize) -> String {
    let total = text.chars().count();
    if total <= max {
        return text;
    }
    let marker =
        |kept: usize| format!("\n\n[truncated by Switchyard: {kept} of {total} characters shown]");
    // The marker for `max` is the longest it can be, since `kept` is smaller.
    let kept = max.saturating_sub(marker(max).chars().count());
    let mut out: String = text.chars().take(kept).collect();
    out.push_str(&marker(kept));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_html_of_a_text_has_its_paragraphs_and_every_url_as_a_link() {
        let html = html_from_text(
            "Destination <app> is disabled.\n\nSee https://sy.example/t/acme/destinations/dst_1.\nOr http://x.example/a?b=1&c=2, then\n  {\"k\": 1}",
        );
        assert!(
            html.contains("Destination &lt;app&gt; is disabled.</p>"),
            "{html}"
        );
        assert!(
            html.contains("<a href=\"https://sy.example/t/acme/destinations/dst_1\">https://sy.example/t/acme/destinations/dst_1</a>."),
            "{html}"
        );
        assert!(
            html.contains("<a href=\"http://x.example/a?b=1&amp;c=2\">http://x.example/a?b=1&amp;c=2</a>, then"),
            "{html}"
        );
        assert!(
            html.contains("\n  {&quot;k&quot;: 1}</p>"),
            "indentation kept: {html}"
        );
        assert_eq!(html.matches("<p ").count(), 2);
        assert!(!html.contains("<pre"));
    }

    fn view(body: &[u8]) -> EventView<'_> {
        EventView {
            id: "evt_1",
            event_type: Some("session.status_idled"),
            source_name: "agents",
            received_at: DateTime::from_timestamp(1_795_000_000, 0).unwrap(),
            body,
        }
    }

    #[test]
    fn routine_text_is_a_summary_then_pretty_json() {
        let text = routine_text(&view(br#"{"data":{"type":"session.status_idled"}}"#));
        assert_eq!(
            text,
            "session.status_idled from agents (evt_1, received 2026-11-18T11:06:40Z)\n\n{\n  \"data\": {\n    \"type\": \"session.status_idled\"\n  }\n}"
        );
        let text = routine_text(&view(b"plain words"));
        assert!(text.ends_with("\n\nplain words"), "{text}");
    }

    #[test]
    fn long_text_is_cut_to_the_limit_with_a_marker() {
        let body = format!(r#"{{"blob":"{}"}}"#, "é".repeat(70_000));
        let text = routine_text(&view(body.as_bytes()));
        assert_eq!(text.chars().count(), ROUTINE_TEXT_MAX);
        assert!(
            text.contains("[truncated by Switchyard: "),
            "marker present"
        );
        assert!(text.ends_with("characters shown]"));
        assert_eq!(truncate("short".to_owned(), 10), "short");
        assert_eq!(truncate("x".repeat(10), 10), "x".repeat(10));
    }

    #[test]
    fn slack_text_names_the_type_and_source_and_lists_key_fields() {
        let body = br#"{"action":"opened","issue":{"number":7,"title":"Crash","user":{"login":"ada"}},"n":null}"#;
        assert_eq!(
            slack_text(&view(body)),
            "*session.status_idled* from agents\n• `action`: opened\n• `issue.number`: 7\n• `issue.title`: Crash\n• `issue.user.login`: ada"
        );
        let untyped = EventView {
            event_type: None,
            ..view(b"not json")
        };
        assert_eq!(slack_text(&untyped), "*Event* from agents");
    }

    #[test]
    fn email_defaults_name_the_event_and_escape_the_html() {
        let event = view(br#"{"note":"<b>&</b>"}"#);
        assert_eq!(
            email_subject(&event),
            "[Switchyard] session.status_idled from agents"
        );
        let html = html_from_text(&email_text(&event));
        assert!(html.contains("&lt;b&gt;&amp;&lt;/b&gt;"), "{html}");
        assert!(!html.contains("<b>"));
    }

    #[test]
    fn key_fields_stop_at_the_limit_and_shorten_long_values() {
        let many: serde_json::Map<String, Value> = (0..20)
            .map(|i| (format!("k{i:02}"), Value::String("v".repeat(150))))
            .collect();
        let fields = key_fields(&Value::Object(many), 8);
        assert_eq!(fields.len(), 8);
        assert_eq!(fields[0].1.chars().count(), 101);
    }
}
