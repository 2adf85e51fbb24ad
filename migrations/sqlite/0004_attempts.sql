-- Attempts: the http calls of one execution, numbered from 1.

create table attempts (
    execution_id text not null references executions (id) on delete cascade,
    number integer not null,
    started_at integer not null,
    duration_ms integer not null,
    status_code integer,
    error_kind text,
    error_message text,
    -- json object of header name to value.
    response_headers text not null,
    -- at most 64 KiB; response_body_truncated says whether the rest was cut.
    response_body text,
    response_body_truncated integer not null,
    redirect_location text,
    -- json of the Timing struct.
    timing text not null,
    primary key (execution_id, number)
);
