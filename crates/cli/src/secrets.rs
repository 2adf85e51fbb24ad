//! `cronhook secrets rotate-key`: re-wraps every workspace's data key under a new master key,
//! online.
//!
//! The procedure (also in the README):
//! 1. `cronhook secrets rotate-key` (optionally `--new-secret-key`): every data key is wrapped
//!    by the new key, and the wrap by the old key is kept beside it, so nodes still running with
//!    the old key keep working. The new keyring (new key, then old key) is written to a file.
//! 2. Restart every node with that keyring (`CRONHOOK_SECRET_KEY=new,old`, or the rewritten
//!    `secret.key` of a SQLite installation, which is picked up on the next start).
//! 3. `cronhook secrets rotate-key --finish` with the new key alone: the old wraps are dropped,
//!    and the old key can be destroyed.
//!
//! Each workspace is updated with a compare-and-set, so a concurrent change (a node creating the
//! workspace's first data key) is re-read and re-wrapped rather than overwritten.

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use cronhook_secrets::{Keyring, MasterKey};

use crate::config::{GlobalOptions, KeySource};

/// Runs the rotation; prints where the new keyring was written.
pub async fn rotate_key(
    global: &GlobalOptions,
    new_secret_key: Option<String>,
    key_file: Option<PathBuf>,
    finish: bool,
) -> anyhow::Result<()> {
    let (current, source) = crate::config::keyring(global)?;
    let store = crate::config::open_store(global).await?;
    let keyring = if finish {
        Keyring::new(current.current().clone(), current.keys()[1..].to_vec())
    } else {
        let new_key = match new_secret_key {
            Some(text) => MasterKey::parse(&text).context("--new-secret-key")?,
            None => MasterKey::generate(),
        };
        if current.keys().iter().any(|key| key.id() == new_key.id()) {
            bail!("--new-secret-key is already one of the configured keys");
        }
        Keyring::new(new_key, current.keys().to_vec())
    };

    let mut rewrapped = 0usize;
    for (workspace_id, stored) in store.wrapped_data_keys().await? {
        let mut stored = stored;
        loop {
            let wrapped = keyring
                .rewrap(&workspace_id, &stored, !finish)
                .with_context(|| format!("re-wrapping workspace {workspace_id}'s data key"))?;
            if store
                .replace_wrapped_data_key(&workspace_id, Some(&stored), &wrapped)
                .await?
            {
                rewrapped += 1;
                break;
            }
            match store.wrapped_data_key(&workspace_id).await? {
                Some(now) => stored = now,
                None => break,
            }
        }
    }
    tracing::info!(workspaces = rewrapped, finish, "data keys re-wrapped");
    if finish {
        print_line(&format!(
            "re-wrapped {rewrapped} workspace data keys under key {} alone; older keys may now be destroyed",
            keyring.current().id()
        ));
        return Ok(());
    }

    let target = match (key_file, &source) {
        (Some(path), _) => path,
        (None, KeySource::File(path)) => path.clone(),
        (None, KeySource::Configured) => PathBuf::from("secret.key.new"),
    };
    let replacing_own_file = matches!(&source, KeySource::File(path) if *path == target);
    if replacing_own_file {
        keyring.replace_file(&target)?;
    } else {
        keyring.write_new_file(&target)?;
    }
    print_line(&format!(
        "re-wrapped {rewrapped} workspace data keys under new key {}; the new keyring (new key first, old key second) is in {}",
        keyring.current().id(),
        target.display()
    ));
    Ok(())
}

#[allow(clippy::print_stdout)]
fn print_line(text: &str) {
    println!("{text}");
}
