-- Dashboard sign-in sessions. Only the sha-256 of a session's token is kept: the token itself
-- lives in the browser's cookie, so a copy of the database cannot sign anybody in.

create table sessions (
    token_hash text collate "C" primary key,
    user_id text collate "C" not null references users (id) on delete cascade,
    workspace_id text collate "C" not null references workspaces (id),
    -- the token every form of the session carries back (csrf defence).
    csrf_token text not null,
    created_at timestamptz not null,
    -- idle expiry: moved forward by each use, never past the absolute expiry.
    idle_expires_at timestamptz not null,
    expires_at timestamptz not null
);

-- sign-in sweeps expired sessions; this keeps the sweep off a full scan.
create index sessions_by_idle_expiry on sessions (idle_expires_at);
