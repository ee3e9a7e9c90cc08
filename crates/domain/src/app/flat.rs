//! Commands whose fields sit flat in one JSON object although some of them are shared
//! with another command (a source's settings, a route's rule). Serde refuses unknown
//! fields only in a struct that flattens nothing, so a command that flattens ends with
//! [`NothingElse`], which takes whatever no other field took and refuses it by name.

use serde::Deserialize;
use serde_json::{Map, Value};

/// The end of a flattened command: any field left over is refused.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct NothingElse;

impl<'de> Deserialize<'de> for NothingElse {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let rest = Map::<String, Value>::deserialize(deserializer)?;
        match rest.keys().next() {
            Some(unknown) => Err(serde::de::Error::custom(format!(
                "unknown field `{unknown}`"
            ))),
            None => Ok(NothingElse),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Shared {
        a: Option<u32>,
    }

    #[derive(Debug, Deserialize)]
    struct Command {
        #[allow(dead_code)]
        b: Option<u32>,
        #[serde(flatten)]
        shared: Shared,
        #[serde(flatten)]
        _nothing_else: NothingElse,
    }

    #[test]
    fn the_fields_of_a_flattened_command_are_read_and_any_other_is_refused() {
        let read: Command = serde_json::from_str(r#"{"a": 1, "b": 2}"#).unwrap();
        assert_eq!(read.shared.a, Some(1));
        let err = serde_json::from_str::<Command>(r#"{"a": 1, "surprise": 2}"#).unwrap_err();
        assert!(
            err.to_string().contains("unknown field `surprise`"),
            "{err}"
        );
    }
}
