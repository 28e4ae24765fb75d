//! The callback signature. The API recomputes exactly this over the raw request body and the
//! `X-Guildhall-Timestamp` header, so any change here is a protocol change.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// `"v1=" + hex(HMAC-SHA256(secret, "{timestamp}.{body}"))`.
pub fn sign(secret: &[u8], timestamp: u64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vector() {
        // python3 -c 'import hmac,hashlib; print(hmac.new(b"test-secret",
        //   b"1700000000.{\"attachment_id\":\"x\"}", hashlib.sha256).hexdigest())'
        assert_eq!(
            sign(b"test-secret", 1_700_000_000, br#"{"attachment_id":"x"}"#),
            "v1=34ee7e9ea7f4316974f8fdff1a2a52da995b13d1e988760ef163b413a0b852c4"
        );
    }
}
