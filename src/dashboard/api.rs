//! `/api/v1/`: the ownership view as JSON (documented in docs/dashboard.md), each answer cut
//! to what the signed-in user may see.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::extract::{ConnectInfo, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::DashboardState;
use super::access::{Refused, Visible};
use crate::audit::Severity;
use crate::ownership::{TrendPoint, daily_trend};
use crate::queue::ownership::{FindingsOf, GroupCount, OpenFinding};

/// The version of the API's JSON (`docs/dashboard.md`).
pub const API_VERSION: &str = "1";

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({"error": message}))).into_response()
}

/// An answer that is not the data: its status and what it says.
pub struct Refusal(StatusCode, &'static str);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        error(self.0, self.1)
    }
}

/// The signed-in user, as a handler's argument: a request that cannot say who it is from is
/// refused before the handler runs.
impl FromRequestParts<Arc<DashboardState>> for Visible {
    type Rejection = Refusal;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<DashboardState>,
    ) -> Result<Visible, Refusal> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0)
            .ok_or(Refusal(StatusCode::FORBIDDEN, "no peer address"))?;
        who(state, peer, &parts.headers)
    }
}

fn who(state: &DashboardState, peer: SocketAddr, headers: &HeaderMap) -> Result<Visible, Refusal> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    state
        .access
        .visible(
            peer.ip(),
            header(&state.access.user_header),
            header(&state.access.groups_header),
        )
        .map_err(|refused| match refused {
            Refused::UntrustedPeer => Refusal(
                StatusCode::FORBIDDEN,
                "requests must come through the configured authenticating proxy",
            ),
            Refused::NotSignedIn => Refusal(StatusCode::UNAUTHORIZED, "not signed in"),
        })
}

fn unavailable(e: impl std::fmt::Display) -> Refusal {
    tracing::warn!(error = %e, "the ownership store cannot answer");
    Refusal(
        StatusCode::SERVICE_UNAVAILABLE,
        "the store cannot answer now",
    )
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct OverviewQuery {
    /// Escaped findings of merges in the last this many days (default 30).
    escaped_days: Option<u32>,
    /// Days of trend (default 30, at most 366).
    trend_days: Option<u32>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct TeamQuery {
    trend_days: Option<u32>,
}

fn trend_days(asked: Option<u32>) -> u32 {
    asked.unwrap_or(30).clamp(1, 366)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OverviewAnswer {
    api_version: &'static str,
    user: String,
    teams: Vec<GroupCount>,
    rules: Vec<GroupCount>,
    repositories: Vec<GroupCount>,
    unowned: Counts,
    unreviewed: i64,
    /// Only for a user who sees every team: merges are not any one team's.
    escaped: Option<i64>,
    escaped_days: u32,
    /// Open findings at the end of each day, oldest first; only for a user who sees every
    /// team (a finding of two visible teams would count twice in a sum of theirs).
    trend: Option<Vec<TrendPoint>>,
}

#[derive(Serialize, Default)]
struct Counts {
    danger: i64,
    warning: i64,
}

pub(super) async fn overview(
    State(state): State<Arc<DashboardState>>,
    visible: Visible,
    Query(query): Query<OverviewQuery>,
) -> Response {
    let days = query.escaped_days.unwrap_or(30).min(3660);
    let since = crate::queue::now_ms() - i64::from(days) * 86_400_000;
    let stored = match state.queue.ownership_overview(since).await {
        Ok(o) => o,
        Err(e) => return unavailable(e).into_response(),
    };
    if visible.sees_everything() {
        let now = crate::queue::now_ms();
        let rows = match state.queue.trend_rows(None, now).await {
            Ok(rows) => rows,
            Err(e) => return unavailable(e).into_response(),
        };
        let trend = daily_trend(&rows, now, trend_days(query.trend_days));
        return Json(OverviewAnswer {
            api_version: API_VERSION,
            user: visible.user,
            teams: stored.teams,
            rules: stored.rules,
            repositories: stored.repositories,
            unowned: Counts {
                danger: stored.unowned_danger,
                warning: stored.unowned_warning,
            },
            unreviewed: stored.unreviewed,
            escaped: Some(stored.escaped),
            escaped_days: days,
            trend: Some(trend),
        })
        .into_response();
    }
    // Counted again from the findings the user may see, team by team.
    let mut findings: BTreeMap<(String, i64, String), OpenFinding> = BTreeMap::new();
    let mut teams = Vec::new();
    for team in stored.teams.iter().filter(|t| visible.sees_team(&t.name)) {
        let of_team = match state.queue.team_findings(&team.name).await {
            Ok(f) => f,
            Err(e) => return unavailable(e).into_response(),
        };
        let seen: Vec<OpenFinding> = of_team
            .into_iter()
            .filter(|f| visible.sees(&team.name, &f.repository))
            .collect();
        let mut count = GroupCount {
            name: team.name.clone(),
            ..GroupCount::default()
        };
        for f in seen {
            add(&mut count, f.finding.severity);
            findings.insert((f.forge.clone(), f.repo_id, f.finding.key.clone()), f);
        }
        if count.danger + count.warning > 0 {
            teams.push(count);
        }
    }
    let mut rules: BTreeMap<String, GroupCount> = BTreeMap::new();
    let mut repositories: BTreeMap<String, GroupCount> = BTreeMap::new();
    let mut unowned = Counts::default();
    let mut unreviewed = 0;
    for f in findings.values() {
        for (map, name) in [
            (&mut rules, &f.finding.rule),
            (&mut repositories, &f.repository),
        ] {
            let entry = map.entry(name.clone()).or_insert_with(|| GroupCount {
                name: name.clone(),
                ..GroupCount::default()
            });
            add(entry, f.finding.severity);
        }
        if f.finding.owners.is_empty() {
            match f.finding.severity {
                Severity::Danger => unowned.danger += 1,
                Severity::Warning => unowned.warning += 1,
                Severity::Ignore => {}
            }
        }
        unreviewed += i64::from(f.unreviewed);
    }
    let ranked = |m: BTreeMap<String, GroupCount>| {
        let mut v: Vec<GroupCount> = m.into_values().collect();
        v.sort_by(|a, b| {
            (b.danger, b.warning)
                .cmp(&(a.danger, a.warning))
                .then(a.name.cmp(&b.name))
        });
        v
    };
    Json(OverviewAnswer {
        api_version: API_VERSION,
        user: visible.user,
        teams,
        rules: ranked(rules),
        repositories: ranked(repositories),
        unowned,
        unreviewed,
        escaped: None,
        escaped_days: days,
        trend: None,
    })
    .into_response()
}

fn add(count: &mut GroupCount, severity: Severity) {
    match severity {
        Severity::Danger => count.danger += 1,
        Severity::Warning => count.warning += 1,
        Severity::Ignore => {}
    }
}

/// The team's open findings the user may see; `None` when they may see none of the team's
/// (answered 404, so a team's existence is not told to those who may not see it).
async fn visible_findings(
    state: &DashboardState,
    visible: &Visible,
    team: &str,
) -> Result<Option<Vec<OpenFinding>>, Refusal> {
    if !visible.sees_team(team) {
        return Ok(None);
    }
    let findings = state.queue.team_findings(team).await.map_err(unavailable)?;
    Ok(Some(
        findings
            .into_iter()
            .filter(|f| visible.sees(team, &f.repository))
            .collect(),
    ))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TeamAnswer {
    api_version: &'static str,
    team: String,
    danger: i64,
    warning: i64,
    /// The team's open findings at the end of each day, in the repositories the user sees.
    trend: Vec<TrendPoint>,
    findings: Vec<OpenFinding>,
}

pub(super) async fn team(
    State(state): State<Arc<DashboardState>>,
    visible: Visible,
    Path(team): Path<String>,
    Query(query): Query<TeamQuery>,
) -> Response {
    let findings = match visible_findings(&state, &visible, &team).await {
        Ok(Some(f)) => f,
        Ok(None) => return error(StatusCode::NOT_FOUND, "no such team"),
        Err(refusal) => return refusal.into_response(),
    };
    let mut count = GroupCount::default();
    for f in &findings {
        add(&mut count, f.finding.severity);
    }
    let now = crate::queue::now_ms();
    let rows = match state.queue.trend_rows(Some(&team), now).await {
        Ok(rows) => rows,
        Err(e) => return unavailable(e).into_response(),
    };
    let seen: Vec<_> = rows
        .into_iter()
        .filter(|(repository, ..)| visible.sees(&team, repository))
        .collect();
    Json(TeamAnswer {
        api_version: API_VERSION,
        danger: count.danger,
        warning: count.warning,
        trend: daily_trend(&seen, now, trend_days(query.trend_days)),
        team,
        findings,
    })
    .into_response()
}

/// Findings whose repository the user sees for one of the finding's teams.
fn seen_by(visible: &Visible, findings: Vec<OpenFinding>) -> Vec<OpenFinding> {
    findings
        .into_iter()
        .filter(|f| {
            f.finding
                .teams()
                .iter()
                .any(|team| visible.sees(team, &f.repository))
        })
        .collect()
}

/// `(name, severity)` pairs counted, most danger first.
fn counted<'a>(pairs: impl Iterator<Item = (&'a str, Severity)>) -> Vec<GroupCount> {
    let mut by: BTreeMap<&str, GroupCount> = BTreeMap::new();
    for (name, severity) in pairs {
        let entry = by.entry(name).or_insert_with(|| GroupCount {
            name: name.to_owned(),
            ..GroupCount::default()
        });
        add(entry, severity);
    }
    let mut v: Vec<GroupCount> = by.into_values().collect();
    v.sort_by(|a, b| {
        (b.danger, b.warning)
            .cmp(&(a.danger, a.warning))
            .then(a.name.cmp(&b.name))
    });
    v
}

/// Open findings per team, counting only the teams the user sees each finding for.
fn by_visible_team(visible: &Visible, findings: &[OpenFinding]) -> Vec<GroupCount> {
    counted(findings.iter().flat_map(|f| {
        f.finding
            .teams()
            .into_iter()
            .filter(|team| visible.sees(team, &f.repository))
            .map(|team| (team, f.finding.severity))
            .collect::<Vec<_>>()
    }))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RuleAnswer {
    api_version: &'static str,
    rule: String,
    teams: Vec<GroupCount>,
    repositories: Vec<GroupCount>,
    findings: Vec<OpenFinding>,
}

/// Where a rule fails, and which teams it fails for.
pub(super) async fn rule(
    State(state): State<Arc<DashboardState>>,
    visible: Visible,
    Path(rule): Path<String>,
) -> Response {
    let findings = match state.queue.findings_of(FindingsOf::Rule(&rule)).await {
        Ok(f) => seen_by(&visible, f),
        Err(e) => return unavailable(e).into_response(),
    };
    let teams = by_visible_team(&visible, &findings);
    let repositories = counted(
        findings
            .iter()
            .map(|f| (f.repository.as_str(), f.finding.severity)),
    );
    Json(RuleAnswer {
        api_version: API_VERSION,
        rule,
        teams,
        repositories,
        findings,
    })
    .into_response()
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RepositoryAnswer {
    api_version: &'static str,
    forge: String,
    repo_id: i64,
    teams: Vec<GroupCount>,
    findings: Vec<OpenFinding>,
    /// Its snapshots, oldest first; only for a user who sees every team in it.
    snapshots: Option<Vec<crate::queue::ownership::SnapshotRecord>>,
}

/// A repository's open findings the user sees, by team.
pub(super) async fn repository(
    State(state): State<Arc<DashboardState>>,
    visible: Visible,
    Path((forge, repo_id)): Path<(String, i64)>,
) -> Response {
    let all = match state
        .queue
        .findings_of(FindingsOf::Repository {
            forge: &forge,
            repo_id,
        })
        .await
    {
        Ok(f) => f,
        Err(e) => return unavailable(e).into_response(),
    };
    let whole = all.len();
    let findings = seen_by(&visible, all);
    if findings.is_empty() && !visible.sees_everything() {
        return error(StatusCode::NOT_FOUND, "no such repository");
    }
    let teams = by_visible_team(&visible, &findings);
    let snapshots = if visible.sees_everything() || findings.len() == whole && whole > 0 {
        match state.queue.snapshots(&forge, repo_id).await {
            Ok(s) => Some(s),
            Err(e) => return unavailable(e).into_response(),
        }
    } else {
        None
    };
    Json(RepositoryAnswer {
        api_version: API_VERSION,
        forge,
        repo_id,
        teams,
        findings,
        snapshots,
    })
    .into_response()
}

/// A CSV cell: quoted, and a cell a spreadsheet would run as a formula (`= + - @`, or a tab
/// or carriage return first) starts with `'` instead.
fn csv_cell(text: &str) -> String {
    let neutral = if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_owned()
    };
    format!("\"{}\"", neutral.replace('"', "\"\""))
}

pub(super) async fn team_csv(
    State(state): State<Arc<DashboardState>>,
    visible: Visible,
    Path(team): Path<String>,
) -> Response {
    let findings = match visible_findings(&state, &visible, &team).await {
        Ok(Some(f)) => f,
        Ok(None) => return error(StatusCode::NOT_FOUND, "no such team"),
        Err(refusal) => return refusal.into_response(),
    };
    let mut out = String::from(
        "repository,path,line,severity,rule,object,message,owners,environments,commit,unreviewed\r\n",
    );
    for f in &findings {
        let cells = [
            f.repository.clone(),
            f.finding.path.clone(),
            f.finding.line.to_string(),
            f.finding.severity.as_str().to_owned(),
            f.finding.rule.clone(),
            f.finding.object.clone(),
            f.finding.message.clone(),
            f.finding.owners.join(" "),
            f.finding.environments.join(" "),
            f.commit.clone(),
            f.unreviewed.to_string(),
        ];
        let row: Vec<String> = cells.iter().map(|c| csv_cell(c)).collect();
        out.push_str(&row.join(","));
        out.push_str("\r\n");
    }
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"findings.csv\"",
            ),
        ],
        out,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_never_start_a_formula() {
        assert_eq!(csv_cell("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(csv_cell("@org/web"), "\"'@org/web\"");
        assert_eq!(csv_cell("-1+1"), "\"'-1+1\"");
        assert_eq!(csv_cell("apps/web.yaml"), "\"apps/web.yaml\"");
    }
}
