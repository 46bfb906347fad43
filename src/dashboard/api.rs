//! What the dashboard shows, built once and cut to what the signed-in user may see: the JSON
//! API under `/api/v1/` (documented in docs/dashboard.md) serializes it, the pages
//! ([`super::pages`]) render it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::extract::{ConnectInfo, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::DashboardState;
use super::access::{Refused, Visible};
use super::links::file_link;
use crate::audit::Severity;
use crate::ownership::{TrendPoint, daily_trend};
use crate::queue::ownership::{
    FindingsOf, GroupCount, OpenFinding, RepositoryCount, SnapshotRecord, TeamRepository,
    TeamReviews,
};

/// The version of the API's JSON (`docs/dashboard.md`).
pub const API_VERSION: &str = "1";
/// Findings per page of a list.
pub const PAGE_SIZE: u32 = 100;
/// The window of "what its reviews caught" on a team's page.
pub const REVIEW_DAYS: u32 = 90;
/// The session cookie of a sign-in with credentials.
pub const SESSION_COOKIE: &str = "kubeward_dashboard";

/// An answer that is not the data: its status and what it says.
#[derive(Debug)]
pub struct Refusal(pub StatusCode, pub &'static str);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        (self.0, Json(json!({"error": self.1}))).into_response()
    }
}

impl From<Refused> for Refusal {
    fn from(refused: Refused) -> Refusal {
        match refused {
            Refused::UntrustedPeer => Refusal(
                StatusCode::FORBIDDEN,
                "requests must come through the configured authenticating proxy",
            ),
            Refused::NotSignedIn => Refusal(StatusCode::UNAUTHORIZED, "not signed in"),
        }
    }
}

fn not_found(what: &'static str) -> Refusal {
    Refusal(StatusCode::NOT_FOUND, what)
}

/// The session token a request carries, if any.
pub(super) fn session_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value)
}

/// Who is asking: the proxy's word when the peer is the proxy, else a session.
pub(super) fn who(state: &DashboardState, parts: &Parts) -> Result<Visible, Refused> {
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0)
        .ok_or(Refused::UntrustedPeer)?;
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    if let Some(identity) = state.access.from_proxy(peer.ip(), header)? {
        return Ok(state.access.visible(identity));
    }
    let identity = state
        .access
        .sign_in
        .as_ref()
        .zip(session_token(&parts.headers))
        .and_then(|(sign_in, token)| sign_in.session(token, Instant::now()))
        .ok_or(Refused::NotSignedIn)?;
    Ok(state.access.visible(identity))
}

/// The signed-in user, as a handler's argument: a request that cannot say who it is from is
/// refused before the handler runs.
impl FromRequestParts<Arc<DashboardState>> for Visible {
    type Rejection = Refusal;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<DashboardState>,
    ) -> Result<Visible, Refusal> {
        who(state, parts).map_err(Refusal::from)
    }
}

fn unavailable(e: impl std::fmt::Display) -> Refusal {
    tracing::warn!(error = %e, "the ownership store cannot answer");
    Refusal(
        StatusCode::SERVICE_UNAVAILABLE,
        "the store cannot answer now",
    )
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(super) struct ListQuery {
    /// Escaped findings of merges in the last this many days (default 30).
    pub escaped_days: Option<u32>,
    /// Days of trend (default 30, at most 366).
    pub trend_days: Option<u32>,
    /// The page of findings, from 1.
    pub page: Option<u32>,
}

impl ListQuery {
    pub fn trend_days(&self) -> u32 {
        self.trend_days.unwrap_or(30).clamp(1, 366)
    }

    pub fn page(&self) -> u32 {
        self.page.unwrap_or(1).clamp(1, 100_000)
    }
}

/// An open finding as listed: where it is, and the forge's page of that line at the
/// snapshot's commit.
#[derive(Serialize, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub struct Listed {
    #[serde(flatten)]
    pub open: OpenFinding,
    pub file_url: Option<String>,
}

fn listed(findings: Vec<OpenFinding>) -> Vec<Listed> {
    findings
        .into_iter()
        .map(|open| Listed {
            file_url: file_link(&open),
            open,
        })
        .collect()
}

/// One page of a list of findings.
#[derive(Serialize, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub struct Page {
    pub page: u32,
    pub page_size: u32,
    pub total: u64,
    pub findings: Vec<Listed>,
}

impl Page {
    fn of(all: Vec<OpenFinding>, page: u32) -> Page {
        let total = all.len() as u64;
        let start = (page.saturating_sub(1) as usize).saturating_mul(PAGE_SIZE as usize);
        Page {
            page,
            page_size: PAGE_SIZE,
            total,
            findings: listed(
                all.into_iter()
                    .skip(start)
                    .take(PAGE_SIZE as usize)
                    .collect(),
            ),
        }
    }

    pub fn pages(&self) -> u32 {
        self.total.div_ceil(u64::from(self.page_size)).max(1) as u32
    }
}

#[derive(Serialize, Default, Debug, Clone, Copy)]
pub struct Counts {
    pub danger: i64,
    pub warning: i64,
}

#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct OverviewAnswer {
    pub api_version: &'static str,
    pub user: String,
    pub teams: Vec<GroupCount>,
    /// Each team's open findings when the trend's window began (`trendDays` ago), in the
    /// repositories the user sees: with `teams`, each team's trend.
    pub teams_at_start: Vec<GroupCount>,
    pub trend_days: u32,
    pub rules: Vec<GroupCount>,
    /// Open findings per environment the policies name, each finding once in each of its
    /// environments.
    pub environments: Vec<GroupCount>,
    pub repositories: Vec<RepositoryCount>,
    pub unowned: Counts,
    pub unreviewed: i64,
    /// Only for a user who sees every team: merges are not any one team's.
    pub escaped: Option<i64>,
    pub escaped_days: u32,
    /// Open findings at the end of each day, oldest first; only for a user who sees every
    /// team (a finding of two visible teams would count twice in a sum of theirs).
    pub trend: Option<Vec<TrendPoint>>,
}

const DAY_MS: i64 = 86_400_000;

/// The first millisecond of a trend of `days` days ending today (UTC days).
fn trend_start(now: i64, days: u32) -> i64 {
    (now.div_euclid(DAY_MS) + 1 - i64::from(days)) * DAY_MS
}

/// Per-(repository, team) counts summed per team, over the pairs the user may see.
fn visible_teams(
    visible: &Visible,
    rows: &[crate::queue::ownership::RepositoryTeamCount],
) -> Vec<GroupCount> {
    crate::queue::ownership::fold_counts(
        rows.iter()
            .filter(|c| visible.sees(&c.team, &c.repository))
            .map(|c| (c.team.as_str(), c.danger, c.warning)),
    )
}

pub(super) async fn overview_data(
    state: &DashboardState,
    visible: Visible,
    query: &ListQuery,
) -> Result<OverviewAnswer, Refusal> {
    let days = query.escaped_days.unwrap_or(30).min(3660);
    let now = crate::queue::now_ms();
    let since = now - i64::from(days) * DAY_MS;
    let trend_days = query.trend_days();
    let window_start = trend_start(now, trend_days);
    let q = &state.queue;
    if visible.sees_everything() {
        // Sums over every repository: the daily totals answer in a row per day.
        let stored = q
            .ownership_overview(since, None)
            .await
            .map_err(unavailable)?;
        let first_day = window_start.div_euclid(DAY_MS);
        let teams_at_start = q.teams_before_day(first_day).await.map_err(unavailable)?;
        let trend = q
            .daily_trend("", first_day, now.div_euclid(DAY_MS))
            .await
            .map_err(unavailable)?;
        return Ok(OverviewAnswer {
            api_version: API_VERSION,
            user: visible.user,
            teams: stored.teams,
            teams_at_start,
            trend_days,
            rules: stored.rules,
            environments: stored.environments,
            repositories: stored.repositories,
            unowned: Counts {
                danger: stored.unowned_danger,
                warning: stored.unowned_warning,
            },
            unreviewed: stored.unreviewed,
            escaped: Some(stored.escaped),
            escaped_days: days,
            trend: Some(trend),
        });
    }
    let stored = q
        .ownership_overview(since, Some(window_start))
        .await
        .map_err(unavailable)?;
    let teams_at_start = visible_teams(&visible, &stored.before);
    // Teams: exact from each repository's per-team totals.
    let teams = visible_teams(&visible, &stored.by_repository);
    // Rules, repositories, unowned: counted by the store over the findings the user may see,
    // each once however many of its teams they see.
    let seen: Vec<(String, i64, String)> = stored
        .by_repository
        .iter()
        .filter(|c| visible.sees(&c.team, &c.repository))
        .map(|c| (c.forge.clone(), c.repo_id, c.team.clone()))
        .collect();
    let counts = if seen.is_empty() {
        Vec::new()
    } else {
        q.visible_counts(&seen).await.map_err(unavailable)?
    };
    let mut unowned = Counts::default();
    let mut unreviewed = 0;
    let mut rules = Vec::with_capacity(counts.len());
    let mut environments = Vec::new();
    let mut repositories = Vec::with_capacity(counts.len());
    for c in &counts {
        let (danger, warning) = match c.severity {
            Severity::Danger => (c.findings, 0),
            Severity::Warning => (0, c.findings),
            Severity::Ignore => (0, 0),
        };
        if c.unowned {
            unowned.danger += danger;
            unowned.warning += warning;
        }
        if c.unreviewed {
            unreviewed += c.findings;
        }
        rules.push((c.rule.as_str(), danger, warning));
        for environment in &c.environments {
            environments.push((environment.as_str(), danger, warning));
        }
        repositories.push((
            c.forge.as_str(),
            c.repo_id,
            c.repository.as_str(),
            danger,
            warning,
        ));
    }
    let teams = teams
        .into_iter()
        .filter(|t| t.danger + t.warning > 0)
        .collect();
    Ok(OverviewAnswer {
        api_version: API_VERSION,
        user: visible.user,
        teams,
        teams_at_start,
        trend_days,
        rules: crate::queue::ownership::fold_counts(rules.into_iter()),
        environments: crate::queue::ownership::fold_counts(environments.into_iter()),
        repositories: crate::queue::ownership::fold_repositories(repositories.into_iter()),
        unowned,
        unreviewed,
        escaped: None,
        escaped_days: days,
        trend: None,
    })
}

pub(super) async fn overview(
    State(state): State<Arc<DashboardState>>,
    visible: Visible,
    Query(query): Query<ListQuery>,
) -> Result<Json<OverviewAnswer>, Refusal> {
    overview_data(&state, visible, &query).await.map(Json)
}

#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct TeamAnswer {
    pub api_version: &'static str,
    pub team: String,
    pub danger: i64,
    pub warning: i64,
    /// The team's open findings at the end of each day, in the repositories the user sees.
    pub trend: Vec<TrendPoint>,
    /// Its repositories, with its findings in each and the snapshot's commit.
    pub repositories: Vec<TeamRepository>,
    /// Its open findings per environment (a finding counts in each of its environments).
    pub environments: Vec<GroupCount>,
    /// What reviews of pull requests found in its files in the last `reviewDays` days.
    pub reviews: Vec<TeamReviews>,
    pub review_days: u32,
    #[serde(flatten)]
    pub findings: Page,
}

impl TeamAnswer {
    /// The review figures summed over repositories.
    pub fn reviews_total(&self) -> TeamReviews {
        let mut total = TeamReviews::default();
        for r in &self.reviews {
            total.reviews += r.reviews;
            total.pull_requests += r.pull_requests;
            total.new_findings += r.new_findings;
            total.fixed_findings += r.fixed_findings;
            total.new_failing += r.new_failing;
            total.escaped += r.escaped;
        }
        total
    }
}

/// A team's page, or `None` when the user may see none of it (answered 404, so a team's
/// existence is not told to those who may not see it).
pub(super) async fn team_data(
    state: &DashboardState,
    visible: &Visible,
    team: &str,
    query: &ListQuery,
) -> Result<Option<TeamAnswer>, Refusal> {
    if !visible.sees_team(team) {
        return Ok(None);
    }
    let q = &state.queue;
    let all_repositories = q.team_repositories(team).await.map_err(unavailable)?;
    let whole = all_repositories.len();
    let repositories: Vec<TeamRepository> = all_repositories
        .into_iter()
        .filter(|r| visible.sees(team, &r.name))
        .collect();
    if repositories.is_empty() {
        // No open finding of the team the user may see: as if there were no such team.
        return Ok(None);
    }
    let page = query.page();
    let sees_whole_team = repositories.len() == whole;
    let findings = if sees_whole_team {
        // Every repository of the team is visible: the store pages it.
        let total: i64 = repositories.iter().map(|r| r.danger + r.warning).sum();
        let offset = (page - 1).saturating_mul(PAGE_SIZE);
        let rows = q
            .findings_of(FindingsOf::Team(team), Some((PAGE_SIZE, offset)))
            .await
            .map_err(unavailable)?;
        Page {
            page,
            page_size: PAGE_SIZE,
            total: u64::try_from(total).unwrap_or(0),
            findings: listed(rows),
        }
    } else {
        let all = q.team_findings(team).await.map_err(unavailable)?;
        Page::of(
            all.into_iter()
                .filter(|f| visible.sees(team, &f.repository))
                .collect(),
            page,
        )
    };
    let now = crate::queue::now_ms();
    let trend_days = query.trend_days();
    let trend = if visible.sees_team_everywhere(team) {
        q.daily_trend(
            team,
            trend_start(now, trend_days).div_euclid(DAY_MS),
            now.div_euclid(DAY_MS),
        )
        .await
        .map_err(unavailable)?
    } else {
        // Only some of its repositories: summed from theirs.
        let rows = q
            .trend_rows(Some(team), trend_start(now, trend_days), now + 1)
            .await
            .map_err(unavailable)?;
        let seen: Vec<_> = rows
            .iter()
            .filter(|r| visible.sees(team, &r.repository))
            .map(|r| r.point())
            .collect();
        daily_trend(&seen, now, trend_days)
    };
    let environments = q.team_environments(team).await.map_err(unavailable)?;
    let environments = crate::queue::ownership::fold_counts(
        environments
            .iter()
            .filter(|(repository, ..)| visible.sees(team, repository))
            .map(|(_, env, severity, n)| match severity {
                Severity::Danger => (env.as_str(), *n, 0),
                _ => (env.as_str(), 0, *n),
            }),
    );
    let reviews = q
        .team_reviews(team, now - i64::from(REVIEW_DAYS) * DAY_MS)
        .await
        .map_err(unavailable)?
        .into_iter()
        .filter(|r| visible.sees(team, &r.repository))
        .collect();
    Ok(Some(TeamAnswer {
        api_version: API_VERSION,
        team: team.to_owned(),
        danger: repositories.iter().map(|r| r.danger).sum(),
        warning: repositories.iter().map(|r| r.warning).sum(),
        trend,
        repositories,
        environments,
        reviews,
        review_days: REVIEW_DAYS,
        findings,
    }))
}

pub(super) async fn team(
    State(state): State<Arc<DashboardState>>,
    visible: Visible,
    Path(team): Path<String>,
    Query(query): Query<ListQuery>,
) -> Result<Json<TeamAnswer>, Refusal> {
    team_data(&state, &visible, &team, &query)
        .await?
        .map(Json)
        .ok_or(not_found("no such team"))
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
    crate::queue::ownership::fold_counts(pairs.map(|(name, severity)| match severity {
        Severity::Danger => (name, 1, 0),
        Severity::Warning => (name, 0, 1),
        Severity::Ignore => (name, 0, 0),
    }))
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

#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct RuleAnswer {
    pub api_version: &'static str,
    pub rule: String,
    pub teams: Vec<GroupCount>,
    pub repositories: Vec<GroupCount>,
    #[serde(flatten)]
    pub findings: Page,
}

/// Where a rule fails, and which teams it fails for.
pub(super) async fn rule_data(
    state: &DashboardState,
    visible: &Visible,
    rule: &str,
    query: &ListQuery,
) -> Result<RuleAnswer, Refusal> {
    let findings = state
        .queue
        .findings_of(FindingsOf::Rule(rule), None)
        .await
        .map(|f| seen_by(visible, f))
        .map_err(unavailable)?;
    Ok(RuleAnswer {
        api_version: API_VERSION,
        rule: rule.to_owned(),
        teams: by_visible_team(visible, &findings),
        repositories: counted(
            findings
                .iter()
                .map(|f| (f.repository.as_str(), f.finding.severity)),
        ),
        findings: Page::of(findings, query.page()),
    })
}

pub(super) async fn rule(
    State(state): State<Arc<DashboardState>>,
    visible: Visible,
    Path(rule): Path<String>,
    Query(query): Query<ListQuery>,
) -> Result<Json<RuleAnswer>, Refusal> {
    rule_data(&state, &visible, &rule, &query).await.map(Json)
}

#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct RepositoryAnswer {
    pub api_version: &'static str,
    pub forge: String,
    pub repo_id: i64,
    /// Its name, from the first finding the user sees.
    pub repository: String,
    pub teams: Vec<GroupCount>,
    /// Its snapshots, oldest first; only for a user who sees every team in it.
    pub snapshots: Option<Vec<SnapshotRecord>>,
    #[serde(flatten)]
    pub findings: Page,
}

/// A repository's open findings the user sees, by team; `None` when they see none of it.
pub(super) async fn repository_data(
    state: &DashboardState,
    visible: &Visible,
    forge: &str,
    repo_id: i64,
    query: &ListQuery,
) -> Result<Option<RepositoryAnswer>, Refusal> {
    let all = state
        .queue
        .findings_of(FindingsOf::Repository { forge, repo_id }, None)
        .await
        .map_err(unavailable)?;
    let findings = seen_by(visible, all);
    if findings.is_empty() && !visible.sees_everything() {
        return Ok(None);
    }
    let name = findings.first().map(|f| f.repository.clone());
    // A snapshot counts every team's findings, those gone since included.
    let snapshots = if visible.sees_everything()
        || name
            .as_deref()
            .is_some_and(|n| visible.sees_every_team_in(n))
    {
        Some(
            state
                .queue
                .snapshots(forge, repo_id)
                .await
                .map_err(unavailable)?,
        )
    } else {
        None
    };
    if snapshots.as_ref().is_some_and(Vec::is_empty) && findings.is_empty() {
        return Ok(None);
    }
    Ok(Some(RepositoryAnswer {
        api_version: API_VERSION,
        forge: forge.to_owned(),
        repo_id,
        repository: name.unwrap_or_default(),
        teams: by_visible_team(visible, &findings),
        snapshots,
        findings: Page::of(findings, query.page()),
    }))
}

pub(super) async fn repository(
    State(state): State<Arc<DashboardState>>,
    visible: Visible,
    Path((forge, repo_id)): Path<(String, i64)>,
    Query(query): Query<ListQuery>,
) -> Result<Json<RepositoryAnswer>, Refusal> {
    repository_data(&state, &visible, &forge, repo_id, &query)
        .await?
        .map(Json)
        .ok_or(not_found("no such repository"))
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
) -> Result<Response, Refusal> {
    if !visible.sees_team(&team) {
        return Err(not_found("no such team"));
    }
    let findings: Vec<OpenFinding> = state
        .queue
        .team_findings(&team)
        .await
        .map_err(unavailable)?
        .into_iter()
        .filter(|f| visible.sees(&team, &f.repository))
        .collect();
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
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"findings.csv\"",
            ),
        ],
        out,
    )
        .into_response())
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

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            "theme=dark; kubeward_dashboard=abc-123; other=1"
                .parse()
                .expect("header"),
        );
        assert_eq!(session_token(&headers), Some("abc-123"));
        assert_eq!(session_token(&HeaderMap::new()), None);
    }

    #[test]
    fn a_trend_starts_at_a_day_boundary() {
        let now = 10 * DAY_MS + 5;
        assert_eq!(trend_start(now, 1), 10 * DAY_MS);
        assert_eq!(trend_start(now, 30), (10 - 29) * DAY_MS);
    }
}
