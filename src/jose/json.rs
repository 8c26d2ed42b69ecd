//! The one strict JSON-object parser for JOSE headers and JWT payloads: a top-level object
//! whose member names are all distinct. serde_json alone keeps the last of duplicated members,
//! and parsers that disagree about which duplicate "wins" are how signature checks get bypassed.

use std::fmt;

use serde::de::{Deserialize, Deserializer, Error as _, MapAccess, Visitor};
use serde_json::{Map, Value};

/// Why bytes are not a strict JSON object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObjectError {
    /// Not JSON, not UTF-8, or JSON but not an object.
    NotObject,
    /// An object naming some member twice (at its top level).
    Duplicate,
}

/// Parses `bytes` as a JSON object without duplicate member names.
pub fn parse_object(bytes: &[u8]) -> Result<Map<String, Value>, ObjectError> {
    match serde_json::from_slice::<StrictObject>(bytes) {
        Ok(StrictObject(map)) => Ok(map),
        Err(e) if e.to_string().starts_with(DUPLICATE_MEMBER) => Err(ObjectError::Duplicate),
        Err(_) => Err(ObjectError::NotObject),
    }
}

const DUPLICATE_MEMBER: &str = "duplicate member";

struct StrictObject(Map<String, Value>);

impl<'de> Deserialize<'de> for StrictObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor;
        impl<'de> Visitor<'de> for ObjectVisitor {
            type Value = StrictObject;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<StrictObject, A::Error> {
                let mut map = Map::new();
                while let Some(key) = access.next_key::<String>()? {
                    if map.contains_key(&key) {
                        return Err(A::Error::custom(DUPLICATE_MEMBER));
                    }
                    let value: Value = access.next_value()?;
                    map.insert(key, value);
                }
                Ok(StrictObject(map))
            }
        }
        deserializer.deserialize_map(ObjectVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_duplicates_and_everything_else() {
        assert_eq!(
            parse_object(br#"{"a":1,"b":{"a":2,"a":3}}"#).unwrap().len(),
            2
        );
        for bad in [
            &b"[1]"[..],
            b"1",
            b"null",
            b"not json",
            b"{\"a\":1} x",
            b"{\"a\":\"\xff\"}",
        ] {
            assert_eq!(parse_object(bad), Err(ObjectError::NotObject));
        }
        assert_eq!(
            parse_object(br#"{"alg":"none","alg":"HS256"}"#),
            Err(ObjectError::Duplicate)
        );
    }
}
