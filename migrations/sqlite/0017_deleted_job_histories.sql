-- Jobs deleted whose history is still being purged. Deleting a job with `on delete cascade`
-- deleted its whole history in the one write transaction, and SQLite has one writer: a month of
-- an every-second job (2.6 million executions and their attempts) held it for seconds, and
-- nothing else fired or was recorded meanwhile. The job's row now goes at once, with its
-- unfinished executions; what it ran stays behind, out of sight (no job, no history), until
-- the pruner deletes it in batches, oldest deletion first.
create table deleted_jobs (
    job_id text primary key not null,
    deleted_at integer not null
);

-- The jobs with a `keep_last`, usually none. Pruning by `keep_last` read the executions of every
-- job to find them (~0.24 s a million executions, each batch, holding the writer), and purging a
-- deleted job's history is a run of such batches. Queries repeat the where clause word for word.
-- Unique, as ids are.
create unique index jobs_keeping_last on jobs (id)
    where json_extract(spec, '$.keep_last') is not null;
