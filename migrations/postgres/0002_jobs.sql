-- Jobs: a user's spec and the schedule state the scheduler advances.

create table jobs (
    id text collate "C" primary key,
    workspace_id text collate "C" not null references workspaces (id),
    -- copies of spec.name and spec.paused, kept as columns for the unique key and the due index;
    -- when they disagree with the json, the columns win.
    name text not null,
    -- the JobSpec as json text, not jsonb: jsonb refuses the escape `\u0000`, which a request
    -- body may hold, and nothing queries inside the spec.
    spec text not null,
    paused boolean not null default false,
    next_run_at timestamptz,
    created_at timestamptz not null,
    updated_at timestamptz not null,
    unique (workspace_id, name)
);

create index jobs_by_workspace on jobs (workspace_id, id);

-- what the scheduler reads: only jobs that can fire, in firing order. idle and paused jobs cost
-- nothing here.
create index jobs_due on jobs (next_run_at) where not paused and next_run_at is not null;
