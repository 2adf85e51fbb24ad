//! Secrets at rest: the one place cronhook encrypts and decrypts.
//!
//! The hierarchy has two levels. A **master key** (`CRONHOOK_SECRET_KEY`, 32 bytes in base64, or
//! the `secret.key` file generated beside the SQLite database) wraps one random **data key** per
//! workspace, stored wrapped on the workspace row. Data keys seal the values of secret request
//! headers, which are stored inside the job's JSON as envelopes `enc:v1:<key version>:<base64 of
//! nonce and ciphertext>`.
//!
//! Both levels use AES-256-GCM with a random 96-bit nonce per encryption and associated data that
//! binds the ciphertext to where it belongs: a wrapped data key to its workspace and version, a
//! sealed value to its workspace, job, field and key version. A ciphertext copied into another
//! row or field therefore fails to decrypt instead of yielding someone else's secret.
//!
//! This is a crate of its own, rather than part of the pure core, because it needs randomness
//! (nonces, keys) and file I/O (the generated key file); everything else that touches secrets
//! calls into it, so no other crate names a cipher.

use std::fmt;
use std::io::Write as _;
use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};

/// The prefix of a sealed value.
pub const ENVELOPE_PREFIX: &str = "enc:v1:";
/// The prefix of a wrapped data key.
const WRAP_PREFIX: &str = "wk1:";
/// The nonce length of AES-GCM.
const NONCE_LEN: usize = 12;
/// The name of the generated key file, beside the SQLite database.
pub const KEY_FILE_NAME: &str = "secret.key";

/// What can go wrong with secrets.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    /// A master key that is not 32 bytes of base64.
    #[error("the secret key is not 32 bytes in base64 (make one with `openssl rand -base64 32`)")]
    InvalidKey,
    /// A wrapped data key whose master key is not configured.
    #[error(
        "workspace {workspace_id}'s data key is wrapped by master key {key_id}, which is not configured; start cronhook with that key (CRONHOOK_SECRET_KEY may list several keys, current first)"
    )]
    UnknownMasterKey {
        workspace_id: String,
        key_id: String,
    },
    /// Authentication failed: the wrong key, a tampered value, or a value moved elsewhere.
    #[error("a sealed value does not decrypt here (wrong key, tampered, or copied from elsewhere)")]
    Decrypt,
    /// A stored value that is not in the expected format.
    #[error("a sealed value is malformed: {0}")]
    Malformed(&'static str),
    /// The key file could not be read or written.
    #[error("{action} {path}")]
    Io {
        action: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// A master key: wraps data keys. Its `id` (public) names it in wrapped values.
#[derive(Clone)]
pub struct MasterKey {
    bytes: [u8; 32],
    id: String,
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterKey").field("id", &self.id).finish()
    }
}

impl MasterKey {
    fn from_bytes(bytes: [u8; 32]) -> Self {
        let digest = Sha256::new()
            .chain_update(b"cronhook master key id\0")
            .chain_update(bytes)
            .finalize();
        let id = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
        Self { bytes, id }
    }

    /// A key from its base64 text (32 bytes).
    pub fn parse(text: &str) -> Result<Self, SecretsError> {
        let decoded = STANDARD
            .decode(text.trim())
            .map_err(|_| SecretsError::InvalidKey)?;
        let bytes: [u8; 32] = decoded.try_into().map_err(|_| SecretsError::InvalidKey)?;
        Ok(Self::from_bytes(bytes))
    }

    /// A fresh random key.
    pub fn generate() -> Self {
        Self::from_bytes(rand::random())
    }

    /// The key as base64, to write down.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.bytes)
    }

    /// The key's public name (8 hex digits).
    pub fn id(&self) -> &str {
        &self.id
    }
}

/// The configured master keys: the first is current (wraps new data keys); the others only
/// unwrap (during a rotation).
#[derive(Clone, Debug)]
pub struct Keyring {
    keys: Vec<MasterKey>,
}

impl Keyring {
    /// A keyring of `current` and older keys still accepted for unwrapping.
    pub fn new(current: MasterKey, older: Vec<MasterKey>) -> Self {
        let mut keys = vec![current];
        for key in older {
            if !keys.iter().any(|known| known.id == key.id) {
                keys.push(key);
            }
        }
        Self { keys }
    }

    /// Keys as written in `CRONHOOK_SECRET_KEY` or the key file: base64 keys separated by commas,
    /// spaces or lines, current first.
    pub fn parse(text: &str) -> Result<Self, SecretsError> {
        let mut keys = text
            .split([',', '\n', ' ', '\r'])
            .filter(|part| !part.trim().is_empty())
            .map(MasterKey::parse);
        let current = keys.next().ok_or(SecretsError::InvalidKey)??;
        let older = keys.collect::<Result<Vec<_>, _>>()?;
        Ok(Self::new(current, older))
    }

    /// The key that wraps new data keys.
    pub fn current(&self) -> &MasterKey {
        &self.keys[0]
    }

    /// Every key, current first.
    pub fn keys(&self) -> &[MasterKey] {
        &self.keys
    }

    /// The text of the keyring, for a key file: one base64 key a line, current first.
    pub fn to_file_text(&self) -> String {
        let mut text = String::new();
        for key in &self.keys {
            text.push_str(&key.to_base64());
            text.push('\n');
        }
        text
    }

    /// Reads the key file at `path`, or creates it (mode 0600) with a fresh key when missing.
    /// Returns the keyring and whether the file was created.
    pub fn load_or_create(path: &Path) -> Result<(Self, bool), SecretsError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Ok((Self::parse(&text)?, false)),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                let keyring = Self::new(MasterKey::generate(), Vec::new());
                match keyring.write_new_file(path) {
                    Ok(()) => Ok((keyring, true)),
                    // Another process created it first: use theirs.
                    Err(SecretsError::Io { source, .. })
                        if source.kind() == std::io::ErrorKind::AlreadyExists =>
                    {
                        Ok((Self::load_existing(path)?, false))
                    }
                    Err(error) => Err(error),
                }
            }
            Err(source) => Err(SecretsError::Io {
                action: "reading the secret key file",
                path: path.display().to_string(),
                source,
            }),
        }
    }

    fn load_existing(path: &Path) -> Result<Self, SecretsError> {
        let text = std::fs::read_to_string(path).map_err(|source| SecretsError::Io {
            action: "reading the secret key file",
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text)
    }

    /// Writes the keyring to a file that must not exist yet, readable by its owner only.
    pub fn write_new_file(&self, path: &Path) -> Result<(), SecretsError> {
        let io = |action| {
            let path = path.display().to_string();
            move |source| SecretsError::Io {
                action,
                path,
                source,
            }
        };
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o600);
        }
        let mut file = options
            .open(path)
            .map_err(io("creating the secret key file"))?;
        file.write_all(self.to_file_text().as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(io("writing the secret key file"))
    }

    /// Replaces the key file at `path` atomically (a 0600 temporary file renamed over it).
    pub fn replace_file(&self, path: &Path) -> Result<(), SecretsError> {
        let temporary = path.with_extension("key.tmp");
        let _ = std::fs::remove_file(&temporary);
        self.write_new_file(&temporary)?;
        std::fs::rename(&temporary, path).map_err(|source| SecretsError::Io {
            action: "replacing the secret key file",
            path: path.display().to_string(),
            source,
        })
    }

    /// A new random data key of `version`.
    pub fn new_data_key(version: u32) -> DataKey {
        DataKey {
            bytes: rand::random(),
            version,
        }
    }

    /// `data_key` wrapped by the current master key, for the row of `workspace_id`.
    pub fn wrap(&self, workspace_id: &str, data_key: &DataKey) -> String {
        wrap_with(self.current(), workspace_id, data_key)
    }

    /// The data key in a stored wrapped value (one wrap, or several separated by spaces during a
    /// rotation), unwrapped by whichever configured master key made one of them.
    pub fn unwrap(&self, workspace_id: &str, stored: &str) -> Result<DataKey, SecretsError> {
        let mut unknown = None;
        for wrapped in stored.split(' ').filter(|part| !part.is_empty()) {
            let rest = wrapped
                .strip_prefix(WRAP_PREFIX)
                .ok_or(SecretsError::Malformed("a wrapped key lacks `wk1:`"))?;
            let mut parts = rest.splitn(3, ':');
            let (Some(key_id), Some(version), Some(sealed)) =
                (parts.next(), parts.next(), parts.next())
            else {
                return Err(SecretsError::Malformed("a wrapped key lacks a part"));
            };
            let version: u32 = version
                .parse()
                .map_err(|_| SecretsError::Malformed("a wrapped key's version"))?;
            let Some(master) = self.keys.iter().find(|key| key.id == key_id) else {
                unknown = Some(key_id.to_owned());
                continue;
            };
            let plain = decrypt(&master.bytes, &wrap_binding(workspace_id, version), sealed)?;
            let bytes: [u8; 32] = plain
                .try_into()
                .map_err(|_| SecretsError::Malformed("a data key is not 32 bytes"))?;
            return Ok(DataKey { bytes, version });
        }
        Err(SecretsError::UnknownMasterKey {
            workspace_id: workspace_id.to_owned(),
            key_id: unknown.unwrap_or_default(),
        })
    }

    /// The stored value re-wrapped for a rotation: the data key wrapped by the current key first,
    /// then (when `keep_previous`) by the key that unwrapped it, so nodes still running with the
    /// old key keep working until they restart with the new one.
    pub fn rewrap(
        &self,
        workspace_id: &str,
        stored: &str,
        keep_previous: bool,
    ) -> Result<String, SecretsError> {
        let data_key = self.unwrap(workspace_id, stored)?;
        let mut wrapped = self.wrap(workspace_id, &data_key);
        if keep_previous {
            for older in self.keys.iter().skip(1) {
                wrapped.push(' ');
                wrapped.push_str(&wrap_with(older, workspace_id, &data_key));
            }
        }
        Ok(wrapped)
    }
}

fn wrap_with(master: &MasterKey, workspace_id: &str, data_key: &DataKey) -> String {
    let sealed = encrypt(
        &master.bytes,
        &wrap_binding(workspace_id, data_key.version),
        &data_key.bytes,
    );
    format!("{WRAP_PREFIX}{}:{}:{sealed}", master.id, data_key.version)
}

fn wrap_binding(workspace_id: &str, version: u32) -> Vec<u8> {
    format!("cronhook data key v1\0{workspace_id}\0{version}").into_bytes()
}

/// A workspace's data key: seals its secret header values.
#[derive(Clone)]
pub struct DataKey {
    bytes: [u8; 32],
    version: u32,
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataKey")
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

impl DataKey {
    /// The key's version, written into every envelope it seals.
    pub fn version(&self) -> u32 {
        self.version
    }
}

/// Where a sealed value belongs; its associated data.
#[derive(Debug, Clone, Copy)]
pub struct Binding<'a> {
    pub workspace_id: &'a str,
    pub job_id: &'a str,
    /// The field, e.g. `request.headers.authorization` (header names lowercased).
    pub field: &'a str,
}

impl Binding<'_> {
    fn associated_data(&self, version: u32) -> Vec<u8> {
        format!(
            "cronhook secret v1\0{}\0{}\0{}\0{version}",
            self.workspace_id, self.job_id, self.field
        )
        .into_bytes()
    }
}

/// Whether a stored value is a sealed envelope.
pub fn is_sealed(value: &str) -> bool {
    value.starts_with(ENVELOPE_PREFIX)
}

/// Seals `plaintext` for `binding`: `enc:v1:<version>:<base64>`.
pub fn seal(key: &DataKey, binding: Binding<'_>, plaintext: &str) -> String {
    let sealed = encrypt(
        &key.bytes,
        &binding.associated_data(key.version),
        plaintext.as_bytes(),
    );
    format!("{ENVELOPE_PREFIX}{}:{sealed}", key.version)
}

/// The plaintext of an envelope sealed for `binding`. Fails on any other binding, key or
/// version, and on tampering.
pub fn open(key: &DataKey, binding: Binding<'_>, envelope: &str) -> Result<String, SecretsError> {
    let rest = envelope
        .strip_prefix(ENVELOPE_PREFIX)
        .ok_or(SecretsError::Malformed("an envelope lacks `enc:v1:`"))?;
    let (version, sealed) = rest
        .split_once(':')
        .ok_or(SecretsError::Malformed("an envelope lacks its key version"))?;
    let version: u32 = version
        .parse()
        .map_err(|_| SecretsError::Malformed("an envelope's key version"))?;
    if version != key.version {
        return Err(SecretsError::Decrypt);
    }
    let plain = decrypt(&key.bytes, &binding.associated_data(version), sealed)?;
    String::from_utf8(plain).map_err(|_| SecretsError::Malformed("a sealed value is not UTF-8"))
}

fn encrypt(key: &[u8; 32], associated_data: &[u8], plaintext: &[u8]) -> String {
    let cipher = Aes256Gcm::new(&(*key).into());
    let nonce_bytes: [u8; NONCE_LEN] = rand::random();
    let nonce = Nonce::from(nonce_bytes);
    // AES-GCM fails only past 64 GiB of plaintext; header values are at most 8 KiB.
    let ciphertext = cipher
        .encrypt(
            &nonce,
            Payload {
                msg: plaintext,
                aad: associated_data,
            },
        )
        .unwrap_or_default();
    let mut out = Vec::with_capacity(NONCE_LEN + ciphertext.len());
    out.extend_from_slice(&nonce_bytes);
    out.extend_from_slice(&ciphertext);
    STANDARD.encode(out)
}

fn decrypt(key: &[u8; 32], associated_data: &[u8], sealed: &str) -> Result<Vec<u8>, SecretsError> {
    let bytes = STANDARD
        .decode(sealed)
        .map_err(|_| SecretsError::Malformed("not base64"))?;
    if bytes.len() < NONCE_LEN + 16 {
        return Err(SecretsError::Malformed("too short"));
    }
    let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
    let nonce: [u8; NONCE_LEN] = nonce
        .try_into()
        .map_err(|_| SecretsError::Malformed("nonce"))?;
    let cipher = Aes256Gcm::new(&(*key).into());
    cipher
        .decrypt(
            &Nonce::from(nonce),
            Payload {
                msg: ciphertext,
                aad: associated_data,
            },
        )
        .map_err(|_| SecretsError::Decrypt)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding<'a>(job: &'a str, field: &'a str) -> Binding<'a> {
        Binding {
            workspace_id: "wsp_a",
            job_id: job,
            field,
        }
    }

    #[test]
    fn a_sealed_value_opens_only_where_it_was_sealed() {
        let key = Keyring::new_data_key(1);
        let sealed = seal(
            &key,
            binding("job_1", "request.headers.authorization"),
            "Bearer x",
        );
        assert!(is_sealed(&sealed));
        assert!(sealed.starts_with("enc:v1:1:"));
        assert!(!sealed.contains("Bearer"));
        assert_eq!(
            open(
                &key,
                binding("job_1", "request.headers.authorization"),
                &sealed
            )
            .expect("opens"),
            "Bearer x"
        );
        // Another job, another field, another workspace, another key: all refused.
        for (job, field) in [
            ("job_2", "request.headers.authorization"),
            ("job_1", "request.headers.x-api-key"),
        ] {
            assert!(matches!(
                open(&key, binding(job, field), &sealed),
                Err(SecretsError::Decrypt)
            ));
        }
        let elsewhere = Binding {
            workspace_id: "wsp_b",
            job_id: "job_1",
            field: "request.headers.authorization",
        };
        assert!(open(&key, elsewhere, &sealed).is_err());
        assert!(
            open(
                &Keyring::new_data_key(1),
                binding("job_1", "request.headers.authorization"),
                &sealed
            )
            .is_err()
        );
        // The version is bound too: the same key bytes claimed as version 2 fail.
        let bumped = sealed.replacen("enc:v1:1:", "enc:v1:2:", 1);
        assert!(
            open(
                &key,
                binding("job_1", "request.headers.authorization"),
                &bumped
            )
            .is_err()
        );
        // Two seals of one value differ (random nonces).
        assert_ne!(
            sealed,
            seal(
                &key,
                binding("job_1", "request.headers.authorization"),
                "Bearer x"
            )
        );
    }

    #[test]
    fn tampering_is_detected() {
        let key = Keyring::new_data_key(3);
        let sealed = seal(&key, binding("job_1", "f"), "secret");
        let mut bytes = STANDARD
            .decode(sealed.trim_start_matches("enc:v1:3:"))
            .expect("base64");
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let tampered = format!("enc:v1:3:{}", STANDARD.encode(bytes));
        assert!(open(&key, binding("job_1", "f"), &tampered).is_err());
        assert!(open(&key, binding("job_1", "f"), "enc:v1:3:AAAA").is_err());
        assert!(open(&key, binding("job_1", "f"), "plain").is_err());
    }

    #[test]
    fn data_keys_are_wrapped_per_workspace_and_survive_a_rotation() {
        let old = Keyring::new(MasterKey::generate(), Vec::new());
        let data_key = Keyring::new_data_key(1);
        let wrapped = old.wrap("wsp_a", &data_key);
        assert!(!wrapped.contains(&STANDARD.encode(data_key.bytes)));
        let unwrapped = old.unwrap("wsp_a", &wrapped).expect("unwraps");
        assert_eq!(unwrapped.bytes, data_key.bytes);
        assert_eq!(unwrapped.version, 1);
        // Copied to another workspace's row: refused.
        assert!(matches!(
            old.unwrap("wsp_b", &wrapped),
            Err(SecretsError::Decrypt)
        ));

        // Rotation: the new keyring (new current, old kept) re-wraps under both.
        let new = Keyring::new(MasterKey::generate(), vec![old.current().clone()]);
        let rotated = new.rewrap("wsp_a", &wrapped, true).expect("rewraps");
        assert!(rotated.starts_with(&format!("wk1:{}:", new.current().id())));
        // A node still on the old key unwraps the old wrap; one on the new key the new wrap.
        assert_eq!(
            old.unwrap("wsp_a", &rotated).expect("old node").bytes,
            data_key.bytes
        );
        let new_only = Keyring::new(new.current().clone(), Vec::new());
        assert_eq!(
            new_only.unwrap("wsp_a", &rotated).expect("new node").bytes,
            data_key.bytes
        );
        // Finishing drops the old wrap: the old key alone no longer opens it.
        let finished = new_only.rewrap("wsp_a", &rotated, false).expect("finish");
        assert!(matches!(
            old.unwrap("wsp_a", &finished),
            Err(SecretsError::UnknownMasterKey { .. })
        ));
    }

    #[test]
    fn keys_parse_and_key_files_are_private() {
        assert!(MasterKey::parse("short").is_err());
        assert!(MasterKey::parse(&STANDARD.encode([0u8; 16])).is_err());
        let key = MasterKey::generate();
        let again = MasterKey::parse(&key.to_base64()).expect("parses");
        assert_eq!(again.id(), key.id());
        assert!(!format!("{key:?}").contains(&key.to_base64()));

        let two = Keyring::parse(&format!(
            "{}, {}",
            key.to_base64(),
            MasterKey::generate().to_base64()
        ))
        .expect("two keys");
        assert_eq!(two.keys().len(), 2);
        assert_eq!(two.current().id(), key.id());

        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join(KEY_FILE_NAME);
        let (created, fresh) = Keyring::load_or_create(&path).expect("created");
        assert!(fresh);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let (loaded, fresh) = Keyring::load_or_create(&path).expect("loaded");
        assert!(!fresh);
        assert_eq!(loaded.current().id(), created.current().id());

        let rotated = Keyring::new(MasterKey::generate(), vec![created.current().clone()]);
        rotated.replace_file(&path).expect("replaced");
        let (reloaded, _) = Keyring::load_or_create(&path).expect("reloaded");
        assert_eq!(reloaded.keys().len(), 2);
        assert_eq!(reloaded.current().id(), rotated.current().id());
    }
}
