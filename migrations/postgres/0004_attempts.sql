-- Attempts: the http calls of one execution, numbered from 1.

create table attempts (
    execution_id text collate "C" not null references executions (id) on delete cascade,
    number bigint not null,
    started_at timestamptz not null,
    duration_ms bigint not null,
    status_code bigint,
    error_kind text,
    error_message text,
    -- json object of header name to value.
    response_headers text not null,
    -- at most 64 KiB of the target's answer as utf-8 bytes. bytea, not text: a text column
    -- refuses the nul character, which any target may send.
    response_body bytea,
    response_body_truncated boolean not null,
    redirect_location text,
    -- json of the Timing struct.
    timing text not null,
    primary key (execution_id, number)
);
