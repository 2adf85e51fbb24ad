-- The partial indexes of executions, with their where clauses written as ORs of equalities
-- instead of `in (...)` lists. SQLite evaluates a partial index's where clause for every row
-- written to the table, twice for an update (the old row and the new), and it evaluates an `in`
-- list of three or more constants by building a temporary b-tree of them each time: nine per
-- execution (its insert and its finishing update), nearly a third of SQLite's instructions per
-- execution. An OR of equalities is a few comparisons. Queries that want these indexes repeat
-- the where clause word for word (the `unfinished!` and `finished!` macros of the SQLite store).

drop index executions_claimable;
create index executions_claimable on executions (status, run_at)
    where (status = 'queued' or status = 'running' or status = 'retrying');

drop index executions_unfinished_by_job;
create index executions_unfinished_by_job on executions (job_id)
    where (status = 'queued' or status = 'running' or status = 'retrying');

drop index executions_finished;
create index executions_finished on executions (finished_at)
    where (status = 'succeeded' or status = 'failed' or status = 'skipped' or status = 'cancelled');
