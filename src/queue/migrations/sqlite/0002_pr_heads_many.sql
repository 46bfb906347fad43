-- One head can be the head of several pull requests (a branch proposed to two bases): remember
-- each pull request, not only the last one. SQLite cannot change a primary key in place.
CREATE TABLE pr_heads_many (
    forge         TEXT    NOT NULL,
    repo_id       INTEGER NOT NULL,
    head_sha      TEXT    NOT NULL,
    pr_number     INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL,
    PRIMARY KEY (forge, repo_id, head_sha, pr_number)
);
INSERT INTO pr_heads_many (forge, repo_id, head_sha, pr_number, updated_at_ms)
    SELECT forge, repo_id, head_sha, pr_number, updated_at_ms FROM pr_heads;
DROP TABLE pr_heads;
ALTER TABLE pr_heads_many RENAME TO pr_heads;
CREATE INDEX pr_heads_updated ON pr_heads (updated_at_ms);
