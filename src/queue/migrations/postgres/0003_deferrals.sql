-- A job that must wait for a forge's write budget goes back to the queue with a not-before time
-- (`run_at_ms`), its attempt not counted: these count how often and since when, to bound it.
-- `lease_expiries` counts the attempts whose worker crashed or died (its lease ran out), so the
-- check of a job that keeps crashing can say so when it is given up. Columns with constant
-- defaults: no table rewrite, replicas of the previous version keep working.
ALTER TABLE jobs ADD COLUMN deferrals BIGINT NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN deferred_since_ms BIGINT;
ALTER TABLE jobs ADD COLUMN lease_expiries BIGINT NOT NULL DEFAULT 0;
