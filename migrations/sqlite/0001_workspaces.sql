-- Tenants, their API keys and their dashboard users.
--
-- Every instant in this schema is an integer count of unix milliseconds (UTC), so indexed
-- comparisons are numeric and exact.

create table workspaces (
    id text primary key not null,
    slug text not null unique,
    signing_secret text not null,
    previous_signing_secret text,
    signing_secret_rotated_at integer,
    created_at integer not null
);

create table api_keys (
    id text primary key not null,
    workspace_id text not null references workspaces (id),
    name text not null,
    -- lowercase hex sha-256 of the whole key; the key itself is never stored.
    key_hash text not null unique,
    created_at integer not null
);

create index api_keys_by_workspace on api_keys (workspace_id);

create table users (
    id text primary key not null,
    workspace_id text not null references workspaces (id),
    -- emails are unique case-insensitively: the store lowercases them before writing and
    -- before looking them up, so a plain unique index is enough.
    email text not null unique,
    password_hash text not null,
    created_at integer not null
);

create index users_by_workspace on users (workspace_id);
