-- kubeward job queue, schema version 1 (SQLite).
-- Times are integer epoch milliseconds; booleans are 0/1 integers; payloads are JSON text.

-- Webhook deliveries already accepted, so a forge's redelivery is not processed twice.
CREATE TABLE deliveries (
    forge          TEXT    NOT NULL,
    delivery_id    TEXT    NOT NULL,
    received_at_ms INTEGER NOT NULL,
    PRIMARY KEY (forge, delivery_id)
);

CREATE INDEX deliveries_received ON deliveries (received_at_ms);

CREATE TABLE jobs (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    kind             TEXT    NOT NULL,
    forge            TEXT    NOT NULL,
    installation_id  INTEGER,
    repo_id          INTEGER NOT NULL,
    pr_number        INTEGER,
    head_sha         TEXT,
    payload          TEXT    NOT NULL,
    state            TEXT    NOT NULL
        CHECK (state IN ('queued', 'running', 'done', 'dead', 'superseded', 'dropped')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    last_error       TEXT,
    -- Set while running when the job was superseded or its PR/installation dropped;
    -- cancel_reason is the terminal state the job takes when its worker lets go.
    cancel_requested INTEGER NOT NULL DEFAULT 0 CHECK (cancel_requested IN (0, 1)),
    cancel_reason    TEXT CHECK (cancel_reason IN ('superseded', 'dropped')),
    run_at_ms        INTEGER NOT NULL,
    lease_until_ms   INTEGER,
    locked_by        TEXT,
    created_at_ms    INTEGER NOT NULL,
    updated_at_ms    INTEGER NOT NULL,
    finished_at_ms   INTEGER
);

-- claim: runnable queued jobs and expired leases.
CREATE INDEX jobs_state_run_at ON jobs (state, run_at_ms);
CREATE INDEX jobs_state_lease ON jobs (state, lease_until_ms);
-- supersede / drop_pr.
CREATE INDEX jobs_pr ON jobs (forge, repo_id, pr_number, state);
-- drop_installation.
CREATE INDEX jobs_installation ON jobs (forge, installation_id, state);

-- Head commit -> PR, for check-run re-requests that carry only a SHA (fork PRs).
CREATE TABLE pr_heads (
    forge         TEXT    NOT NULL,
    repo_id       INTEGER NOT NULL,
    head_sha      TEXT    NOT NULL,
    pr_number     INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL,
    PRIMARY KEY (forge, repo_id, head_sha)
);

CREATE INDEX pr_heads_updated ON pr_heads (updated_at_ms);
