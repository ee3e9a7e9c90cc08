//! The served OpenAPI document, made exact: every operation lists the problems the
//! server can answer with (a body that does not parse is 400, no key 401, a missing id
//! 404, too large 413, not JSON 415, a refused field 422, an unavailable database 503),
//! each an `application/problem+json` [`Problem`](switchyard_problem::Problem); every
//! response has its description; every path parameter is declared with the id's
//! pattern. The handlers' annotations say what each one answers on success; this says
//! what they all share, once.

use serde_json::{Map, Value, json};
use switchyard_domain::ids;
use utoipa::PartialSchema;

/// The document `doc` with the shared answers and parameters filled in.
pub fn exact(doc: utoipa::openapi::OpenApi) -> Value {
    let mut doc = serde_json::to_value(doc).unwrap_or_default();
    let schemas = &mut doc["components"]["schemas"];
    schemas["Problem"] = schema_of::<switchyard_problem::Problem>();
    schemas["FieldError"] = schema_of::<switchyard_problem::FieldError>();
    let Some(paths) = doc["paths"].as_object_mut() else {
        return doc;
    };
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for operation in item.values_mut().filter_map(Value::as_object_mut) {
            declare_parameters(path, operation);
            add_problems(path, operation);
        }
    }
    doc
}

/// The path's `{…}` parameters, each with its id's schema.
fn declare_parameters(path: &str, operation: &mut Map<String, Value>) {
    let segments: Vec<&str> = path.split('/').collect();
    let parameters = operation
        .entry("parameters")
        .or_insert_with(|| json!([]))
        .as_array_mut();
    let Some(parameters) = parameters else {
        return;
    };
    for (at, segment) in segments.iter().enumerate() {
        let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) else {
            continue;
        };
        if parameters
            .iter()
            .any(|p| p["name"] == name && p["in"] == "path")
        {
            continue;
        }
        let schema = match (name, at.checked_sub(1).map(|i| segments[i])) {
            ("secret_id", _) => schema_of::<ids::SecretId>(),
            ("name", _) => json!({"type": "string", "pattern": "^[a-z0-9-]{1,64}$"}),
            (_, Some(collection)) => {
                id_schema(collection).unwrap_or_else(|| json!({"type": "string"}))
            }
            _ => json!({"type": "string"}),
        };
        parameters.push(json!({"name": name, "in": "path", "required": true, "schema": schema}));
    }
}

/// The schema of a collection's member ids (their prefix and pattern).
fn id_schema(collection: &str) -> Option<Value> {
    Some(match collection {
        "sources" => schema_of::<ids::SourceId>(),
        "destinations" => schema_of::<ids::DestinationId>(),
        "routes" => schema_of::<ids::RouteId>(),
        "events" => schema_of::<ids::EventId>(),
        "deliveries" => schema_of::<ids::DeliveryId>(),
        "replays" => schema_of::<ids::ReplayId>(),
        _ => return None,
    })
}

fn schema_of<T: PartialSchema>() -> Value {
    serde_json::to_value(T::schema()).unwrap_or_default()
}

/// The answers every operation shares, as problems, and a description on each.
fn add_problems(path: &str, operation: &mut Map<String, Value>) {
    let takes_body = operation.contains_key("requestBody");
    let takes_query = operation["parameters"]
        .as_array()
        .is_some_and(|p| p.iter().any(|p| p["in"] == "query"));
    let mut statuses = vec![401, 503];
    if path.contains('{') {
        statuses.push(404);
    }
    if takes_body {
        statuses.extend([400, 413, 415, 422]);
    }
    if takes_query {
        statuses.extend([400, 422]);
    }
    let responses = operation
        .entry("responses")
        .or_insert_with(|| json!({}))
        .as_object_mut();
    let Some(responses) = responses else {
        return;
    };
    for status in statuses {
        responses
            .entry(status.to_string())
            .or_insert_with(|| json!({}));
    }
    for (status, response) in responses.iter_mut() {
        let Some(response) = response.as_object_mut() else {
            continue;
        };
        let code: u16 = status.parse().unwrap_or(0);
        response
            .entry("description")
            .or_insert_with(|| json!(describe(code)));
        if code >= 400 {
            response.insert(
                "content".to_owned(),
                json!({"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}),
            );
        }
    }
}

fn describe(status: u16) -> &'static str {
    match status {
        200 => "OK.",
        201 => "Created.",
        202 => "Accepted: the work goes on after the answer.",
        204 => "Done; nothing to say.",
        400 => "The body or the query could not be read (not JSON, or a value of the wrong type).",
        401 => "No valid API key in `Authorization: Bearer …`.",
        404 => "Nothing of this kind with that id in the team (a malformed id included).",
        409 => "The thing's state does not allow this now; `detail` says why.",
        413 => "The body is larger than the API takes.",
        415 => "The body is not `application/json`.",
        422 => "A field was refused; `errors` names each one with why.",
        503 => "The database is unavailable; try again after `Retry-After`.",
        _ => "See the status.",
    }
}
