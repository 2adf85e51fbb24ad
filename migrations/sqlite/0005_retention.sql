-- Retention: finished executions are pruned by age, oldest first. Only finished rows are in the
-- index, so it stays as large as the history the policy keeps.
create index executions_finished on executions (finished_at)
    where status in ('succeeded', 'failed', 'skipped', 'cancelled');
