//! Forge replies read as typed structs, for both forges: a 2xx reply without what we act on
//! (an id, a SHA) is an error naming the endpoint, never a default that becomes a request to
//! `/check-runs/0`.

use serde::de::DeserializeOwned;
use serde_json::Value;

/// The forge answered with a shape we cannot read: it changed, or it is not what it says.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{endpoint}: unexpected reply: {detail}")]
pub struct UnexpectedReply {
    /// Method and path, without the query.
    pub endpoint: String,
    pub detail: String,
}

/// `body` as `T`; `endpoint` (`POST /repos/o/r/check-runs`) names the call in the error.
pub fn read<T: DeserializeOwned>(endpoint: &str, body: &Value) -> Result<T, UnexpectedReply> {
    T::deserialize(body).map_err(|e| UnexpectedReply {
        endpoint: endpoint.split('?').next().unwrap_or("").to_owned(),
        detail: e.to_string(),
    })
}
