//! API keys: how they are made and hashed, and the extractor that turns a request's bearer key
//! into the workspace every store call of that request is scoped to.

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use rand::Rng;
use sha2::{Digest, Sha256};

use crate::AppState;
use crate::error::ApiError;

/// The prefix of every API key, so leaked keys are easy to recognise.
pub const KEY_PREFIX: &str = "chk_";
/// How many random characters follow the prefix.
const KEY_RANDOM_CHARS: usize = 40;

/// A new API key: `chk_` and 40 random alphanumeric characters, and its lowercase hex SHA-256
/// (what is stored).
pub fn new_api_key() -> (String, String) {
    let random: String = rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(KEY_RANDOM_CHARS)
        .map(char::from)
        .collect();
    let key = format!("{KEY_PREFIX}{random}");
    let hash = hash_api_key(&key);
    (key, hash)
}

/// The lowercase hex SHA-256 of a key.
pub fn hash_api_key(key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    let mut hex = String::with_capacity(digest.len() * 2);
    for byte in digest {
        hex.push_str(&format!("{byte:02x}"));
    }
    hex
}

/// The authenticated caller: the workspace its key belongs to.
#[derive(Debug, Clone)]
pub struct Caller {
    pub workspace_id: String,
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
            return Err(ApiError::unauthorized(
                "missing Authorization header; send `Authorization: Bearer <api key>`",
            ));
        };
        let key = value
            .to_str()
            .ok()
            .and_then(|text| {
                let (scheme, key) = text.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| key.trim())
            })
            .filter(|key| !key.is_empty())
            .ok_or_else(|| {
                ApiError::unauthorized(
                    "the Authorization header is not a bearer token; send `Authorization: Bearer <api key>`",
                )
            })?;
        match state.store.api_key_by_hash(&hash_api_key(key)).await? {
            Some(api_key) => Ok(Caller {
                workspace_id: api_key.workspace_id,
            }),
            None => Err(ApiError::unauthorized("the API key is not valid")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_keys_have_the_prefix_and_hash_to_what_is_stored() {
        let (key, hash) = new_api_key();
        assert!(key.starts_with(KEY_PREFIX));
        assert_eq!(key.len(), KEY_PREFIX.len() + KEY_RANDOM_CHARS);
        assert!(
            key[KEY_PREFIX.len()..]
                .bytes()
                .all(|b| b.is_ascii_alphanumeric())
        );
        assert_eq!(hash, hash_api_key(&key));
        assert_eq!(hash.len(), 64);
        assert_ne!(new_api_key().0, key);
    }

    #[test]
    fn hashes_are_lowercase_hex_sha256() {
        assert_eq!(
            hash_api_key("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
