//! The API's JSON request body. It is read as `web::Json` reads it (size, content type
//! and syntax answered as `error::json_config` says), then refused with a 422 naming the
//! field if any text in it holds a NUL character, which PostgreSQL cannot store, and
//! only then read as the command `T`.

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};
use futures::future::LocalBoxFuture;
use serde::de::DeserializeOwned;
use serde_json::Value;
use switchyard_domain::app::FieldError;
use switchyard_problem::Problem;

use crate::error::ApiError;

/// A JSON request body read as `T`.
pub struct JsonBody<T>(pub T);

impl<T> JsonBody<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> std::ops::Deref for JsonBody<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for JsonBody<T> {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let json = web::Json::<Value>::from_request(req, payload);
        Box::pin(async move {
            let value = json.await?.into_inner();
            let refuse = |field: &str, message: String| -> actix_web::Error {
                ApiError(Problem::invalid(vec![FieldError::new(field, message)])).into()
            };
            if let Some(field) = holding_nul(&value, "") {
                return Err(refuse(
                    &field,
                    "must not contain a NUL character".to_owned(),
                ));
            }
            serde_json::from_value(value)
                .map(JsonBody)
                .map_err(|e| refuse("body", e.to_string()))
        })
    }
}

/// The name of the first field of a form or query string whose name or value holds a
/// NUL character (the NUL itself left out of the name).
pub(crate) fn field_holding_nul<K: AsRef<str>, V: AsRef<str>>(
    fields: impl IntoIterator<Item = (K, V)>,
) -> Option<String> {
    fields
        .into_iter()
        .find(|(name, value)| name.as_ref().contains('\0') || value.as_ref().contains('\0'))
        .map(|(name, _)| name.as_ref().replace('\0', ""))
}

/// Where in `value` a text (or a key) holds a NUL character, as `a.b[2]`.
fn holding_nul(value: &Value, at: &str) -> Option<String> {
    let here = || if at.is_empty() { "body" } else { at }.to_owned();
    match value {
        Value::String(s) if s.contains('\0') => Some(here()),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| holding_nul(item, &format!("{}[{i}]", here()))),
        Value::Object(fields) => fields.iter().find_map(|(key, item)| {
            let path = if at.is_empty() {
                key.clone()
            } else {
                format!("{at}.{key}")
            };
            if key.contains('\0') {
                Some(path)
            } else {
                holding_nul(item, &path)
            }
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::holding_nul;

    #[test]
    fn a_nul_is_found_wherever_it_is_and_named_by_its_path() {
        assert_eq!(holding_nul(&json!({"a": "ok", "b": 1}), ""), None);
        assert_eq!(
            holding_nul(&json!({"template": "x\u{0}y"}), ""),
            Some("template".to_owned())
        );
        assert_eq!(
            holding_nul(&json!({"to": ["a@b.c", "\u{0}"]}), ""),
            Some("to[1]".to_owned())
        );
        assert_eq!(
            holding_nul(&json!({"headers": {"x-a": "\u{0}"}}), ""),
            Some("headers.x-a".to_owned())
        );
        assert_eq!(holding_nul(&json!("\u{0}"), ""), Some("body".to_owned()));
    }
}
