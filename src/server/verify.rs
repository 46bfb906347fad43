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
    // Exactly 64 hex digits, either case: `hex` takes no sign, space or prefix.
    let mut expected = [0u8; 32];
    if hex::decode_to_slice(hex, &mut expected).is_err() {
        return false;
    }
    secrets.iter().any(|secret| {
        let Ok(mut mac) = HmacSha256::new_from_slice(secret.expose().as_bytes()) else {
            return false;
        };
        mac.update(body);
        mac.verify_slice(&expected).is_ok()
    })
}

/// The hex HMAC-SHA256 of `body` (for tests and `testdrive`, which sign their own deliveries).
pub fn github_signature(secret: &str, body: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).unwrap_or_else(|_| {
        // HMAC accepts keys of any length; this branch cannot happen.
        HmacSha256::new_from_slice(b"").unwrap_or_else(|_| unreachable!())
    });
    mac.update(body);
    let bytes = mac.finalize().into_bytes();
    format!("sha256={}", hex::encode(bytes))
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
            std::slice::from_ref(&secret),
            b"Hello, World!",
            Some("sha256=zz")
        ));
        // The third byte is 0x07: "+7" is the same number to `from_str_radix`, but a sign
        // is not a hex digit. Either case of the digits is.
        let digest = header.trim_start_matches("sha256=");
        assert_eq!(&digest[4..6], "07");
        let signed = format!("sha256={}+{}", &digest[..4], &digest[5..]);
        assert!(!github_signature_valid(
            std::slice::from_ref(&secret),
            b"Hello, World!",
            Some(&signed)
        ));
        assert!(github_signature_valid(
            std::slice::from_ref(&secret),
            b"Hello, World!",
            Some(&format!("sha256={}", digest.to_uppercase()))
        ));
        assert!(!github_signature_valid(
            std::slice::from_ref(&secret),
            b"Hello, World!",
            Some(&format!("{header}0"))
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
