//! The API's own OpenAPI document as a contract: every answer a black-box test gets
//! through [`TestApp::call`](crate::TestApp::call) must be an answer the document
//! describes (the path, the method, the status) with a body its schema accepts. The
//! document and the code cannot drift apart without a test failing.

use std::collections::HashMap;
use std::sync::Mutex;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// The served document, and a validator per response schema used so far.
pub struct Contract {
    doc: Value,
    validators: Mutex<HashMap<String, std::sync::Arc<jsonschema::Validator>>>,
}

impl Contract {
    pub fn new(doc: Value) -> Contract {
        Contract {
            doc,
            validators: Mutex::new(HashMap::new()),
        }
    }

    /// Panics, saying why, unless the document describes this answer.
    #[track_caller]
    pub fn check(&self, method: &Method, path: &str, status: StatusCode, body: &Value) {
        let path = path.split('?').next().unwrap_or(path);
        let Some(template) = self.template(path) else {
            panic!("{method} {path}: no such path in the OpenAPI document");
        };
        let method_name = method.as_str().to_ascii_lowercase();
        let operation = &self.doc["paths"][&template][&method_name];
        assert!(
            operation.is_object(),
            "{method} {template}: the OpenAPI document has no such operation"
        );
        let response = &operation["responses"][status.as_str()];
        assert!(
            response.is_object(),
            "{method} {template} answered {status}, which the OpenAPI document does not list: {body}"
        );
        assert!(
            response["description"].is_string(),
            "{method} {template} {status}: a response needs a description"
        );
        let Some((media, _)) = response["content"]
            .as_object()
            .and_then(|c| c.iter().next())
        else {
            assert!(
                body.is_null(),
                "{method} {template} {status}: documented without a body, answered {body}"
            );
            return;
        };
        let pointer = format!(
            "#/paths/{}/{method_name}/responses/{}/content/{}/schema",
            escape(&template),
            status.as_str(),
            escape(media)
        );
        let validator = self.validator(&pointer);
        let errors: Vec<String> = validator
            .iter_errors(body)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{method} {template} {status}: the body does not match the OpenAPI document:\n{}\n{body:#}",
            errors.join("\n")
        );
    }

    /// The document's path template `path` is an instance of.
    fn template(&self, path: &str) -> Option<String> {
        let wanted: Vec<&str> = path.split('/').collect();
        self.doc["paths"]
            .as_object()?
            .keys()
            .filter(|template| {
                let parts: Vec<&str> = template.split('/').collect();
                parts.len() == wanted.len()
                    && parts
                        .iter()
                        .zip(&wanted)
                        .all(|(t, w)| t == w || (t.starts_with('{') && t.ends_with('}')))
            })
            // A literal segment wins over a parameter (`/deliveries/replay` over `{id}`).
            .min_by_key(|template| template.matches('{').count())
            .cloned()
    }

    fn validator(&self, pointer: &str) -> std::sync::Arc<jsonschema::Validator> {
        let mut known = self.validators.lock().expect("validators");
        known
            .entry(pointer.to_owned())
            .or_insert_with(|| {
                let mut root = self.doc.clone();
                root["$ref"] = json!(pointer);
                let validator = jsonschema::options()
                    .with_draft(jsonschema::Draft::Draft202012)
                    .build(&root)
                    .unwrap_or_else(|e| panic!("{pointer}: not a usable schema: {e}"));
                std::sync::Arc::new(validator)
            })
            .clone()
    }
}

/// A JSON pointer segment (RFC 6901), as a URI fragment may hold it.
fn escape(segment: &str) -> String {
    segment
        .replace('~', "~0")
        .replace('/', "~1")
        .replace('{', "%7B")
        .replace('}', "%7D")
}
