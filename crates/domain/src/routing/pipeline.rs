//! One event's way through a route: the context it is matched and rendered in, whether
//! the route takes it ([`RouteRule::decide`]), and what the destination receives
//! ([`render`]). Ingest and an event's re-run decide, the worker renders, a preview does
//! both; none of them builds the context itself.

use std::cell::OnceCell;
use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use super::sequencing::Sequencing;
use super::template::{self, EventContext, EventMeta, Links, SourceContext, TemplateValue};
use super::{EventTypes, Filter};
use crate::delivery::DestinationKind;
use crate::delivery::compose::{self, EventView};
use crate::ids::{DestinationId, RouteId};
use crate::model::{Coalesce, DeliveryPlan, Ordering, Sequence};
use crate::providers::structured;

/// What routes see of one event.
#[derive(Debug, Clone, Copy)]
pub struct EventFacts<'a> {
    pub id: &'a str,
    pub event_type: Option<&'a str>,
    /// As stored: lower-cased names, credentials redacted.
    pub headers: &'a Value,
    pub body: &'a [u8],
    pub received_at: DateTime<Utc>,
    pub dedup_key: &'a str,
    pub source_name: &'a str,
    pub source_provider: &'a str,
    /// The team's slug, for the link to the event in the dashboard.
    pub team_slug: &'a str,
}

/// An event on its way through routes. The payload is parsed and the template context
/// built once, on first use: a route without a filter or template pays for neither.
pub struct RoutedEvent<'a> {
    facts: EventFacts<'a>,
    /// The dashboard's public URL, for `links.event`.
    public_base: &'a str,
    /// The Anthropic object the event names, for a route that enriches (null: there is
    /// none to fetch, or Anthropic no longer has it).
    object: Option<&'a Value>,
    payload: OnceCell<Option<Value>>,
    context: OnceCell<TemplateValue>,
}

impl<'a> RoutedEvent<'a> {
    pub fn new(facts: EventFacts<'a>, public_base: &'a str) -> RoutedEvent<'a> {
        RoutedEvent {
            facts,
            public_base,
            object: None,
            payload: OnceCell::new(),
            context: OnceCell::new(),
        }
    }

    /// For a caller that has parsed the body already (ingest, to verify it).
    pub fn with_payload(mut self, payload: Option<Value>) -> RoutedEvent<'a> {
        self.payload = OnceCell::from(payload);
        self
    }

    pub(crate) fn facts(&self) -> &EventFacts<'a> {
        &self.facts
    }

    /// For an enriching route: the object fetched for the event, which templates read as
    /// `object` and an HTTP destination without a template receives beside the body.
    pub fn with_object(mut self, object: &'a Value) -> RoutedEvent<'a> {
        self.object = Some(object);
        self
    }

    /// The body as JSON (or a form's fields), as filters and templates read `payload`.
    pub(crate) fn payload(&self) -> Option<&Value> {
        self.payload
            .get_or_init(|| {
                let content_type = self.facts.headers.get("content-type");
                structured(content_type.and_then(Value::as_str), self.facts.body)
            })
            .as_ref()
    }

    /// What a filter or template sees.
    fn context(&self) -> &TemplateValue {
        self.context.get_or_init(|| {
            let facts = &self.facts;
            EventContext {
                event_type: facts.event_type,
                payload: self.payload(),
                headers: facts.headers,
                source: SourceContext {
                    name: facts.source_name,
                    provider: facts.source_provider,
                },
                event: EventMeta {
                    id: facts.id,
                    received_at: facts
                        .received_at
                        .to_rfc3339_opts(SecondsFormat::Millis, true),
                    dedup_key: facts.dedup_key,
                },
                links: Links {
                    event: format!(
                        "{}/t/{}/events/{}",
                        self.public_base, facts.team_slug, facts.id
                    ),
                },
                object: self.object,
            }
            .to_value()
        })
    }

    /// What the kinds' default messages say about the event.
    fn view(&self) -> EventView<'_> {
        EventView {
            id: self.facts.id,
            event_type: self.facts.event_type,
            source_name: self.facts.source_name,
            received_at: self.facts.received_at,
            body: self.facts.body,
        }
    }

    /// Whether `filter` is true for the event; an error (running out of fuel included)
    /// says why it could not tell.
    pub fn passes(&self, filter: &Filter) -> Result<bool, String> {
        filter.matches(self.context())
    }

    /// Renders one of the route's templates, if it has it.
    pub(crate) fn render(&self, source: Option<&str>) -> Result<Option<String>, String> {
        source
            .map(|source| template::render(source, self.context()))
            .transpose()
    }
}

/// Which events a route takes: its event types and its filter, compiled.
#[derive(Debug)]
pub struct RouteRule {
    event_types: EventTypes,
    /// A stored filter that no longer compiles is kept as its reason: the events the
    /// event types take fail with it.
    filter: Option<Result<Filter, String>>,
}

/// Why a route's rule does not compile, and which field says so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    pub field: &'static str,
    pub message: String,
}

/// What a route makes of one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Takes,
    /// Not for this route.
    Skips(Skip),
    /// The route cannot tell (its filter failed on the event, or the route is broken):
    /// the delivery is made as failed, carrying the reason.
    Fails(String),
}

/// Why a route does not take an event; worded only when a person asks (a preview).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    EventType,
    Filter,
}

impl RouteRule {
    /// A rule as written on a form or a request: both parts must compile.
    pub fn compile<S: AsRef<str>>(
        event_types: &[S],
        filter: Option<&str>,
    ) -> Result<RouteRule, RuleError> {
        let rule = Self::stored(event_types, filter)?;
        if let Some(Err(message)) = &rule.filter {
            return Err(RuleError {
                field: "filter",
                message: message.clone(),
            });
        }
        Ok(rule)
    }

    /// A rule as stored: event types that no longer parse leave nothing to match with,
    /// but a filter that no longer compiles fails only the events the types take.
    fn stored<S: AsRef<str>>(
        event_types: &[S],
        filter: Option<&str>,
    ) -> Result<RouteRule, RuleError> {
        let event_types = EventTypes::parse(event_types).map_err(|e| RuleError {
            field: "event_types",
            message: e.to_string(),
        })?;
        let filter = filter.map(|f| Filter::compile(f).map_err(|e| e.to_string()));
        Ok(RouteRule {
            event_types,
            filter,
        })
    }

    pub fn event_types(&self) -> &EventTypes {
        &self.event_types
    }

    /// Why the stored filter no longer compiles, if it does not.
    pub fn broken(&self) -> Option<String> {
        match &self.filter {
            Some(Err(message)) => Some(broken(&RuleError {
                field: "filter",
                message: message.clone(),
            })),
            _ => None,
        }
    }

    pub fn decide(&self, event: &RoutedEvent<'_>) -> Verdict {
        if !self.event_types.matches(event.facts.event_type) {
            return Verdict::Skips(Skip::EventType);
        }
        match &self.filter {
            None => Verdict::Takes,
            Some(Err(_)) => Verdict::Fails(self.broken().unwrap_or_default()),
            Some(Ok(filter)) => match event.passes(filter) {
                Ok(true) => Verdict::Takes,
                Ok(false) => Verdict::Skips(Skip::Filter),
                Err(e) => Verdict::Fails(format!("the route's filter failed: {e}")),
            },
        }
    }

    /// Why the rule skips `event`, for people.
    pub fn describe(&self, skip: Skip, event: &RoutedEvent<'_>) -> String {
        match skip {
            Skip::EventType => format!(
                "the event type {} matches none of {}",
                event.facts.event_type.unwrap_or("(none)"),
                self.event_types.to_strings().join(", ")
            ),
            Skip::Filter => "the filter is false for this event".to_owned(),
        }
    }
}

/// A stored route's rule, compiled when it is read; an error is event types a newer
/// release no longer parses, worded as [`broken`] says.
pub type StoredRule = Result<Arc<RouteRule>, String>;

/// Compiles a stored route's rule.
pub fn stored_rule(event_types: &[String], filter: Option<&str>) -> StoredRule {
    RouteRule::stored(event_types, filter)
        .map(Arc::new)
        .map_err(|e| broken(&e))
}

/// A stored route as matching uses it. A route whose stored rule no longer compiles (a
/// pattern or filter a newer release refuses) is kept, not dropped: it fails the events
/// it would have judged (every event, when its event types no longer parse), saying why,
/// so they wait in the log for the route to be mended.
#[derive(Debug, Clone)]
pub struct CompiledRoute {
    pub route_id: RouteId,
    pub destination_id: DestinationId,
    pub rule: StoredRule,
    /// Its ordering and coalescing, if it has either.
    pub sequencing: Option<Arc<Sequencing>>,
}

impl CompiledRoute {
    pub fn compile(
        route_id: RouteId,
        destination_id: DestinationId,
        event_types: &[String],
        filter: Option<&str>,
    ) -> CompiledRoute {
        CompiledRoute {
            route_id,
            destination_id,
            rule: stored_rule(event_types, filter),
            sequencing: None,
        }
    }

    /// With the route's ordering and coalescing.
    pub fn sequenced(mut self, ordering: Option<Ordering>, coalesce: Option<Coalesce>) -> Self {
        self.sequencing = Sequencing::new(ordering, coalesce);
        self
    }

    pub fn decide(&self, event: &RoutedEvent<'_>) -> Verdict {
        match &self.rule {
            Ok(rule) => rule.decide(event),
            Err(reason) => Verdict::Fails(reason.clone()),
        }
    }
}

/// How a stored route that no longer compiles is described, on its page and in the
/// deliveries it fails.
pub fn broken(e: &RuleError) -> String {
    let what = match e.field {
        "event_types" => "event types no longer compile",
        _ => "filter no longer compiles",
    };
    format!("the route's {what}: {}", e.message)
}

/// The deliveries `event` makes through `routes`: one per route that takes it, failed
/// for a route that cannot tell.
pub fn plan(routes: &[CompiledRoute], event: &RoutedEvent<'_>) -> Vec<DeliveryPlan> {
    routes
        .iter()
        .filter_map(|route| {
            let failure = match route.decide(event) {
                Verdict::Takes => None,
                Verdict::Skips(_) => return None,
                Verdict::Fails(reason) => Some(reason),
            };
            let sequence = match (&failure, &route.sequencing) {
                (None, Some(sequencing)) => sequencing.sequence(event),
                _ => Sequence::default(),
            };
            Some(DeliveryPlan {
                route_id: route.route_id.clone(),
                destination_id: route.destination_id.clone(),
                failure,
                sequence,
            })
        })
        .collect()
}

/// A route's own templates (none: the kind's default message).
#[derive(Debug, Clone, Copy, Default)]
pub struct Templates<'a> {
    pub body: Option<&'a str>,
    /// Email routes: the subject.
    pub subject: Option<&'a str>,
}

/// What a destination of each kind receives for one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A routine's `text`.
    Routine {
        text: String,
    },
    /// Slack's JSON payload: `{"text": …}`, or a template's own object (Block Kit).
    Slack {
        payload: Value,
    },
    Email {
        subject: String,
        text: String,
    },
    /// The rendered template; `None` sends the body as received.
    Http {
        body: Option<String>,
    },
}

/// Renders what `kind` sends for `event`: the route's templates, or the kind's default.
/// An error is a template that failed on this event.
pub fn render(
    kind: DestinationKind,
    templates: Templates<'_>,
    event: &RoutedEvent<'_>,
) -> Result<Message, String> {
    let rendered = event.render(templates.body)?;
    Ok(match kind {
        DestinationKind::Routine => Message::Routine {
            text: match rendered {
                Some(text) => compose::truncate(text, compose::ROUTINE_TEXT_MAX),
                None => compose::routine_text(&event.view()),
            },
        },
        DestinationKind::Slack => Message::Slack {
            payload: match rendered {
                Some(text) => match serde_json::from_str::<Value>(&text) {
                    Ok(object @ Value::Object(_)) => object,
                    _ => json!({ "text": text }),
                },
                None => json!({ "text": compose::slack_text(&event.view()) }),
            },
        },
        DestinationKind::Email => Message::Email {
            subject: match event.render(templates.subject)? {
                // A subject is one line.
                Some(subject) => subject.lines().next().unwrap_or_default().trim().to_owned(),
                None => compose::email_subject(&event.view()),
            },
            text: match rendered {
                Some(text) => compose::truncate(text, compose::EMAIL_TEXT_MAX),
                None => compose::email_text(&event.view()),
            },
        },
        DestinationKind::Http => Message::Http {
            body: rendered.or_else(|| event.enriched_body()),
        },
    })
}

impl RoutedEvent<'_> {
    /// An enriched event sent as received: its JSON envelope with the fetched object
    /// added as a top-level `"object"`. A body that is not a JSON object goes as it came.
    fn enriched_body(&self) -> Option<String> {
        let object = self.object?;
        let Some(Value::Object(envelope)) = self.payload() else {
            return None;
        };
        let mut envelope = envelope.clone();
        envelope.insert("object".to_owned(), object.clone());
        serde_json::to_string(&envelope).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts<'a>(headers: &'a Value, body: &'a [u8]) -> EventFacts<'a> {
        EventFacts {
            id: "evt_1",
            event_type: Some("issues.opened"),
            headers,
            body,
            received_at: DateTime::parse_from_rfc3339("2026-11-27T10:00:00Z")
                .unwrap()
                .to_utc(),
            dedup_key: "guid-1",
            source_name: "github",
            source_provider: "github",
            team_slug: "acme",
        }
    }

    fn compiled(rule: Result<Arc<RouteRule>, String>) -> CompiledRoute {
        CompiledRoute {
            route_id: RouteId::generate(),
            destination_id: DestinationId::generate(),
            rule,
            sequencing: None,
        }
    }

    #[test]
    fn a_route_takes_skips_or_fails_an_event() {
        let headers = json!({"content-type": "application/json"});
        let body = br#"{"action":"opened","issue":{"number":7}}"#;
        let event = RoutedEvent::new(facts(&headers, body), "https://sy.example");
        let rule = |types: &[&str], filter| RouteRule::compile(types, filter).unwrap();
        assert_eq!(rule(&["issues.*"], None).decide(&event), Verdict::Takes);
        assert_eq!(
            rule(&["issues.*"], Some("payload.issue.number > 5")).decide(&event),
            Verdict::Takes
        );
        let push = rule(&["push"], None);
        assert_eq!(push.decide(&event), Verdict::Skips(Skip::EventType));
        assert_eq!(
            push.describe(Skip::EventType, &event),
            "the event type issues.opened matches none of push"
        );
        assert!(matches!(
            rule(&["*"], Some("payload.issue.number + \"x\"")).decide(&event),
            Verdict::Fails(e) if e.starts_with("the route's filter failed")
        ));
    }

    #[test]
    fn a_route_that_no_longer_compiles_fails_the_events_it_would_judge() {
        let headers = json!({});
        let event = RoutedEvent::new(facts(&headers, b"{}"), "https://sy.example");
        // A broken filter fails the events its types take, and only those.
        let stored = |types: &[&str]| {
            let types: Vec<String> = types.iter().map(|t| (*t).to_owned()).collect();
            CompiledRoute::compile(
                RouteId::generate(),
                DestinationId::generate(),
                &types,
                Some("payload =="),
            )
        };
        let made = plan(&[stored(&["issues.*"]), stored(&["push"])], &event);
        assert_eq!(made.len(), 1);
        let reason = made[0].failure.as_deref().unwrap();
        assert!(
            reason.starts_with("the route's filter no longer compiles"),
            "{reason}"
        );
        // Event types that no longer parse fail every event.
        let bad = CompiledRoute::compile(
            RouteId::generate(),
            DestinationId::generate(),
            &["a b".to_owned()],
            None,
        );
        let skip = compiled(Ok(Arc::new(RouteRule::compile(&["push"], None).unwrap())));
        let made = plan(&[bad, skip], &event);
        assert_eq!(made.len(), 1);
        let reason = made[0].failure.as_deref().unwrap();
        assert!(
            reason.starts_with("the route's event types no longer compile"),
            "{reason}"
        );
        let err = RouteRule::compile(&["*"], Some("payload ==")).unwrap_err();
        assert_eq!(err.field, "filter");
    }

    #[test]
    fn each_kind_renders_its_template_or_its_default() {
        let headers = json!({"content-type": "application/json"});
        let body = br#"{"issue":{"title":"Crash"}}"#;
        let event = RoutedEvent::new(facts(&headers, body), "https://sy.example");
        let templated = Templates {
            body: Some("{{ payload.issue.title }} {{ links.event }}"),
            subject: Some("New: {{ payload.issue.title }}\nsecond line"),
        };
        assert_eq!(
            render(DestinationKind::Routine, templated, &event),
            Ok(Message::Routine {
                text: "Crash https://sy.example/t/acme/events/evt_1".to_owned()
            })
        );
        assert_eq!(
            render(DestinationKind::Email, templated, &event),
            Ok(Message::Email {
                subject: "New: Crash".to_owned(),
                text: "Crash https://sy.example/t/acme/events/evt_1".to_owned()
            })
        );
        let blocks = Templates {
            body: Some(r#"{"blocks": [{"type": "divider"}]}"#),
            subject: None,
        };
        assert_eq!(
            render(DestinationKind::Slack, blocks, &event),
            Ok(Message::Slack {
                payload: json!({"blocks": [{"type": "divider"}]})
            })
        );
        let defaults = Templates::default();
        assert_eq!(
            render(DestinationKind::Http, defaults, &event),
            Ok(Message::Http { body: None })
        );
        let Ok(Message::Slack { payload }) = render(DestinationKind::Slack, defaults, &event)
        else {
            panic!("slack renders a payload");
        };
        assert!(payload["text"].as_str().unwrap().contains("issues.opened"));
        let broken = Templates {
            body: Some("{{ payload.issue.title + 1 }}"),
            subject: None,
        };
        assert!(render(DestinationKind::Routine, broken, &event).is_err());
    }
}
