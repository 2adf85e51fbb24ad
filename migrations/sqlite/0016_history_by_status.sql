-- A job's history of one status. Most of a history succeeded, so reading the occurrence key
-- `(job_id, scheduled_for)` newest first finds succeeded executions at once, but a page of a
-- status the history rarely holds read through all of it: a month of an every-second job is
-- 2.6 million executions, read for each page of its few failures (the dashboard's "failed
-- only"). Finished executions that did not succeed get an index of their own. An execution
-- that succeeds never enters it, so firing pays only for evaluating the where clause, ORs of
-- equalities (see 0012). Unfinished executions already have `executions_unfinished_by_job`.
-- Queries repeat the where clause word for word (the `unsuccessful!` macro of the SQLite
-- store).
create index executions_unsuccessful_by_job on executions (job_id, status, scheduled_for)
    where (status = 'failed' or status = 'skipped' or status = 'cancelled');
