//! Conformance checks for API key management and sealed secrets (`ApiKeyStore`,
//! `WorkspaceKeyStore`, and the backends' use of `Sealer`).

use chrono::{DateTime, Duration};
use cronhook_core::{Job, JobSpec, ids};

use cronhook_core::Trigger;

use crate::conformance::{new_workspace, now};
use crate::{ApiKey, ApiKeyScope, Lease, NewExecution, PageRequest, Store, Workspace};

fn key(workspace: &Workspace, scope: ApiKeyScope) -> ApiKey {
    let id = ids::new_id(ids::API_KEY);
    ApiKey {
        key_hash: format!("hash-{id}"),
        id,
        workspace_id: workspace.id.clone(),
        name: format!("{scope} key"),
        scope,
        created_at: now(),
        last_used_at: None,
        revoked_at: None,
    }
}

/// Keys keep their scope, list per workspace in creation order, revoke once (the revoked key
/// still reads back, with `revoked_at`), and `touch` writes at most once a minute.
pub async fn api_keys_are_listed_revoked_and_touched(store: &dyn Store) {
    let workspace = new_workspace(store).await;
    let other = new_workspace(store).await;
    let read = key(&workspace, ApiKeyScope::Read);
    let admin = key(&workspace, ApiKeyScope::Admin);
    let foreign = key(&other, ApiKeyScope::Write);
    for k in [&read, &admin, &foreign] {
        store.insert_api_key(k).await.expect("insert a key");
    }
    let listed = store.list_api_keys(&workspace.id).await.expect("list");
    assert_eq!(listed, vec![read.clone(), admin.clone()]);
    assert_eq!(
        store
            .api_key_by_hash(&read.key_hash)
            .await
            .expect("by hash")
            .map(|k| k.scope),
        Some(ApiKeyScope::Read)
    );
    assert_eq!(
        store
            .api_key(&workspace.id, &foreign.id)
            .await
            .expect("read"),
        None,
        "another workspace's key is not found"
    );

    // Revoking another workspace's key does nothing.
    let at = now();
    assert!(
        !store
            .revoke_api_key(&workspace.id, &foreign.id, at)
            .await
            .expect("revoke")
    );
    assert!(
        store
            .revoke_api_key(&workspace.id, &read.id, at)
            .await
            .expect("revoke")
    );
    assert!(
        !store
            .revoke_api_key(&workspace.id, &read.id, at + Duration::seconds(5))
            .await
            .expect("revoke again"),
        "a second revocation changes nothing"
    );
    let revoked = store
        .api_key_by_hash(&read.key_hash)
        .await
        .expect("by hash")
        .expect("still there");
    assert_eq!(revoked.revoked_at, Some(at));
    assert_eq!(
        store
            .api_key(&other.id, &foreign.id)
            .await
            .expect("read")
            .and_then(|k| k.revoked_at),
        None
    );

    // Touch: the first use writes, uses within a minute do not, a use a minute later does.
    let t0 = now();
    assert!(store.touch_api_key(&admin.id, t0).await.expect("touch"));
    assert!(
        !store
            .touch_api_key(&admin.id, t0 + Duration::seconds(59))
            .await
            .expect("touch")
    );
    let seen = store
        .api_key(&workspace.id, &admin.id)
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(seen.last_used_at, Some(t0));
    assert!(
        store
            .touch_api_key(&admin.id, t0 + Duration::seconds(60))
            .await
            .expect("touch")
    );
    assert!(
        !store
            .touch_api_key("key_missing", t0)
            .await
            .expect("touch a missing key")
    );
}

/// A workspace's wrapped data key is set once (compare-and-set from unset) and swapped only from
/// the value the caller read.
pub async fn data_keys_are_compare_and_set(store: &dyn Store) {
    let workspace = new_workspace(store).await;
    assert_eq!(
        store.wrapped_data_key(&workspace.id).await.expect("read"),
        None
    );
    assert!(
        store
            .replace_wrapped_data_key(&workspace.id, None, "wk1:a")
            .await
            .expect("set")
    );
    assert!(
        !store
            .replace_wrapped_data_key(&workspace.id, None, "wk1:b")
            .await
            .expect("set again"),
        "a second node's key does not replace the first"
    );
    assert!(
        !store
            .replace_wrapped_data_key(&workspace.id, Some("wk1:x"), "wk1:b")
            .await
            .expect("swap from a stale value")
    );
    assert!(
        store
            .replace_wrapped_data_key(&workspace.id, Some("wk1:a"), "wk1:b")
            .await
            .expect("swap")
    );
    assert_eq!(
        store.wrapped_data_key(&workspace.id).await.expect("read"),
        Some("wk1:b".to_owned())
    );
    assert!(
        !store
            .replace_wrapped_data_key("wsp_missing", None, "wk1:a")
            .await
            .expect("missing workspace")
    );
    let all = store.wrapped_data_keys().await.expect("all");
    assert!(all.contains(&(workspace.id.clone(), "wk1:b".to_owned())));
}

/// With a sealer configured, secret headers are stored sealed (the workspace gets a data key) and
/// every read path (job, list, due jobs, claims) gives them back in the clear.
pub async fn sealed_headers_read_back_in_the_clear(store: &dyn Store) {
    let workspace = new_workspace(store).await;
    let spec: JobSpec = serde_json::from_value(serde_json::json!({
        "name": "sealed",
        "schedule": {"cron": "*/5 * * * *"},
        "request": {
            "url": "https://example.com/hook",
            "headers": {"Authorization": "Bearer sealed-canary", "X-Api-Key": "k-123", "Accept": "text/plain"}
        }
    }))
    .expect("spec");
    let past = DateTime::from_timestamp(0, 0).expect("epoch") + Duration::days(400);
    let at = now();
    let job = Job {
        id: ids::new_id(ids::JOB),
        workspace_id: workspace.id.clone(),
        spec: spec.clone().into(),
        next_run_at: Some(past),
        created_at: at,
        updated_at: at,
    };
    store.insert_job(&job).await.expect("insert");
    assert!(
        store
            .wrapped_data_key(&workspace.id)
            .await
            .expect("read")
            .is_some(),
        "storing a secret made the workspace a data key"
    );
    let read = store
        .job(&workspace.id, &job.id)
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(*read.spec, spec);
    let page = store
        .list_jobs(
            &workspace.id,
            &PageRequest {
                limit: 10,
                after: None,
            },
        )
        .await
        .expect("list");
    assert_eq!(*page.items[0].spec, spec);
    // Read and claimed twice: a store that keeps opened specs of due jobs hands out the same
    // clear spec.
    let due_lease = Lease {
        node_id: format!("sec-due-{}", job.id),
        until: now() + Duration::minutes(5),
    };
    for _ in 0..2 {
        let due = store.due_jobs(past, 1000).await.expect("due");
        let mine = due.iter().find(|j| j.id == job.id).expect("due");
        assert_eq!(*mine.spec, spec);
        let claimed = store
            .claim_due_jobs(&due_lease, now(), past, 1000)
            .await
            .expect("claim due jobs");
        let mine = claimed.iter().find(|j| j.id == job.id).expect("claimed");
        assert_eq!(*mine.spec, spec);
    }

    // Updated (a new value), then claimed: the executor sees the new value in the clear.
    let mut changed = read.clone();
    std::sync::Arc::make_mut(&mut changed.spec)
        .request
        .headers
        .insert("Authorization".into(), "Bearer changed".into());
    changed.next_run_at = None;
    store.update_job(&changed).await.expect("update");
    let lease = Lease {
        node_id: format!("sec-{}", job.id),
        until: past + Duration::minutes(5),
    };
    store
        .insert_execution(&NewExecution {
            id: ids::new_id(ids::EXECUTION),
            workspace_id: workspace.id.clone(),
            job_id: job.id.clone(),
            scheduled_for: past,
            trigger: Trigger::Manual,
            run_at: past,
            lease: None,
        })
        .await
        .expect("insert execution");
    let claimed = store
        .claim_executions(&lease, past, 1000)
        .await
        .expect("claim");
    let mine = claimed
        .iter()
        .find(|c| c.job_id == job.id)
        .expect("claimed");
    assert_eq!(
        mine.spec
            .request
            .headers
            .get("Authorization")
            .map(String::as_str),
        Some("Bearer changed")
    );
    assert!(
        store
            .delete_job(&workspace.id, &job.id)
            .await
            .expect("delete")
    );
}
