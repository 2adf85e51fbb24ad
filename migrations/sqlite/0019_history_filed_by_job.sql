-- The occurrence key written time first, `unique (scheduled_for, job_id)`, and a job's history
-- kept in `job_history`, filed in batches.
--
-- Keyed job first, the occurrence key put each job's newest entries on a leaf of its own once the
-- job had a few minutes of history: every execution written dirtied one leaf per job, which the
-- WAL took at the commit and the checkpoint copied back (8–11 KiB written per execution, against
-- 2.4 on a fresh database, and a third more of the store's CPU). Time first, the executions of
-- one burst are neighbours in the key. A job's history is read job first, so `job_history`
-- holds `(job_id, scheduled_for)` of the executions scheduled before the mark
-- `history_filed.upto`: the store's filing pass (`SqliteStore::file_history`) adds the rows
-- scheduled since the last pass every few seconds, in job order, so each job's leaf is written
-- once per pass instead of once per execution. A history read takes `job_history` below `upto`
-- and the executions at or after it from the time-first key (a few seconds of all jobs' rows).
--
-- `filing_upto` is raised first, at the start of a pass; `upto` moves last, once everything
-- below it is filed, so a pass stopped anywhere leaves both marks true. An execution inserted
-- below `filing_upto` (an occurrence caught up after downtime, say) is filed at once by a
-- trigger, and a deleted execution's entry goes with it.
--
-- The table is rebuilt to change its key. `attempts` refers to it with `on delete cascade`:
-- dropping the old table would delete every attempt, so `attempts` is rebuilt too, referring to
-- the new table. The history of jobs already deleted (waiting for the pruner, see 0017) is not
-- copied: it refers to jobs that are gone, and it was bound for deletion.

create table executions_keyed_by_time (
    id text primary key not null,
    workspace_id text not null,
    job_id text not null references jobs (id) on delete cascade,
    scheduled_for integer not null,
    trigger text not null,
    status text not null,
    -- when the next attempt may start.
    run_at integer not null,
    attempt_count integer not null default 0,
    -- the node holding the lease and until when; both null when nobody holds it.
    locked_by text,
    lease_until integer,
    started_at integer,
    finished_at integer,
    duration_ms integer,
    -- one occurrence, one execution, however many schedulers race for it.
    unique (scheduled_for, job_id)
);

insert into executions_keyed_by_time
    (id, workspace_id, job_id, scheduled_for, trigger, status, run_at, attempt_count, locked_by,
     lease_until, started_at, finished_at, duration_ms)
select id, workspace_id, job_id, scheduled_for, trigger, status, run_at, attempt_count, locked_by,
       lease_until, started_at, finished_at, duration_ms
from executions
where job_id in (select id from jobs)
order by scheduled_for, job_id;

create table attempts_of_executions_keyed_by_time (
    execution_id text not null references executions_keyed_by_time (id) on delete cascade,
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

insert into attempts_of_executions_keyed_by_time
    (execution_id, number, started_at, duration_ms, status_code, error_kind, error_message,
     response_headers, response_body, response_body_truncated, redirect_location, timing)
select execution_id, number, started_at, duration_ms, status_code, error_kind, error_message,
       response_headers, response_body, response_body_truncated, redirect_location, timing
from attempts
where execution_id in (select id from executions_keyed_by_time);

drop table attempts;
drop table executions;
delete from deleted_jobs;

-- Renaming rewrites the reference of the new attempts table to the new name.
alter table executions_keyed_by_time rename to executions;
alter table attempts_of_executions_keyed_by_time rename to attempts;

-- The partial indexes, as 0012 and 0016 left them; queries repeat their where clauses word for
-- word.
create index executions_claimable on executions (status, run_at)
    where (status = 'queued' or status = 'running' or status = 'retrying');

create index executions_unfinished_by_job on executions (job_id)
    where (status = 'queued' or status = 'running' or status = 'retrying');

create index executions_finished on executions (finished_at)
    where (status = 'succeeded' or status = 'failed' or status = 'skipped' or status = 'cancelled');

create index executions_unsuccessful_by_job on executions (job_id, status, scheduled_for)
    where (status = 'failed' or status = 'skipped' or status = 'cancelled');

-- The executions scheduled before `history_filed.upto`, by job: a job's history in order.
create table job_history (
    job_id text not null,
    scheduled_for integer not null,
    primary key (job_id, scheduled_for)
) without rowid;

-- One row: the two marks of the filing pass, in unix milliseconds (`upto` <= `filing_upto`).
create table history_filed (
    id integer primary key check (id = 1),
    -- `job_history` holds every execution scheduled before it.
    upto integer not null,
    -- executions inserted below it are filed by `executions_filed_late`.
    filing_upto integer not null
);

-- Everything there is, up to now, is filed here; the rest (occurrences prepared ahead) by the
-- first pass.
insert into history_filed (id, upto, filing_upto)
values (1, cast(strftime('%s', 'now') as integer) * 1000, cast(strftime('%s', 'now') as integer) * 1000);

insert into job_history (job_id, scheduled_for)
select job_id, scheduled_for from executions
where scheduled_for < (select upto from history_filed)
order by job_id, scheduled_for;

create trigger executions_filed_late after insert on executions
when new.scheduled_for < (select filing_upto from history_filed where id = 1)
begin
    insert or ignore into job_history (job_id, scheduled_for)
    values (new.job_id, new.scheduled_for);
end;

create trigger executions_unfiled after delete on executions
when old.scheduled_for < (select filing_upto from history_filed where id = 1)
begin
    delete from job_history where job_id = old.job_id and scheduled_for = old.scheduled_for;
end;
