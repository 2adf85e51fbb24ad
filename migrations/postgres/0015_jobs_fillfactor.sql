-- Room on each page of `jobs` for a row's next version. The scheduler's claim rewrites every due
-- job's row each time it fires, changing no indexed column: with room on the page that is a HOT
-- update (no new index entries), where a full page made it a new version elsewhere and an entry
-- in each of the table's four indexes. Pages written from now on keep 30 % free.
alter table jobs set (fillfactor = 70);
