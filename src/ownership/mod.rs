//! Who owns which open problems: findings with the CODEOWNERS owners of their file and the
//! environments they deploy to, what changed between two snapshots of a branch, and the
//! counts a platform team groups them by (team, environment, rule, severity).
//!
//! Pure: no I/O and no clock. The shell (`kubeward report`, the bot's snapshot job) audits a
//! revision, reads its CODEOWNERS and hands both here.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use crate::audit::{Finding, Severity};
use crate::config::Environment;
use crate::owners::CodeOwners;

/// The team of findings whose file no CODEOWNERS line owns. It is a team of its own on every
/// page, so nobody's problems disappear for want of an owner.
pub const UNOWNED: &str = "unowned";

/// One open finding as the ownership views see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OwnedFinding {
    /// Unique within one snapshot: the review identity (rule, object, container, field
    /// path), with `~2`, `~3`… for the same identity in several files (overlays copying a
    /// base), so moves and fixes are recognised as reviews recognise them.
    pub key: String,
    /// The review identity ([`Finding::fingerprint`]).
    pub fingerprint: String,
    pub rule: String,
    pub severity: Severity,
    pub path: String,
    pub line: u32,
    /// `Kind namespace/name`, or empty for a finding on a file.
    pub object: String,
    pub message: String,
    /// The CODEOWNERS owners of the file, in file order; empty: unowned.
    pub owners: Vec<String>,
    /// The environments it deploys to, by name.
    pub environments: Vec<String>,
}

impl OwnedFinding {
    /// The teams it counts for: its owners, or [`UNOWNED`].
    pub fn teams(&self) -> Vec<&str> {
        if self.owners.is_empty() {
            vec![UNOWNED]
        } else {
            self.owners.iter().map(String::as_str).collect()
        }
    }
}

fn object_label(f: &Finding) -> String {
    match &f.object {
        Some(o) if o.namespace.is_empty() => format!("{} {}", o.kind, o.name),
        Some(o) => format!("{} {}/{}", o.kind, o.namespace, o.name),
        None => String::new(),
    }
}

/// The open findings of one revision with their owners and environments, in a stable order
/// (path, line, rule). Ignored-severity findings are not problems and are left out.
pub fn own(
    findings: &[Finding],
    owners: &CodeOwners,
    environments: &[Environment],
) -> Vec<OwnedFinding> {
    let mut owned: Vec<OwnedFinding> = findings
        .iter()
        .filter(|f| f.severity != Severity::Ignore && f.exempted_by.is_none())
        .map(|f| OwnedFinding {
            key: String::new(),
            fingerprint: f.fingerprint.to_string(),
            rule: f.rule.to_string(),
            severity: f.severity,
            path: f.path.to_string(),
            line: f.line,
            object: object_label(f),
            message: f.message.to_string(),
            owners: owners.owners_of(&f.path).owners,
            environments: environments
                .iter()
                .filter(|e| e.holds(&f.path, &f.targets))
                .map(|e| e.name.clone())
                .collect(),
        })
        .collect();
    owned.sort_by(|a, b| {
        (&a.path, a.line, &a.rule, &a.fingerprint).cmp(&(&b.path, b.line, &b.rule, &b.fingerprint))
    });
    let mut seen: HashMap<String, usize> = HashMap::new();
    for f in &mut owned {
        let n = seen.entry(f.fingerprint.clone()).or_insert(0);
        *n += 1;
        f.key = if *n == 1 {
            f.fingerprint.clone()
        } else {
            format!("{}~{n}", f.fingerprint)
        };
    }
    owned
}

/// What changed between two snapshots, by [`OwnedFinding::key`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delta {
    /// New problems.
    pub added: Vec<OwnedFinding>,
    /// Fixed (or deleted) problems, as they were.
    pub removed: Vec<OwnedFinding>,
    /// Still open, but somewhere else or said differently (a file moved, a line shifted,
    /// owners changed): the new version.
    pub moved: Vec<OwnedFinding>,
}

impl Delta {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.moved.is_empty()
    }
}

pub fn delta(before: &[OwnedFinding], after: &[OwnedFinding]) -> Delta {
    let old: HashMap<&str, &OwnedFinding> = before.iter().map(|f| (f.key.as_str(), f)).collect();
    let new: HashMap<&str, &OwnedFinding> = after.iter().map(|f| (f.key.as_str(), f)).collect();
    let mut delta = Delta::default();
    for f in after {
        match old.get(f.key.as_str()) {
            None => delta.added.push(f.clone()),
            Some(was) if *was != f => delta.moved.push(f.clone()),
            Some(_) => {}
        }
    }
    delta.removed = before
        .iter()
        .filter(|f| !new.contains_key(f.key.as_str()))
        .cloned()
        .collect();
    delta
}

/// `before` with `delta` applied: what the later snapshot held, in [`own`]'s order.
pub fn apply(before: &[OwnedFinding], delta: &Delta) -> Vec<OwnedFinding> {
    let gone: BTreeSet<&str> = delta
        .removed
        .iter()
        .chain(&delta.moved)
        .map(|f| f.key.as_str())
        .collect();
    let mut after: Vec<OwnedFinding> = before
        .iter()
        .filter(|f| !gone.contains(f.key.as_str()))
        .cloned()
        .chain(delta.added.iter().cloned())
        .chain(delta.moved.iter().cloned())
        .collect();
    after.sort_by(|a, b| {
        (&a.path, a.line, &a.rule, &a.key).cmp(&(&b.path, b.line, &b.rule, &b.key))
    });
    after
}

/// Open findings of one (team, environment, rule, severity). A finding owned by two teams
/// counts for each; one in no environment has environment `""`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Count {
    pub team: String,
    pub environment: String,
    pub rule: String,
    pub severity: Severity,
    pub count: u64,
}

pub fn counts(findings: &[OwnedFinding]) -> Vec<Count> {
    let mut by: BTreeMap<(String, String, String, Severity), u64> = BTreeMap::new();
    for f in findings {
        let environments: Vec<&str> = if f.environments.is_empty() {
            vec![""]
        } else {
            f.environments.iter().map(String::as_str).collect()
        };
        for team in f.teams() {
            for env in &environments {
                *by.entry((
                    team.to_owned(),
                    (*env).to_owned(),
                    f.rule.clone(),
                    f.severity,
                ))
                .or_insert(0) += 1;
            }
        }
    }
    by.into_iter()
        .map(|((team, environment, rule, severity), count)| Count {
            team,
            environment,
            rule,
            severity,
            count,
        })
        .collect()
}

/// Open findings per key, each finding once under each of the keys `keys` gives it.
fn totals_by<'a, K: IntoIterator<Item = &'a str>>(
    findings: &'a [OwnedFinding],
    keys: impl Fn(&'a OwnedFinding) -> K,
) -> BTreeMap<String, Tally> {
    let mut totals: BTreeMap<String, Tally> = BTreeMap::new();
    for f in findings {
        for key in keys(f) {
            totals.entry(key.to_owned()).or_default().add(f.severity, 1);
        }
    }
    totals
}

/// Open danger and warning findings per team, each finding once per owning team whatever its
/// environments: what a team's trend follows.
pub fn team_totals(findings: &[OwnedFinding]) -> BTreeMap<String, Tally> {
    totals_by(findings, OwnedFinding::teams)
}

/// Open findings per rule, each finding once: the overview's top rules.
pub fn rule_totals(findings: &[OwnedFinding]) -> BTreeMap<String, Tally> {
    totals_by(findings, |f| [f.rule.as_str()])
}

/// Open findings per environment, each finding once in each of its environments (none: not
/// counted): the overview's environments.
pub fn environment_totals(findings: &[OwnedFinding]) -> BTreeMap<String, Tally> {
    totals_by(findings, |f| f.environments.iter().map(String::as_str))
}

/// One day of a trend: the open findings at its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TrendPoint {
    /// The day's end (exclusive), epoch milliseconds.
    pub day_end_ms: i64,
    pub danger: u64,
    pub warning: u64,
}

/// Daily open counts over `days` days ending at `now_ms`, from per-repository snapshots
/// `(repository, taken_at_ms, danger, warning)`: each day sums every repository's latest
/// snapshot taken before the day's end (none yet: nothing).
pub fn daily_trend(
    snapshots: &[(String, i64, u64, u64)],
    now_ms: i64,
    days: u32,
) -> Vec<TrendPoint> {
    const DAY: i64 = 86_400_000;
    let mut by_repo: BTreeMap<&str, Vec<(i64, u64, u64)>> = BTreeMap::new();
    for (repo, at, d, w) in snapshots {
        by_repo
            .entry(repo.as_str())
            .or_default()
            .push((*at, *d, *w));
    }
    for list in by_repo.values_mut() {
        list.sort_by_key(|(at, _, _)| *at);
    }
    let today_end = (now_ms.div_euclid(DAY) + 1) * DAY;
    (0..i64::from(days))
        .rev()
        .map(|back| {
            let end = today_end - back * DAY;
            let (mut danger, mut warning) = (0, 0);
            for list in by_repo.values() {
                let upto = list.partition_point(|(at, _, _)| *at < end);
                if let Some((_, d, w)) = upto.checked_sub(1).map(|i| list[i]) {
                    danger += d;
                    warning += w;
                }
            }
            TrendPoint {
                day_end_ms: end,
                danger,
                warning,
            }
        })
        .collect()
}

/// Danger and warning findings of one group.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    pub danger: u64,
    pub warning: u64,
}

impl Tally {
    fn add(&mut self, severity: Severity, n: u64) {
        match severity {
            Severity::Danger => self.danger += n,
            Severity::Warning => self.warning += n,
            Severity::Ignore => {}
        }
    }

    pub fn total(&self) -> u64 {
        self.danger + self.warning
    }
}

/// A team's line in the overview.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TeamSummary {
    pub team: String,
    #[serde(flatten)]
    pub open: Tally,
    pub environments: Vec<String>,
    /// Its rules with the most open findings, most first.
    pub top_rules: Vec<String>,
}

/// A rule's line in the overview.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleSummary {
    pub rule: String,
    #[serde(flatten)]
    pub open: Tally,
    /// The teams with open findings of it, most first.
    pub teams: Vec<String>,
}

/// An environment's line in the overview.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentSummary {
    pub environment: String,
    #[serde(flatten)]
    pub open: Tally,
}

/// The groups a platform team reads first, from per-group counts: teams by open danger then
/// warning findings, rules by open findings, environments, and the unowned total.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Overview {
    /// Each finding once, whatever its number of owners.
    pub open: Tally,
    pub unowned: Tally,
    pub teams: Vec<TeamSummary>,
    pub rules: Vec<RuleSummary>,
    pub environments: Vec<EnvironmentSummary>,
}

const TOP_RULES: usize = 3;

/// What the overview gathers of one team while counting.
#[derive(Default)]
struct TeamTotals<'a> {
    open: Tally,
    environments: BTreeSet<&'a str>,
    rules: BTreeMap<&'a str, u64>,
}

pub fn overview(findings: &[OwnedFinding]) -> Overview {
    let mut open = Tally::default();
    let mut unowned = Tally::default();
    for f in findings {
        open.add(f.severity, 1);
        if f.owners.is_empty() {
            unowned.add(f.severity, 1);
        }
    }
    let mut teams: BTreeMap<&str, TeamTotals> = BTreeMap::new();
    let mut rules: BTreeMap<&str, (Tally, BTreeMap<&str, u64>)> = BTreeMap::new();
    let mut environments: BTreeMap<&str, Tally> = BTreeMap::new();
    // A finding of two teams counts for each team, and once for its rule.
    for f in findings {
        for team in f.teams() {
            let entry = teams.entry(team).or_default();
            entry.open.add(f.severity, 1);
            entry
                .environments
                .extend(f.environments.iter().map(String::as_str));
            *entry.rules.entry(f.rule.as_str()).or_insert(0) += 1;
            let rule = rules.entry(f.rule.as_str()).or_default();
            *rule.1.entry(team).or_insert(0) += 1;
        }
        rules
            .entry(f.rule.as_str())
            .or_default()
            .0
            .add(f.severity, 1);
    }
    for f in findings {
        for env in &f.environments {
            environments
                .entry(env.as_str())
                .or_default()
                .add(f.severity, 1);
        }
    }
    let most_first = |m: &BTreeMap<&str, u64>, n: usize| {
        let mut v: Vec<(&str, u64)> = m.iter().map(|(k, v)| (*k, *v)).collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        v.into_iter()
            .take(n)
            .map(|(k, _)| k.to_owned())
            .collect::<Vec<_>>()
    };
    let mut teams: Vec<TeamSummary> = teams
        .into_iter()
        .map(|(team, totals)| TeamSummary {
            team: team.to_owned(),
            open: totals.open,
            environments: totals.environments.into_iter().map(str::to_owned).collect(),
            top_rules: most_first(&totals.rules, TOP_RULES),
        })
        .collect();
    teams.sort_by(|a, b| {
        (b.open.danger, b.open.warning)
            .cmp(&(a.open.danger, a.open.warning))
            .then(a.team.cmp(&b.team))
    });
    let mut rules: Vec<RuleSummary> = rules
        .into_iter()
        .map(|(rule, (open, teams))| RuleSummary {
            rule: rule.to_owned(),
            open,
            teams: most_first(&teams, usize::MAX),
        })
        .collect();
    rules.sort_by(|a, b| {
        (b.open.total(), b.open.danger)
            .cmp(&(a.open.total(), a.open.danger))
            .then(a.rule.cmp(&b.rule))
    });
    Overview {
        open,
        unowned,
        teams,
        rules,
        environments: environments
            .into_iter()
            .map(|(environment, open)| EnvironmentSummary {
                environment: environment.to_owned(),
                open,
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(key: &str, path: &str, line: u32, owners: &[&str]) -> OwnedFinding {
        OwnedFinding {
            key: key.into(),
            fingerprint: key.into(),
            rule: "runAsRootAllowed".into(),
            severity: Severity::Danger,
            path: path.into(),
            line,
            object: "Deployment shop/web".into(),
            message: "Should not be allowed to run as root".into(),
            owners: owners.iter().map(|o| (*o).to_owned()).collect(),
            environments: Vec::new(),
        }
    }

    #[test]
    fn a_delta_holds_what_was_added_fixed_and_moved_and_applies_back() {
        let before = vec![
            finding("a", "apps/web.yaml", 10, &["@org/web"]),
            finding("b", "apps/web.yaml", 20, &["@org/web"]),
            finding("c", "apps/db.yaml", 5, &[]),
        ];
        let after = vec![
            // a moved with its file; b fixed; c unchanged; d new.
            finding("a", "apps/web/deployment.yaml", 10, &["@org/web"]),
            finding("c", "apps/db.yaml", 5, &[]),
            finding("d", "apps/api.yaml", 3, &["@org/api"]),
        ];
        let d = delta(&before, &after);
        let keys = |v: &[OwnedFinding]| v.iter().map(|f| f.key.clone()).collect::<Vec<_>>();
        assert_eq!(keys(&d.added), ["d"]);
        assert_eq!(keys(&d.removed), ["b"]);
        assert_eq!(keys(&d.moved), ["a"]);
        let mut expected = after.clone();
        expected.sort_by(|a, b| (&a.path, a.line).cmp(&(&b.path, b.line)));
        assert_eq!(apply(&before, &d), expected);
        assert!(delta(&after, &after).is_empty());
    }

    #[test]
    fn the_overview_ranks_teams_by_danger_and_counts_the_unowned() {
        let mut warning = finding("w", "apps/api.yaml", 1, &["@org/api"]);
        warning.severity = Severity::Warning;
        let shared = finding("s", "apps/shared.yaml", 1, &["@org/web", "@org/api"]);
        let findings = vec![
            finding("a", "apps/web.yaml", 1, &["@org/web"]),
            shared,
            warning,
            finding("u", "legacy/x.yaml", 1, &[]),
        ];
        let o = overview(&findings);
        assert_eq!(
            o.open,
            Tally {
                danger: 3,
                warning: 1
            }
        );
        assert_eq!(
            o.unowned,
            Tally {
                danger: 1,
                warning: 0
            }
        );
        let teams: Vec<(&str, u64, u64)> = o
            .teams
            .iter()
            .map(|t| (t.team.as_str(), t.open.danger, t.open.warning))
            .collect();
        assert_eq!(
            teams,
            [("@org/web", 2, 0), ("@org/api", 1, 1), (UNOWNED, 1, 0)]
        );
        assert_eq!(o.rules[0].rule, "runAsRootAllowed");
        assert_eq!(
            o.rules[0].open.total(),
            4,
            "a rule counts a shared finding once"
        );
    }

    #[test]
    fn a_trend_carries_each_repository_latest_snapshot_forward() {
        let day = 86_400_000;
        let snapshots = vec![
            ("a".to_owned(), day / 2, 3, 1),
            ("b".to_owned(), day + 5, 2, 0),
            // a fixed everything on day 2.
            ("a".to_owned(), 2 * day + 7, 0, 0),
        ];
        let trend = daily_trend(&snapshots, 3 * day + 1, 4);
        let counts: Vec<(u64, u64)> = trend.iter().map(|p| (p.danger, p.warning)).collect();
        assert_eq!(counts, [(3, 1), (5, 1), (2, 0), (2, 0)]);
        assert_eq!(trend[3].day_end_ms, 4 * day);
        let mut f = finding("x", "base.yaml", 1, &["@org/web"]);
        f.environments = vec!["prod".into(), "staging".into()];
        let totals = team_totals(&[f]);
        assert_eq!(
            totals["@org/web"],
            Tally {
                danger: 1,
                warning: 0
            },
            "once, whatever its environments"
        );
    }

    #[test]
    fn counts_split_by_team_and_environment() {
        let mut f = finding("a", "base/web.yaml", 1, &["@org/web", "@org/sre"]);
        f.environments = vec!["prod".into(), "staging".into()];
        let c = counts(&[f]);
        assert_eq!(c.len(), 4, "two teams × two environments: {c:?}");
        assert!(c.iter().all(|c| c.count == 1));
    }
}
