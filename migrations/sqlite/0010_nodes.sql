-- The node registry: each `cronhook serve` process reports itself here every few seconds.
create table nodes (
    id text primary key not null,
    name text not null,
    -- json array of role names.
    roles text not null,
    version text not null,
    started_at integer not null,
    last_heartbeat_at integer not null
);

create index nodes_by_heartbeat on nodes (last_heartbeat_at);
