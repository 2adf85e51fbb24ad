-- Executions: one row per occurrence of a job (or per manual run or replay).

create table executions (
    id text primary key not null,
    workspace_id text not null,
    job_id text not null references jobs (id) on delete cascade,
    scheduled_for integer not null,
    trigger text not null,
    status text not null,
    -- when the next attempt may start.
    run_at integer not null,
    attempt_count integer not null default 0,
    -- the node holding the lease and until when; both null when nobody holds it.
    locked_by text,
    lease_until integer,
    started_at integer,
    finished_at integer,
    duration_ms integer,
    -- one occurrence, one execution, however many schedulers race for it.
    unique (job_id, scheduled_for)
);

-- a job's history, newest first (ids are time-ordered).
create index executions_by_job on executions (job_id, id desc);

-- partial indexes hold only unfinished executions, so they stay small however long the history
-- grows. the claim query and the `forbid` check repeat this where clause word for word, which is
-- what lets sqlite use them.
create index executions_claimable on executions (status, run_at)
    where status in ('queued', 'running', 'retrying');

create index executions_unfinished_by_job on executions (job_id)
    where status in ('queued', 'running', 'retrying');
