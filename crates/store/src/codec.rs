//! Column encodings every backend shares: enums as their snake_case text, structured values as
//! JSON text, counts as signed 64-bit integers. One place, so the backends store the same thing
//! the same way.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::StoreError;

/// A count or size read back from an integer column.
pub fn unsigned<T: TryFrom<i64>>(value: i64, column: &str) -> Result<T, StoreError> {
    T::try_from(value)
        .map_err(|_| StoreError::Corrupt(format!("`{column}` holds {value}, out of range")))
}

/// A count or size to store in a signed 64-bit integer column.
pub fn signed(value: u64, what: &str) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| {
        StoreError::Database(format!("{what} of {value} does not fit a 64-bit integer").into())
    })
}

/// The snake_case text serde gives a unit enum variant (`ExecutionStatus::Running` → `running`).
pub fn enum_text<T: Serialize>(value: &T) -> Result<String, StoreError> {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(text)) => Ok(text),
        Ok(other) => Err(StoreError::Database(
            format!("expected a unit enum variant, got {other}").into(),
        )),
        Err(err) => Err(StoreError::Database(Box::new(err))),
    }
}

/// A unit enum variant read back from its snake_case text.
pub fn enum_from_text<T: DeserializeOwned>(text: &str, column: &str) -> Result<T, StoreError> {
    serde_json::from_value(serde_json::Value::String(text.to_owned()))
        .map_err(|_| StoreError::Corrupt(format!("`{column}` holds unknown value `{text}`")))
}

/// A value stored as JSON text.
pub fn to_json<T: Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|err| StoreError::Database(Box::new(err)))
}

/// A value read back from JSON text.
pub fn from_json<T: DeserializeOwned>(text: &str, what: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|err| StoreError::Corrupt(format!("{what}: {err}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cronhook_core::ExecutionStatus;

    #[test]
    fn enums_round_trip_through_their_text() {
        let text = enum_text(&ExecutionStatus::Retrying).expect("encodes");
        assert_eq!(text, "retrying");
        let back: ExecutionStatus = enum_from_text(&text, "status").expect("decodes");
        assert_eq!(back, ExecutionStatus::Retrying);
        assert!(matches!(
            enum_from_text::<ExecutionStatus>("later", "status"),
            Err(StoreError::Corrupt(_))
        ));
    }

    #[test]
    fn counts_are_checked_both_ways() {
        assert_eq!(signed(5, "n").expect("fits"), 5);
        assert!(signed(u64::MAX, "n").is_err());
        assert_eq!(unsigned::<u32>(7, "n").expect("fits"), 7);
        assert!(unsigned::<u32>(-1, "n").is_err());
    }
}
