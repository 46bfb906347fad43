-- What the dashboard's pages read without scanning every open finding: each repository's
-- latest snapshot, its per-rule totals and unreviewed count, and review outcomes per team.

-- The latest snapshot of each repository: the overview sums these, not the open findings.
ALTER TABLE snapshot_repos ADD COLUMN latest_snapshot_id INTEGER;
UPDATE snapshot_repos SET latest_snapshot_id = (
    SELECT s.id FROM snapshots s
    WHERE s.forge = snapshot_repos.forge AND s.repo_id = snapshot_repos.repo_id
    ORDER BY s.taken_at_ms DESC, s.id DESC LIMIT 1);

-- Open findings reached unreviewed at each snapshot.
ALTER TABLE snapshots ADD COLUMN open_unreviewed INTEGER NOT NULL DEFAULT 0;
UPDATE snapshots SET open_unreviewed = (
    SELECT COUNT(*) FROM open_findings f
    WHERE f.forge = snapshots.forge AND f.repo_id = snapshots.repo_id AND f.unreviewed = 1)
WHERE id IN (SELECT latest_snapshot_id FROM snapshot_repos);

-- Open findings per rule at each snapshot, each finding once.
CREATE TABLE snapshot_rule_totals (
    snapshot_id INTEGER NOT NULL REFERENCES snapshots (id) ON DELETE CASCADE,
    rule        TEXT    NOT NULL,
    danger      INTEGER NOT NULL,
    warning     INTEGER NOT NULL,
    PRIMARY KEY (snapshot_id, rule)
);
INSERT INTO snapshot_rule_totals (snapshot_id, rule, danger, warning)
    SELECT r.latest_snapshot_id, f.rule,
           SUM(CASE WHEN f.severity = 'danger' THEN 1 ELSE 0 END),
           SUM(CASE WHEN f.severity = 'warning' THEN 1 ELSE 0 END)
    FROM open_findings f
    JOIN snapshot_repos r ON r.forge = f.forge AND r.repo_id = f.repo_id
    WHERE r.latest_snapshot_id IS NOT NULL
    GROUP BY r.latest_snapshot_id, f.rule;

-- A team's trend reads its own totals only.
CREATE INDEX snapshot_team_totals_team ON snapshot_team_totals (team, snapshot_id);

-- What each review found, per owning team of the findings (`unowned` for none).
CREATE TABLE review_outcome_teams (
    forge          TEXT    NOT NULL,
    repo_id        INTEGER NOT NULL,
    pr_number      INTEGER NOT NULL,
    head_sha       TEXT    NOT NULL,
    team           TEXT    NOT NULL,
    reviewed_at_ms INTEGER NOT NULL,
    new_findings   INTEGER NOT NULL,
    fixed_findings INTEGER NOT NULL,
    new_failing    INTEGER NOT NULL,
    PRIMARY KEY (forge, repo_id, pr_number, head_sha, team)
);
CREATE INDEX review_outcome_teams_team ON review_outcome_teams (team, reviewed_at_ms);

-- Escaped findings of a merged pull request, per owning team.
CREATE TABLE pr_closure_teams (
    forge        TEXT    NOT NULL,
    repo_id      INTEGER NOT NULL,
    pr_number    INTEGER NOT NULL,
    team         TEXT    NOT NULL,
    closed_at_ms INTEGER NOT NULL,
    escaped      INTEGER NOT NULL,
    PRIMARY KEY (forge, repo_id, pr_number, team)
);
CREATE INDEX pr_closure_teams_team ON pr_closure_teams (team, closed_at_ms);
