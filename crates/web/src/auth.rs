//! API keys: how they are made and hashed, and the extractor that turns a request's bearer key
//! into the workspace every store call of that request is scoped to.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{Method, header};
use cronhook_store::ApiKeyScope;
use rand::Rng;
use sha2::{Digest, Sha256};

use crate::AppState;
use crate::error::ApiError;

/// The prefix of every API key, so leaked keys are easy to recognise.
pub const KEY_PREFIX: &str = "chk_";
/// How many random characters follow the prefix.
const KEY_RANDOM_CHARS: usize = 40;
/// How many characters of checksum end the key.
const KEY_CHECKSUM_CHARS: usize = 6;
/// The length of every key: prefix, random part, checksum.
pub const KEY_LEN: usize = KEY_PREFIX.len() + KEY_RANDOM_CHARS + KEY_CHECKSUM_CHARS;
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// The checksum of a key's body (`chk_` and the random part): its CRC-32 in base62, 6 digits.
fn checksum(body: &str) -> String {
    let mut value = u64::from(crc32fast::hash(body.as_bytes()));
    let mut digits = [b'0'; KEY_CHECKSUM_CHARS];
    for digit in digits.iter_mut().rev() {
        *digit = BASE62[usize::try_from(value % 62).unwrap_or(0)];
        value /= 62;
    }
    String::from_utf8_lossy(&digits).into_owned()
}

/// A new API key: `chk_`, 40 random alphanumeric characters and a 6-character checksum (50 in
/// all), and its lowercase hex SHA-256 (what is stored).
pub fn new_api_key() -> (String, String) {
    let random: String = rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(KEY_RANDOM_CHARS)
        .map(char::from)
        .collect();
    let body = format!("{KEY_PREFIX}{random}");
    let key = format!("{body}{}", checksum(&body));
    let hash = hash_api_key(&key);
    (key, hash)
}

/// Whether `key` has the shape of a cronhook API key and its checksum matches: a typo or a
/// truncated key is refused here, before any store lookup.
pub fn is_well_formed_key(key: &str) -> bool {
    key.len() == KEY_LEN
        && key.starts_with(KEY_PREFIX)
        && key[KEY_PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric())
        && checksum(&key[..KEY_LEN - KEY_CHECKSUM_CHARS]) == key[KEY_LEN - KEY_CHECKSUM_CHARS..]
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

/// The scope a request needs: key management and the node list need `admin`, reads (`GET`, `HEAD`) need `read`,
/// everything else `write`.
pub fn required_scope(method: &Method, path: &str) -> ApiKeyScope {
    if path == "/api/v1/keys" || path.starts_with("/api/v1/keys/") || path == "/api/v1/nodes" {
        ApiKeyScope::Admin
    } else if method == Method::GET || method == Method::HEAD {
        ApiKeyScope::Read
    } else {
        ApiKeyScope::Write
    }
}

/// The authenticated caller: the workspace its key belongs to.
///
/// Extracting it checks, in order: the key's format and checksum (401), the key itself (401 when
/// unknown or revoked; not cached, so a revocation takes effect on the next request), the key's
/// scope against the request (403), and the workspace's API rate limit (429 with `Retry-After`).
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
        if !is_well_formed_key(key) {
            return Err(ApiError::unauthorized(
                "the API key is malformed (mistyped or cut short): keys are `chk_` followed by 46 letters and digits",
            ));
        }
        let Some(api_key) = state.store.api_key_by_hash(&hash_api_key(key)).await? else {
            return Err(ApiError::unauthorized("the API key is not valid"));
        };
        if api_key.revoked_at.is_some() {
            return Err(ApiError::unauthorized("the API key was revoked"));
        }
        let needed = required_scope(&parts.method, parts.uri.path());
        if !api_key.scope.allows(needed) {
            return Err(ApiError::forbidden(format!(
                "this API key's scope is `{}`; this request needs `{needed}`",
                api_key.scope
            )));
        }
        if let Err(wait) = state.limits.api.check(&api_key.workspace_id) {
            return Err(ApiError::too_many_requests(
                "this workspace is over its API rate limit; retry after the time in Retry-After",
                crate::limits::retry_after_secs(wait),
            ));
        }
        if state.limits.should_touch(&api_key.id) {
            let store = state.store.clone();
            let id = api_key.id.clone();
            tokio::spawn(async move {
                if let Err(error) = store.touch_api_key(&id, crate::jobs::now_ms()).await {
                    tracing::debug!(key_id = %id, %error, "cannot record the API key's use");
                }
            });
        }
        Ok(Caller {
            workspace_id: api_key.workspace_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_keys_have_the_prefix_and_hash_to_what_is_stored() {
        let (key, hash) = new_api_key();
        assert!(key.starts_with(KEY_PREFIX));
        assert_eq!(key.len(), KEY_LEN);
        assert!(is_well_formed_key(&key));
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

    #[test]
    fn typos_and_truncations_fail_the_checksum() {
        let (key, _) = new_api_key();
        assert!(!is_well_formed_key(&key[..key.len() - 1]), "truncated");
        assert!(!is_well_formed_key(&format!("{key}x")), "too long");
        let mut changed = key.clone().into_bytes();
        for index in [KEY_PREFIX.len(), 20, KEY_LEN - 1] {
            let original = changed[index];
            changed[index] = if original == b'a' { b'b' } else { b'a' };
            assert!(
                !is_well_formed_key(&String::from_utf8_lossy(&changed)),
                "a changed character at {index}"
            );
            changed[index] = original;
        }
        assert!(!is_well_formed_key(&key.replacen("chk_", "chx_", 1)));
        assert!(!is_well_formed_key("chk_abc"));
    }

    #[test]
    fn scopes_follow_method_and_path() {
        assert_eq!(
            required_scope(&Method::GET, "/api/v1/jobs"),
            ApiKeyScope::Read
        );
        assert_eq!(
            required_scope(&Method::POST, "/api/v1/jobs"),
            ApiKeyScope::Write
        );
        assert_eq!(
            required_scope(&Method::DELETE, "/api/v1/jobs/job_1"),
            ApiKeyScope::Write
        );
        assert_eq!(
            required_scope(&Method::GET, "/api/v1/keys"),
            ApiKeyScope::Admin
        );
        assert_eq!(
            required_scope(&Method::DELETE, "/api/v1/keys/key_1"),
            ApiKeyScope::Admin
        );
        assert_eq!(
            required_scope(&Method::GET, "/api/v1/keysmith"),
            ApiKeyScope::Read
        );
    }
}
