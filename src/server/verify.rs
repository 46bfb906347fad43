//! Webhook authenticity: HMAC-SHA256 over the raw body, compared in constant time.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::forge::Secret;

type HmacSha256 = Hmac<Sha256>;

/// Checks GitHub's `X-Hub-Signature-256: sha256=<hex>` against any of the configured secrets
/// (several during a rotation). The comparison is constant-time (`verify_slice`).
pub fn github_signature_valid(secrets: &[Secret], body: &[u8], header: Option<&str>) -> bool {
    let Some(hex) = header.and_then(|h| h.strip_prefix("sha256=")) else {
        return false;
    };
    let Some(expected) = decode_hex(hex) else {
        return false;
    };
    secrets.iter().any(|secret| {
        let Ok(mut mac) = HmacSha256::new_from_slice(secret.expose().as_bytes()) else {
            return false;
        };
        mac.update(body);
        mac.verify_slice(&expected).is_ok()
    })
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if text.len() != 64 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The hex HMAC-SHA256 of `body` (for tests and `testdrive`, which sign their own deliveries).
pub fn github_signature(secret: &str, body: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).unwrap_or_else(|_| {
        // HMAC accepts keys of any length; this branch cannot happen.
        HmacSha256::new_from_slice(b"").unwrap_or_else(|_| unreachable!())
    });
    mac.update(body);
    let bytes = mac.finalize().into_bytes();
    format!(
        "sha256={}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// GitHub's published test vector (validating-webhook-deliveries).
    #[test]
    fn githubs_published_test_vector() {
        let secret = Secret::new("It's a Secret to Everybody");
        let header = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert!(github_signature_valid(
            std::slice::from_ref(&secret),
            b"Hello, World!",
            Some(header)
        ));
        assert_eq!(
            github_signature("It's a Secret to Everybody", b"Hello, World!"),
            header
        );
        assert!(!github_signature_valid(
            std::slice::from_ref(&secret),
            b"Hello, World?",
            Some(header)
        ));
        assert!(!github_signature_valid(
            std::slice::from_ref(&secret),
            b"Hello, World!",
            None
        ));
        assert!(!github_signature_valid(
            std::slice::from_ref(&secret),
            b"Hello, World!",
            Some("sha1=01dc10d0c83e72ed246219cdd91669667fe2ca59")
        ));
        assert!(!github_signature_valid(
            &[secret],
            b"Hello, World!",
            Some("sha256=zz")
        ));
        let rotated = [
            Secret::new("old"),
            Secret::new("It's a Secret to Everybody"),
        ];
        assert!(github_signature_valid(
            &rotated,
            b"Hello, World!",
            Some(header)
        ));
    }
}
