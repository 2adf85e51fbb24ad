-- The node registry: each `cronhook serve` process reports itself here every few seconds.
create table nodes (
    id text collate "C" primary key not null,
    name text not null,
    -- json array of role names.
    roles text not null,
    version text not null,
    started_at timestamptz not null,
    last_heartbeat_at timestamptz not null
);

create index nodes_by_heartbeat on nodes (last_heartbeat_at);
