//! `/dashboard`: the same data as the API ([`super::api`]) as server-rendered HTML. askama
//! escapes every text; links are built in [`super::links`] with their segments encoded; the
//! stylesheet is a file (the CSP forbids inline style and any script) and charts are inline
//! SVG with presentation attributes. Usable without JavaScript: there is none.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use askama::Template;
use axum::Form;
use axum::extract::{ConnectInfo, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::DashboardState;
use super::access::{Refused, Visible};
use super::api::{self, ListQuery, Listed, Page, Refusal, SESSION_COOKIE};
use super::links;
use super::signin::SignInError;
use crate::ownership::UNOWNED;
use crate::queue::ownership::{GroupCount, TeamReviews};
use crate::report::chart::{self, BarChart, LineChart};

/// What every page's header shows.
pub struct Chrome {
    pub user: String,
    pub can_sign_out: bool,
}

/// The signed-in user of a page: without one, the sign-in form (or, without accounts, a page
/// saying why not).
pub struct Viewer {
    visible: Visible,
    chrome: Chrome,
}

impl FromRequestParts<Arc<DashboardState>> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<DashboardState>,
    ) -> Result<Viewer, Response> {
        match api::who(state, parts) {
            Ok(visible) => {
                let session =
                    api::session_token(&parts.headers).is_some() && state.access.sign_in.is_some();
                Ok(Viewer {
                    chrome: Chrome {
                        user: visible.user.clone(),
                        can_sign_out: session,
                    },
                    visible,
                })
            }
            Err(Refused::NotSignedIn) if state.access.sign_in.is_some() => {
                Err(Redirect::to("/dashboard/sign-in").into_response())
            }
            Err(refused) => Err(refusal_page(Refusal::from(refused), None)),
        }
    }
}

fn html(template: &impl Template) -> Response {
    match template.render() {
        Ok(body) => Html(body).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "a dashboard page did not render");
            (StatusCode::INTERNAL_SERVER_ERROR, "the page did not render").into_response()
        }
    }
}

#[derive(Template)]
#[template(path = "message.html")]
struct MessagePage {
    chrome: Chrome,
    title: &'static str,
    message: &'static str,
}

fn refusal_page(refusal: Refusal, chrome: Option<Chrome>) -> Response {
    let title = match refusal.0 {
        StatusCode::NOT_FOUND => "Not found",
        StatusCode::FORBIDDEN => "Forbidden",
        StatusCode::UNAUTHORIZED => "Not signed in",
        _ => "Not available",
    };
    let page = MessagePage {
        chrome: chrome.unwrap_or(Chrome {
            user: String::new(),
            can_sign_out: false,
        }),
        title,
        message: refusal.1,
    };
    (refusal.0, html(&page)).into_response()
}

/// A row of a counts table, with the page it links to.
pub struct Row {
    pub name: String,
    pub href: Option<String>,
    pub danger: i64,
    pub warning: i64,
}

fn rows(counts: &[GroupCount], href: impl Fn(&str) -> Option<String>) -> Vec<Row> {
    counts
        .iter()
        .map(|c| Row {
            name: c.name.clone(),
            href: href(&c.name),
            danger: c.danger,
            warning: c.warning,
        })
        .collect()
}

fn team_bars(teams: &[GroupCount]) -> BarChart {
    chart::bars(
        teams
            .iter()
            .map(|t| {
                (
                    t.name.clone(),
                    u64::try_from(t.danger).unwrap_or(0),
                    u64::try_from(t.warning).unwrap_or(0),
                    Some(links::team_page(&t.name)),
                )
            })
            .collect(),
        15,
    )
}

/// The 30/90-day switch of a trend, each a link to `base` with that window.
fn switch(base: &str, days: u32) -> Vec<(u32, String, bool)> {
    [30, 90]
        .into_iter()
        .map(|d| (d, format!("{base}?trendDays={d}"), d == days))
        .collect()
}

/// A team on the overview: open findings now and when the trend's window began.
pub struct TeamRow {
    pub name: String,
    pub href: String,
    pub danger: i64,
    pub warning: i64,
    pub then: i64,
    /// `+3`, `−2` or `0`: the change in open findings over the window.
    pub change: String,
    /// `danger`, `ok` or empty: more findings than then, fewer, the same.
    pub direction: &'static str,
}

fn team_rows(now: &[GroupCount], then: &[GroupCount]) -> Vec<TeamRow> {
    now.iter()
        .map(|t| {
            let before = then
                .iter()
                .find(|b| b.name == t.name)
                .map_or(0, |b| b.danger + b.warning);
            let delta = t.danger + t.warning - before;
            TeamRow {
                name: t.name.clone(),
                href: links::team_page(&t.name),
                danger: t.danger,
                warning: t.warning,
                then: before,
                change: match delta {
                    d if d > 0 => format!("+{d}"),
                    d if d < 0 => format!("\u{2212}{}", -d),
                    _ => "0".into(),
                },
                direction: match delta {
                    d if d > 0 => "danger",
                    d if d < 0 => "ok",
                    _ => "",
                },
            }
        })
        .collect()
}

#[derive(Template)]
#[template(path = "overview.html")]
struct OverviewPage {
    chrome: Chrome,
    data: api::OverviewAnswer,
    open: api::Counts,
    trend: Option<LineChart>,
    switch: Vec<(u32, String, bool)>,
    team_bars: BarChart,
    teams: Vec<TeamRow>,
    rules: Vec<Row>,
    environments: Vec<Row>,
    repositories: Vec<Row>,
}

pub(super) async fn overview(
    State(state): State<Arc<DashboardState>>,
    viewer: Viewer,
    Query(query): Query<ListQuery>,
) -> Response {
    let days = query.trend_days();
    let visible = viewer.visible.clone();
    let data = match api::overview_data(&state, viewer.visible, &query).await {
        Ok(d) => d,
        Err(refusal) => return refusal_page(refusal, Some(viewer.chrome)),
    };
    let open = data
        .repositories
        .iter()
        .fold(api::Counts::default(), |c, r| api::Counts {
            danger: c.danger + r.danger,
            warning: c.warning + r.warning,
        });
    let page = OverviewPage {
        chrome: viewer.chrome,
        trend: data.trend.as_deref().map(chart::trend),
        switch: switch("/dashboard", days),
        team_bars: team_bars(&data.teams),
        teams: team_rows(&data.teams, &data.teams_at_start),
        rules: rows(&data.rules[..data.rules.len().min(10)], |r| {
            Some(links::rule_page(r))
        }),
        environments: rows(&data.environments, |_| None),
        // A repository's page shows all of it: linked only for those who may see that.
        repositories: data.repositories[..data.repositories.len().min(20)]
            .iter()
            .map(|r| Row {
                name: r.name.clone(),
                danger: r.danger,
                warning: r.warning,
                href: visible
                    .sees_every_team_in(&r.name)
                    .then(|| links::repository_page(&r.forge, r.repo_id)),
            })
            .collect(),
        open,
        data,
    };
    html(&page)
}

/// A finding row: its fields and where its links go.
pub struct FindingRow {
    pub repository: String,
    pub repository_href: String,
    pub path: String,
    pub line: u32,
    pub file_url: Option<String>,
    pub severity: &'static str,
    pub rule: String,
    pub rule_href: String,
    pub object: String,
    pub message: String,
    /// `(team, its page)`.
    pub owners: Vec<(String, String)>,
    pub unreviewed: bool,
}

fn finding_rows(list: &[Listed]) -> Vec<FindingRow> {
    list.iter()
        .map(|l| {
            let f = &l.open.finding;
            FindingRow {
                repository: l.open.repository.clone(),
                repository_href: links::repository_page(&l.open.forge, l.open.repo_id),
                path: f.path.clone(),
                line: f.line,
                file_url: l.file_url.clone(),
                severity: f.severity.as_str(),
                rule: f.rule.clone(),
                rule_href: links::rule_page(&f.rule),
                object: f.object.clone(),
                message: f.message.clone(),
                owners: f
                    .teams()
                    .into_iter()
                    .map(|t| (t.to_owned(), links::team_page(t)))
                    .collect(),
                unreviewed: l.open.unreviewed,
            }
        })
        .collect()
}

/// Links to the pages of a list, around the current one.
pub struct Pages {
    pub current: u32,
    pub total: u64,
    pub links: Vec<(u32, String)>,
}

fn pages(page: &Page, base: &str) -> Pages {
    let last = page.pages();
    let mut numbers: Vec<u32> = vec![1, last];
    numbers.extend(page.page.saturating_sub(2).max(1)..=(page.page + 2).min(last));
    numbers.sort_unstable();
    numbers.dedup();
    Pages {
        current: page.page,
        total: page.total,
        links: numbers
            .into_iter()
            .map(|n| (n, format!("{base}?page={n}#findings")))
            .collect(),
    }
}

pub struct RepositoryRow {
    pub name: String,
    pub href: String,
    pub danger: i64,
    pub warning: i64,
    pub short_commit: String,
    pub tree_url: Option<String>,
}

#[derive(Template)]
#[template(path = "team.html")]
struct TeamPage {
    chrome: Chrome,
    data: api::TeamAnswer,
    unowned: bool,
    csv_href: String,
    trend: LineChart,
    switch: Vec<(u32, String, bool)>,
    repositories: Vec<RepositoryRow>,
    environments: Vec<Row>,
    reviews: TeamReviews,
    findings: Vec<FindingRow>,
    pages: Pages,
}

fn short(commit: &str) -> String {
    commit.chars().take(12).collect()
}

pub(super) async fn team(
    State(state): State<Arc<DashboardState>>,
    viewer: Viewer,
    Path(team): Path<String>,
    Query(query): Query<ListQuery>,
) -> Response {
    let data = match api::team_data(&state, &viewer.visible, &team, &query).await {
        Ok(Some(d)) => d,
        Ok(None) => {
            return refusal_page(
                Refusal(StatusCode::NOT_FOUND, "No such team, or none you may see."),
                Some(viewer.chrome),
            );
        }
        Err(refusal) => return refusal_page(refusal, Some(viewer.chrome)),
    };
    let days = query.trend_days();
    let self_href = links::team_page(&team);
    let page = TeamPage {
        chrome: viewer.chrome,
        unowned: team == UNOWNED,
        csv_href: format!("/api/v1/teams/{}/findings.csv", links::segment(&team)),
        trend: chart::trend(&data.trend),
        switch: switch(&self_href, days),
        repositories: data
            .repositories
            .iter()
            .map(|r| RepositoryRow {
                name: r.name.clone(),
                href: links::repository_page(&r.forge, r.repo_id),
                danger: r.danger,
                warning: r.warning,
                short_commit: short(&r.commit),
                tree_url: links::tree_at(&r.forge, r.web_url.as_deref(), &r.commit),
            })
            .collect(),
        environments: rows(&data.environments, |_| None),
        reviews: data.reviews_total(),
        findings: finding_rows(&data.findings.findings),
        pages: pages(&data.findings, &self_href),
        data,
    };
    html(&page)
}

#[derive(Template)]
#[template(path = "rule.html")]
struct RulePage {
    chrome: Chrome,
    data: api::RuleAnswer,
    teams: Vec<Row>,
    repositories: Vec<Row>,
    findings: Vec<FindingRow>,
    pages: Pages,
}

pub(super) async fn rule(
    State(state): State<Arc<DashboardState>>,
    viewer: Viewer,
    Path(rule): Path<String>,
    Query(query): Query<ListQuery>,
) -> Response {
    let data = match api::rule_data(&state, &viewer.visible, &rule, &query).await {
        Ok(d) => d,
        Err(refusal) => return refusal_page(refusal, Some(viewer.chrome)),
    };
    let page = RulePage {
        chrome: viewer.chrome,
        teams: rows(&data.teams, |t| Some(links::team_page(t))),
        repositories: rows(&data.repositories, |_| None),
        findings: finding_rows(&data.findings.findings),
        pages: pages(&data.findings, &links::rule_page(&rule)),
        data,
    };
    html(&page)
}

pub struct SnapshotRow {
    pub day: String,
    pub short_commit: String,
    pub cause: String,
    pub added: i64,
    pub removed: i64,
    pub moved: i64,
    pub danger: i64,
    pub warning: i64,
    pub reviewed: bool,
}

#[derive(Template)]
#[template(path = "repository.html")]
struct RepositoryPage {
    chrome: Chrome,
    name: String,
    tree_url: Option<String>,
    data: api::RepositoryAnswer,
    teams: Vec<Row>,
    snapshots: Vec<SnapshotRow>,
    findings: Vec<FindingRow>,
    pages: Pages,
}

/// Snapshots shown on a repository's page, newest first.
const SNAPSHOT_ROWS: usize = 30;

pub(super) async fn repository(
    State(state): State<Arc<DashboardState>>,
    viewer: Viewer,
    Path((forge, repo_id)): Path<(String, i64)>,
    Query(query): Query<ListQuery>,
) -> Response {
    let data = match api::repository_data(&state, &viewer.visible, &forge, repo_id, &query).await {
        Ok(Some(d)) => d,
        Ok(None) => {
            return refusal_page(
                Refusal(
                    StatusCode::NOT_FOUND,
                    "No such repository, or none you may see.",
                ),
                Some(viewer.chrome),
            );
        }
        Err(refusal) => return refusal_page(refusal, Some(viewer.chrome)),
    };
    let first = data.findings.findings.first();
    let tree_url = first
        .and_then(|l| links::tree_at(&l.open.forge, l.open.web_url.as_deref(), &l.open.commit));
    let name = if data.repository.is_empty() {
        format!("{forge} repository {repo_id}")
    } else {
        data.repository.clone()
    };
    let snapshots = data
        .snapshots
        .iter()
        .flatten()
        .rev()
        .take(SNAPSHOT_ROWS)
        .map(|s| SnapshotRow {
            day: chart::day_of(s.taken_at_ms + 1),
            short_commit: short(&s.commit),
            cause: s.cause.clone(),
            added: s.added,
            removed: s.removed,
            moved: s.moved,
            danger: s.open_danger,
            warning: s.open_warning,
            reviewed: s.reviewed,
        })
        .collect();
    let page = RepositoryPage {
        chrome: viewer.chrome,
        teams: rows(&data.teams, |t| Some(links::team_page(t))),
        findings: finding_rows(&data.findings.findings),
        pages: pages(&data.findings, &links::repository_page(&forge, repo_id)),
        snapshots,
        tree_url,
        name,
        data,
    };
    html(&page)
}

#[derive(Template)]
#[template(path = "sign_in.html")]
struct SignInPage {
    chrome: Chrome,
    error: &'static str,
}

fn anonymous() -> Chrome {
    Chrome {
        user: String::new(),
        can_sign_out: false,
    }
}

pub(super) async fn sign_in_form(State(state): State<Arc<DashboardState>>) -> Response {
    if state.access.sign_in.is_none() {
        return refusal_page(
            Refusal(
                StatusCode::NOT_FOUND,
                "Sign-in is through the authenticating proxy.",
            ),
            None,
        );
    }
    html(&SignInPage {
        chrome: anonymous(),
        error: "",
    })
}

#[derive(Deserialize)]
pub(super) struct SignInForm {
    user: String,
    password: String,
}

pub(super) async fn sign_in(
    State(state): State<Arc<DashboardState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Form(form): Form<SignInForm>,
) -> Response {
    let Some(sign_in) = &state.access.sign_in else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let form_again = |status: StatusCode, error: &'static str| {
        (
            status,
            html(&SignInPage {
                chrome: anonymous(),
                error,
            }),
        )
            .into_response()
    };
    match sign_in
        .attempt(form.user.trim(), &form.password, peer.ip(), Instant::now())
        .await
    {
        Ok(token) => {
            tracing::info!(user = %form.user.trim(), "signed in to the dashboard");
            let cookie =
                format!("{SESSION_COOKIE}={token}; Path=/; HttpOnly; Secure; SameSite=Strict");
            let mut response = Redirect::to("/dashboard").into_response();
            if let Ok(value) = HeaderValue::from_str(&cookie) {
                response.headers_mut().insert(header::SET_COOKIE, value);
            }
            response
        }
        Err(SignInError::Wrong) => {
            tracing::warn!(peer = %peer.ip(), "a dashboard sign-in failed");
            form_again(StatusCode::UNAUTHORIZED, "Wrong name or password.")
        }
        Err(SignInError::Throttled(wait)) => {
            let mut response = form_again(
                StatusCode::TOO_MANY_REQUESTS,
                "Too many failed attempts: wait a moment and try again.",
            );
            if let Ok(value) = HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            response
        }
    }
}

pub(super) async fn sign_out(
    State(state): State<Arc<DashboardState>>,
    headers: HeaderMap,
) -> Response {
    if let (Some(sign_in), Some(token)) = (&state.access.sign_in, api::session_token(&headers)) {
        sign_in.sign_out(token);
    }
    let mut response = Redirect::to("/dashboard/sign-in").into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static(
            "kubeward_dashboard=; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age=0",
        ),
    );
    response
}

pub(super) async fn stylesheet() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("templates/dashboard.css"),
    )
        .into_response()
}

pub(super) async fn icon() -> Response {
    (
        [(header::CONTENT_TYPE, "image/svg+xml")],
        include_str!("templates/icon.svg"),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_links_keep_the_first_last_and_neighbours() {
        let page = Page {
            page: 6,
            page_size: 100,
            total: 1_250,
            findings: Vec::new(),
        };
        let p = pages(&page, "/dashboard/teams/%40org%2Fweb");
        let numbers: Vec<u32> = p.links.iter().map(|l| l.0).collect();
        assert_eq!(numbers, [1, 4, 5, 6, 7, 8, 13]);
        assert_eq!(
            p.links[0].1,
            "/dashboard/teams/%40org%2Fweb?page=1#findings"
        );
    }
}
