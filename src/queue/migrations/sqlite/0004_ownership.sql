-- Default-branch snapshots and review outcomes, for the platform team's view (src/ownership/).
-- Findings are keyed by their review identity (`key`: the fingerprint, `~n` for repeats), so a
-- snapshot stores only what changed since the one before it: the database grows with change,
-- not with days. Owners and environments are JSON arrays of strings.

-- The repositories snapshots are taken of.
CREATE TABLE snapshot_repos (
    forge           TEXT    NOT NULL,
    repo_id         INTEGER NOT NULL,
    name            TEXT    NOT NULL,
    installation_id INTEGER,
    web_url         TEXT,
    updated_at_ms   INTEGER NOT NULL,
    PRIMARY KEY (forge, repo_id)
);

-- One audit of a default branch at a commit. A checkpoint's rows are its whole finding set;
-- any other snapshot's rows are its changes since the previous snapshot of the repository.
CREATE TABLE snapshots (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    forge         TEXT    NOT NULL,
    repo_id       INTEGER NOT NULL,
    commit_sha    TEXT    NOT NULL,
    taken_at_ms   INTEGER NOT NULL,
    cause         TEXT    NOT NULL CHECK (cause IN ('push', 'installed', 'schedule')),
    checkpoint    INTEGER NOT NULL CHECK (checkpoint IN (0, 1)),
    -- The push was not covered by a review of ours: what it added counts as unreviewed.
    reviewed      INTEGER NOT NULL CHECK (reviewed IN (0, 1)),
    added         INTEGER NOT NULL,
    removed       INTEGER NOT NULL,
    moved         INTEGER NOT NULL,
    open_danger   INTEGER NOT NULL,
    open_warning  INTEGER NOT NULL
);

CREATE INDEX snapshots_repo ON snapshots (forge, repo_id, taken_at_ms);
CREATE INDEX snapshots_taken ON snapshots (taken_at_ms);

CREATE TABLE snapshot_findings (
    snapshot_id  INTEGER NOT NULL REFERENCES snapshots (id) ON DELETE CASCADE,
    change       TEXT    NOT NULL CHECK (change IN ('add', 'remove', 'move')),
    key          TEXT    NOT NULL,
    fingerprint  TEXT    NOT NULL,
    rule         TEXT    NOT NULL,
    severity     TEXT    NOT NULL,
    path         TEXT    NOT NULL,
    line         INTEGER NOT NULL,
    object       TEXT    NOT NULL,
    message      TEXT    NOT NULL,
    owners       TEXT    NOT NULL,
    environments TEXT    NOT NULL,
    PRIMARY KEY (snapshot_id, key)
);

-- Open findings per (team, environment, rule, severity) at each snapshot: the trends.
CREATE TABLE snapshot_counts (
    snapshot_id INTEGER NOT NULL REFERENCES snapshots (id) ON DELETE CASCADE,
    team        TEXT    NOT NULL,
    environment TEXT    NOT NULL,
    rule        TEXT    NOT NULL,
    severity    TEXT    NOT NULL,
    count       INTEGER NOT NULL,
    PRIMARY KEY (snapshot_id, team, environment, rule, severity)
);

-- Open findings per team at each snapshot, each finding once whatever its environments: the
-- teams' trends.
CREATE TABLE snapshot_team_totals (
    snapshot_id INTEGER NOT NULL REFERENCES snapshots (id) ON DELETE CASCADE,
    team        TEXT    NOT NULL,
    danger      INTEGER NOT NULL,
    warning     INTEGER NOT NULL,
    PRIMARY KEY (snapshot_id, team)
);

-- Each repository's open findings now (its latest snapshot applied): what the pages read.
CREATE TABLE open_findings (
    forge        TEXT    NOT NULL,
    repo_id      INTEGER NOT NULL,
    key          TEXT    NOT NULL,
    fingerprint  TEXT    NOT NULL,
    rule         TEXT    NOT NULL,
    severity     TEXT    NOT NULL,
    path         TEXT    NOT NULL,
    line         INTEGER NOT NULL,
    object       TEXT    NOT NULL,
    message      TEXT    NOT NULL,
    owners       TEXT    NOT NULL,
    environments TEXT    NOT NULL,
    commit_sha   TEXT    NOT NULL,
    -- Reached the default branch through a push no review of ours covered.
    unreviewed   INTEGER NOT NULL CHECK (unreviewed IN (0, 1)),
    since_ms     INTEGER NOT NULL,
    PRIMARY KEY (forge, repo_id, key)
);

CREATE INDEX open_findings_rule ON open_findings (rule);

-- One row per (finding, team): a team's page without scanning every repository.
CREATE TABLE open_finding_teams (
    forge   TEXT    NOT NULL,
    repo_id INTEGER NOT NULL,
    key     TEXT    NOT NULL,
    team    TEXT    NOT NULL,
    PRIMARY KEY (forge, repo_id, key, team)
);

CREATE INDEX open_finding_teams_team ON open_finding_teams (team);

-- What each review of a pull request found.
CREATE TABLE review_outcomes (
    forge            TEXT    NOT NULL,
    repo_id          INTEGER NOT NULL,
    pr_number        INTEGER NOT NULL,
    head_sha         TEXT    NOT NULL,
    reviewed_at_ms   INTEGER NOT NULL,
    new_findings     INTEGER NOT NULL,
    fixed_findings   INTEGER NOT NULL,
    exemptions_added INTEGER NOT NULL,
    -- New findings at or above the policy's failOn: what would escape if merged as it is.
    new_failing      INTEGER NOT NULL,
    PRIMARY KEY (forge, repo_id, pr_number, head_sha)
);

-- A pull request's end: merged with new failing findings from its last review = escaped.
CREATE TABLE pr_closures (
    forge        TEXT    NOT NULL,
    repo_id      INTEGER NOT NULL,
    pr_number    INTEGER NOT NULL,
    closed_at_ms INTEGER NOT NULL,
    merged       INTEGER NOT NULL CHECK (merged IN (0, 1)),
    -- The commit the merge made: a push carrying it was reviewed.
    merge_commit_sha TEXT,
    escaped      INTEGER NOT NULL,
    PRIMARY KEY (forge, repo_id, pr_number)
);

CREATE INDEX review_outcomes_head ON review_outcomes (forge, repo_id, head_sha);
CREATE INDEX pr_closures_merge ON pr_closures (forge, repo_id, merge_commit_sha);
