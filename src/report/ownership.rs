//! The ownership report of one repository at one commit (`kubeward report`): open findings by
//! owning team, rule and environment, as JSON, Markdown or one self-contained HTML file.

use std::fmt::Write;

use askama::Template;
use serde::Serialize;

use crate::ownership::{Overview, OwnedFinding, UNOWNED};

/// The version of the report's JSON shape (`docs/dashboard.md`).
pub const OWNERSHIP_SCHEMA_VERSION: &str = "1";

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OwnershipReport {
    pub schema_version: &'static str,
    /// The repository's name, as the shell knows it (its folder, or `owner/name`).
    pub repository: String,
    pub commit: String,
    /// RFC 3339, UTC.
    pub generated_at: String,
    /// The CODEOWNERS file read, if there was one.
    pub codeowners: Option<String>,
    pub overview: Overview,
    /// Every open finding with its owners, by path and line.
    pub findings: Vec<OwnedFinding>,
    /// Render targets that could not be rendered: their files are not in the report.
    pub not_rendered: Vec<NotRendered>,
}

#[derive(Debug, Clone, Serialize)]
pub struct NotRendered {
    pub target: String,
    pub error: String,
}

impl OwnershipReport {
    /// The report of one audited revision. `generated_at` comes from the shell's clock.
    pub fn of(
        revision: &crate::pipeline::RevisionAudit,
        repository: &str,
        commit: &str,
        generated_at: &str,
    ) -> OwnershipReport {
        let findings = crate::ownership::own(
            &revision.result.findings,
            &revision.owners,
            &revision.policy.environments,
        );
        OwnershipReport {
            schema_version: OWNERSHIP_SCHEMA_VERSION,
            repository: repository.to_owned(),
            commit: commit.to_owned(),
            generated_at: generated_at.to_owned(),
            codeowners: (!revision.owners.path.is_empty()).then(|| revision.owners.path.clone()),
            overview: crate::ownership::overview(&findings),
            findings,
            not_rendered: revision
                .not_rendered
                .iter()
                .map(|(target, error)| NotRendered {
                    target: target.clone(),
                    error: error.clone(),
                })
                .collect(),
        }
    }
}

pub fn ownership_json(report: &OwnershipReport) -> String {
    serde_json::to_string_pretty(report).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

/// A Markdown table row of escaped cells.
fn row(out: &mut String, cells: &[&str]) {
    out.push('|');
    for c in cells {
        let _ = write!(out, " {} |", cell(c));
    }
    out.push('\n');
}

/// A Markdown table cell: a `|` or a line break in a path or message must not end the cell.
fn cell(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace(['\r', '\n'], " ")
}

pub fn ownership_markdown(report: &OwnershipReport) -> String {
    let o = &report.overview;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Ownership report: {}\n\nAt commit `{}`, {}. {} open findings ({} danger, {} warning); {} unowned.\n",
        cell(&report.repository),
        report.commit,
        report.generated_at,
        o.open.total(),
        o.open.danger,
        o.open.warning,
        o.unowned.total(),
    );
    match &report.codeowners {
        Some(path) => {
            let _ = writeln!(out, "Owners from `{}`.\n", cell(path));
        }
        None => out.push_str("No CODEOWNERS file: every finding is unowned.\n\n"),
    }
    out.push_str("## Teams\n\n| Team | Danger | Warning | Environments | Top rules |\n|---|---:|---:|---|---|\n");
    for t in &o.teams {
        row(
            &mut out,
            &[
                &t.team,
                &t.open.danger.to_string(),
                &t.open.warning.to_string(),
                &t.environments.join(", "),
                &t.top_rules.join(", "),
            ],
        );
    }
    out.push_str("\n## Rules\n\n| Rule | Danger | Warning | Teams |\n|---|---:|---:|---|\n");
    for r in &o.rules {
        row(
            &mut out,
            &[
                &r.rule,
                &r.open.danger.to_string(),
                &r.open.warning.to_string(),
                &r.teams.join(", "),
            ],
        );
    }
    if !o.environments.is_empty() {
        out.push_str("\n## Environments\n\n| Environment | Danger | Warning |\n|---|---:|---:|\n");
        for e in &o.environments {
            row(
                &mut out,
                &[
                    &e.environment,
                    &e.open.danger.to_string(),
                    &e.open.warning.to_string(),
                ],
            );
        }
    }
    for t in &o.teams {
        let _ = writeln!(
            out,
            "\n## {}\n\n| File | Severity | Rule | Object | Message |\n|---|---|---|---|---|",
            cell(&t.team)
        );
        for f in report
            .findings
            .iter()
            .filter(|f| f.teams().contains(&t.team.as_str()))
        {
            let _ = writeln!(
                out,
                "| {}:{} | {} | {} | {} | {} |",
                cell(&f.path),
                f.line,
                f.severity.as_str(),
                cell(&f.rule),
                cell(&f.object),
                cell(&f.message)
            );
        }
    }
    if !report.not_rendered.is_empty() {
        out.push_str("\n## Not rendered\n\n");
        for n in &report.not_rendered {
            let _ = writeln!(out, "- `{}`: {}", cell(&n.target), cell(&n.error));
        }
    }
    out
}

/// The findings of one team, for its section of the page.
struct TeamSection<'a> {
    team: &'a str,
    anchor: String,
    findings: Vec<&'a OwnedFinding>,
}

#[derive(Template)]
#[template(path = "ownership.html")]
struct OwnershipPage<'a> {
    report: &'a OwnershipReport,
    unowned_team: &'static str,
    chart: super::chart::BarChart,
    sections: Vec<TeamSection<'a>>,
}

/// Teams shown in the chart; the tables list all of them.
const CHART_TEAMS: usize = 15;

/// An HTML `id` for a team (`@org/web` → `team-org-web`), unique within the page.
fn anchor(team: &str, taken: &mut std::collections::HashSet<String>) -> String {
    let slug: String = team
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let base = format!("team-{}", slug.trim_matches('-'));
    let mut id = base.clone();
    let mut n = 1;
    while !taken.insert(id.clone()) {
        n += 1;
        id = format!("{base}-{n}");
    }
    id
}

/// The whole report as one HTML file: styles inside, charts as inline SVG, no script.
pub fn ownership_html(report: &OwnershipReport) -> Result<String, askama::Error> {
    let teams = &report.overview.teams;
    let chart = super::chart::bars(
        teams
            .iter()
            .map(|t| (t.team.clone(), t.open.danger, t.open.warning, None))
            .collect(),
        CHART_TEAMS,
    );
    let mut taken = std::collections::HashSet::new();
    let sections = teams
        .iter()
        .map(|t| TeamSection {
            team: &t.team,
            anchor: anchor(&t.team, &mut taken),
            findings: report
                .findings
                .iter()
                .filter(|f| f.teams().contains(&t.team.as_str()))
                .collect(),
        })
        .collect();
    OwnershipPage {
        report,
        unowned_team: UNOWNED,
        chart,
        sections,
    }
    .render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_cells_cannot_break_the_table() {
        assert_eq!(cell("a|b\nc"), "a\\|b c");
        let mut taken = std::collections::HashSet::new();
        assert_eq!(anchor("@org/web", &mut taken), "team-org-web");
        assert_eq!(anchor("@org-web", &mut taken), "team-org-web-2");
    }
}
