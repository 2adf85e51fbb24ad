-- Jobs: a user's spec and the schedule state the scheduler advances.

create table jobs (
    id text primary key not null,
    workspace_id text not null references workspaces (id),
    -- copies of spec.name and spec.paused, kept as columns for the unique key and the due index;
    -- when they disagree with the json, the columns win.
    name text not null,
    -- the JobSpec as json.
    spec text not null,
    paused integer not null default 0,
    next_run_at integer,
    created_at integer not null,
    updated_at integer not null,
    unique (workspace_id, name)
);

create index jobs_by_workspace on jobs (workspace_id, id);

-- what the scheduler reads: only jobs that can fire, in firing order. idle and paused jobs cost
-- nothing here.
create index jobs_due on jobs (next_run_at) where paused = 0 and next_run_at is not null;
