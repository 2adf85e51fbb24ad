//! Sealing secret header values at the store boundary.
//!
//! Both backends call [`Sealer::seal_spec`] right before a job's spec is written and
//! [`Sealer::open_spec`] right after one is read, so every caller above the store (API, CLI,
//! dashboard, scheduler, executor) handles plaintext specs and no caller can forget to encrypt:
//! the only places that touch ciphertext are the few store methods that read or write the `spec`
//! column. The cipher itself lives in `cronhook-secrets`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use cronhook_core::JobSpec;
use cronhook_core::secrets::is_secret_header;
use cronhook_secrets::{Binding, DataKey, Keyring, SecretsError};

use crate::{StoreError, StoreResult, WorkspaceKeyStore};

/// Seals and opens the secret headers of job specs with per-workspace data keys.
///
/// Without a keyring ([`Sealer::disabled`], for tests of other parts) specs pass through as
/// they are; the binary always configures one.
#[derive(Default)]
pub struct Sealer {
    keyring: Option<Arc<Keyring>>,
    /// Unwrapped data keys by workspace id. Data keys never change (a master key rotation
    /// re-wraps the same key), so entries never go stale.
    cache: Mutex<HashMap<String, Arc<DataKey>>>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer")
            .field("enabled", &self.keyring.is_some())
            .finish_non_exhaustive()
    }
}

fn corrupt(error: SecretsError) -> StoreError {
    StoreError::Corrupt(error.to_string())
}

/// The field name a header's value is bound to.
fn header_field(name: &str) -> String {
    format!("request.headers.{}", name.to_ascii_lowercase())
}

impl Sealer {
    /// A sealer with the master keys of `keyring`.
    pub fn new(keyring: Keyring) -> Self {
        Self {
            keyring: Some(Arc::new(keyring)),
            cache: Mutex::default(),
        }
    }

    /// A sealer that stores specs as they are.
    pub fn disabled() -> Self {
        Self::default()
    }

    /// Whether values are sealed.
    pub fn is_enabled(&self) -> bool {
        self.keyring.is_some()
    }

    /// The workspace's data key: cached, or unwrapped from the store, or (when `create`) made,
    /// wrapped and stored. `None` when there is none and `create` is false.
    async fn data_key(
        &self,
        keyring: &Keyring,
        keys: &dyn WorkspaceKeyStore,
        workspace_id: &str,
        create: bool,
    ) -> StoreResult<Option<Arc<DataKey>>> {
        if let Some(key) = self
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(workspace_id)
        {
            return Ok(Some(key.clone()));
        }
        let mut stored = keys.wrapped_data_key(workspace_id).await?;
        if stored.is_none() && create {
            let fresh = Keyring::new_data_key(1);
            let wrapped = keyring.wrap(workspace_id, &fresh);
            if keys
                .replace_wrapped_data_key(workspace_id, None, &wrapped)
                .await?
            {
                stored = Some(wrapped);
            } else {
                // Another node made one first (or the workspace is gone).
                stored = keys.wrapped_data_key(workspace_id).await?;
            }
        }
        let Some(stored) = stored else {
            return if create {
                Err(StoreError::NotFound)
            } else {
                Ok(None)
            };
        };
        let key = Arc::new(keyring.unwrap(workspace_id, &stored).map_err(corrupt)?);
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(workspace_id.to_owned(), key.clone());
        Ok(Some(key))
    }

    /// A copy of `spec` with every secret header value sealed for (workspace, job, header).
    pub async fn seal_spec(
        &self,
        keys: &dyn WorkspaceKeyStore,
        workspace_id: &str,
        job_id: &str,
        spec: &JobSpec,
    ) -> StoreResult<JobSpec> {
        let mut sealed = spec.clone();
        let Some(keyring) = &self.keyring else {
            return Ok(sealed);
        };
        if !sealed
            .request
            .headers
            .keys()
            .any(|name| is_secret_header(name))
        {
            return Ok(sealed);
        }
        let key = self
            .data_key(keyring, keys, workspace_id, true)
            .await?
            .ok_or(StoreError::NotFound)?;
        for (name, value) in &mut sealed.request.headers {
            if is_secret_header(name) {
                let field = header_field(name);
                let binding = Binding {
                    workspace_id,
                    job_id,
                    field: &field,
                };
                *value = cronhook_secrets::seal(&key, binding, value);
            }
        }
        Ok(sealed)
    }

    /// Opens every sealed secret header value of a spec read back for (workspace, job). A value
    /// that does not open (moved from another row or field, tampered, or an unknown key) is
    /// `Corrupt`.
    pub async fn open_spec(
        &self,
        keys: &dyn WorkspaceKeyStore,
        workspace_id: &str,
        job_id: &str,
        spec: &mut JobSpec,
    ) -> StoreResult<()> {
        let Some(keyring) = &self.keyring else {
            return Ok(());
        };
        let sealed_present = spec
            .request
            .headers
            .iter()
            .any(|(name, value)| is_secret_header(name) && cronhook_secrets::is_sealed(value));
        if !sealed_present {
            return Ok(());
        }
        let key = self
            .data_key(keyring, keys, workspace_id, false)
            .await?
            .ok_or_else(|| {
                StoreError::Corrupt(format!(
                    "job `{job_id}` holds sealed values but its workspace has no data key"
                ))
            })?;
        for (name, value) in &mut spec.request.headers {
            if is_secret_header(name) && cronhook_secrets::is_sealed(value) {
                let field = header_field(name);
                let binding = Binding {
                    workspace_id,
                    job_id,
                    field: &field,
                };
                *value = cronhook_secrets::open(&key, binding, value).map_err(|error| {
                    StoreError::Corrupt(format!("header `{name}` of job `{job_id}`: {error}"))
                })?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Mutex;

    use async_trait::async_trait;
    use cronhook_secrets::MasterKey;

    use super::*;

    #[derive(Default)]
    struct Keys(Mutex<HashMap<String, String>>);

    #[async_trait]
    impl WorkspaceKeyStore for Keys {
        async fn wrapped_data_key(&self, workspace_id: &str) -> StoreResult<Option<String>> {
            Ok(self.0.lock().expect("lock").get(workspace_id).cloned())
        }
        async fn replace_wrapped_data_key(
            &self,
            workspace_id: &str,
            expected: Option<&str>,
            new: &str,
        ) -> StoreResult<bool> {
            let mut keys = self.0.lock().expect("lock");
            if keys.get(workspace_id).map(String::as_str) != expected {
                return Ok(false);
            }
            keys.insert(workspace_id.to_owned(), new.to_owned());
            Ok(true)
        }
        async fn wrapped_data_keys(&self) -> StoreResult<Vec<(String, String)>> {
            Ok(self
                .0
                .lock()
                .expect("lock")
                .iter()
                .map(|(a, b)| (a.clone(), b.clone()))
                .collect())
        }
    }

    fn spec() -> JobSpec {
        serde_json::from_value(serde_json::json!({
            "name": "n",
            "schedule": {"cron": "* * * * *"},
            "request": {
                "url": "https://example.com/",
                "headers": {"Authorization": "Bearer canary", "X-Token": "t0k3n", "Accept": "a/b"}
            }
        }))
        .expect("spec")
    }

    #[tokio::test]
    async fn secrets_are_sealed_and_a_copied_ciphertext_does_not_open() {
        let keys = Keys::default();
        let sealer = Sealer::new(Keyring::new(MasterKey::generate(), Vec::new()));
        let sealed = sealer
            .seal_spec(&keys, "wsp_a", "job_1", &spec())
            .await
            .expect("seal");
        let headers = &sealed.request.headers;
        assert!(cronhook_secrets::is_sealed(&headers["Authorization"]));
        assert!(cronhook_secrets::is_sealed(&headers["X-Token"]));
        assert_eq!(headers["Accept"], "a/b", "other headers stay as they are");
        assert!(
            !serde_json::to_string(&sealed)
                .expect("json")
                .contains("canary")
        );

        let mut opened = sealed.clone();
        sealer
            .open_spec(&keys, "wsp_a", "job_1", &mut opened)
            .await
            .expect("open");
        assert_eq!(opened, spec());

        // The same ciphertext in another job's row, or in another header, does not open.
        let mut moved = sealed.clone();
        assert!(matches!(
            sealer.open_spec(&keys, "wsp_a", "job_2", &mut moved).await,
            Err(StoreError::Corrupt(_))
        ));
        let mut swapped = sealed.clone();
        let token = swapped.request.headers["X-Token"].clone();
        swapped
            .request
            .headers
            .insert("Authorization".into(), token);
        assert!(
            sealer
                .open_spec(&keys, "wsp_a", "job_1", &mut swapped)
                .await
                .is_err()
        );
        // A fresh process (empty cache) with the same master key opens it; another key does not.
        let restarted = Sealer {
            keyring: sealer.keyring.clone(),
            cache: Mutex::default(),
        };
        let mut again = sealed.clone();
        restarted
            .open_spec(&keys, "wsp_a", "job_1", &mut again)
            .await
            .expect("open after restart");
        let stranger = Sealer::new(Keyring::new(MasterKey::generate(), Vec::new()));
        let mut other = sealed;
        assert!(
            stranger
                .open_spec(&keys, "wsp_a", "job_1", &mut other)
                .await
                .is_err()
        );
    }
}
