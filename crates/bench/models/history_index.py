#!/usr/bin/env python3
"""A model of the SQLite store's firing writes, to price ways of keeping a job's history index.

Not the store: the same schema of `executions` and `attempts` and the same statement shapes
(occurrences inserted in batches of 1 000, finished in transactions of 2 000 with their attempt
rows, a passive checkpoint after each simulated second), driven from Python's `sqlite3`. The
per-row cost of Python is the same in every variant, so differences between variants are
SQLite's. It answers one question before the store is changed: how much of what history costs
(each job's entry of the occurrence key `(job_id, scheduled_for)` lands on a leaf of that job's
own once the job has a few minutes of history, so every execution writes a page) a deferred,
batched history index gives back, and what its batching pass costs.

Variants:
  v0   today's schema: `unique (job_id, scheduled_for)`.
  v1   the occurrence key time first, `unique (scheduled_for, job_id)`, and no job-first index:
       the lower bound (the history pages could not be read).
  v2a  v1 + a flag column set by a pass every P seconds, a partial index `(job_id,
       scheduled_for) where filed = 0` for the newest rows and one `where filed = 1`.
  v2b  v2a without the index of the newest rows.
  v2c  v1 + a table `history (job_id, scheduled_for, id)` without rowid, filled every P seconds
       in one transaction, in key order.
  v2d  v1 + a table `history (job_id, scheduled_for)` without rowid, filled every P seconds in
       transactions of CH jobs each (environment variable CH, default 1 000), in key order.

Usage: history_index.py VARIANT JOBS HISTORY_SECONDS MEASURED_SECONDS [P]
Prints CPU and wall time per measured execution, bytes written per execution, the filing
pass's CPU per row filed and per execution, and (v0 and v2d) the mean time to read a job's
newest 20 executions, as a history page does, with the seconds not yet filed at that moment.
Give MEASURED_SECONDS a multiple of P for whole passes in the measured window; one less than
a multiple of P (59 for P = 10) reads the history pages when the most is unfiled.
"""
import os
import shutil
import sqlite3
import sys
import tempfile
import time

variant = sys.argv[1]
JOBS = int(sys.argv[2])
HISTORY = int(sys.argv[3])
MEASURED = int(sys.argv[4])
P = int(sys.argv[5]) if len(sys.argv) > 5 else 60
CH = int(os.environ.get("CH", "1000"))

directory = tempfile.mkdtemp()
path = os.path.join(directory, "model.db")
c = sqlite3.connect(path, isolation_level=None)
for pragma in ("journal_mode=wal", "synchronous=normal", "cache_size=-32768",
               "wal_autocheckpoint=50000", "foreign_keys=on"):
    c.execute(f"pragma {pragma}")
checkpointer = sqlite3.connect(path, isolation_level=None)

c.execute("create table jobs (id text primary key not null, next_run_at integer)")
key = "unique (job_id, scheduled_for)" if variant == "v0" else "unique (scheduled_for, job_id)"
filed = ", filed integer not null default 0" if variant in ("v2a", "v2b") else ""
c.execute(f"""create table executions (id text primary key not null, workspace_id text not null,
 job_id text not null references jobs (id) on delete cascade, scheduled_for integer not null,
 trigger text not null, status text not null, run_at integer not null,
 attempt_count integer not null default 0, locked_by text, lease_until integer,
 started_at integer, finished_at integer, duration_ms integer{filed}, {key})""")
UNFINISHED = "(status = 'queued' or status = 'running' or status = 'retrying')"
c.execute(f"create index executions_claimable on executions (status, run_at) where {UNFINISHED}")
c.execute(f"create index executions_unfinished_by_job on executions (job_id) where {UNFINISHED}")
c.execute("create index executions_finished on executions (finished_at) where (status = "
          "'succeeded' or status = 'failed' or status = 'skipped' or status = 'cancelled')")
c.execute("create index executions_unsuccessful_by_job on executions (job_id, status, "
          "scheduled_for) where (status = 'failed' or status = 'skipped' or status = 'cancelled')")
if variant == "v2a":
    c.execute("create index executions_recent_by_job on executions (job_id, scheduled_for) "
              "where filed = 0")
if variant in ("v2a", "v2b"):
    c.execute("create index executions_filed_by_job on executions (job_id, scheduled_for) "
              "where filed = 1")
if variant == "v2c":
    c.execute("create table history (job_id text not null, scheduled_for integer not null, "
              "execution_id text not null, primary key (job_id, scheduled_for)) without rowid")
if variant == "v2d":
    c.execute("create table history (job_id text not null, scheduled_for integer not null, "
              "primary key (job_id, scheduled_for)) without rowid")
c.execute("""create table attempts (execution_id text not null references executions (id)
 on delete cascade, number integer not null, started_at integer not null,
 duration_ms integer not null, status_code integer, error_kind text, error_message text,
 response_headers text not null, response_body text, response_body_truncated integer not null,
 redirect_location text, timing text not null, primary key (execution_id, number))""")

# Job ids are created in order, as the service's time-ordered ids are, so a batch of due jobs
# is a run of neighbouring ids.
jobs = [f"job{i:08d}" for i in range(JOBS)]
c.execute("begin")
c.executemany("insert into jobs values (?, 0)", [(j,) for j in jobs])
c.execute("commit")

sequence = 0
T0 = 1_700_000_000_000
filed_upto = T0
pass_cpu = 0.0
pass_rows = 0


def next_id(t):
    global sequence
    sequence += 1
    return f"{t:013d}{sequence:012d}"


def file_history(upto):
    """The batching pass: everything scheduled in [filed_upto, upto) goes into the index."""
    global filed_upto, pass_cpu, pass_rows
    started = time.process_time()
    if variant == "v2d":
        bounds = [None] + jobs[CH::CH] + [None]
        for low, high in zip(bounds, bounds[1:]):
            c.execute("begin immediate")
            c.execute("insert or ignore into history select job_id, scheduled_for from executions"
                      " where scheduled_for >= ? and scheduled_for < ?"
                      " and job_id >= coalesce(?, '') and (? is null or job_id < ?)"
                      " order by job_id, scheduled_for", (filed_upto, upto, low, high, high))
            c.execute("commit")
    else:
        c.execute("begin immediate")
        if variant == "v2c":
            c.execute("insert into history select job_id, scheduled_for, id from executions"
                      " where scheduled_for >= ? and scheduled_for < ?"
                      " order by job_id, scheduled_for", (filed_upto, upto))
        else:
            c.execute("update executions set filed = 1 where scheduled_for >= ?"
                      " and scheduled_for < ? and filed = 0", (filed_upto, upto))
        c.execute("commit")
    pass_cpu += time.process_time() - started
    pass_rows += c.execute("select count(*) from executions where scheduled_for >= ? "
                           "and scheduled_for < ?", (filed_upto, upto)).fetchone()[0]
    filed_upto = upto


def second(s):
    t = T0 + s * 1000
    rows = []
    for b in range(0, JOBS, 1000):
        batch = [(next_id(t), "ws", j, t, "schedule", "running", t, "node", t + 60000)
                 for j in jobs[b:b + 1000]]
        rows += batch
        c.execute("begin immediate")
        c.executemany("insert into executions (id, workspace_id, job_id, scheduled_for, trigger,"
                      " status, run_at, locked_by, lease_until) values (?,?,?,?,?,?,?,?,?)"
                      " on conflict do nothing", batch)
        c.executemany("update jobs set next_run_at = ? where id = ?",
                      [(t + 1000, r[2]) for r in batch])
        c.execute("commit")
    for b in range(0, JOBS, 2000):
        batch = rows[b:b + 2000]
        c.execute("begin immediate")
        c.executemany("update executions set status = 'succeeded', attempt_count = 1,"
                      " started_at = ?, finished_at = ?, duration_ms = 2, locked_by = null,"
                      " lease_until = null where id = ?", [(t + 5, t + 7, r[0]) for r in batch])
        c.executemany("insert into attempts values (?,?,?,?,?,?,?,?,?,?,?,?)",
                      [(r[0], 1, t + 5, 2, 200, None, None,
                        '{"content-type":"text/plain","content-length":"2"}', "ok", 0, None,
                        '{"dns_ms":0,"connect_ms":0,"ttfb_ms":1,"total_ms":2}') for r in batch])
        c.execute("commit")
    if variant.startswith("v2") and (s + 1) % P == 0:
        file_history(t + 1)
    checkpointer.execute("pragma wal_checkpoint(passive)")


def written_bytes():
    with open("/proc/self/io") as io:
        return int(next(l for l in io if l.startswith("write_bytes")).split()[1])


for s in range(HISTORY):
    second(s)
checkpointer.execute("pragma wal_checkpoint(truncate)")
pass_cpu, pass_rows = 0.0, 0
written, cpu, wall = written_bytes(), time.process_time(), time.time()
for s in range(HISTORY, HISTORY + MEASURED):
    second(s)
cpu, wall, written = time.process_time() - cpu, time.time() - wall, written_bytes() - written
n = JOBS * MEASURED
# A history page: a job's newest 20 executions. Today through the occurrence key; with v2d,
# the filed arm from `history` joined back through the time-first key, and the unfiled arm
# from the time-first key itself.
PAGE = {
    "v0": "select id, scheduled_for from executions where job_id = ?1"
          " order by scheduled_for desc limit 20",
    "v2d": "select id, scheduled_for from (select e.id, e.scheduled_for from"
           " (select job_id, scheduled_for from history where job_id = ?1 and scheduled_for < ?2"
           " order by scheduled_for desc limit 20) h join executions e"
           " on e.scheduled_for = h.scheduled_for and e.job_id = h.job_id)"
           " union all select id, scheduled_for from executions"
           " where scheduled_for >= ?2 and job_id = ?1"
           " order by scheduled_for desc limit 20",
}
read_ms = ""
if variant in PAGE:
    sample = jobs[:: max(1, JOBS // 100)]
    started = time.perf_counter()
    arguments = (lambda job: (job,)) if variant == "v0" else (lambda job: (job, filed_upto))
    for job in sample:
        page = c.execute(PAGE[variant], arguments(job)).fetchall()
        assert len(page) == min(20, HISTORY + MEASURED), page
        assert page == sorted(page, key=lambda r: -r[1]), page
    for job in sample[:3]:
        truth = c.execute("select id, scheduled_for from executions not indexed where job_id = ?"
                          " order by scheduled_for desc limit 20", (job,)).fetchall()
        assert c.execute(PAGE[variant], arguments(job)).fetchall() == truth, job
    read_ms = (f" page_read_ms={(time.perf_counter() - started) / len(sample) * 1e3:.2f}"
               + (f" unfiled_s={(T0 + (HISTORY + MEASURED) * 1000 - filed_upto) // 1000}"
                  if variant != "v0" else ""))
print(f"{variant} P={P} jobs={JOBS} history_s={HISTORY} cpu_us/exec={cpu / n * 1e6:.2f} "
      f"wall_us/exec={wall / n * 1e6:.2f} written_kib/exec={written / n / 1024:.2f} "
      f"pass_us/row={pass_cpu / max(pass_rows, 1) * 1e6:.2f} pass_us/exec={pass_cpu / n * 1e6:.2f}"
      f"{read_ms}")
c.close()
checkpointer.close()
shutil.rmtree(directory)
