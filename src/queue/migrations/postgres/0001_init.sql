-- kubeward job queue, schema version 1 (PostgreSQL).
-- The same tables as the SQLite schema: times are BIGINT epoch milliseconds (passed in by the
-- application, never the server's clock), payloads are JSON kept verbatim (`json`, not `jsonb`,
-- so key order survives).

-- Webhook deliveries already accepted, so a forge's redelivery is not processed twice.
CREATE TABLE deliveries (
    forge          TEXT   NOT NULL,
    delivery_id    TEXT   NOT NULL,
    received_at_ms BIGINT NOT NULL,
    PRIMARY KEY (forge, delivery_id)
);

CREATE INDEX deliveries_received ON deliveries (received_at_ms);

CREATE TABLE jobs (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind             TEXT    NOT NULL,
    forge            TEXT    NOT NULL,
    installation_id  BIGINT,
    repo_id          BIGINT  NOT NULL,
    pr_number        BIGINT,
    head_sha         TEXT,
    payload          JSON    NOT NULL,
    state            TEXT    NOT NULL
        CHECK (state IN ('queued', 'running', 'done', 'dead', 'superseded', 'dropped')),
    attempts         BIGINT  NOT NULL DEFAULT 0,
    last_error       TEXT,
    -- Set while running when the job was superseded or its PR/installation dropped;
    -- cancel_reason is the terminal state the job takes when its worker lets go.
    cancel_requested BOOLEAN NOT NULL DEFAULT FALSE,
    cancel_reason    TEXT CHECK (cancel_reason IN ('superseded', 'dropped')),
    run_at_ms        BIGINT  NOT NULL,
    lease_until_ms   BIGINT,
    locked_by        TEXT,
    created_at_ms    BIGINT  NOT NULL,
    updated_at_ms    BIGINT  NOT NULL,
    finished_at_ms   BIGINT
);

-- claim: runnable queued jobs and expired leases, oldest id first. Partial, so the index stays
-- as small as the live queue however much history the table keeps.
CREATE INDEX jobs_queued ON jobs (run_at_ms, id) WHERE state = 'queued';
CREATE INDEX jobs_running_lease ON jobs (lease_until_ms) WHERE state = 'running';
-- supersede / drop_pr / drop_repository.
CREATE INDEX jobs_pr ON jobs (forge, repo_id, pr_number, state);
-- drop_installation.
CREATE INDEX jobs_installation ON jobs (forge, installation_id, state);
-- prune.
CREATE INDEX jobs_finished ON jobs (finished_at_ms) WHERE finished_at_ms IS NOT NULL;

-- Head commit -> PR, for check-run re-requests that carry only a SHA (fork PRs).
CREATE TABLE pr_heads (
    forge         TEXT   NOT NULL,
    repo_id       BIGINT NOT NULL,
    head_sha      TEXT   NOT NULL,
    pr_number     BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    PRIMARY KEY (forge, repo_id, head_sha)
);

CREATE INDEX pr_heads_updated ON pr_heads (updated_at_ms);
