//! `cronhook backup PATH`: an online, consistent copy of the embedded SQLite database.
//!
//! The copy is made with `VACUUM INTO`, which reads one snapshot of the database while other
//! processes (a running `cronhook serve`) go on reading and writing. PostgreSQL is backed up
//! with its own tools.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

use crate::config::{GlobalOptions, redact};

pub async fn backup(options: &GlobalOptions, path: &Path) -> anyhow::Result<()> {
    let url = options.database_url.as_str();
    if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        bail!(
            "`cronhook backup` copies the embedded SQLite database; DATABASE_URL names PostgreSQL, \
             so use pg_dump instead (e.g. `pg_dump --format=custom --file=cronhook.dump \
             \"$DATABASE_URL\"`, restored with pg_restore)"
        );
    }
    if !url.starts_with("sqlite:") {
        bail!(
            "DATABASE_URL: `{}` must start with sqlite:// or postgres://",
            redact(url)
        );
    }
    let database = sqlite_file(url);
    if !database.is_file() {
        bail!(
            "there is no database at {} (DATABASE_URL); nothing to back up",
            database.display()
        );
    }
    if std::fs::symlink_metadata(path).is_ok() {
        bail!(
            "{} already exists; a backup never overwrites a file, so name a new one",
            path.display()
        );
    }
    let store = cronhook_store_sqlite::SqliteStore::open(url)
        .await
        .with_context(|| format!("opening the SQLite database {}", database.display()))?;
    let result = store.backup_to(path).await;
    store.close().await;
    result.with_context(|| format!("writing the backup to {}", path.display()))?;
    crate::print_line(&format!(
        "backed up {} to {}",
        database.display(),
        path.display()
    ));
    Ok(())
}

/// The file a `sqlite://path?options` URL names.
fn sqlite_file(url: &str) -> PathBuf {
    let path = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:")
        .split('?')
        .next()
        .unwrap_or_default();
    PathBuf::from(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_name_their_file() {
        assert_eq!(
            sqlite_file("sqlite://./data/cronhook.db?mode=rwc"),
            PathBuf::from("./data/cronhook.db")
        );
        assert_eq!(
            sqlite_file("sqlite:///var/lib/c.db"),
            PathBuf::from("/var/lib/c.db")
        );
    }
}
