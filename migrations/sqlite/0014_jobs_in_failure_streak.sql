-- The jobs in a failure streak, usually none. Recording a finished execution asks whether its
-- job is one of them, because only then do the alerting rules have work; through this index
-- that is one lookup per batch of records (none at all when no job is in a streak), instead of
-- two b-tree seeks (the execution, then its job) per succeeded execution. The predicate is
-- written word for word as the `in_failure_streak!` macro of `store-sqlite/src/lib.rs` writes
-- it, so SQLite can use the index.
create index jobs_in_failure_streak on jobs (id)
    where failure_streak > 0 or failure_streak_alerted or failure_streak_started_at is not null;
