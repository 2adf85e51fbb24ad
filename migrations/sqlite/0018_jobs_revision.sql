-- A job's revision: a number that changes whenever its spec, name or paused flag does. The
-- scheduler reads every due job each time it comes due, and reading the spec's text too (copied
-- out of SQLite, checked as UTF-8 and compared with the text of the spec it keeps opened) cost
-- about as much as the rest of the row; it now reads the revision and fetches the text only when
-- the revision is not the one it opened. `updated_at` cannot serve: two edits can fall in one
-- millisecond.
alter table jobs add column revision integer not null default 0;

-- Every statement that writes one of the three, whatever its path (edits, pauses, the pause on a
-- 410, re-sealing), moves the revision; advancing `next_run_at`, the scheduler's own write,
-- does not.
create trigger jobs_revision after update of spec, name, paused on jobs
begin
    update jobs set revision = revision + 1 where id = new.id;
end;
