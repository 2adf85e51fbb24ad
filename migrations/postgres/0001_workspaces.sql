-- Tenants, their API keys and their dashboard users.
--
-- Every instant in this schema is a timestamptz that the store truncates to the millisecond
-- before writing, so values read back equal the values written, like sqlite's integer
-- milliseconds. ids are compared and ordered byte by byte (`collate "C"`), as sqlite does,
-- whatever the database's default collation.

create table workspaces (
    id text collate "C" primary key,
    slug text not null unique,
    signing_secret text not null,
    previous_signing_secret text,
    signing_secret_rotated_at timestamptz,
    created_at timestamptz not null
);

create table api_keys (
    id text collate "C" primary key,
    workspace_id text collate "C" not null references workspaces (id),
    name text not null,
    -- lowercase hex sha-256 of the whole key; the key itself is never stored.
    key_hash text not null unique,
    created_at timestamptz not null
);

create index api_keys_by_workspace on api_keys (workspace_id);

create table users (
    id text collate "C" primary key,
    workspace_id text collate "C" not null references workspaces (id),
    -- emails are unique case-insensitively: the store lowercases them before writing and
    -- before looking them up, so a plain unique index is enough.
    email text not null unique,
    password_hash text not null,
    created_at timestamptz not null
);

create index users_by_workspace on users (workspace_id);
