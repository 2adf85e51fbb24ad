-- A job's revision: a number that changes whenever its spec, name or paused flag does. Every
-- scheduler claims its due jobs each time they come due, and parsing each claimed spec's text
-- (and opening its sealed headers) was most of what a claim cost cronhook. The claim now
-- returns the revision, and the text only for the jobs whose opened spec a node has not cached
-- at that revision. `updated_at` cannot serve: two edits can fall in one millisecond.
alter table jobs add column revision bigint not null default 0;

-- Every statement that writes one of the three, whatever its path (edits, pauses, the pause on
-- a 410), moves the revision; a claim, or advancing `next_run_at`, does not. A `before` trigger
-- sets it in the row being written, so the update stays one row version (and a HOT update when
-- no indexed column changes).
create function jobs_next_revision() returns trigger language plpgsql as $$
begin
    new.revision := old.revision + 1;
    return new;
end;
$$;

create trigger jobs_revision before update of spec, name, paused on jobs
    for each row execute function jobs_next_revision();
