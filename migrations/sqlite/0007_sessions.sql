-- Dashboard sign-in sessions. Only the sha-256 of a session's token is kept: the token itself
-- lives in the browser's cookie, so a copy of the database cannot sign anybody in.

create table sessions (
    token_hash text primary key not null,
    user_id text not null references users (id) on delete cascade,
    workspace_id text not null references workspaces (id),
    -- the token every form of the session carries back (csrf defence).
    csrf_token text not null,
    created_at integer not null,
    -- idle expiry: moved forward by each use, never past the absolute expiry.
    idle_expires_at integer not null,
    expires_at integer not null
);

-- sign-in sweeps expired sessions; this keeps the sweep off a full scan.
create index sessions_by_idle_expiry on sessions (idle_expires_at);
