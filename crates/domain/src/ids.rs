//! Typed, prefixed ids (`evt_01j…`): a ULID behind a short prefix that names the kind, so
//! logs and URLs explain themselves and an id of one kind never passes for another.
//! ULIDs sort by creation time, which lets every list page on the id alone.

use std::fmt;
use std::str::FromStr;

/// A string that is not an id of the expected kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("this is not the id of a {noun} (those look like {kind}_01…)")]
pub struct InvalidId {
    pub kind: &'static str,
    /// What the id names, in words.
    pub noun: &'static str,
}

macro_rules! prefixed_id {
    ($(#[$meta:meta])* $name:ident, $prefix:literal, $noun:literal) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, sqlx::Type)]
        #[serde(transparent)]
        #[sqlx(transparent)]
        pub struct $name(String);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            /// A new id, ordered after every id made earlier.
            pub fn generate() -> Self {
                Self::generate_at(chrono::Utc::now())
            }

            /// A new id as if made at `at`: its time part is `at`'s, its random part
            /// fresh (for rows of the past, such as an import's or a test's).
            pub fn generate_at(at: chrono::DateTime<chrono::Utc>) -> Self {
                Self(format!(
                    concat!($prefix, "_{}"),
                    ulid::Ulid::from_datetime(at.into()).to_string().to_ascii_lowercase()
                ))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The smallest id that could have been made at `at`: ids sort by their
            /// time of making, so a time range is an id range.
            pub fn first_at(at: chrono::DateTime<chrono::Utc>) -> String {
                let ms = u64::try_from(at.timestamp_millis()).unwrap_or(0);
                format!(
                    concat!($prefix, "_{}"),
                    ulid::Ulid::from_parts(ms, 0).to_string().to_ascii_lowercase()
                )
            }
        }

        impl FromStr for $name {
            type Err = InvalidId;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let invalid = InvalidId {
                    kind: $prefix,
                    noun: $noun,
                };
                let rest = s
                    .strip_prefix(concat!($prefix, "_"))
                    .ok_or_else(|| invalid.clone())?;
                let ulid = ulid::Ulid::from_string(rest).map_err(|_| invalid)?;
                Ok(Self(format!(
                    concat!($prefix, "_{}"),
                    ulid.to_string().to_ascii_lowercase()
                )))
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .pattern(Some(concat!("^", $prefix, "_[0-9a-z]{26}$")))
                    .examples([concat!($prefix, "_01jdq5x3v8k2m9n4p6r7s8t0ab")])
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {}
    };
}

prefixed_id!(TeamId, "team", "team");
prefixed_id!(ApiKeyId, "key", "API key");
prefixed_id!(SourceId, "src", "source");
prefixed_id!(SecretId, "sec", "secret");
prefixed_id!(DestinationId, "dst", "destination");
prefixed_id!(RouteId, "rte", "route");
prefixed_id!(EventId, "evt", "event");
prefixed_id!(DeliveryId, "dlv", "delivery");
prefixed_id!(AttemptId, "att", "attempt");
prefixed_id!(UserId, "usr", "user");
prefixed_id!(InvitationId, "inv", "invitation");
prefixed_id!(ReplayId, "rpl", "replay");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_made_later_sort_after_the_first_id_of_an_earlier_time() {
        let before = chrono::Utc::now() - chrono::Duration::milliseconds(2);
        let id = EventId::generate();
        assert!(EventId::first_at(before).as_str() < id.as_str());
        let after = chrono::Utc::now() + chrono::Duration::milliseconds(2);
        assert!(id.as_str() < EventId::first_at(after).as_str());
    }

    #[test]
    fn generated_ids_carry_their_prefix_and_parse_back() {
        let id = EventId::generate();
        assert!(id.as_str().starts_with("evt_"));
        assert_eq!(id.as_str().len(), 4 + 26);
        assert_eq!(id.as_str().parse::<EventId>().unwrap(), id);
    }

    #[test]
    fn an_id_of_another_kind_does_not_parse() {
        let id = DeliveryId::generate();
        assert!(id.as_str().parse::<EventId>().is_err());
        assert!("evt_nonsense".parse::<EventId>().is_err());
        assert!("".parse::<EventId>().is_err());
    }

    #[test]
    fn upper_case_ulids_are_normalised() {
        let id = EventId::generate();
        let upper = format!("evt_{}", &id.as_str()[4..].to_ascii_uppercase());
        assert_eq!(upper.parse::<EventId>().unwrap(), id);
    }

    #[test]
    fn later_ids_sort_after_earlier_ones() {
        let a = EventId::generate();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = EventId::generate();
        assert!(a < b);
    }
}
