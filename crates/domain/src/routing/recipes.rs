//! Ready-made routes: a destination kind, the events to take, a filter and templates
//! written for one job, so a team wires a common case in one request.

use serde::Serialize;

use crate::delivery::DestinationKind;

#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
pub struct Recipe {
    pub name: &'static str,
    pub title: &'static str,
    pub description: &'static str,
    /// The provider of the source the recipe expects.
    pub provider: &'static str,
    #[schema(value_type = String)]
    pub kind: DestinationKind,
    pub event_types: &'static [&'static str],
    pub filter: Option<&'static str>,
    pub template: &'static str,
    pub subject: Option<&'static str>,
    /// The route fetches the Anthropic object the event names, for the template's
    /// `object`, when the team has an Anthropic API key (the template reads well
    /// without it too).
    pub enrich: bool,
}

impl Recipe {
    /// The destination fields the recipe's request takes besides `source_id`.
    pub fn inputs(&self) -> &'static [&'static str] {
        match self.kind {
            DestinationKind::Routine => &["fire_url", "token"],
            DestinationKind::Slack => &["url"],
            DestinationKind::Email => &["to"],
            DestinationKind::Http => &["url"],
        }
    }
}

pub fn find(name: &str) -> Option<&'static Recipe> {
    RECIPES.iter().find(|r| r.name == name)
}

pub const RECIPES: &[Recipe] = &[
    Recipe {
        name: "github-issue-to-routine",
        title: "Triage new GitHub issues",
        description: "Each opened issue fires a Claude Code routine that triages it, labels it and proposes a fix.",
        provider: "github",
        kind: DestinationKind::Routine,
        event_types: &["issues.opened"],
        filter: None,
        template: r#"A new GitHub issue was opened in {{ payload.repository.full_name }}.

#{{ payload.issue.number }}: {{ payload.issue.title }}
Author: {{ payload.issue.user.login }}
Labels: {{ payload.issue.labels | map(attribute="name") | join(", ") or "none" }}
URL: {{ payload.issue.html_url }}

{{ payload.issue.body | default("(no description)", true) | truncate(4000) }}

Triage this issue: label it, and propose a fix."#,
        subject: None,
        enrich: false,
    },
    Recipe {
        name: "ci-failure-to-routine",
        title: "Investigate failed CI runs",
        description: "A GitHub Actions run that ends in failure fires a routine to find the cause and propose a fix.",
        provider: "github",
        kind: DestinationKind::Routine,
        event_types: &["workflow_run.completed"],
        filter: Some(r#"payload.workflow_run.conclusion == "failure""#),
        template: r#"The GitHub Actions workflow "{{ payload.workflow_run.name }}" failed in {{ payload.repository.full_name }}.

Branch: {{ payload.workflow_run.head_branch }}
Commit: {{ payload.workflow_run.head_sha }}{% if payload.workflow_run.head_commit.message %} ({{ payload.workflow_run.head_commit.message | truncate(200) }}){% endif %}
Run: {{ payload.workflow_run.html_url }}

Find why the run failed and propose a fix."#,
        subject: None,
        enrich: false,
    },
    Recipe {
        name: "sentry-issue-to-routine",
        title: "Investigate new Sentry issues",
        description: "A new Sentry issue fires a routine that finds the failing code and proposes a fix.",
        provider: "sentry",
        kind: DestinationKind::Routine,
        event_types: &["issue.created"],
        filter: None,
        template: r#"Sentry reported a new issue in project {{ payload.data.issue.project.slug | default("(unknown)") }}.

{{ payload.data.issue.title }}
Culprit: {{ payload.data.issue.culprit | default("(unknown)") }}
Level: {{ payload.data.issue.level | default("error") }}
First seen: {{ payload.data.issue.firstSeen | default("(unknown)") }}
Link: {{ payload.data.issue.web_url | default(payload.data.issue.permalink) }}

Find the code that fails, explain the cause and propose a fix."#,
        subject: None,
        enrich: false,
    },
    Recipe {
        name: "stripe-dispute-to-routine",
        title: "Prepare dispute evidence",
        description: "A new Stripe dispute fires a routine that gathers the order's facts and drafts the evidence.",
        provider: "stripe",
        kind: DestinationKind::Routine,
        event_types: &["charge.dispute.created"],
        filter: None,
        template: r#"A customer disputed a charge in Stripe.

Dispute: {{ payload.data.object.id }}
Charge: {{ payload.data.object.charge }}
Amount: {{ (payload.data.object.amount / 100) | round(2) }} {{ payload.data.object.currency | upper }}
Reason: {{ payload.data.object.reason }}
Evidence due: {% if payload.data.object.evidence_details.due_by %}{{ payload.data.object.evidence_details.due_by }} (Unix time){% else %}(not stated){% endif %}

Gather the order's facts and draft the evidence to submit."#,
        subject: None,
        enrich: false,
    },
    Recipe {
        name: "linear-issue-to-routine",
        title: "Start work on new Linear issues",
        description: "A new Linear issue fires a routine that plans the work and opens a draft change.",
        provider: "linear",
        kind: DestinationKind::Routine,
        event_types: &["Issue.create"],
        filter: None,
        template: r#"A new Linear issue was created{% if payload.data.team.key %} in team {{ payload.data.team.key }}{% endif %}.

{{ payload.data.identifier }}: {{ payload.data.title }}
Priority: {{ payload.data.priorityLabel | default(payload.data.priority) }}
URL: {{ payload.url | default(payload.data.url) }}

{{ payload.data.description | default("(no description)", true) | truncate(4000) }}

Plan the work and open a draft change."#,
        subject: None,
        enrich: false,
    },
    Recipe {
        name: "zendesk-ticket-to-routine",
        title: "Classify and route support tickets",
        description: "A new Zendesk ticket fires a routine that classifies it and routes it to the right team.",
        provider: "zendesk",
        kind: DestinationKind::Routine,
        event_types: &["zen:event-type:ticket.created"],
        filter: None,
        template: r#"A new support ticket arrived in Zendesk.

Ticket: {{ payload.detail.id }}
Subject: {{ payload.detail.subject }}
Priority: {{ payload.detail.priority | default("(none)", true) }}
Requester: {{ payload.detail.requester_id }}

{{ payload.detail.description | default("(no description)", true) | truncate(4000) }}

Classify this ticket (billing, bug, how-to, account, other), set its priority, and route it to the right team."#,
        subject: None,
        enrich: false,
    },
    Recipe {
        name: "agent-outcome-to-slack",
        title: "Review agent outcomes in Slack",
        description: "When a Managed Agents session's outcome evaluation ends, post it to Slack for a person to review.",
        provider: "anthropic",
        kind: DestinationKind::Slack,
        event_types: &["session.outcome_evaluation_ended"],
        filter: None,
        template: r#"{"text": {{ ("Agent session " ~ payload.data.id ~ " finished its outcome evaluation; needs review") | tojson }},
 "blocks": [
  {"type": "section", "text": {"type": "mrkdwn", "text": {{ (":mag: *Needs human review*\nSession `" ~ payload.data.id ~ "` finished its outcome evaluation.") | tojson }}}},
  {"type": "context", "elements": [{"type": "mrkdwn", "text": {{ ("Workspace `" ~ payload.data.workspace_id ~ "` · <https://platform.claude.com/|Open the Claude Console> · <" ~ links.event ~ "|Event in Switchyard>") | tojson }}}]}
 ]}"#,
        subject: None,
        enrich: false,
    },
    Recipe {
        name: "vault-refresh-failed-to-email",
        title: "Email when a vault credential cannot refresh",
        description: "An mcp_oauth credential that can no longer refresh stops its agents' tools; email the people who can reconnect it, naming the credential, its vault and its server.",
        provider: "anthropic",
        kind: DestinationKind::Email,
        event_types: &["vault_credential.refresh_failed"],
        filter: None,
        template: r#"A vault credential could not be refreshed, so agents that use it cannot reach its service.

Credential: {% if object.display_name %}{{ object.display_name }} ({{ payload.data.id }}){% else %}{{ payload.data.id }}{% endif %}
Vault: {{ payload.data.vault_id }}
{% if object.auth.mcp_server_url %}Server: {{ object.auth.mcp_server_url }}
{% endif %}{% if object.auth.expires_at %}Access token expired: {{ object.auth.expires_at }}
{% endif %}Workspace: {{ payload.data.workspace_id }}
When: {{ payload.created_at | default(event.received_at) }}
Event: {{ links.event }}

What to do: open the vault in the Claude Console and reconnect the credential (sign in to the service again). The refresh token is invalid or the OAuth server refused it, so retrying will not help until someone signs in."#,
        subject: Some(
            "[Switchyard] Vault credential {{ object.display_name or payload.data.id }} needs reconnecting",
        ),
        enrich: true,
    },
    Recipe {
        name: "session-status-to-slack",
        title: "Follow agent sessions in Slack",
        description: "Post Managed Agents session status and thread changes to a Slack channel, with the session's title, agent, status and usage.",
        provider: "anthropic",
        kind: DestinationKind::Slack,
        event_types: &["session.status_*", "session.thread_*"],
        filter: None,
        template: r#"`{{ event_type }}` · {% if object.title %}*{{ object.title }}* (session `{{ payload.data.id }}`){% else %}session `{{ payload.data.id }}`{% endif %}{% if payload.data.session_thread_id %} · thread `{{ payload.data.session_thread_id }}`{% endif %}{% if object.agent.name %} · {{ object.agent.name }}{% endif %}{% if object.status %} · now {{ object.status }}{% endif %}{% if object.usage %} · {{ object.usage.input_tokens }} tokens in, {{ object.usage.output_tokens }} out{% endif %} · <{{ links.event }}|event>"#,
        subject: None,
        enrich: true,
    },
];

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::routing::pipeline::{EventFacts, RouteRule, RoutedEvent, Verdict};
    use crate::routing::template::{Filter, check_template};

    fn rendered(
        recipe: &Recipe,
        event_type: &str,
        payload: serde_json::Value,
    ) -> (bool, String, Option<String>) {
        rendered_with(recipe, event_type, payload, None)
    }

    /// As an enriching route renders it, with the fetched `object`.
    fn rendered_with(
        recipe: &Recipe,
        event_type: &str,
        payload: serde_json::Value,
        object: Option<&serde_json::Value>,
    ) -> (bool, String, Option<String>) {
        let headers = json!({"content-type": "application/json"});
        let body = serde_json::to_vec(&payload).unwrap();
        let facts = EventFacts {
            id: "evt_01JD7ZK3Q8",
            event_type: Some(event_type),
            headers: &headers,
            body: &body,
            received_at: "2026-11-27T10:00:00Z".parse().unwrap(),
            dedup_key: "key-1",
            source_name: recipe.provider,
            source_provider: recipe.provider,
            team_slug: "acme",
        };
        let mut event = RoutedEvent::new(facts, "https://switchyard.example");
        if let Some(object) = object {
            event = event.with_object(object);
        }
        let rule = RouteRule::compile(recipe.event_types, recipe.filter).unwrap();
        let matched = rule.decide(&event) == Verdict::Takes;
        let text = event.render(Some(recipe.template)).unwrap().unwrap();
        let subject = event.render(recipe.subject).unwrap();
        (matched, text, subject)
    }

    #[test]
    fn every_recipe_compiles_and_is_findable() {
        for recipe in RECIPES {
            check_template(recipe.template).unwrap();
            if let Some(filter) = recipe.filter {
                Filter::compile(filter).unwrap();
            }
            assert_eq!(find(recipe.name).map(|r| r.name), Some(recipe.name));
        }
        assert!(find("nope").is_none());
    }

    #[test]
    fn github_issue_to_routine() {
        let (_, text, _) = rendered(
            find("github-issue-to-routine").unwrap(),
            "issues.opened",
            json!({"action": "opened",
                   "issue": {"number": 1347, "title": "Crash when saving a draft",
                             "user": {"login": "octocat"}, "labels": [{"name": "bug"}, {"name": "editor"}],
                             "html_url": "https://github.com/acme/app/issues/1347",
                             "body": "Steps:\n1. Open a draft\n2. Press save\n\nThe app crashes."},
                   "repository": {"full_name": "acme/app"}}),
        );
        insta::assert_snapshot!(text);
    }

    #[test]
    fn ci_failure_to_routine_only_takes_failures() {
        let recipe = find("ci-failure-to-routine").unwrap();
        let run = |conclusion: &str| {
            json!({"action": "completed",
                   "workflow_run": {"name": "CI", "conclusion": conclusion, "head_branch": "main",
                                    "head_sha": "9f3c2e1", "html_url": "https://github.com/acme/app/actions/runs/42",
                                    "head_commit": {"message": "Speed up the build"}},
                   "repository": {"full_name": "acme/app"}})
        };
        let (matched, text, _) = rendered(recipe, "workflow_run.completed", run("failure"));
        assert!(matched);
        insta::assert_snapshot!(text);
        assert!(!rendered(recipe, "workflow_run.completed", run("success")).0);
    }

    #[test]
    fn sentry_issue_to_routine() {
        let (_, text, _) = rendered(
            find("sentry-issue-to-routine").unwrap(),
            "issue.created",
            json!({"action": "created", "installation": {"uuid": "7a485448"},
                   "data": {"issue": {"id": "1170820242", "title": "TypeError: Cannot read properties of undefined (reading 'id')",
                                      "culprit": "app/checkout.js in submitOrder", "level": "error",
                                      "firstSeen": "2026-11-27T09:58:12Z",
                                      "web_url": "https://acme.sentry.io/issues/1170820242/",
                                      "project": {"slug": "web"}}}}),
        );
        insta::assert_snapshot!(text);
    }

    #[test]
    fn stripe_dispute_to_routine() {
        let (_, text, _) = rendered(
            find("stripe-dispute-to-routine").unwrap(),
            "charge.dispute.created",
            json!({"id": "evt_1", "type": "charge.dispute.created",
                   "data": {"object": {"id": "dp_1Q", "charge": "ch_3P", "amount": 4999, "currency": "usd",
                                       "reason": "product_not_received",
                                       "evidence_details": {"due_by": 1796000000}}}}),
        );
        insta::assert_snapshot!(text);
    }

    #[test]
    fn linear_issue_to_routine() {
        let (_, text, _) = rendered(
            find("linear-issue-to-routine").unwrap(),
            "Issue.create",
            json!({"action": "create", "type": "Issue", "url": "https://linear.app/acme/issue/ENG-812",
                   "data": {"identifier": "ENG-812", "title": "Export invoices as CSV", "priority": 2,
                            "priorityLabel": "High", "team": {"key": "ENG"},
                            "description": "Finance needs a CSV export of invoices per month."}}),
        );
        insta::assert_snapshot!(text);
    }

    #[test]
    fn zendesk_ticket_to_routine() {
        let (_, text, _) = rendered(
            find("zendesk-ticket-to-routine").unwrap(),
            "zen:event-type:ticket.created",
            json!({"type": "zen:event-type:ticket.created",
                   "detail": {"id": "35436", "subject": "I was charged twice", "priority": "HIGH",
                              "requester_id": "20978392", "description": "My card shows two charges for November."}}),
        );
        insta::assert_snapshot!(text);
    }

    #[test]
    fn agent_outcome_to_slack_is_a_block_kit_payload() {
        let (_, text, _) = rendered(
            find("agent-outcome-to-slack").unwrap(),
            "session.outcome_evaluation_ended",
            json!({"type": "event", "id": "whe_01", "created_at": "2026-11-27T09:59:00Z",
                   "data": {"type": "session.outcome_evaluation_ended", "id": "sesn_01XYZ",
                            "organization_id": "org_1", "workspace_id": "wrkspc_1"}}),
        );
        let payload: serde_json::Value = serde_json::from_str(&text).unwrap();
        insta::assert_json_snapshot!(payload);
    }

    #[test]
    fn vault_refresh_failed_to_email() {
        let (_, text, subject) = rendered(
            find("vault-refresh-failed-to-email").unwrap(),
            "vault_credential.refresh_failed",
            json!({"type": "event", "id": "whe_02", "created_at": "2026-11-27T09:59:30Z",
                   "data": {"type": "vault_credential.refresh_failed", "id": "vcrd_01ABC",
                            "vault_id": "vlt_01DEF", "organization_id": "org_1", "workspace_id": "wrkspc_1"}}),
        );
        insta::assert_snapshot!(subject.unwrap(), @"[Switchyard] Vault credential vcrd_01ABC needs reconnecting");
        insta::assert_snapshot!(text);
    }

    #[test]
    fn session_status_to_slack() {
        let recipe = find("session-status-to-slack").unwrap();
        let (_, text, _) = rendered(
            recipe,
            "session.thread_idled",
            json!({"type": "event", "data": {"type": "session.thread_idled", "id": "sesn_01XYZ",
                                              "session_thread_id": "sthr_01"}}),
        );
        insta::assert_snapshot!(text);
    }

    #[test]
    fn enriched_recipes_name_what_the_thin_event_only_points_at() {
        let session = json!({"id": "sesn_01XYZ", "type": "session", "status": "idle",
                             "title": "Fix the flaky login test",
                             "agent": {"id": "agent_01", "name": "Triage bot", "version": 3},
                             "usage": {"input_tokens": 18250, "output_tokens": 2210}});
        let (_, text, _) = rendered_with(
            find("session-status-to-slack").unwrap(),
            "session.status_idled",
            json!({"type": "event", "data": {"type": "session.status_idled", "id": "sesn_01XYZ"}}),
            Some(&session),
        );
        insta::assert_snapshot!(text, @"`session.status_idled` · *Fix the flaky login test* (session `sesn_01XYZ`) · Triage bot · now idle · 18250 tokens in, 2210 out · <https://switchyard.example/t/acme/events/evt_01JD7ZK3Q8|event>");

        let credential = json!({"id": "vcrd_01ABC", "type": "vault_credential",
                                "vault_id": "vlt_01DEF", "display_name": "Linear (ops)",
                                "auth": {"type": "mcp_oauth", "mcp_server_url": "https://mcp.linear.app/sse",
                                         "expires_at": "2026-11-27T09:00:00Z"}});
        let (_, text, subject) = rendered_with(
            find("vault-refresh-failed-to-email").unwrap(),
            "vault_credential.refresh_failed",
            json!({"type": "event", "id": "whe_02", "created_at": "2026-11-27T09:59:30Z",
                   "data": {"type": "vault_credential.refresh_failed", "id": "vcrd_01ABC",
                            "vault_id": "vlt_01DEF", "organization_id": "org_1", "workspace_id": "wrkspc_1"}}),
            Some(&credential),
        );
        insta::assert_snapshot!(subject.unwrap(), @"[Switchyard] Vault credential Linear (ops) needs reconnecting");
        insta::assert_snapshot!(text);
    }
}
