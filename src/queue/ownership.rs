//! The ownership store, beside the jobs in the queue's database: default-branch snapshots kept
//! as deltas by review identity, each repository's open findings now, per-snapshot counts for
//! trends, and review outcomes. One schema on both dialects (`migrations/*/0004_ownership.sql`:
//! integers and text only), so every statement and every Rust body here is written once and
//! expanded in each backend by [`ownership_operations!`].

use serde::{Deserialize, Serialize};

use crate::audit::Severity;
use crate::ownership::{Delta, OwnedFinding};

/// Why a snapshot was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SnapshotCause {
    /// A push to the default branch.
    Push,
    /// The installation gained the repository.
    Installed,
    /// The periodic snapshot.
    Schedule,
}

impl SnapshotCause {
    pub fn as_str(self) -> &'static str {
        match self {
            SnapshotCause::Push => "push",
            SnapshotCause::Installed => "installed",
            SnapshotCause::Schedule => "schedule",
        }
    }
}

/// A snapshot to store: the whole open finding set of a default branch at a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSnapshot {
    pub forge: String,
    pub repo_id: i64,
    /// `owner/name` or the GitLab path, for pages.
    pub repo_name: String,
    pub installation_id: Option<i64>,
    /// The repository's web address, for links to `file:line` at a commit.
    pub web_url: Option<String>,
    pub commit: String,
    pub taken_at_ms: i64,
    pub cause: SnapshotCause,
    /// Whether a review of ours covered the push (its head was reviewed): what an uncovered
    /// push adds counts as unreviewed.
    pub reviewed: bool,
    pub findings: Vec<OwnedFinding>,
}

/// What storing a snapshot did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SnapshotOutcome {
    /// Its job was superseded or dropped meanwhile: nothing was stored.
    pub discarded: bool,
    pub id: i64,
    /// The first snapshot of the repository: its rows are the whole set.
    pub checkpoint: bool,
    pub added: usize,
    pub removed: usize,
    pub moved: usize,
}

/// A stored snapshot, without its findings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotRecord {
    pub id: i64,
    pub commit: String,
    pub taken_at_ms: i64,
    pub cause: String,
    pub checkpoint: bool,
    pub reviewed: bool,
    pub added: i64,
    pub removed: i64,
    pub moved: i64,
    pub open_danger: i64,
    pub open_warning: i64,
}

/// An open finding of a repository, as the pages read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OpenFinding {
    pub forge: String,
    pub repo_id: i64,
    pub repository: String,
    /// The snapshot's commit, for a link to the file at that commit.
    pub commit: String,
    pub web_url: Option<String>,
    #[serde(flatten)]
    pub finding: OwnedFinding,
    /// It reached the default branch through a push no review covered.
    pub unreviewed: bool,
    pub since_ms: i64,
}

/// What one review of a pull request found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReviewOutcome {
    pub forge: String,
    pub repo_id: i64,
    pub pr_number: i64,
    pub head_sha: String,
    pub reviewed_at_ms: i64,
    pub new_findings: i64,
    pub fixed_findings: i64,
    pub exemptions_added: i64,
    /// New findings at or above the policy's `failOn`.
    pub new_failing: i64,
    /// The same, per owning team of the findings ([`crate::ownership::UNOWNED`] for none).
    #[serde(default)]
    pub teams: Vec<TeamOutcome>,
}

/// What one review found in one team's files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TeamOutcome {
    pub team: String,
    pub new_findings: i64,
    pub fixed_findings: i64,
    pub new_failing: i64,
}

/// What a team's reviews caught in one repository, over a window.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TeamReviews {
    pub repository: String,
    pub reviews: i64,
    pub pull_requests: i64,
    pub new_findings: i64,
    pub fixed_findings: i64,
    pub new_failing: i64,
    /// Failing findings merged anyway.
    pub escaped: i64,
}

/// One repository's open findings of one team, at its latest snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TeamRepository {
    pub forge: String,
    pub repo_id: i64,
    pub name: String,
    pub web_url: Option<String>,
    pub commit: String,
    pub danger: i64,
    pub warning: i64,
}

/// One snapshot's open findings (a team's, or all), for a trend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrendRow {
    pub forge: String,
    pub repo_id: i64,
    /// Its name, for what the user may see.
    pub repository: String,
    pub taken_at_ms: i64,
    pub danger: u64,
    pub warning: u64,
}

impl TrendRow {
    /// The repository's identity for [`crate::ownership::daily_trend`]: two forges may
    /// have repositories of one name.
    pub fn point(&self) -> (String, i64, u64, u64) {
        (
            format!("{}:{}", self.forge, self.repo_id),
            self.taken_at_ms,
            self.danger,
            self.warning,
        )
    }
}

/// `(repository, team, danger, warning)` at each repository's latest snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositoryTeamCount {
    pub forge: String,
    pub repo_id: i64,
    pub repository: String,
    pub team: String,
    pub danger: i64,
    pub warning: i64,
}

/// Open findings a restricted user sees, counted by what the overview groups them by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VisibleCount {
    pub forge: String,
    pub repo_id: i64,
    pub repository: String,
    pub rule: String,
    pub severity: Severity,
    pub environments: Vec<String>,
    pub unreviewed: bool,
    pub unowned: bool,
    pub findings: i64,
}

/// One repository's open findings, by severity.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RepositoryCount {
    pub forge: String,
    pub repo_id: i64,
    pub name: String,
    pub danger: i64,
    pub warning: i64,
}

/// Open findings of one group, by severity.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct GroupCount {
    pub name: String,
    pub danger: i64,
    pub warning: i64,
}

pub(crate) fn severity_of(text: &str) -> Severity {
    match text {
        "danger" => Severity::Danger,
        "warning" => Severity::Warning,
        _ => Severity::Ignore,
    }
}

pub(crate) fn json_list(items: &[String]) -> String {
    serde_json::to_string(items).unwrap_or_else(|_| "[]".into())
}

pub(crate) fn list_of(text: &str) -> Vec<String> {
    serde_json::from_str(text).unwrap_or_default()
}

/// `(name, danger, warning)` rows summed per name, most danger first.
pub(crate) fn fold_counts<'a>(rows: impl Iterator<Item = (&'a str, i64, i64)>) -> Vec<GroupCount> {
    let mut by: std::collections::BTreeMap<&str, GroupCount> = Default::default();
    for (name, danger, warning) in rows {
        let entry = by.entry(name).or_insert_with(|| GroupCount {
            name: name.to_owned(),
            ..GroupCount::default()
        });
        entry.danger += danger;
        entry.warning += warning;
    }
    let mut counts: Vec<GroupCount> = by.into_values().collect();
    counts.sort_by(|a, b| {
        most_danger_first((a.danger, a.warning), (b.danger, b.warning)).then(a.name.cmp(&b.name))
    });
    counts
}

/// The order of every count list the pages show: most danger, then most warning, first.
fn most_danger_first(a: (i64, i64), b: (i64, i64)) -> std::cmp::Ordering {
    b.cmp(&a)
}

/// `(forge, repo_id, name, danger, warning)` rows summed per repository (two forges may have
/// repositories of one name), most danger first.
pub(crate) fn fold_repositories<'a>(
    rows: impl Iterator<Item = (&'a str, i64, &'a str, i64, i64)>,
) -> Vec<RepositoryCount> {
    let mut by: std::collections::BTreeMap<(&str, i64), RepositoryCount> = Default::default();
    for (forge, repo_id, name, danger, warning) in rows {
        let entry = by
            .entry((forge, repo_id))
            .or_insert_with(|| RepositoryCount {
                forge: forge.to_owned(),
                repo_id,
                name: name.to_owned(),
                ..RepositoryCount::default()
            });
        entry.danger += danger;
        entry.warning += warning;
    }
    let mut counts: Vec<RepositoryCount> = by.into_values().collect();
    counts.sort_by(|a, b| {
        most_danger_first((a.danger, a.warning), (b.danger, b.warning))
            .then(a.name.cmp(&b.name))
            .then(a.forge.cmp(&b.forge))
    });
    counts
}

/// The teams a stored finding counts for (owners, or [`crate::ownership::UNOWNED`]).
pub(crate) fn teams_of(f: &OwnedFinding) -> Vec<String> {
    f.teams().into_iter().map(str::to_owned).collect()
}

/// Milliseconds in a day: `daily_totals` counts UTC days since the epoch.
pub(crate) const DAY_MS: i64 = 86_400_000;

/// A repository's open findings at one snapshot, as `daily_totals` counts them: all of them
/// once, and per team.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct DayTotals {
    pub all: (i64, i64),
    pub teams: std::collections::BTreeMap<String, (i64, i64)>,
}

/// What a repository moving from `from` to `to` adds to the daily totals: `(team, danger,
/// warning)` per team whose count changed, in team order (the order rows are locked in), and
/// always the all-findings row `''`, so every day with a snapshot has one.
pub(crate) fn daily_changes(from: &DayTotals, to: &DayTotals) -> Vec<(String, i64, i64)> {
    let mut changes = vec![(String::new(), to.all.0 - from.all.0, to.all.1 - from.all.1)];
    let teams: std::collections::BTreeSet<&String> =
        from.teams.keys().chain(to.teams.keys()).collect();
    for team in teams {
        let was = from.teams.get(team).copied().unwrap_or_default();
        let is = to.teams.get(team).copied().unwrap_or_default();
        if was != is {
            changes.push((team.clone(), is.0 - was.0, is.1 - was.1));
        }
    }
    changes
}

/// Daily points for the days `first_day..=last_day` from `daily_totals` rows `(day, danger,
/// warning)` in day order, the first of them possibly before the window: a day without a row
/// carries the latest row before it.
pub(crate) fn carried_days(
    rows: &[(i64, i64, i64)],
    first_day: i64,
    last_day: i64,
) -> Vec<crate::ownership::TrendPoint> {
    let mut next = 0;
    let mut current = (0, 0);
    (first_day..=last_day)
        .map(|day| {
            while let Some(&(_, d, w)) = rows.get(next).filter(|r| r.0 <= day) {
                current = (d, w);
                next += 1;
            }
            crate::ownership::TrendPoint {
                day_end_ms: (day + 1) * DAY_MS,
                danger: u64::try_from(current.0).unwrap_or(0),
                warning: u64::try_from(current.1).unwrap_or(0),
            }
        })
        .collect()
}

/// Rows of changes a snapshot stores: everything for a checkpoint, else the delta.
pub(crate) fn rows_to_store<'a>(
    checkpoint: bool,
    findings: &'a [OwnedFinding],
    delta: &'a Delta,
) -> Vec<(&'static str, &'a OwnedFinding)> {
    if checkpoint {
        return findings.iter().map(|f| ("add", f)).collect();
    }
    delta
        .added
        .iter()
        .map(|f| ("add", f))
        .chain(delta.removed.iter().map(|f| ("remove", f)))
        .chain(delta.moved.iter().map(|f| ("move", f)))
        .collect()
}

pub(super) const UPSERT_REPO: &str = "INSERT INTO snapshot_repos
    (forge, repo_id, name, installation_id, web_url, updated_at_ms) VALUES ($1, $2, $3, $4, $5, $6)
    ON CONFLICT (forge, repo_id) DO UPDATE SET name = excluded.name,
        installation_id = excluded.installation_id, web_url = excluded.web_url,
        updated_at_ms = excluded.updated_at_ms";

pub(super) const LATEST_SNAPSHOT: &str = "SELECT id, commit_sha, taken_at_ms, open_danger,
    open_warning FROM snapshots
    WHERE forge = $1 AND repo_id = $2 ORDER BY taken_at_ms DESC, id DESC LIMIT 1";

pub(super) const INSERT_SNAPSHOT: &str = "INSERT INTO snapshots
    (forge, repo_id, commit_sha, taken_at_ms, cause, checkpoint, reviewed, added, removed, moved,
     open_danger, open_warning, open_unreviewed, daily_counted)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, 1) RETURNING id";

/// Rows per multi-row statement: well under both dialects' limits on bound values (SQLite
/// 32,766, PostgreSQL 65,535) at 15 columns, and one round trip per 500 rows, not per row.
pub(super) const BATCH_ROWS: usize = 500;

/// Binds a finding's ten columns (`key` … `environments`) into a multi-row `VALUES` tuple, in
/// the order every statement here names them.
macro_rules! push_finding {
    ($b:expr, $f:expr) => {
        $b.push_bind($f.key.as_str())
            .push_bind($f.fingerprint.as_str())
            .push_bind($f.rule.as_str())
            .push_bind($f.severity.as_str())
            .push_bind($f.path.as_str())
            .push_bind(i64::from($f.line))
            .push_bind($f.object.as_str())
            .push_bind($f.message.as_str())
            .push_bind($crate::queue::ownership::json_list(&$f.owners))
            .push_bind($crate::queue::ownership::json_list(&$f.environments))
    };
}
pub(super) use push_finding;

pub(super) const INSERT_SNAPSHOT_FINDINGS_HEAD: &str = "INSERT INTO snapshot_findings
    (snapshot_id, change, key, fingerprint, rule, severity, path, line, object, message, owners,
     environments) ";

pub(super) const INSERT_COUNTS_HEAD: &str =
    "INSERT INTO snapshot_counts (snapshot_id, team, environment, rule, severity, count) ";

pub(super) const INSERT_TEAM_TOTALS_HEAD: &str =
    "INSERT INTO snapshot_team_totals (snapshot_id, team, danger, warning) ";

pub(super) const INSERT_ENVIRONMENT_TOTALS_HEAD: &str =
    "INSERT INTO snapshot_environment_totals (snapshot_id, environment, danger, warning) ";

pub(super) const INSERT_RULE_TOTALS_HEAD: &str =
    "INSERT INTO snapshot_rule_totals (snapshot_id, rule, danger, warning) ";

pub(super) const TEAM_TOTALS_OF: &str =
    "SELECT team, danger, warning FROM snapshot_team_totals WHERE snapshot_id = $1";

/// The row of (`$1` team, `$2` day), made if missing with the value the day carried so far
/// (the latest row before it). `WHERE TRUE` keeps SQLite from reading `ON` as a join's.
pub(super) const ENSURE_DAY: &str = "INSERT INTO daily_totals (team, day, danger, warning)
    SELECT $1, $2,
        COALESCE((SELECT p.danger FROM daily_totals p WHERE p.team = $1 AND p.day < $2
                  ORDER BY p.day DESC LIMIT 1), 0),
        COALESCE((SELECT p.warning FROM daily_totals p WHERE p.team = $1 AND p.day < $2
                  ORDER BY p.day DESC LIMIT 1), 0)
    WHERE TRUE ON CONFLICT (team, day) DO NOTHING";

/// A change from day `$2` on: that day and every later one already written.
pub(super) const ADD_FROM_DAY: &str = "UPDATE daily_totals
    SET danger = danger + $3, warning = warning + $4 WHERE team = $1 AND day >= $2";

/// `(day, danger, warning)` of a team's (`''`: every finding's) daily totals in
/// [`$2`, `$3`], and the latest row before `$2` (where the window starts from).
pub(super) const DAILY_TOTALS: &str = "SELECT day, danger, warning FROM daily_totals
    WHERE team = $1 AND day <= $3
      AND day >= COALESCE((SELECT MAX(p.day) FROM daily_totals p
                           WHERE p.team = $1 AND p.day <= $2), $2)
    ORDER BY day";

/// Every team's daily total at the end of the last day before `$1`.
pub(super) const TEAMS_BEFORE_DAY: &str = "SELECT d.team, d.danger, d.warning
    FROM daily_totals d
    JOIN (SELECT team, MAX(day) AS day FROM daily_totals
          WHERE day < $1 AND team <> '' GROUP BY team) m ON m.team = d.team AND m.day = d.day";

/// A repository's snapshots with their totals, oldest first: what it added to the daily
/// totals, to take back when its data is deleted.
pub(super) const REPO_TOTALS_HISTORY: &str = "SELECT s.id, s.taken_at_ms, s.open_danger,
    s.open_warning, t.team, t.danger, t.warning
    FROM snapshots s LEFT JOIN snapshot_team_totals t ON t.snapshot_id = s.id
    WHERE s.forge = $1 AND s.repo_id = $2 ORDER BY s.taken_at_ms, s.id";

/// The open findings of the `seen` (forge, repo_id, team) triples (a `VALUES` list appended
/// after this head), each once, counted per repository, rule, severity, environments,
/// unreviewed and unowned, from the per-team rows alone. A finding seen through two teams is
/// one key in one group (all of these are the finding's, not the team's: an unowned finding's
/// only team is `unowned`, [`crate::ownership::UNOWNED`]).
pub(super) const VISIBLE_COUNTS_HEAD: &str = "WITH seen (forge, repo_id, team) AS (";
pub(super) const VISIBLE_COUNTS_TAIL: &str = ")
    SELECT t.forge, t.repo_id, r.name AS repository, t.rule, t.danger_first, t.environments,
        CAST(t.unreviewed AS BIGINT) AS unreviewed,
        CAST(CASE WHEN t.team = 'unowned' THEN 1 ELSE 0 END AS BIGINT) AS unowned,
        CAST(COUNT(DISTINCT t.key) AS BIGINT) AS n
    FROM open_finding_teams t
    JOIN seen v ON v.forge = t.forge AND v.repo_id = t.repo_id AND v.team = t.team
    JOIN snapshot_repos r ON r.forge = t.forge AND r.repo_id = t.repo_id
    GROUP BY t.forge, t.repo_id, r.name, t.rule, t.danger_first, t.environments, t.unreviewed,
        CASE WHEN t.team = 'unowned' THEN 1 ELSE 0 END";

/// Triples per `VISIBLE_COUNTS` statement: 3 bound values each, well under both limits.
pub(super) const VISIBLE_TRIPLES: usize = 2_000;

/// Takes the repository's row lock (PostgreSQL; SQLite's write transaction has every lock).
pub(super) const LOCK_REPO: &str = "UPDATE snapshot_repos SET updated_at_ms = updated_at_ms
    WHERE forge = $1 AND repo_id = $2";

/// A renamed repository's findings keep their place in its teams' pages.
pub(super) const RENAME_OPEN_TEAMS: &str = "UPDATE open_finding_teams SET repository = $3
    WHERE forge = $1 AND repo_id = $2 AND repository <> $3";

pub(super) const MARK_LATEST: &str =
    "UPDATE snapshot_repos SET latest_snapshot_id = $3 WHERE forge = $1 AND repo_id = $2";

/// Per repository, its snapshots taken in [`$1`, `$2`) and the latest one before `$1` (what
/// the window's first day starts from): a window's trend reads the window, not the history.
/// Only the repositories the team ever had findings in; zero where a snapshot had none.
pub(super) const TEAM_TREND: &str = "WITH team_repos AS (
        SELECT DISTINCT s.forge, s.repo_id FROM snapshot_team_totals t
        JOIN snapshots s ON s.id = t.snapshot_id WHERE t.team = $3),
    windowed AS (
        SELECT s.id FROM snapshots s
        JOIN team_repos tr ON tr.forge = s.forge AND tr.repo_id = s.repo_id
        WHERE s.taken_at_ms >= $1 AND s.taken_at_ms < $2
        UNION ALL
        SELECT (SELECT s.id FROM snapshots s
                WHERE s.forge = tr.forge AND s.repo_id = tr.repo_id AND s.taken_at_ms < $1
                ORDER BY s.taken_at_ms DESC, s.id DESC LIMIT 1) FROM team_repos tr)
    SELECT r.forge, r.repo_id, r.name, s.taken_at_ms, COALESCE(t.danger, 0) AS danger,
        COALESCE(t.warning, 0) AS warning
    FROM windowed w JOIN snapshots s ON s.id = w.id
    JOIN snapshot_repos r ON r.forge = s.forge AND r.repo_id = s.repo_id
    LEFT JOIN snapshot_team_totals t ON t.snapshot_id = s.id AND t.team = $3";

/// [`TEAM_TREND`] for every open finding, each once.
pub(super) const ALL_TREND: &str = "WITH windowed AS (
        SELECT s.id FROM snapshots s WHERE s.taken_at_ms >= $1 AND s.taken_at_ms < $2
        UNION ALL
        SELECT (SELECT s.id FROM snapshots s
                WHERE s.forge = r.forge AND s.repo_id = r.repo_id AND s.taken_at_ms < $1
                ORDER BY s.taken_at_ms DESC, s.id DESC LIMIT 1) FROM snapshot_repos r)
    SELECT r.forge, r.repo_id, r.name, s.taken_at_ms, s.open_danger AS danger,
        s.open_warning AS warning
    FROM windowed w JOIN snapshots s ON s.id = w.id
    JOIN snapshot_repos r ON r.forge = s.forge AND r.repo_id = s.repo_id";

/// The team's repositories, with its open findings in each.
pub(super) const TEAM_REPOSITORIES: &str = "SELECT r.forge, r.repo_id, r.name, r.web_url,
    s.commit_sha, t.danger, t.warning
    FROM snapshot_team_totals t
    JOIN snapshot_repos r ON r.latest_snapshot_id = t.snapshot_id
    JOIN snapshots s ON s.id = t.snapshot_id
    WHERE t.team = $1
    ORDER BY t.danger DESC, t.warning DESC, r.name";

/// The team's open findings per repository and environment (a finding counts in each of its
/// environments).
pub(super) const TEAM_ENVIRONMENTS: &str = "SELECT r.name AS repository, c.environment,
    c.severity, CAST(SUM(c.count) AS BIGINT) AS n
    FROM snapshot_counts c JOIN snapshot_repos r ON r.latest_snapshot_id = c.snapshot_id
    WHERE c.team = $1 AND c.environment <> ''
    GROUP BY r.name, c.environment, c.severity";

/// What the team's reviews caught since `$2`, per repository.
pub(super) const TEAM_REVIEWS: &str = "SELECT COALESCE(r.name, '') AS repository,
    COUNT(*) AS reviews, COUNT(DISTINCT o.pr_number) AS pull_requests,
    CAST(SUM(o.new_findings) AS BIGINT) AS new_findings,
    CAST(SUM(o.fixed_findings) AS BIGINT) AS fixed_findings,
    CAST(SUM(o.new_failing) AS BIGINT) AS new_failing,
    CAST(COALESCE((SELECT SUM(c.escaped) FROM pr_closure_teams c
        WHERE c.forge = o.forge AND c.repo_id = o.repo_id AND c.team = $1
          AND c.closed_at_ms >= $2), 0) AS BIGINT) AS escaped
    FROM review_outcome_teams o
    LEFT JOIN snapshot_repos r ON r.forge = o.forge AND r.repo_id = o.repo_id
    WHERE o.team = $1 AND o.reviewed_at_ms >= $2
    GROUP BY o.forge, o.repo_id, r.name
    ORDER BY new_findings DESC, repository";

pub(super) const INSERT_REVIEW_TEAMS_HEAD: &str = "INSERT INTO review_outcome_teams
    (forge, repo_id, pr_number, head_sha, team, reviewed_at_ms, new_findings, fixed_findings,
     new_failing) ";

pub(super) const REVIEW_TEAMS_TAIL: &str =
    " ON CONFLICT (forge, repo_id, pr_number, head_sha, team) DO UPDATE SET
    reviewed_at_ms = excluded.reviewed_at_ms, new_findings = excluded.new_findings,
    fixed_findings = excluded.fixed_findings, new_failing = excluded.new_failing";

/// The last review's failing findings per team: what escapes when the pull request merges.
pub(super) const CLOSURE_TEAMS: &str = "INSERT INTO pr_closure_teams
    (forge, repo_id, pr_number, team, closed_at_ms, escaped)
    SELECT o.forge, o.repo_id, o.pr_number, o.team, $4, o.new_failing
    FROM review_outcome_teams o
    WHERE o.forge = $1 AND o.repo_id = $2 AND o.pr_number = $3 AND o.new_failing > 0
      AND o.head_sha = (SELECT l.head_sha FROM review_outcomes l
                        WHERE l.forge = $1 AND l.repo_id = $2 AND l.pr_number = $3
                        ORDER BY l.reviewed_at_ms DESC LIMIT 1)";

pub(super) const DELETE_CLOSURE_TEAMS: &str =
    "DELETE FROM pr_closure_teams WHERE forge = $1 AND repo_id = $2 AND pr_number = $3";

pub(super) const OPEN_FINDINGS_OF: &str = "SELECT key, fingerprint, rule, severity, path, line,
    object, message, owners, environments, commit_sha, unreviewed, since_ms
    FROM open_findings WHERE forge = $1 AND repo_id = $2 ORDER BY path, line, rule, key";

pub(super) const UPSERT_OPEN_HEAD: &str = "INSERT INTO open_findings
    (forge, repo_id, key, fingerprint, rule, severity, path, line, object, message, owners,
     environments, commit_sha, unreviewed, since_ms) ";

pub(super) const UPSERT_OPEN_TAIL: &str = " ON CONFLICT (forge, repo_id, key) DO UPDATE SET
    fingerprint = excluded.fingerprint, rule = excluded.rule, severity = excluded.severity,
    path = excluded.path, line = excluded.line, object = excluded.object,
    message = excluded.message, owners = excluded.owners, environments = excluded.environments,
    commit_sha = excluded.commit_sha";

pub(super) const INSERT_OPEN_TEAMS_HEAD: &str = "INSERT INTO open_finding_teams
    (forge, repo_id, key, team, danger_first, repository, path, line, rule, environments,
     unreviewed) ";

pub(super) const SNAPSHOTS_OF: &str = "SELECT id, commit_sha, taken_at_ms, cause, checkpoint,
    reviewed, added, removed, moved, open_danger, open_warning
    FROM snapshots WHERE forge = $1 AND repo_id = $2 ORDER BY taken_at_ms, id";

pub(super) const SNAPSHOT_ROWS: &str = "SELECT change, key, fingerprint, rule, severity, path,
    line, object, message, owners, environments FROM snapshot_findings WHERE snapshot_id = $1";

pub(super) const DELETE_SNAPSHOT_ROWS: &str =
    "DELETE FROM snapshot_findings WHERE snapshot_id = $1";

pub(super) const MAKE_CHECKPOINT: &str = "UPDATE snapshots SET checkpoint = 1 WHERE id = $1";

pub(super) const UPSERT_REVIEW_OUTCOME: &str = "INSERT INTO review_outcomes
    (forge, repo_id, pr_number, head_sha, reviewed_at_ms, new_findings, fixed_findings,
     exemptions_added, new_failing)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
    ON CONFLICT (forge, repo_id, pr_number, head_sha) DO UPDATE SET
        reviewed_at_ms = excluded.reviewed_at_ms, new_findings = excluded.new_findings,
        fixed_findings = excluded.fixed_findings, exemptions_added = excluded.exemptions_added,
        new_failing = excluded.new_failing";

pub(super) const LAST_REVIEW_FAILING: &str = "SELECT new_failing FROM review_outcomes
    WHERE forge = $1 AND repo_id = $2 AND pr_number = $3
    ORDER BY reviewed_at_ms DESC LIMIT 1";

pub(super) const UPSERT_CLOSURE: &str = "INSERT INTO pr_closures
    (forge, repo_id, pr_number, closed_at_ms, merged, merge_commit_sha, escaped)
    VALUES ($1, $2, $3, $4, $5, $6, $7)
    ON CONFLICT (forge, repo_id, pr_number) DO UPDATE SET closed_at_ms = excluded.closed_at_ms,
        merged = excluded.merged, merge_commit_sha = excluded.merge_commit_sha,
        escaped = excluded.escaped";

/// A commit a review covered: a reviewed head, or the merge commit of a reviewed pull request.
pub(super) const COMMIT_REVIEWED: &str = "SELECT 1 AS hit FROM review_outcomes
    WHERE forge = $1 AND repo_id = $2 AND head_sha = $3
    UNION ALL SELECT 1 AS hit FROM pr_closures c
    WHERE c.forge = $1 AND c.repo_id = $2 AND c.merge_commit_sha = $3
      AND EXISTS (SELECT 1 FROM review_outcomes o
                  WHERE o.forge = c.forge AND o.repo_id = c.repo_id AND o.pr_number = c.pr_number)";

/// Repositories whose latest snapshot is older than `$1` (or that have none).
pub(super) const REPOS_DUE: &str = "SELECT r.forge, r.repo_id, r.name, r.installation_id,
    r.web_url FROM snapshot_repos r
    WHERE COALESCE((SELECT MAX(s.taken_at_ms) FROM snapshots s
                    WHERE s.forge = r.forge AND s.repo_id = r.repo_id), 0) < $1
    ORDER BY r.forge, r.repo_id";

/// The repositories an installation had: snapshotted ones, and those it has jobs of (reviews
/// of a repository never snapshotted).
pub(super) const REPOS_OF_INSTALLATION: &str =
    "SELECT repo_id FROM snapshot_repos WHERE forge = $1 AND installation_id = $2
     UNION SELECT repo_id FROM jobs WHERE forge = $1 AND installation_id = $2";

/// Each repository's open findings per team, at its latest snapshot.
pub(super) const TEAM_COUNTS: &str = "SELECT r.forge, r.repo_id, r.name AS repository, t.team,
    t.danger, t.warning
    FROM snapshot_repos r JOIN snapshot_team_totals t ON t.snapshot_id = r.latest_snapshot_id";

/// Each repository's open findings per team at its latest snapshot before `$1`: where each
/// team stood when a trend's window began.
pub(super) const TEAM_COUNTS_BEFORE: &str = "SELECT r.forge, r.repo_id, r.name AS repository,
    t.team, t.danger, t.warning
    FROM snapshot_repos r JOIN snapshot_team_totals t ON t.snapshot_id = (
        SELECT s.id FROM snapshots s
        WHERE s.forge = r.forge AND s.repo_id = r.repo_id AND s.taken_at_ms < $1
        ORDER BY s.taken_at_ms DESC, s.id DESC LIMIT 1)";

pub(super) const RULE_COUNTS: &str = "SELECT t.rule AS name,
    CAST(SUM(t.danger) AS BIGINT) AS danger, CAST(SUM(t.warning) AS BIGINT) AS warning
    FROM snapshot_repos r JOIN snapshot_rule_totals t ON t.snapshot_id = r.latest_snapshot_id
    GROUP BY t.rule";

pub(super) const ENVIRONMENT_COUNTS: &str = "SELECT t.environment AS name,
    CAST(SUM(t.danger) AS BIGINT) AS danger, CAST(SUM(t.warning) AS BIGINT) AS warning
    FROM snapshot_repos r
    JOIN snapshot_environment_totals t ON t.snapshot_id = r.latest_snapshot_id
    GROUP BY t.environment";

pub(super) const REPO_COUNTS: &str = "SELECT r.forge, r.repo_id, r.name, s.open_danger AS danger,
    s.open_warning AS warning, s.open_unreviewed AS unreviewed
    FROM snapshot_repos r JOIN snapshots s ON s.id = r.latest_snapshot_id";

// SUM of a BIGINT is NUMERIC on PostgreSQL: cast back so both dialects give an integer.
pub(super) const ESCAPED_SINCE: &str = "SELECT CAST(COALESCE(SUM(escaped), 0) AS BIGINT) AS n
    FROM pr_closures WHERE closed_at_ms >= $1";

pub(super) const TEAM_FINDINGS: &str = "SELECT f.forge, f.repo_id, r.name, r.web_url, f.key,
    f.fingerprint, f.rule, f.severity, f.path, f.line, f.object, f.message, f.owners,
    f.environments, ls.commit_sha, f.unreviewed, f.since_ms
    FROM open_finding_teams t
    JOIN open_findings f ON f.forge = t.forge AND f.repo_id = t.repo_id AND f.key = t.key
    JOIN snapshot_repos r ON r.forge = f.forge AND r.repo_id = f.repo_id
    JOIN snapshots ls ON ls.id = r.latest_snapshot_id
    WHERE t.team = $1
    ORDER BY t.danger_first, t.repository, t.forge, t.repo_id, t.path, t.line, t.rule, t.key
    LIMIT $2 OFFSET $3";

pub(super) const RULE_FINDINGS: &str = "SELECT f.forge, f.repo_id, r.name, r.web_url, f.key,
    f.fingerprint, f.rule, f.severity, f.path, f.line, f.object, f.message, f.owners,
    f.environments, ls.commit_sha, f.unreviewed, f.since_ms
    FROM open_findings f
    JOIN snapshot_repos r ON r.forge = f.forge AND r.repo_id = f.repo_id
    JOIN snapshots ls ON ls.id = r.latest_snapshot_id
    WHERE f.rule = $1
    ORDER BY CASE f.severity WHEN 'danger' THEN 0 ELSE 1 END, r.name, f.forge, f.repo_id, f.path,
        f.line, f.key LIMIT $2 OFFSET $3";

pub(super) const REPOSITORY_FINDINGS: &str = "SELECT f.forge, f.repo_id, r.name, r.web_url,
    f.key, f.fingerprint, f.rule, f.severity, f.path, f.line, f.object, f.message, f.owners,
    f.environments, ls.commit_sha, f.unreviewed, f.since_ms
    FROM open_findings f
    JOIN snapshot_repos r ON r.forge = f.forge AND r.repo_id = f.repo_id
    JOIN snapshots ls ON ls.id = r.latest_snapshot_id
    WHERE f.forge = $1 AND f.repo_id = $2 ORDER BY f.path, f.line, f.rule, f.key
    LIMIT $3 OFFSET $4";

/// Which open findings to list.
#[derive(Debug, Clone, Copy)]
pub enum FindingsOf<'a> {
    Team(&'a str),
    Rule(&'a str),
    Repository { forge: &'a str, repo_id: i64 },
}

pub(super) const DELETE_REPO_DATA: [&str; 8] = [
    "DELETE FROM snapshots WHERE forge = $1 AND repo_id = $2",
    "DELETE FROM review_outcome_teams WHERE forge = $1 AND repo_id = $2",
    "DELETE FROM pr_closure_teams WHERE forge = $1 AND repo_id = $2",
    "DELETE FROM open_findings WHERE forge = $1 AND repo_id = $2",
    "DELETE FROM open_finding_teams WHERE forge = $1 AND repo_id = $2",
    "DELETE FROM review_outcomes WHERE forge = $1 AND repo_id = $2",
    "DELETE FROM pr_closures WHERE forge = $1 AND repo_id = $2",
    "DELETE FROM snapshot_repos WHERE forge = $1 AND repo_id = $2",
];

/// The ownership operations, written once: expanded inside each backend's `impl`, where
/// `self.pool` and `self.begin_write` are that backend's.
macro_rules! ownership_operations {
    ($db:ty, $job_cancelled:expr, $lock_daily_totals:expr) => {
        /// Stores `snapshot` as its changes since the repository's latest one, updates the
        /// open findings and writes the counts, in one transaction. A snapshot of the commit
        /// the latest one is already of stores nothing new (a retried job).
        ///
        /// With `job`, nothing is stored once that job was superseded or dropped (the
        /// repository left the installation): checked inside the transaction, with the job's
        /// row locked on PostgreSQL, so a removal's delete cannot run between the check and
        /// the write.
        pub(super) async fn record_snapshot(
            &self,
            snapshot: &$crate::queue::ownership::NewSnapshot,
            job: Option<i64>,
        ) -> Result<$crate::queue::ownership::SnapshotOutcome, QueueError> {
            use $crate::queue::ownership::*;
            let op = "record snapshot";
            let mut tx = self.begin_write(op).await?;
            if let Some(job) = job {
                let cancelled = sqlx::query($job_cancelled)
                    .bind(job)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db(op))?
                    .map_or(Ok(1), |row| row.try_get::<i64, _>("cancelled"))
                    .map_err(db(op))?;
                if cancelled != 0 {
                    tx.commit().await.map_err(db(op))?;
                    return Ok(SnapshotOutcome {
                        discarded: true,
                        ..SnapshotOutcome::default()
                    });
                }
            }
            sqlx::query(UPSERT_REPO)
                .bind(&snapshot.forge)
                .bind(snapshot.repo_id)
                .bind(&snapshot.repo_name)
                .bind(snapshot.installation_id)
                .bind(snapshot.web_url.as_deref())
                .bind(snapshot.taken_at_ms)
                .execute(&mut *tx)
                .await
                .map_err(db(op))?;
            // After the upsert, which locks the repository's row: a concurrent snapshot with
            // another name cannot interleave.
            sqlx::query(RENAME_OPEN_TEAMS)
                .bind(&snapshot.forge)
                .bind(snapshot.repo_id)
                .bind(&snapshot.repo_name)
                .execute(&mut *tx)
                .await
                .map_err(db(op))?;
            let latest = sqlx::query(LATEST_SNAPSHOT)
                .bind(&snapshot.forge)
                .bind(snapshot.repo_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db(op))?;
            if let Some(row) = &latest {
                let commit: String = row.try_get("commit_sha").map_err(db(op))?;
                if commit == snapshot.commit {
                    let id: i64 = row.try_get("id").map_err(db(op))?;
                    tx.commit().await.map_err(db(op))?;
                    return Ok(SnapshotOutcome {
                        discarded: false,
                        id,
                        checkpoint: false,
                        added: 0,
                        removed: 0,
                        moved: 0,
                    });
                }
            }
            let checkpoint = latest.is_none();
            // A repository's snapshots are in the order they were stored: one stored after
            // another never counts as taken before it (a stalled worker, a clock behind),
            // which keeps the latest snapshot the one the open findings and totals are of.
            let taken_at_ms = match &latest {
                Some(row) => snapshot
                    .taken_at_ms
                    .max(row.try_get::<i64, _>("taken_at_ms").map_err(db(op))?),
                None => snapshot.taken_at_ms,
            };
            let mut totals_before = DayTotals::default();
            if let Some(row) = &latest {
                totals_before.all = (
                    row.try_get("open_danger").map_err(db(op))?,
                    row.try_get("open_warning").map_err(db(op))?,
                );
                let id: i64 = row.try_get("id").map_err(db(op))?;
                for team in sqlx::query(TEAM_TOTALS_OF)
                    .bind(id)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(db(op))?
                {
                    totals_before.teams.insert(
                        team.try_get("team").map_err(db(op))?,
                        (
                            team.try_get("danger").map_err(db(op))?,
                            team.try_get("warning").map_err(db(op))?,
                        ),
                    );
                }
            }
            let open = sqlx::query(OPEN_FINDINGS_OF)
                .bind(&snapshot.forge)
                .bind(snapshot.repo_id)
                .fetch_all(&mut *tx)
                .await
                .map_err(db(op))?;
            let before: Vec<$crate::ownership::OwnedFinding> = open
                .iter()
                .map(owned_finding_of)
                .collect::<Result<_, _>>()
                .map_err(db(op))?;
            let delta = $crate::ownership::delta(&before, &snapshot.findings);
            let (danger, warning) =
                snapshot
                    .findings
                    .iter()
                    .fold((0i64, 0i64), |(d, w), f| match f.severity {
                        $crate::audit::Severity::Danger => (d + 1, w),
                        $crate::audit::Severity::Warning => (d, w + 1),
                        $crate::audit::Severity::Ignore => (d, w),
                    });
            // Unreviewed stays with a finding while it is open; a moved one keeps its flag.
            let was_unreviewed: std::collections::HashSet<&str> = open
                .iter()
                .filter(|r| r.try_get::<i64, _>("unreviewed").unwrap_or(0) == 1)
                .filter_map(|r| r.try_get::<&str, _>("key").ok())
                .collect();
            let removed: std::collections::HashSet<&str> =
                delta.removed.iter().map(|f| f.key.as_str()).collect();
            let open_unreviewed = was_unreviewed
                .iter()
                .filter(|k| !removed.contains(*k))
                .count()
                + if snapshot.reviewed {
                    0
                } else {
                    delta.added.len()
                };
            let id: i64 = sqlx::query(INSERT_SNAPSHOT)
                .bind(&snapshot.forge)
                .bind(snapshot.repo_id)
                .bind(&snapshot.commit)
                .bind(taken_at_ms)
                .bind(snapshot.cause.as_str())
                .bind(i64::from(checkpoint))
                .bind(i64::from(snapshot.reviewed))
                .bind(delta.added.len() as i64)
                .bind(delta.removed.len() as i64)
                .bind(delta.moved.len() as i64)
                .bind(danger)
                .bind(warning)
                .bind(open_unreviewed as i64)
                .fetch_one(&mut *tx)
                .await
                .map_err(db(op))?
                .try_get("id")
                .map_err(db(op))?;
            let stored = rows_to_store(checkpoint, &snapshot.findings, &delta);
            for chunk in stored.chunks(BATCH_ROWS) {
                let mut q = sqlx::QueryBuilder::<$db>::new(INSERT_SNAPSHOT_FINDINGS_HEAD);
                q.push_values(chunk, |mut b, (change, f)| {
                    b.push_bind(id).push_bind(*change);
                    push_finding!(b, f);
                });
                q.build().execute(&mut *tx).await.map_err(db(op))?;
            }
            let counts = $crate::ownership::counts(&snapshot.findings);
            for chunk in counts.chunks(BATCH_ROWS) {
                let mut q = sqlx::QueryBuilder::<$db>::new(INSERT_COUNTS_HEAD);
                q.push_values(chunk, |mut b, c| {
                    b.push_bind(id)
                        .push_bind(c.team.clone())
                        .push_bind(c.environment.clone())
                        .push_bind(c.rule.clone())
                        .push_bind(c.severity.as_str())
                        .push_bind(c.count as i64);
                });
                q.build().execute(&mut *tx).await.map_err(db(op))?;
            }
            let team_totals = $crate::ownership::team_totals(&snapshot.findings);
            let totals_after = DayTotals {
                all: (danger, warning),
                teams: team_totals
                    .iter()
                    .map(|(team, t)| {
                        (
                            team.clone(),
                            (
                                i64::try_from(t.danger).unwrap_or(i64::MAX),
                                i64::try_from(t.warning).unwrap_or(i64::MAX),
                            ),
                        )
                    })
                    .collect(),
            };
            for (head, totals) in [
                (INSERT_TEAM_TOTALS_HEAD, team_totals),
                (
                    INSERT_RULE_TOTALS_HEAD,
                    $crate::ownership::rule_totals(&snapshot.findings),
                ),
                (
                    INSERT_ENVIRONMENT_TOTALS_HEAD,
                    $crate::ownership::environment_totals(&snapshot.findings),
                ),
            ] {
                let totals: Vec<_> = totals.into_iter().collect();
                for chunk in totals.chunks(BATCH_ROWS) {
                    let mut q = sqlx::QueryBuilder::<$db>::new(head);
                    q.push_values(chunk, |mut b, (name, total)| {
                        b.push_bind(id)
                            .push_bind(name.clone())
                            .push_bind(total.danger as i64)
                            .push_bind(total.warning as i64);
                    });
                    q.build().execute(&mut *tx).await.map_err(db(op))?;
                }
            }
            let gone: Vec<&str> = delta
                .removed
                .iter()
                .chain(&delta.moved)
                .map(|f| f.key.as_str())
                .collect();
            for chunk in gone.chunks(BATCH_ROWS) {
                for table in ["open_findings", "open_finding_teams"] {
                    let mut q = sqlx::QueryBuilder::<$db>::new(format!(
                        "DELETE FROM {table} WHERE forge = "
                    ));
                    q.push_bind(snapshot.forge.as_str())
                        .push(" AND repo_id = ")
                        .push_bind(snapshot.repo_id)
                        .push(" AND key IN (");
                    let mut keys = q.separated(", ");
                    for key in chunk {
                        keys.push_bind(*key);
                    }
                    q.push(")");
                    q.build().execute(&mut *tx).await.map_err(db(op))?;
                }
            }
            let since: std::collections::HashMap<&str, i64> = open
                .iter()
                .filter_map(|r| {
                    Some((
                        r.try_get::<&str, _>("key").ok()?,
                        r.try_get::<i64, _>("since_ms").ok()?,
                    ))
                })
                .collect();
            let upserts: Vec<(&$crate::ownership::OwnedFinding, bool, i64)> = delta
                .added
                .iter()
                .map(|f| (f, !snapshot.reviewed))
                .chain(
                    delta
                        .moved
                        .iter()
                        .map(|f| (f, was_unreviewed.contains(f.key.as_str()))),
                )
                .map(|(f, unreviewed)| {
                    let since = since.get(f.key.as_str()).copied().unwrap_or(taken_at_ms);
                    (f, unreviewed, since)
                })
                .collect();
            for chunk in upserts.chunks(BATCH_ROWS) {
                let mut q = sqlx::QueryBuilder::<$db>::new(UPSERT_OPEN_HEAD);
                q.push_values(chunk, |mut b, (f, unreviewed, since)| {
                    b.push_bind(snapshot.forge.as_str())
                        .push_bind(snapshot.repo_id);
                    push_finding!(b, f);
                    b.push_bind(snapshot.commit.as_str())
                        .push_bind(i64::from(*unreviewed))
                        .push_bind(*since);
                });
                q.push(UPSERT_OPEN_TAIL);
                q.build().execute(&mut *tx).await.map_err(db(op))?;
            }
            let team_rows: Vec<(&$crate::ownership::OwnedFinding, bool, String)> = upserts
                .iter()
                .flat_map(|(f, unreviewed, _)| {
                    teams_of(f)
                        .into_iter()
                        .map(move |team| (*f, *unreviewed, team))
                })
                .collect();
            for chunk in team_rows.chunks(BATCH_ROWS) {
                let mut q = sqlx::QueryBuilder::<$db>::new(INSERT_OPEN_TEAMS_HEAD);
                q.push_values(chunk, |mut b, (f, unreviewed, team)| {
                    b.push_bind(snapshot.forge.as_str())
                        .push_bind(snapshot.repo_id)
                        .push_bind(f.key.as_str())
                        .push_bind(team.as_str())
                        .push_bind(i64::from(f.severity != $crate::audit::Severity::Danger))
                        .push_bind(snapshot.repo_name.as_str())
                        .push_bind(f.path.as_str())
                        .push_bind(i64::from(f.line))
                        .push_bind(f.rule.as_str())
                        .push_bind(json_list(&f.environments))
                        .push_bind(i64::from(*unreviewed));
                });
                q.push(" ON CONFLICT DO NOTHING");
                q.build().execute(&mut *tx).await.map_err(db(op))?;
            }
            // Last, so that on PostgreSQL the lock serializing these rows is held briefly.
            let day = taken_at_ms.div_euclid(DAY_MS);
            Self::add_daily_changes(
                &mut tx,
                std::iter::once((day, daily_changes(&totals_before, &totals_after))),
            )
            .await
            .map_err(db(op))?;
            sqlx::query(MARK_LATEST)
                .bind(&snapshot.forge)
                .bind(snapshot.repo_id)
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(db(op))?;
            tx.commit().await.map_err(db(op))?;
            Ok(SnapshotOutcome {
                discarded: false,
                id,
                checkpoint,
                added: delta.added.len(),
                removed: delta.removed.len(),
                moved: delta.moved.len(),
            })
        }

        /// Adds `(day, changes)` to `daily_totals`, rows in team order. On PostgreSQL the
        /// writers of these rows take turns (an advisory lock to the end of the transaction):
        /// a row made for a new day copies the day before, which a concurrent writer may be
        /// changing.
        async fn add_daily_changes(
            tx: &mut sqlx::Transaction<'static, $db>,
            days: impl Iterator<Item = (i64, Vec<(String, i64, i64)>)>,
        ) -> Result<(), sqlx::Error> {
            use $crate::queue::ownership::*;
            let lock: Option<&str> = $lock_daily_totals;
            if let Some(lock) = lock {
                sqlx::query(lock).execute(&mut **tx).await?;
            }
            for (day, changes) in days {
                for (team, danger, warning) in changes {
                    sqlx::query(ENSURE_DAY)
                        .bind(&team)
                        .bind(day)
                        .execute(&mut **tx)
                        .await?;
                    if danger != 0 || warning != 0 {
                        sqlx::query(ADD_FROM_DAY)
                            .bind(&team)
                            .bind(day)
                            .bind(danger)
                            .bind(warning)
                            .execute(&mut **tx)
                            .await?;
                    }
                }
            }
            Ok(())
        }

        pub(super) async fn open_findings(
            &self,
            forge: &str,
            repo_id: i64,
        ) -> Result<Vec<$crate::ownership::OwnedFinding>, QueueError> {
            use $crate::queue::ownership::*;
            let rows = sqlx::query(OPEN_FINDINGS_OF)
                .bind(forge)
                .bind(repo_id)
                .fetch_all(&self.pool)
                .await
                .map_err(db("open findings"))?;
            rows.iter()
                .map(owned_finding_of)
                .collect::<Result<_, _>>()
                .map_err(db("open findings"))
        }

        pub(super) async fn snapshots(
            &self,
            forge: &str,
            repo_id: i64,
        ) -> Result<Vec<$crate::queue::ownership::SnapshotRecord>, QueueError> {
            use $crate::queue::ownership::*;
            let op = "list snapshots";
            let rows = sqlx::query(SNAPSHOTS_OF)
                .bind(forge)
                .bind(repo_id)
                .fetch_all(&self.pool)
                .await
                .map_err(db(op))?;
            rows.iter()
                .map(|r| -> Result<SnapshotRecord, sqlx::Error> {
                    Ok(SnapshotRecord {
                        id: r.try_get("id")?,
                        commit: r.try_get("commit_sha")?,
                        taken_at_ms: r.try_get("taken_at_ms")?,
                        cause: r.try_get("cause")?,
                        checkpoint: r.try_get::<i64, _>("checkpoint")? == 1,
                        reviewed: r.try_get::<i64, _>("reviewed")? == 1,
                        added: r.try_get("added")?,
                        removed: r.try_get("removed")?,
                        moved: r.try_get("moved")?,
                        open_danger: r.try_get("open_danger")?,
                        open_warning: r.try_get("open_warning")?,
                    })
                })
                .collect::<Result<_, _>>()
                .map_err(db(op))
        }

        /// The finding set of snapshot `id`, rebuilt from the checkpoint before it and the
        /// deltas up to it.
        pub(super) async fn findings_at(
            &self,
            forge: &str,
            repo_id: i64,
            id: i64,
        ) -> Result<Vec<$crate::ownership::OwnedFinding>, QueueError> {
            let snapshots = self.snapshots(forge, repo_id).await?;
            let Some(end) = snapshots.iter().position(|s| s.id == id) else {
                return Ok(Vec::new());
            };
            let start = snapshots[..=end]
                .iter()
                .rposition(|s| s.checkpoint)
                .unwrap_or(0);
            let mut set = Vec::new();
            for s in &snapshots[start..=end] {
                let delta = self.snapshot_delta(s.id).await?;
                set = if s.checkpoint {
                    delta.added
                } else {
                    $crate::ownership::apply(&set, &delta)
                };
            }
            Ok(set)
        }

        async fn snapshot_delta(&self, id: i64) -> Result<$crate::ownership::Delta, QueueError> {
            use $crate::queue::ownership::*;
            let op = "read snapshot";
            let rows = sqlx::query(SNAPSHOT_ROWS)
                .bind(id)
                .fetch_all(&self.pool)
                .await
                .map_err(db(op))?;
            let mut delta = $crate::ownership::Delta::default();
            for r in &rows {
                let change: String = r.try_get("change").map_err(db(op))?;
                let f = owned_finding_of(r).map_err(db(op))?;
                match change.as_str() {
                    "add" => delta.added.push(f),
                    "remove" => delta.removed.push(f),
                    _ => delta.moved.push(f),
                }
            }
            Ok(delta)
        }

        /// Retention: for each repository, the latest snapshot taken before `before_ms` becomes
        /// a checkpoint holding its whole set, and the deltas before it are dropped (their
        /// snapshots and counts stay, for trends). Returns how many snapshots were folded.
        pub(super) async fn fold_snapshots(&self, before_ms: i64) -> Result<usize, QueueError> {
            use $crate::queue::ownership::*;
            let op = "fold snapshots";
            let repos = sqlx::query("SELECT DISTINCT forge, repo_id FROM snapshots")
                .fetch_all(&self.pool)
                .await
                .map_err(db(op))?;
            let mut folded = 0;
            for repo in &repos {
                let forge: String = repo.try_get("forge").map_err(db(op))?;
                let repo_id: i64 = repo.try_get("repo_id").map_err(db(op))?;
                let snapshots = self.snapshots(&forge, repo_id).await?;
                let Some(cut) = snapshots.iter().rposition(|s| s.taken_at_ms < before_ms) else {
                    continue;
                };
                let start = snapshots[..=cut]
                    .iter()
                    .rposition(|s| s.checkpoint)
                    .unwrap_or(0);
                if start == cut {
                    continue;
                }
                let set = self.findings_at(&forge, repo_id, snapshots[cut].id).await?;
                let mut tx = self.begin_write(op).await?;
                for s in &snapshots[start..=cut] {
                    sqlx::query(DELETE_SNAPSHOT_ROWS)
                        .bind(s.id)
                        .execute(&mut *tx)
                        .await
                        .map_err(db(op))?;
                }
                for chunk in set.chunks(BATCH_ROWS) {
                    let mut q = sqlx::QueryBuilder::<$db>::new(INSERT_SNAPSHOT_FINDINGS_HEAD);
                    q.push_values(chunk, |mut b, f| {
                        b.push_bind(snapshots[cut].id).push_bind("add");
                        push_finding!(b, f);
                    });
                    q.build().execute(&mut *tx).await.map_err(db(op))?;
                }
                sqlx::query(MAKE_CHECKPOINT)
                    .bind(snapshots[cut].id)
                    .execute(&mut *tx)
                    .await
                    .map_err(db(op))?;
                tx.commit().await.map_err(db(op))?;
                folded += cut - start;
            }
            Ok(folded)
        }

        pub(super) async fn record_review_outcome(
            &self,
            outcome: &$crate::queue::ownership::ReviewOutcome,
        ) -> Result<(), QueueError> {
            use $crate::queue::ownership::*;
            let op = "record review outcome";
            let mut tx = self.begin_write(op).await?;
            sqlx::query(UPSERT_REVIEW_OUTCOME)
                .bind(&outcome.forge)
                .bind(outcome.repo_id)
                .bind(outcome.pr_number)
                .bind(&outcome.head_sha)
                .bind(outcome.reviewed_at_ms)
                .bind(outcome.new_findings)
                .bind(outcome.fixed_findings)
                .bind(outcome.exemptions_added)
                .bind(outcome.new_failing)
                .execute(&mut *tx)
                .await
                .map_err(db(op))?;
            for chunk in outcome.teams.chunks(BATCH_ROWS) {
                let mut q = sqlx::QueryBuilder::<$db>::new(INSERT_REVIEW_TEAMS_HEAD);
                q.push_values(chunk, |mut b, t| {
                    b.push_bind(outcome.forge.as_str())
                        .push_bind(outcome.repo_id)
                        .push_bind(outcome.pr_number)
                        .push_bind(outcome.head_sha.as_str())
                        .push_bind(t.team.as_str())
                        .push_bind(outcome.reviewed_at_ms)
                        .push_bind(t.new_findings)
                        .push_bind(t.fixed_findings)
                        .push_bind(t.new_failing);
                });
                q.push(REVIEW_TEAMS_TAIL);
                q.build().execute(&mut *tx).await.map_err(db(op))?;
            }
            tx.commit().await.map_err(db(op))?;
            Ok(())
        }

        /// Records a pull request's end; merged, its last review's new failing findings have
        /// escaped into the default branch. Returns that number.
        pub(super) async fn record_pr_closed(
            &self,
            forge: &str,
            repo_id: i64,
            pr_number: i64,
            merged: bool,
            merge_commit_sha: Option<&str>,
            closed_at_ms: i64,
        ) -> Result<i64, QueueError> {
            use $crate::queue::ownership::*;
            let op = "record pull request closed";
            let mut tx = self.begin_write(op).await?;
            let failing: i64 = match sqlx::query(LAST_REVIEW_FAILING)
                .bind(forge)
                .bind(repo_id)
                .bind(pr_number)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db(op))?
            {
                Some(row) => row.try_get("new_failing").map_err(db(op))?,
                None => 0,
            };
            let escaped = if merged { failing } else { 0 };
            sqlx::query(UPSERT_CLOSURE)
                .bind(forge)
                .bind(repo_id)
                .bind(pr_number)
                .bind(closed_at_ms)
                .bind(i64::from(merged))
                .bind(merge_commit_sha.filter(|_| merged))
                .bind(escaped)
                .execute(&mut *tx)
                .await
                .map_err(db(op))?;
            sqlx::query(DELETE_CLOSURE_TEAMS)
                .bind(forge)
                .bind(repo_id)
                .bind(pr_number)
                .execute(&mut *tx)
                .await
                .map_err(db(op))?;
            if merged {
                sqlx::query(CLOSURE_TEAMS)
                    .bind(forge)
                    .bind(repo_id)
                    .bind(pr_number)
                    .bind(closed_at_ms)
                    .execute(&mut *tx)
                    .await
                    .map_err(db(op))?;
            }
            tx.commit().await.map_err(db(op))?;
            Ok(escaped)
        }

        /// `(repository, taken_at_ms, danger, warning)` of the snapshots in
        /// [`since_ms`, `until_ms`) and each repository's latest before `since_ms`: one team's
        /// totals, or every finding's when `team` is `None`.
        pub(super) async fn trend_rows(
            &self,
            team: Option<&str>,
            since_ms: i64,
            until_ms: i64,
        ) -> Result<Vec<$crate::queue::ownership::TrendRow>, QueueError> {
            use $crate::queue::ownership::*;
            let op = "trend";
            let rows = match team {
                Some(team) => sqlx::query(TEAM_TREND)
                    .bind(since_ms)
                    .bind(until_ms)
                    .bind(team),
                None => sqlx::query(ALL_TREND).bind(since_ms).bind(until_ms),
            }
            .fetch_all(&self.pool)
            .await
            .map_err(db(op))?;
            rows.iter()
                .map(|r| -> Result<TrendRow, sqlx::Error> {
                    Ok(TrendRow {
                        forge: r.try_get("forge")?,
                        repo_id: r.try_get("repo_id")?,
                        repository: r.try_get("name")?,
                        taken_at_ms: r.try_get("taken_at_ms")?,
                        danger: u64::try_from(r.try_get::<i64, _>("danger")?).unwrap_or(0),
                        warning: u64::try_from(r.try_get::<i64, _>("warning")?).unwrap_or(0),
                    })
                })
                .collect::<Result<_, _>>()
                .map_err(db(op))
        }

        /// Repositories whose latest snapshot was taken before `before_ms`: the schedule's.
        pub(super) async fn repositories_due(
            &self,
            before_ms: i64,
        ) -> Result<Vec<$crate::queue::ownership::SnapshotRepo>, QueueError> {
            use $crate::queue::ownership::*;
            let op = "repositories due";
            let rows = sqlx::query(REPOS_DUE)
                .bind(before_ms)
                .fetch_all(&self.pool)
                .await
                .map_err(db(op))?;
            rows.iter()
                .map(|r| -> Result<SnapshotRepo, sqlx::Error> {
                    Ok(SnapshotRepo {
                        forge: r.try_get("forge")?,
                        repo_id: r.try_get("repo_id")?,
                        name: r.try_get("name")?,
                        installation_id: r.try_get("installation_id")?,
                        web_url: r.try_get("web_url")?,
                    })
                })
                .collect::<Result<_, _>>()
                .map_err(db(op))
        }

        /// Whether a review of ours covered one of `commits` (a pushed commit and its parents).
        pub(super) async fn commit_reviewed(
            &self,
            forge: &str,
            repo_id: i64,
            commits: &[String],
        ) -> Result<bool, QueueError> {
            use $crate::queue::ownership::*;
            for commit in commits {
                let hit = sqlx::query(COMMIT_REVIEWED)
                    .bind(forge)
                    .bind(repo_id)
                    .bind(commit)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(db("commit reviewed"))?;
                if hit.is_some() {
                    return Ok(true);
                }
            }
            Ok(false)
        }

        /// Everything kept of the repositories an installation had, once it is removed.
        pub(super) async fn delete_installation_data(
            &self,
            forge: &str,
            installation_id: i64,
        ) -> Result<(), QueueError> {
            use $crate::queue::ownership::*;
            let repos = sqlx::query(REPOS_OF_INSTALLATION)
                .bind(forge)
                .bind(installation_id)
                .fetch_all(&self.pool)
                .await
                .map_err(db("delete installation data"))?;
            for row in &repos {
                let repo_id: i64 = row
                    .try_get("repo_id")
                    .map_err(db("delete installation data"))?;
                self.delete_repository_data(forge, repo_id).await?;
            }
            Ok(())
        }

        /// Everything kept of a repository, for one the installation lost.
        pub(super) async fn delete_repository_data(
            &self,
            forge: &str,
            repo_id: i64,
        ) -> Result<(), QueueError> {
            use $crate::queue::ownership::*;
            let op = "delete repository data";
            let mut tx = self.begin_write(op).await?;
            // The repository's row first, as a snapshot's upsert does: on PostgreSQL no
            // snapshot of it commits between reading its history and deleting it.
            sqlx::query(LOCK_REPO)
                .bind(forge)
                .bind(repo_id)
                .execute(&mut *tx)
                .await
                .map_err(db(op))?;
            // What the repository added to the daily totals, day by day, to take back.
            let history = sqlx::query(REPO_TOTALS_HISTORY)
                .bind(forge)
                .bind(repo_id)
                .fetch_all(&mut *tx)
                .await
                .map_err(db(op))?;
            let mut states: Vec<(i64, DayTotals)> = Vec::new();
            let mut last_id = None;
            for row in &history {
                let id: i64 = row.try_get("id").map_err(db(op))?;
                if last_id != Some(id) {
                    last_id = Some(id);
                    let at: i64 = row.try_get("taken_at_ms").map_err(db(op))?;
                    states.push((
                        at.div_euclid(DAY_MS),
                        DayTotals {
                            all: (
                                row.try_get("open_danger").map_err(db(op))?,
                                row.try_get("open_warning").map_err(db(op))?,
                            ),
                            teams: Default::default(),
                        },
                    ));
                }
                if let (Some(team), Some((_, state))) = (
                    row.try_get::<Option<String>, _>("team").map_err(db(op))?,
                    states.last_mut(),
                ) {
                    state.teams.insert(
                        team,
                        (
                            row.try_get("danger").map_err(db(op))?,
                            row.try_get("warning").map_err(db(op))?,
                        ),
                    );
                }
            }
            let mut previous = DayTotals::default();
            let mut undo = Vec::with_capacity(states.len());
            for (day, state) in states {
                // Each snapshot's change, backwards.
                undo.push((day, daily_changes(&state, &previous)));
                previous = state;
            }
            for statement in DELETE_REPO_DATA {
                sqlx::query(statement)
                    .bind(forge)
                    .bind(repo_id)
                    .execute(&mut *tx)
                    .await
                    .map_err(db(op))?;
            }
            Self::add_daily_changes(&mut tx, undo.into_iter())
                .await
                .map_err(db(op))?;
            tx.commit().await.map_err(db(op))?;
            Ok(())
        }

        /// Open findings per team, rule and repository, findings reached unreviewed, and
        /// findings escaped since `escaped_since_ms`: summed from each repository's latest
        /// snapshot, never by scanning the open findings.
        pub(super) async fn ownership_overview(
            &self,
            escaped_since_ms: i64,
            window_start_ms: Option<i64>,
        ) -> Result<$crate::queue::ownership::StoredOverview, QueueError> {
            use $crate::queue::ownership::*;
            let op = "ownership overview";
            let team_rows = |rows: Vec<_>| -> Result<Vec<RepositoryTeamCount>, sqlx::Error> {
                rows.iter()
                    .map(|r: &_| -> Result<RepositoryTeamCount, sqlx::Error> {
                        Ok(RepositoryTeamCount {
                            forge: sqlx::Row::try_get(r, "forge")?,
                            repo_id: sqlx::Row::try_get(r, "repo_id")?,
                            repository: sqlx::Row::try_get(r, "repository")?,
                            team: sqlx::Row::try_get(r, "team")?,
                            danger: sqlx::Row::try_get(r, "danger")?,
                            warning: sqlx::Row::try_get(r, "warning")?,
                        })
                    })
                    .collect()
            };
            let by_repository = team_rows(
                sqlx::query(TEAM_COUNTS)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(db(op))?,
            )
            .map_err(db(op))?;
            let before = match window_start_ms {
                Some(start) => team_rows(
                    sqlx::query(TEAM_COUNTS_BEFORE)
                        .bind(start)
                        .fetch_all(&self.pool)
                        .await
                        .map_err(db(op))?,
                )
                .map_err(db(op))?,
                None => Vec::new(),
            };
            let mut by_name = Vec::new();
            for statement in [RULE_COUNTS, ENVIRONMENT_COUNTS] {
                by_name.push(
                    sqlx::query(statement)
                        .fetch_all(&self.pool)
                        .await
                        .map_err(db(op))?
                        .iter()
                        .map(|r| -> Result<GroupCount, sqlx::Error> {
                            Ok(GroupCount {
                                name: r.try_get("name")?,
                                danger: r.try_get("danger")?,
                                warning: r.try_get("warning")?,
                            })
                        })
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(db(op))?,
                );
            }
            let environments = by_name.pop().unwrap_or_default();
            let rules = by_name.pop().unwrap_or_default();
            let repository_rows = sqlx::query(REPO_COUNTS)
                .fetch_all(&self.pool)
                .await
                .map_err(db(op))?;
            let mut unreviewed = 0;
            let mut repositories = Vec::with_capacity(repository_rows.len());
            for r in &repository_rows {
                unreviewed += r.try_get::<i64, _>("unreviewed").map_err(db(op))?;
                repositories.push((
                    r.try_get::<&str, _>("forge").map_err(db(op))?,
                    r.try_get::<i64, _>("repo_id").map_err(db(op))?,
                    r.try_get::<&str, _>("name").map_err(db(op))?,
                    r.try_get::<i64, _>("danger").map_err(db(op))?,
                    r.try_get::<i64, _>("warning").map_err(db(op))?,
                ));
            }
            let escaped: i64 = sqlx::query(ESCAPED_SINCE)
                .bind(escaped_since_ms)
                .fetch_one(&self.pool)
                .await
                .map_err(db(op))?
                .try_get("n")
                .map_err(db(op))?;
            let teams = fold_counts(
                by_repository
                    .iter()
                    .map(|c| (c.team.as_str(), c.danger, c.warning)),
            );
            let unowned = teams
                .iter()
                .find(|t| t.name == $crate::ownership::UNOWNED)
                .cloned()
                .unwrap_or_default();
            Ok(StoredOverview {
                by_repository,
                before,
                teams,
                rules: fold_counts(rules.iter().map(|c| (c.name.as_str(), c.danger, c.warning))),
                environments: fold_counts(
                    environments
                        .iter()
                        .map(|c| (c.name.as_str(), c.danger, c.warning)),
                ),
                unreviewed,
                repositories: fold_repositories(repositories.into_iter()),
                unowned_danger: unowned.danger,
                unowned_warning: unowned.warning,
                escaped,
            })
        }

        /// A team's daily open findings (`''`: every finding once) for the days
        /// `first_day..=last_day`, from the daily totals.
        pub(super) async fn daily_trend(
            &self,
            team: &str,
            first_day: i64,
            last_day: i64,
        ) -> Result<Vec<$crate::ownership::TrendPoint>, QueueError> {
            use $crate::queue::ownership::*;
            let op = "daily trend";
            let rows = sqlx::query(DAILY_TOTALS)
                .bind(team)
                .bind(first_day)
                .bind(last_day)
                .fetch_all(&self.pool)
                .await
                .map_err(db(op))?
                .iter()
                .map(|r| -> Result<(i64, i64, i64), sqlx::Error> {
                    Ok((
                        r.try_get("day")?,
                        r.try_get("danger")?,
                        r.try_get("warning")?,
                    ))
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(db(op))?;
            Ok(carried_days(&rows, first_day, last_day))
        }

        /// Every team's open findings at the end of the last day before `day`.
        pub(super) async fn teams_before_day(
            &self,
            day: i64,
        ) -> Result<Vec<$crate::queue::ownership::GroupCount>, QueueError> {
            use $crate::queue::ownership::*;
            let op = "teams before a day";
            let rows = sqlx::query(TEAMS_BEFORE_DAY)
                .bind(day)
                .fetch_all(&self.pool)
                .await
                .map_err(db(op))?;
            let rows = rows
                .iter()
                .map(|r| -> Result<(&str, i64, i64), sqlx::Error> {
                    Ok((
                        r.try_get("team")?,
                        r.try_get("danger")?,
                        r.try_get("warning")?,
                    ))
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(db(op))?;
            Ok(fold_counts(rows.into_iter().filter(|(_, d, w)| d + w > 0)))
        }

        /// The open findings of the (forge, repo_id, team) triples a restricted user sees,
        /// each once however many of its teams are among them.
        pub(super) async fn visible_counts(
            &self,
            seen: &[(String, i64, String)],
        ) -> Result<Vec<$crate::queue::ownership::VisibleCount>, QueueError> {
            use $crate::queue::ownership::*;
            let op = "visible counts";
            let mut counts = Vec::new();
            // A repository's triples stay in one statement, so no finding counts twice.
            let mut sorted: Vec<&(String, i64, String)> = seen.iter().collect();
            sorted.sort();
            let mut chunks: Vec<&[&(String, i64, String)]> = Vec::new();
            let mut start = 0;
            for i in 1..=sorted.len() {
                let repo_ends = i == sorted.len()
                    || (&sorted[i].0, sorted[i].1) != (&sorted[i - 1].0, sorted[i - 1].1);
                if repo_ends && (i - start >= VISIBLE_TRIPLES || i == sorted.len()) {
                    chunks.push(&sorted[start..i]);
                    start = i;
                }
            }
            for chunk in chunks {
                let mut q = sqlx::QueryBuilder::<$db>::new(VISIBLE_COUNTS_HEAD);
                q.push_values(chunk, |mut b, (forge, repo_id, team)| {
                    b.push_bind(forge.as_str())
                        .push_bind(*repo_id)
                        .push_bind(team.as_str());
                });
                q.push(VISIBLE_COUNTS_TAIL);
                for r in q.build().fetch_all(&self.pool).await.map_err(db(op))? {
                    counts.push(
                        (|| -> Result<VisibleCount, sqlx::Error> {
                            Ok(VisibleCount {
                                forge: r.try_get("forge")?,
                                repo_id: r.try_get("repo_id")?,
                                repository: r.try_get("repository")?,
                                rule: r.try_get("rule")?,
                                severity: if r.try_get::<i64, _>("danger_first")? == 0 {
                                    $crate::audit::Severity::Danger
                                } else {
                                    $crate::audit::Severity::Warning
                                },
                                environments: list_of(r.try_get::<&str, _>("environments")?),
                                unreviewed: r.try_get::<i64, _>("unreviewed")? == 1,
                                unowned: r.try_get::<i64, _>("unowned")? == 1,
                                findings: r.try_get("n")?,
                            })
                        })()
                        .map_err(db(op))?,
                    );
                }
            }
            Ok(counts)
        }

        /// The team's repositories with its open findings in each, most danger first.
        pub(super) async fn team_repositories(
            &self,
            team: &str,
        ) -> Result<Vec<$crate::queue::ownership::TeamRepository>, QueueError> {
            use $crate::queue::ownership::*;
            let op = "team repositories";
            sqlx::query(TEAM_REPOSITORIES)
                .bind(team)
                .fetch_all(&self.pool)
                .await
                .map_err(db(op))?
                .iter()
                .map(|r| -> Result<TeamRepository, sqlx::Error> {
                    Ok(TeamRepository {
                        forge: r.try_get("forge")?,
                        repo_id: r.try_get("repo_id")?,
                        name: r.try_get("name")?,
                        web_url: r.try_get("web_url")?,
                        commit: r.try_get("commit_sha")?,
                        danger: r.try_get("danger")?,
                        warning: r.try_get("warning")?,
                    })
                })
                .collect::<Result<_, _>>()
                .map_err(db(op))
        }

        /// `(repository, environment, severity, count)` of the team's open findings.
        pub(super) async fn team_environments(
            &self,
            team: &str,
        ) -> Result<Vec<(String, String, $crate::audit::Severity, i64)>, QueueError> {
            use $crate::queue::ownership::*;
            let op = "team environments";
            sqlx::query(TEAM_ENVIRONMENTS)
                .bind(team)
                .fetch_all(&self.pool)
                .await
                .map_err(db(op))?
                .iter()
                .map(|r| -> Result<_, sqlx::Error> {
                    Ok((
                        r.try_get("repository")?,
                        r.try_get("environment")?,
                        severity_of(r.try_get::<&str, _>("severity")?),
                        r.try_get("n")?,
                    ))
                })
                .collect::<Result<_, _>>()
                .map_err(db(op))
        }

        /// What the team's reviews caught since `since_ms`, per repository.
        pub(super) async fn team_reviews(
            &self,
            team: &str,
            since_ms: i64,
        ) -> Result<Vec<$crate::queue::ownership::TeamReviews>, QueueError> {
            use $crate::queue::ownership::*;
            let op = "team reviews";
            sqlx::query(TEAM_REVIEWS)
                .bind(team)
                .bind(since_ms)
                .fetch_all(&self.pool)
                .await
                .map_err(db(op))?
                .iter()
                .map(|r| -> Result<TeamReviews, sqlx::Error> {
                    Ok(TeamReviews {
                        repository: r.try_get("repository")?,
                        reviews: r.try_get("reviews")?,
                        pull_requests: r.try_get("pull_requests")?,
                        new_findings: r.try_get("new_findings")?,
                        fixed_findings: r.try_get("fixed_findings")?,
                        new_failing: r.try_get("new_failing")?,
                        escaped: r.try_get("escaped")?,
                    })
                })
                .collect::<Result<_, _>>()
                .map_err(db(op))
        }

        /// Open findings of a team, rule or repository, danger first; `page` is
        /// `(limit, offset)`, `None` for all of them.
        pub(super) async fn findings_of(
            &self,
            of: $crate::queue::ownership::FindingsOf<'_>,
            page: Option<(u32, u32)>,
        ) -> Result<Vec<$crate::queue::ownership::OpenFinding>, QueueError> {
            use $crate::queue::ownership::*;
            let op = "list open findings";
            let (limit, offset) = page.map_or((i64::MAX, 0), |(l, o)| (i64::from(l), i64::from(o)));
            let query = match of {
                FindingsOf::Team(t) => sqlx::query(TEAM_FINDINGS).bind(t),
                FindingsOf::Rule(r) => sqlx::query(RULE_FINDINGS).bind(r),
                FindingsOf::Repository { forge, repo_id } => {
                    sqlx::query(REPOSITORY_FINDINGS).bind(forge).bind(repo_id)
                }
            }
            .bind(limit)
            .bind(offset);
            let rows = query.fetch_all(&self.pool).await.map_err(db(op))?;
            rows.iter()
                .map(|r| -> Result<OpenFinding, sqlx::Error> {
                    Ok(OpenFinding {
                        forge: r.try_get("forge")?,
                        repo_id: r.try_get("repo_id")?,
                        repository: r.try_get("name")?,
                        commit: r.try_get("commit_sha")?,
                        web_url: r.try_get("web_url")?,
                        finding: owned_finding_of(r)?,
                        unreviewed: r.try_get::<i64, _>("unreviewed")? == 1,
                        since_ms: r.try_get("since_ms")?,
                    })
                })
                .collect::<Result<_, _>>()
                .map_err(db(op))
        }
    };
}
pub(super) use ownership_operations;

/// A finding from a row of `open_findings` or `snapshot_findings`.
macro_rules! owned_finding_decoder {
    ($row:ty) => {
        fn owned_finding_of(r: &$row) -> Result<$crate::ownership::OwnedFinding, sqlx::Error> {
            use sqlx::Row;
            use $crate::queue::ownership::{list_of, severity_of};
            Ok($crate::ownership::OwnedFinding {
                key: r.try_get("key")?,
                fingerprint: r.try_get("fingerprint")?,
                rule: r.try_get("rule")?,
                severity: severity_of(r.try_get::<&str, _>("severity")?),
                path: r.try_get("path")?,
                line: u32::try_from(r.try_get::<i64, _>("line")?).unwrap_or(0),
                object: r.try_get("object")?,
                message: r.try_get("message")?,
                owners: list_of(r.try_get::<&str, _>("owners")?),
                environments: list_of(r.try_get::<&str, _>("environments")?),
            })
        }
    };
}
pub(super) use owned_finding_decoder;

/// A repository snapshots are taken of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotRepo {
    pub forge: String,
    pub repo_id: i64,
    pub name: String,
    pub installation_id: Option<i64>,
    pub web_url: Option<String>,
}

/// The overview as stored: open findings now, by team (unowned included), rule and repository.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredOverview {
    /// Per repository and team: a user who may see some of them is counted from these.
    pub by_repository: Vec<RepositoryTeamCount>,
    /// The same when the trend's window began.
    pub before: Vec<RepositoryTeamCount>,
    pub teams: Vec<GroupCount>,
    pub rules: Vec<GroupCount>,
    /// Each finding once in each of its environments.
    pub environments: Vec<GroupCount>,
    pub repositories: Vec<RepositoryCount>,
    pub unowned_danger: i64,
    pub unowned_warning: i64,
    /// Open findings that reached a default branch through a push no review covered.
    pub unreviewed: i64,
    /// Findings merged with a failing review, since the time asked for.
    pub escaped: i64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ownership::UNOWNED;

    #[test]
    fn the_visible_counts_know_the_unowned_team_by_its_name() {
        assert!(VISIBLE_COUNTS_TAIL.contains(&format!("t.team = '{UNOWNED}'")));
    }

    #[test]
    fn counts_fold_by_name_most_danger_first() {
        let counts = fold_counts(
            [
                ("@org/api", 0, 3),
                ("@org/web", 2, 0),
                ("@org/api", 1, 0),
                (UNOWNED, 0, 9),
            ]
            .into_iter(),
        );
        let names: Vec<&str> = counts.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["@org/web", "@org/api", UNOWNED]);
        assert_eq!((counts[1].danger, counts[1].warning), (1, 3));
    }
}
