-- What keeps the dashboard's pages within their budget on a large store: open findings per
-- team per day across every repository (a trend reads one row a day, not one per repository),
-- and a team's open findings in the order its page lists them (a page reads its rows, not a
-- sort of all of them).

-- Open findings at the end of `day` (UTC days since the epoch) summed over every repository:
-- per owning team, and with team '' every finding once. A day without a row carries the
-- value of the latest row before it. Written with each snapshot (its change since the one
-- before), so it never needs the repositories' snapshots to be read again.
CREATE TABLE daily_totals (
    team    TEXT    NOT NULL,
    day     INTEGER NOT NULL,
    danger  INTEGER NOT NULL,
    warning INTEGER NOT NULL,
    PRIMARY KEY (team, day)
);

-- Set by the code that writes `daily_totals` with each snapshot: an older kubeward still
-- running against this file cannot store a snapshot whose change the totals would miss (its
-- insert names no value for this column; SQLite cannot drop a default, hence the trigger).
ALTER TABLE snapshots ADD COLUMN daily_counted INTEGER;
UPDATE snapshots SET daily_counted = 1;
CREATE TRIGGER snapshots_count_daily BEFORE INSERT ON snapshots WHEN NEW.daily_counted IS NULL
BEGIN
    SELECT RAISE(ABORT, 'a snapshot from a kubeward older than queue schema 6');
END;

-- Filled from the snapshots already stored: on each day any snapshot was taken, every
-- repository's latest snapshot by the end of that day.
INSERT INTO daily_totals (team, day, danger, warning)
    WITH days AS (SELECT DISTINCT taken_at_ms / 86400000 AS day FROM snapshots),
    latest AS (
        SELECT d.day, (SELECT s.id FROM snapshots s
                       WHERE s.forge = r.forge AND s.repo_id = r.repo_id
                         AND s.taken_at_ms < (d.day + 1) * 86400000
                       ORDER BY s.taken_at_ms DESC, s.id DESC LIMIT 1) AS id
        FROM days d CROSS JOIN snapshot_repos r),
    sums AS (
        SELECT t.team, l.day, SUM(t.danger) AS danger, SUM(t.warning) AS warning
        FROM latest l JOIN snapshot_team_totals t ON t.snapshot_id = l.id
        GROUP BY t.team, l.day),
    teams AS (SELECT DISTINCT team FROM snapshot_team_totals)
    -- Zero for a team on a day none of its findings were open (a team's totals hold only
    -- the teams with findings).
    SELECT tm.team, d.day, COALESCE(x.danger, 0), COALESCE(x.warning, 0)
    FROM teams tm CROSS JOIN days d LEFT JOIN sums x ON x.team = tm.team AND x.day = d.day
    UNION ALL
    SELECT '', l.day, SUM(s.open_danger), SUM(s.open_warning)
    FROM latest l JOIN snapshots s ON s.id = l.id
    GROUP BY l.day;

-- Open findings per environment at each snapshot, each finding once in each of its
-- environments: the overview's environments. Filled for each repository's latest snapshot.
CREATE TABLE snapshot_environment_totals (
    snapshot_id INTEGER NOT NULL REFERENCES snapshots (id) ON DELETE CASCADE,
    environment TEXT    NOT NULL,
    danger      INTEGER NOT NULL,
    warning     INTEGER NOT NULL,
    PRIMARY KEY (snapshot_id, environment)
);
INSERT INTO snapshot_environment_totals (snapshot_id, environment, danger, warning)
    SELECT r.latest_snapshot_id, e.value,
           SUM(CASE WHEN f.severity = 'danger' THEN 1 ELSE 0 END),
           SUM(CASE WHEN f.severity = 'warning' THEN 1 ELSE 0 END)
    FROM open_findings f
    JOIN snapshot_repos r ON r.forge = f.forge AND r.repo_id = f.repo_id,
    json_each(f.environments) e
    WHERE r.latest_snapshot_id IS NOT NULL
    GROUP BY r.latest_snapshot_id, e.value;

-- A team's findings in its page's order: danger first, then repository, path and line; with
-- what a restricted user's overview counts them by, so that count reads these rows alone.
ALTER TABLE open_finding_teams ADD COLUMN danger_first INTEGER NOT NULL DEFAULT 1;
ALTER TABLE open_finding_teams ADD COLUMN repository TEXT NOT NULL DEFAULT '';
ALTER TABLE open_finding_teams ADD COLUMN path TEXT NOT NULL DEFAULT '';
ALTER TABLE open_finding_teams ADD COLUMN line INTEGER NOT NULL DEFAULT 0;
ALTER TABLE open_finding_teams ADD COLUMN rule TEXT NOT NULL DEFAULT '';
ALTER TABLE open_finding_teams ADD COLUMN environments TEXT NOT NULL DEFAULT '[]';
ALTER TABLE open_finding_teams ADD COLUMN unreviewed INTEGER NOT NULL DEFAULT 0;
UPDATE open_finding_teams AS t SET
    danger_first = CASE f.severity WHEN 'danger' THEN 0 ELSE 1 END,
    path = f.path, line = f.line, rule = f.rule, environments = f.environments,
    unreviewed = f.unreviewed
    FROM open_findings f
    WHERE f.forge = t.forge AND f.repo_id = t.repo_id AND f.key = t.key;
UPDATE open_finding_teams AS t SET repository = r.name
    FROM snapshot_repos r WHERE r.forge = t.forge AND r.repo_id = t.repo_id;
DROP INDEX open_finding_teams_team;
CREATE INDEX open_finding_teams_page ON open_finding_teams
    (team, danger_first, repository, forge, repo_id, path, line, rule, key);
