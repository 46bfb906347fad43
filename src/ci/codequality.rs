//! GitLab's Code Quality report (`artifacts:reports:codequality`): a JSON array of issues that
//! GitLab shows in the merge request, the subset of the Code Climate format GitLab documents
//! (description, check_name, fingerprint, severity, location.path, location.lines.begin).

use serde::Serialize;

use crate::audit::Severity;
use crate::review::ReviewPlan;

#[derive(Debug, Serialize)]
pub struct Issue<'a> {
    pub description: String,
    pub check_name: &'a str,
    /// Unique per issue: GitLab compares reports of two pipelines by it. The review's own
    /// fingerprint (stable across line moves) is exactly that.
    pub fingerprint: &'a str,
    pub severity: &'static str,
    pub location: Location<'a>,
}

#[derive(Debug, Serialize)]
pub struct Location<'a> {
    pub path: &'a str,
    pub lines: Lines,
}

#[derive(Debug, Serialize)]
pub struct Lines {
    pub begin: u32,
}

/// The report of a plan's new findings: what fails the policy is `critical`, the rest by
/// severity.
pub fn report(plan: &ReviewPlan) -> serde_json::Result<String> {
    let issues: Vec<Issue<'_>> = plan
        .new_findings
        .iter()
        .map(|f| {
            let finding = &f.finding;
            let severity = match (plan.fail_on.fails(finding.severity), finding.severity) {
                (true, _) => "critical",
                (false, Severity::Danger) => "major",
                (false, Severity::Warning) => "minor",
                (false, _) => "info",
            };
            let (path, line) = match &f.anchor {
                Some(anchor) => (
                    anchor.new_path.as_str(),
                    anchor.line.unwrap_or(finding.line),
                ),
                None => (finding.path.as_str(), finding.line),
            };
            Issue {
                description: format!("{}: {}", finding.rule, finding.message),
                check_name: &finding.rule,
                fingerprint: &finding.fingerprint,
                severity,
                location: Location {
                    path,
                    lines: Lines { begin: line.max(1) },
                },
            }
        })
        .collect();
    serde_json::to_string_pretty(&issues)
}
