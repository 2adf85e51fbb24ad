-- A job's history is read through the occurrence key `(job_id, scheduled_for)`, newest scheduled
-- instant first, and `executions_by_job (job_id, id desc)` goes. Both indexes were keyed by job,
-- so every execution written landed on a page of each far from the last one written: together
-- they were over a third of the pages the WAL took per execution. The occurrence key is unique
-- within a job, so it orders a job's history on its own (a manual run takes the next free
-- millisecond), and its cursor is the instant below which the next page starts.
drop index executions_by_job;
