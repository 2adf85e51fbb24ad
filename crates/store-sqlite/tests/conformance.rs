//! The store conformance suite against SQLite, one fresh database file per check, and the
//! SQLite-specific behaviour of opening and migrating.

use cronhook_store::{Store, conformance};
use cronhook_store_sqlite::SqliteStore;
use tempfile::TempDir;

/// A migrated store in a fresh file; the directory lives as long as the returned guard.
async fn fresh() -> (SqliteStore, TempDir) {
    let dir = TempDir::new().expect("create a temporary directory");
    let url = format!("sqlite://{}", dir.path().join("cronhook.db").display());
    let store = SqliteStore::open(&url).await.expect("open the store");
    store.migrate().await.expect("migrate");
    (store, dir)
}

macro_rules! conformance_tests {
    ($($check:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $check() {
                let (store, _dir) = fresh().await;
                conformance::$check(&store).await;
            }
        )*
    };
}

conformance_tests!(
    jobs_round_trip,
    names_are_unique_per_workspace,
    workspaces_do_not_see_each_other,
    pagination_walks_every_item_once,
    materialize_is_exactly_once,
    materialize_skips_when_the_job_changed,
    large_batches_are_written_whole,
    edits_discard_prepared_executions,
    forbid_records_skipped,
    replace_cancels_unfinished,
    retention_prunes_by_age_status_and_keep_last,
    keep_last_pruning_reaches_every_job_in_small_batches,
    released_leases_are_taken_over_at_once,
    released_prepared_executions_wait_for_their_instant,
    nodes_report_themselves,
    the_database_clock_is_read_and_followed,
    insert_execution_refuses_duplicates,
    due_jobs_come_in_firing_order,
    due_jobs_read_many_whole_and_in_order,
    due_jobs_follow_every_edit,
    claim_takes_each_execution_once,
    expired_leases_are_taken_over_and_flagged_interrupted,
    stale_results_are_fenced_out,
    retrying_keeps_the_lease_and_run_at,
    leases_are_renewed,
    executions_list_newest_first_with_attempts_and_status_filter,
    history_follows_the_schedule_and_pages_by_instant,
    histories_of_each_status_page_newest_first,
    delete_cascades,
    signing_secret_rotation,
    api_keys_and_users,
);

/// Every check, one after the other, in one database: they must not trip over each other.
#[tokio::test]
async fn all_checks_share_one_database() {
    let (store, _dir) = fresh().await;
    conformance::run_all(&store).await;
}

/// The same checks with several tasks on one store at once, on a multi-threaded runtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn checks_pass_on_a_multi_threaded_runtime() {
    let (store, _dir) = fresh().await;
    let store: std::sync::Arc<dyn Store> = std::sync::Arc::new(store);
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            conformance::materialize_is_exactly_once(store.as_ref()).await;
            conformance::stale_results_are_fenced_out(store.as_ref()).await;
            conformance::executions_list_newest_first_with_attempts_and_status_filter(
                store.as_ref(),
            )
            .await;
        }));
    }
    for task in tasks {
        task.await.expect("the checks pass");
    }
}

#[tokio::test]
async fn open_creates_the_file_and_its_directories() {
    let dir = TempDir::new().expect("create a temporary directory");
    let path = dir.path().join("not").join("there").join("cronhook.db");
    let store = SqliteStore::open(&format!("sqlite://{}", path.display()))
        .await
        .expect("open the store");
    assert!(path.is_file(), "the database file is created");
    assert!(
        store.ping().await.is_err(),
        "an unmigrated database is not ready"
    );
    store.migrate().await.expect("migrate");
    store.ping().await.expect("a migrated database is ready");
}

#[tokio::test]
async fn migrating_twice_is_a_no_op() {
    let (store, _dir) = fresh().await;
    conformance::api_keys_and_users(&store).await;
    store.migrate().await.expect("migrate again");
    store.ping().await.expect("ready");
    conformance::api_keys_and_users(&store).await;
}

#[tokio::test]
async fn data_survives_closing_and_reopening() {
    let dir = TempDir::new().expect("create a temporary directory");
    let url = format!("sqlite://{}", dir.path().join("cronhook.db").display());
    let store = SqliteStore::open(&url).await.expect("open");
    store.migrate().await.expect("migrate");
    conformance::jobs_round_trip(&store).await;
    let created = cronhook_store::Workspace {
        id: cronhook_core::ids::new_id(cronhook_core::ids::WORKSPACE),
        slug: "survivor".to_owned(),
        signing_secret: "whsec_survivor".to_owned(),
        previous_signing_secret: None,
        signing_secret_rotated_at: None,
        created_at: chrono::DateTime::from_timestamp_millis(1_780_000_000_123)
            .expect("a valid instant"),
    };
    store.create_workspace(&created).await.expect("create");
    store.close().await;
    drop(store);

    let reopened = SqliteStore::open(&url).await.expect("reopen");
    reopened.ping().await.expect("still migrated");
    reopened.migrate().await.expect("migrate is a no-op");
    assert_eq!(
        reopened.workspace_by_slug("survivor").await.expect("read"),
        Some(created)
    );
}

#[tokio::test]
async fn in_memory_urls_are_refused() {
    assert!(SqliteStore::open("sqlite::memory:").await.is_err());
}

#[tokio::test]
async fn instants_are_kept_to_the_millisecond() {
    let (store, _dir) = fresh().await;
    let precise =
        chrono::DateTime::from_timestamp(1_780_000_000, 123_456_789).expect("a valid instant");
    let workspace = cronhook_store::Workspace {
        id: cronhook_core::ids::new_id(cronhook_core::ids::WORKSPACE),
        slug: "precise".to_owned(),
        signing_secret: "whsec_p".to_owned(),
        previous_signing_secret: None,
        signing_secret_rotated_at: None,
        created_at: precise,
    };
    store.create_workspace(&workspace).await.expect("create");
    let read = store
        .workspace(&workspace.id)
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(
        read.created_at.timestamp_nanos_opt(),
        Some(1_780_000_000_123_000_000)
    );
}

/// Dashboard sessions, first-run setup and execution overviews.
mod sessions_conformance {
    use super::fresh;
    use cronhook_store::conformance_sessions;

    #[tokio::test]
    async fn sessions_expire_touch_and_end() {
        let (store, _dir) = fresh().await;
        conformance_sessions::sessions_expire_touch_and_end(&store).await;
    }

    #[tokio::test]
    async fn first_user_is_created_once() {
        let (store, _dir) = fresh().await;
        conformance_sessions::first_user_is_created_once(&store).await;
    }

    #[tokio::test]
    async fn execution_points_are_newest_first_and_scoped() {
        let (store, _dir) = fresh().await;
        conformance_sessions::execution_points_are_newest_first_and_scoped(&store).await;
    }
}

/// Security checks: API key management, data keys, and sealed secret headers (with a sealer).
mod security {
    use cronhook_secrets::{Keyring, MasterKey};
    use cronhook_store::{Sealer, conformance_security};

    #[tokio::test]
    async fn api_keys_are_listed_revoked_and_touched() {
        let (store, _dir) = super::fresh().await;
        conformance_security::api_keys_are_listed_revoked_and_touched(&store).await;
    }

    #[tokio::test]
    async fn data_keys_are_compare_and_set() {
        let (store, _dir) = super::fresh().await;
        conformance_security::data_keys_are_compare_and_set(&store).await;
    }

    #[tokio::test]
    async fn sealed_headers_read_back_in_the_clear() {
        let (store, dir) = super::fresh().await;
        let store = store.with_sealer(Sealer::new(Keyring::new(MasterKey::generate(), Vec::new())));
        conformance_security::sealed_headers_read_back_in_the_clear(&store).await;
        store.close().await;
        // The secret is nowhere in the database files.
        for entry in std::fs::read_dir(dir.path()).expect("dir") {
            let bytes = std::fs::read(entry.expect("entry").path()).expect("read");
            let text = String::from_utf8_lossy(&bytes);
            assert!(!text.contains("sealed-canary"), "plaintext secret on disk");
            assert!(!text.contains("Bearer changed"), "plaintext secret on disk");
        }
    }
}

/// Alert channels, the alert rules in `record_attempts`, and the alert outbox.
mod alerts_conformance {
    use std::sync::Arc;

    use super::fresh;
    use cronhook_store::{Store, conformance_alerts};

    #[tokio::test]
    async fn record_attempts_raises_alerts_once_per_streak() {
        let (store, _dir) = fresh().await;
        conformance_alerts::record_attempts_raises_alerts_once_per_streak(&store).await;
    }

    #[tokio::test]
    async fn successes_in_one_batch_end_only_the_streaks_there_are() {
        let (store, _dir) = fresh().await;
        conformance_alerts::successes_in_one_batch_end_only_the_streaks_there_are(&store).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn alerts_are_claimed_once_under_concurrency() {
        let (store, _dir) = fresh().await;
        let store: Arc<dyn Store> = Arc::new(store);
        conformance_alerts::alerts_are_claimed_once_under_concurrency(store).await;
    }

    #[tokio::test]
    async fn alert_leases_are_taken_over_and_outcomes_fenced() {
        let (store, _dir) = fresh().await;
        conformance_alerts::alert_leases_are_taken_over_and_outcomes_fenced(&store).await;
    }

    #[tokio::test]
    async fn channels_round_trip_and_stay_in_their_workspace() {
        let (store, _dir) = fresh().await;
        conformance_alerts::channels_round_trip_and_stay_in_their_workspace(&store).await;
    }
}
