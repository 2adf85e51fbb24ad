-- Failure alerts: each job's failure streak, the workspace's alert channels, and the alert
-- outbox the delivery worker drains.

-- the streak the alert rules read and write in the transaction that records an execution's last
-- attempt. `failure_streak_alerted` is true once the streak was alerted (failing or disabled), so
-- it is alerted once, and its end is a recovery notice.
alter table jobs add column failure_streak bigint not null default 0;
alter table jobs add column failure_streak_started_at timestamptz;
alter table jobs add column failure_streak_alerted boolean not null default false;

create table channels (
    id text collate "C" primary key,
    workspace_id text collate "C" not null references workspaces (id),
    name text not null,
    -- the ChannelTarget as json text: {"type": "email", "to": [...]}, {"type": "slack", ...}.
    target text not null,
    created_at timestamptz not null,
    updated_at timestamptz not null,
    unique (workspace_id, name)
);

create index channels_by_workspace on channels (workspace_id, id);

-- the channels that alert for jobs that name none; a deleted channel drops out.
create table workspace_alert_channels (
    workspace_id text collate "C" not null references workspaces (id),
    channel_id text collate "C" not null references channels (id) on delete cascade,
    position integer not null,
    primary key (workspace_id, channel_id)
);

-- the outbox: one row per alert and channel, written before anything is sent. no foreign keys
-- to jobs, executions or channels: the log outlives what it talks about.
create table alerts (
    id text collate "C" primary key,
    workspace_id text collate "C" not null,
    job_id text collate "C",
    execution_id text collate "C",
    channel_id text collate "C" not null,
    kind text not null,
    -- pending, delivered, failed.
    status text not null,
    attempts bigint not null default 0,
    error text,
    -- the AlertFacts as json text, captured when the alert was raised.
    facts text not null,
    created_at timestamptz not null,
    next_attempt_at timestamptz,
    -- the delivery worker holding it and until when; null when nobody does.
    locked_by text,
    lease_until timestamptz,
    delivered_at timestamptz
);

create index alerts_by_workspace on alerts (workspace_id, id desc);

-- what the worker claims: only pending alerts, in due order.
create index alerts_pending on alerts (next_attempt_at) where status = 'pending';
