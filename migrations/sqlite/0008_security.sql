-- Security: API key scopes, revocation and last use; each workspace's data key (wrapped by the
-- master key) that seals its secret header values at rest.

alter table api_keys add column scope text not null default 'admin'
    check (scope in ('read', 'write', 'admin'));
alter table api_keys add column last_used_at integer;
alter table api_keys add column revoked_at integer;

-- `wk1:<master key id>:<version>:<base64>`, possibly several separated by spaces while a master
-- key rotation is under way; null until the workspace first stores a secret.
alter table workspaces add column data_key text;
