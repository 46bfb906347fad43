-- One head can be the head of several pull requests (a branch proposed to two bases): remember
-- each of them. A new table rather than a new key on pr_heads, so that replicas of the previous
-- version, still running during a rolling update, keep writing the table they know; pr_heads
-- is no longer read and a later migration drops it.
CREATE TABLE pr_head_prs (
    forge         TEXT   NOT NULL,
    repo_id       BIGINT NOT NULL,
    head_sha      TEXT   NOT NULL,
    pr_number     BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    PRIMARY KEY (forge, repo_id, head_sha, pr_number)
);
INSERT INTO pr_head_prs (forge, repo_id, head_sha, pr_number, updated_at_ms)
    SELECT forge, repo_id, head_sha, pr_number, updated_at_ms FROM pr_heads;
CREATE INDEX pr_head_prs_updated ON pr_head_prs (updated_at_ms);
