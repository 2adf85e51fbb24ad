-- A job's history is read through the occurrence key `(job_id, scheduled_for)`, newest scheduled
-- instant first, and `executions_by_job (job_id, id desc)` goes: one index less to maintain on
-- every insert, as in SQLite (where the two job-keyed indexes were over a third of the pages the
-- WAL took per execution). The occurrence key is unique within a job, so it orders a job's
-- history on its own (a manual run takes the next free millisecond), and its cursor is the
-- instant below which the next page starts.
drop index executions_by_job;
