-- The jobs with a `keep_last`, usually none. Pruning by `keep_last` found them by reading every
-- job's spec as json at every batch, and failed at every pass once any job's spec held an
-- escaped NUL (`\u0000`, which `->>` refuses to turn into text). `keep_last` now has a column
-- of its own, written with the spec as `name` and `paused` are, and an index holds the jobs
-- that have one. The backfill reads the spec as text: cronhook writes it as compact json, where
-- `"keep_last":` followed by digits can only be the top-level field (a quote inside a string
-- is escaped, and a header's value is a string).
alter table jobs add column keep_last bigint;

update jobs set keep_last = substring(spec from '"keep_last":([0-9]+)')::bigint
    where spec like '%"keep_last":%';

create unique index jobs_keeping_last on jobs (id) where keep_last is not null;
