//! Standard Webhooks signatures (<https://www.standardwebhooks.com/>).
//!
//! A secret is `whsec_` followed by the base64 of the key bytes; a signature is `v1,` followed by
//! the base64 of HMAC-SHA256(key, "{msg_id}.{timestamp}.{body}").

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The prefix of every signing secret.
pub const SECRET_PREFIX: &str = "whsec_";

/// Why a secret could not sign.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigningError {
    /// The part after `whsec_` is not base64.
    #[error("the signing secret is not `whsec_` followed by base64")]
    InvalidSecret,
    /// The secret decodes to no key bytes.
    #[error("the signing secret is empty")]
    EmptySecret,
}

/// Signs `body` as message `msg_id` sent at `timestamp` (unix seconds): `v1,<base64 signature>`.
///
/// The `whsec_` prefix may be left out, as the reference libraries allow.
pub fn sign(
    secret: &str,
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<String, SigningError> {
    Ok(SigningKey::new(secret)?.sign(msg_id, timestamp, body))
}

/// A signing secret decoded and keyed once. Each signature starts from a copy of the keyed
/// state, which saves decoding the secret and hashing the key for every request.
#[derive(Clone)]
pub struct SigningKey {
    keyed: Hmac<Sha256>,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The keyed state derives from the secret: never shown.
        f.write_str("SigningKey(..)")
    }
}

impl SigningKey {
    /// The key of `secret`, with or without its `whsec_` prefix.
    pub fn new(secret: &str) -> Result<Self, SigningError> {
        let encoded = secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret);
        let key = STANDARD
            .decode(encoded.trim())
            .map_err(|_| SigningError::InvalidSecret)?;
        if key.is_empty() {
            return Err(SigningError::EmptySecret);
        }
        let keyed =
            <Hmac<Sha256> as Mac>::new_from_slice(&key).map_err(|_| SigningError::InvalidSecret)?;
        Ok(Self { keyed })
    }

    /// Signs `body` as message `msg_id` sent at `timestamp` (unix seconds).
    pub fn sign(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut mac = self.keyed.clone();
        mac.update(msg_id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        let signature = mac.finalize().into_bytes();
        format!("v1,{}", STANDARD.encode(signature))
    }
}

/// A fresh random secret: `whsec_` and the base64 of 32 random bytes.
pub fn new_secret() -> String {
    let key: [u8; 32] = rand::random();
    format!("{SECRET_PREFIX}{}", STANDARD.encode(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_standard_webhooks_test_vector() {
        let signature = sign(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            br#"{"test": 2432232314}"#,
        )
        .expect("the test secret signs");
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn a_key_signs_each_message_on_its_own() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let key = SigningKey::new(secret).expect("the test secret keys");
        let first = key.sign(
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(first, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        // Signing does not carry state from one message to the next.
        let second = key.sign("msg_2", 1_614_265_331, b"other");
        assert_eq!(Ok(second), sign(secret, "msg_2", 1_614_265_331, b"other"));
        assert_eq!(
            key.sign(
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1_614_265_330,
                br#"{"test": 2432232314}"#
            ),
            first
        );
        assert_eq!(format!("{key:?}"), "SigningKey(..)");
    }

    #[test]
    fn the_prefix_is_optional() {
        let with = sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "m", 1, b"");
        let without = sign("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "m", 1, b"");
        assert_eq!(with, without);
        assert!(with.is_ok());
    }

    #[test]
    fn bad_secrets_are_refused() {
        assert_eq!(
            sign("whsec_not base64!", "m", 1, b""),
            Err(SigningError::InvalidSecret)
        );
        assert_eq!(sign("whsec_", "m", 1, b""), Err(SigningError::EmptySecret));
    }

    #[test]
    fn new_secrets_are_random_32_byte_keys() {
        let a = new_secret();
        let b = new_secret();
        assert_ne!(a, b);
        let key = STANDARD
            .decode(a.strip_prefix(SECRET_PREFIX).expect("prefixed"))
            .expect("base64");
        assert_eq!(key.len(), 32);
        assert!(sign(&a, "m", 1, b"body").is_ok());
    }

    #[test]
    fn the_signature_covers_id_timestamp_and_body() {
        let secret = new_secret();
        let base = sign(&secret, "m", 1, b"body").expect("signs");
        assert_ne!(base, sign(&secret, "n", 1, b"body").expect("signs"));
        assert_ne!(base, sign(&secret, "m", 2, b"body").expect("signs"));
        assert_ne!(base, sign(&secret, "m", 1, b"bodz").expect("signs"));
    }
}
