//! Route filters and templates: minijinja, sandboxed. Nothing reaches a file, the clock
//! or the network; every evaluation runs on a fuel budget (so a loop that would run for
//! minutes stops in milliseconds), under a recursion limit, and a template's output is
//! capped at 1 MiB. A template or filter that cannot compile is refused when it is saved,
//! with its line and column.

use std::io::{self, Write};
use std::sync::LazyLock;

/// The context a template renders against, built by
/// [`RoutedEvent`](super::RoutedEvent) alone.
pub use minijinja::value::Value as TemplateValue;
use minijinja::value::{Serde, Value};
use minijinja::{Environment, Expression, UndefinedBehavior};
use serde::Serialize;

/// The most a template may write.
pub const OUTPUT_CAP: usize = 1024 * 1024;
/// Fuel for one template render: far more than any real message needs.
const TEMPLATE_FUEL: u64 = 2_000_000;
/// Fuel for one filter evaluation, on the ingest path.
const FILTER_FUEL: u64 = 100_000;
const RECURSION_LIMIT: usize = 64;

fn environment(fuel: u64) -> Environment<'static> {
    let mut env = Environment::new();
    // `payload.issue.labels` on a payload without `issue` is undefined, not an error, so
    // one filter serves every shape a sender posts.
    env.set_undefined_behavior(UndefinedBehavior::Chainable);
    env.set_fuel(Some(fuel));
    env.set_recursion_limit(RECURSION_LIMIT);
    env.add_filter("json_pretty", json_pretty);
    env.add_filter("truncate", truncate);
    env
}

static TEMPLATES: LazyLock<Environment<'static>> = LazyLock::new(|| environment(TEMPLATE_FUEL));
static FILTERS: LazyLock<Environment<'static>> = LazyLock::new(|| environment(FILTER_FUEL));

/// Jinja's `truncate(length=255, killwords=false, end='...')`: at most `length`
/// characters, `end` included, cut at a word boundary unless `killwords`.
fn truncate(
    text: &str,
    length: Option<usize>,
    killwords: Option<bool>,
    end: Option<&str>,
) -> String {
    let length = length.unwrap_or(255);
    let end = end.unwrap_or("...");
    if text.chars().count() <= length {
        return text.to_owned();
    }
    let keep = length.saturating_sub(end.chars().count());
    let mut cut: String = text.chars().take(keep).collect();
    if !killwords.unwrap_or(false)
        && let Some(space) = cut.rfind(' ')
    {
        cut.truncate(space);
    }
    cut.push_str(end);
    cut
}

fn json_pretty(value: Value) -> Result<String, minijinja::Error> {
    serde_json::to_string_pretty(&value)
        .map_err(|e| minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, e.to_string()))
}

/// Why a template or filter was refused, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}{}", location(*line, *column))]
pub struct TemplateError {
    pub message: String,
    pub line: Option<usize>,
    pub column: Option<usize>,
}

fn location(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(line), Some(column)) => format!(" (line {line}, column {column})"),
        (Some(line), None) => format!(" (line {line})"),
        _ => String::new(),
    }
}

impl TemplateError {
    fn from_minijinja(source: &str, e: &minijinja::Error) -> TemplateError {
        let column = e.range().map(|range| {
            let before = &source[..range.start.min(source.len())];
            before.chars().rev().take_while(|c| *c != '\n').count() + 1
        });
        TemplateError {
            message: e
                .detail()
                .map_or_else(|| e.kind().to_string(), str::to_owned),
            line: e.line(),
            column,
        }
    }
}

/// What a filter or template sees of an event; built by
/// [`RoutedEvent`](super::RoutedEvent) alone.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct EventContext<'a> {
    pub event_type: Option<&'a str>,
    /// The parsed body (JSON, or a form's fields); none for other bodies.
    pub payload: Option<&'a serde_json::Value>,
    /// Lower-cased names; credentials redacted.
    pub headers: &'a serde_json::Value,
    pub source: SourceContext<'a>,
    pub event: EventMeta<'a>,
    pub links: Links,
    /// An enriching route's fetched object (null when there is none); absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object: Option<&'a serde_json::Value>,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct SourceContext<'a> {
    pub name: &'a str,
    pub provider: &'a str,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct EventMeta<'a> {
    pub id: &'a str,
    pub received_at: String,
    pub dedup_key: &'a str,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Links {
    /// The event in the dashboard.
    pub event: String,
}

impl EventContext<'_> {
    /// The context as minijinja values, built once and shared by every route's filter.
    pub fn to_value(&self) -> Value {
        Value::from(Serde(self))
    }
}

/// A route's filter, compiled once.
pub struct Filter {
    expression: Expression<'static, 'static>,
}

impl std::fmt::Debug for Filter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Filter(..)")
    }
}

impl Filter {
    pub fn compile(source: &str) -> Result<Filter, TemplateError> {
        FILTERS
            .compile_expression_owned(source.to_owned())
            .map(|expression| Filter { expression })
            .map_err(|e| TemplateError::from_minijinja(source, &e))
    }

    /// Whether the event passes; an error (including running out of fuel) says why it
    /// could not tell.
    pub(crate) fn matches(&self, ctx: &Value) -> Result<bool, String> {
        self.expression
            .eval(ctx.clone())
            .map(|v| v.is_true())
            .map_err(|e| e.to_string())
    }
}

/// Refuses a template that does not compile.
pub fn check_template(source: &str) -> Result<(), TemplateError> {
    TEMPLATES
        .template_from_str(source)
        .map(|_| ())
        .map_err(|e| TemplateError::from_minijinja(source, &e))
}

/// Renders `source` for `ctx`, within the fuel budget and the output cap.
pub fn render(source: &str, ctx: &Value) -> Result<String, String> {
    let template = TEMPLATES
        .template_from_str(source)
        .map_err(|e| format!("the route's template does not compile: {e}"))?;
    let mut out = Capped(Vec::new());
    template
        .render_captured_to(ctx.clone(), &mut out)
        .map_err(|e| {
            if out.0.len() >= OUTPUT_CAP {
                format!("the route's template wrote more than {OUTPUT_CAP} bytes")
            } else {
                format!("the route's template failed: {e}")
            }
        })?;
    String::from_utf8(out.0).map_err(|_| "the route's template wrote invalid UTF-8".to_owned())
}

/// A buffer that refuses to grow past the output cap.
struct Capped(Vec<u8>);

impl Write for Capped {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.0.len() + buf.len() > OUTPUT_CAP {
            self.0.resize(OUTPUT_CAP, 0);
            return Err(io::Error::other("output cap reached"));
        }
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx(event_type: &str, payload: &serde_json::Value) -> Value {
        let headers = json!({"x-github-event": "issues"});
        EventContext {
            event_type: Some(event_type),
            payload: Some(payload),
            headers: &headers,
            source: SourceContext {
                name: "github",
                provider: "github",
            },
            event: EventMeta {
                id: "evt_1",
                received_at: "2026-11-27T10:00:00Z".to_owned(),
                dedup_key: "guid-1",
            },
            links: Links {
                event: "https://switchyard.example/t/acme/events/evt_1".to_owned(),
            },
            object: None,
        }
        .to_value()
    }

    fn github_issue() -> serde_json::Value {
        json!({"action": "opened", "issue": {"number": 7, "title": "Crash",
               "labels": [{"name": "bug"}, {"name": "p1"}]},
               "repository": {"full_name": "acme/app"}})
    }

    #[test]
    fn filters_read_the_payload_headers_and_type() {
        let c = ctx("issues.opened", &github_issue());
        let cases = [
            (
                r#"payload.action == "opened" and "bug" in payload.issue.labels | map(attribute="name")"#,
                true,
            ),
            (
                r#""wontfix" in payload.issue.labels | map(attribute="name")"#,
                false,
            ),
            (r#"event_type is startingwith("issues.")"#, true),
            (r#"headers["x-github-event"] == "issues""#, true),
            // Missing fields are undefined, not errors: one filter fits every shape.
            (r#"payload.pull_request.merged"#, false),
            (
                r#"source.provider == "github" and payload.issue.number > 5"#,
                true,
            ),
        ];
        for (expr, expected) in cases {
            let filter = Filter::compile(expr).unwrap();
            assert_eq!(filter.matches(&c), Ok(expected), "{expr}");
        }
        let stripe =
            json!({"type": "charge.dispute.created", "data": {"object": {"amount": 5000}}});
        let c = ctx("charge.dispute.created", &stripe);
        let filter = Filter::compile("payload.data.object.amount >= 1000").unwrap();
        assert_eq!(filter.matches(&c), Ok(true));
        let anthropic = json!({"type": "event", "data": {"type": "vault_credential.refresh_failed", "id": "vcrd_1"}});
        let c = ctx("vault_credential.refresh_failed", &anthropic);
        let filter = Filter::compile(r#"payload.data.id is startingwith("vcrd_")"#).unwrap();
        assert_eq!(filter.matches(&c), Ok(true));
    }

    #[test]
    fn broken_filters_and_templates_are_refused_with_their_place() {
        let err = Filter::compile("payload.action ==").unwrap_err();
        assert_eq!(err.line, Some(1));
        assert!(err.column.is_some(), "{err}");
        let err = check_template("Hello\n{{ payload.x | }}").unwrap_err();
        assert_eq!(err.line, Some(2), "{err}");
        assert!(err.to_string().contains("(line 2, column"), "{err}");
        assert!(check_template("{{ payload | tojson }}").is_ok());
    }

    #[test]
    fn a_filter_that_errors_says_so() {
        let filter = Filter::compile("payload.issue.number + \"x\"").unwrap();
        let err = filter
            .matches(&ctx("issues.opened", &github_issue()))
            .unwrap_err();
        assert!(err.contains("unsupported types"), "{err}");
    }

    #[test]
    fn templates_render_with_the_documented_filters() {
        let c = ctx("issues.opened", &github_issue());
        let out = render(
            "{{ payload.repository.full_name }}#{{ payload.issue.number }}: {{ payload.issue.title | truncate(3, true, '…') }} {{ payload.missing | default('none') }} {{ links.event }}",
            &c,
        )
        .unwrap();
        assert_eq!(
            out,
            "acme/app#7: Cr… none https://switchyard.example/t/acme/events/evt_1"
        );
        let out = render("{{ payload.issue.labels | tojson }}", &c).unwrap();
        assert_eq!(out, r#"[{"name": "bug"}, {"name": "p1"}]"#);
        assert_eq!(
            truncate("a long title here", Some(12), None, None),
            "a long..."
        );
        assert_eq!(truncate("short", Some(12), None, None), "short");
        let out = render("{{ payload.issue.labels[0] | json_pretty }}", &c).unwrap();
        assert_eq!(out, "{\n  \"name\": \"bug\"\n}");
    }

    #[test]
    fn runaway_templates_stop_on_fuel_and_output_cap() {
        let c = ctx("issues.opened", &github_issue());
        let nested =
            "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}";
        let started = std::time::Instant::now();
        let err = render(nested, &c).unwrap_err();
        assert!(err.contains("fuel"), "{err}");
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        let huge = "{% for a in range(2000) %}{{ 'x' * 1000 }}{% endfor %}";
        let err = render(huge, &c).unwrap_err();
        assert!(err.contains("more than"), "{err}");
        let spin = Filter::compile("range(100000) | map('string') | join | length > 0").unwrap();
        assert!(spin.matches(&c).unwrap_err().contains("fuel"));
    }
}
