-- Executions: one row per occurrence of a job (or per manual run or replay).

create table executions (
    id text collate "C" primary key,
    workspace_id text collate "C" not null,
    job_id text collate "C" not null references jobs (id) on delete cascade,
    scheduled_for timestamptz not null,
    trigger text not null,
    status text not null,
    -- when the next attempt may start.
    run_at timestamptz not null,
    attempt_count bigint not null default 0,
    -- the node holding the lease and until when; both null when nobody holds it.
    locked_by text,
    lease_until timestamptz,
    started_at timestamptz,
    finished_at timestamptz,
    duration_ms bigint,
    -- one occurrence, one execution, however many schedulers race for it.
    unique (job_id, scheduled_for)
);

-- a job's history, newest first (ids are time-ordered).
create index executions_by_job on executions (job_id, id desc);

-- partial indexes hold only unfinished executions, so they stay small however long the history
-- grows. the claim query reads the first in `run_at` order; the `forbid` and `replace` checks
-- read the second.
create index executions_claimable on executions (run_at)
    where status in ('queued', 'running', 'retrying');

create index executions_unfinished_by_job on executions (job_id)
    where status in ('queued', 'running', 'retrying');
