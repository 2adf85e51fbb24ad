-- Scheduler claims: schedulers sharing the database split the due jobs between them. A claim is
-- only an optimisation (it saves the losers a transaction); materializing an occurrence is a
-- compare-and-set on next_run_at whoever holds the claim.
alter table jobs add column claimed_by text;
alter table jobs add column claim_until timestamptz;
