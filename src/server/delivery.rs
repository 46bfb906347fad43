//! Delivery ids as the queue stores them and the logs show them: bounded, and never cut.
//!
//! Forges send short ids (GitHub a GUID, GitLab a UUID), but the header is the client's to
//! write. An id up to [`VERBATIM_LEN`] bytes is kept as it is (so the GUID in GitHub's
//! delivery log is the one in ours); a longer one is known by the SHA-256 of all of it, so two
//! ids that differ anywhere stay two deliveries. Ids over [`MAX_DELIVERY_ID_LEN`] are refused.

use sha2::{Digest, Sha256};

/// The longest delivery id accepted; a forge's ids are a few dozen characters.
pub const MAX_DELIVERY_ID_LEN: usize = 256;

/// Ids up to this length are stored and logged as sent.
pub const VERBATIM_LEN: usize = 64;

/// The key a delivery is recorded, de-duplicated and logged under: `id` itself if it has at
/// most [`VERBATIM_LEN`] bytes, else `sha256:<hex of the whole id>` (71 bytes, so it cannot be
/// mistaken for a verbatim id).
pub fn delivery_key(id: &str) -> String {
    if id.len() <= VERBATIM_LEN {
        id.to_owned()
    } else {
        format!("sha256:{}", hex::encode(Sha256::digest(id.as_bytes())))
    }
}

/// Why a delivery id is refused, for a `400` that says which header.
pub fn too_long(header: &str, id: &str) -> Option<String> {
    (id.len() > MAX_DELIVERY_ID_LEN).then(|| {
        format!(
            "{header} is {} bytes long; at most {MAX_DELIVERY_ID_LEN} are accepted",
            id.len()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_ids_are_kept_and_long_ones_are_hashed_whole() {
        let guid = "72d3162e-cc78-11e3-81ab-4c9367dc0958";
        assert_eq!(delivery_key(guid), guid);
        let a = format!("{}a", "x".repeat(300));
        let b = format!("{}b", "x".repeat(300));
        assert_ne!(
            delivery_key(&a),
            delivery_key(&b),
            "they differ after 300 bytes"
        );
        assert_eq!(delivery_key(&a).len(), 71);
        assert!(delivery_key(&a).starts_with("sha256:"));
        let edge = "y".repeat(VERBATIM_LEN);
        assert_eq!(delivery_key(&edge), edge);
        assert!(too_long("X-GitHub-Delivery", &"z".repeat(MAX_DELIVERY_ID_LEN)).is_none());
        let refused =
            too_long("X-GitHub-Delivery", &"z".repeat(MAX_DELIVERY_ID_LEN + 1)).expect("refused");
        assert!(
            refused.contains("X-GitHub-Delivery") && refused.contains("257"),
            "{refused}"
        );
    }
}
