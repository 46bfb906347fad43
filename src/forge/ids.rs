//! Forge ids as kubeward stores them: the queue and the caches keep ids and numbers as signed
//! 64-bit integers (SQLite and PostgreSQL have no unsigned one), so an id above `i64::MAX`
//! would wrap (`u64::MAX` becoming `-1`, a cache folder `-1.git`). Deliveries are read with
//! these helpers, which refuse such ids when the payload is parsed, before anything is stored.

use serde::de::{Deserialize, Deserializer, Error, Unexpected};

/// The largest id or number a delivery may carry.
pub const MAX_ID: u64 = i64::MAX as u64;

/// `id` if it fits, else why not.
pub fn check(id: u64) -> Result<u64, String> {
    if id <= MAX_ID {
        Ok(id)
    } else {
        Err(format!(
            "the id or number {id} is larger than {MAX_ID}, the largest kubeward stores"
        ))
    }
}

const EXPECTED: &str = "an id or number no larger than 9223372036854775807 (i64::MAX)";

/// `#[serde(deserialize_with = "crate::forge::ids::stored")]` on a `u64` id.
pub fn stored<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    let id = u64::deserialize(deserializer)?;
    check(id).map_err(|_| D::Error::invalid_value(Unexpected::Unsigned(id), &EXPECTED))
}

/// [`stored`] for an `Option<u64>` (with `#[serde(default)]`).
pub fn stored_opt<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    match Option::<u64>::deserialize(deserializer)? {
        Some(id) => stored(serde::de::value::U64Deserializer::<D::Error>::new(id)).map(Some),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    struct Ids {
        #[serde(deserialize_with = "stored")]
        id: u64,
        #[serde(default, deserialize_with = "stored_opt")]
        number: Option<u64>,
    }

    #[test]
    fn ids_that_do_not_fit_a_signed_integer_are_refused() {
        let read = |text: &str| serde_json::from_str::<Ids>(text);
        let fits = read(r#"{"id": 9223372036854775807, "number": 7}"#).expect("fits");
        assert_eq!((fits.id, fits.number), (i64::MAX as u64, Some(7)));
        assert_eq!(read(r#"{"id": 1}"#).expect("no number").number, None);
        assert_eq!(
            read(r#"{"id": 1, "number": null}"#).expect("null").number,
            None
        );
        for wraps in [
            r#"{"id": 18446744073709551615}"#,
            r#"{"id": 9223372036854775808}"#,
            r#"{"id": 1, "number": 18446744073709551615}"#,
        ] {
            let err = read(wraps).expect_err(wraps).to_string();
            assert!(err.contains("9223372036854775807"), "{err}");
        }
    }
}
