//! What `kubeward ci` writes to a GitHub Actions log when it cannot (or may not) write to the
//! pull request: workflow-command annotations and a job summary.
//!
//! Every string a pull request controls (paths, object names, messages quoting its values) is
//! either escaped as a workflow-command field or written between `::stop-commands::<token>`
//! and `::<token>::`, with a token the pull request cannot guess, so no line it wrote can
//! become a command (`::add-mask::`, `::set-output::`, a forged `::error::`).

use std::fmt::Write as _;

use crate::review::{PlannedFinding, ReviewPlan};

/// Actions shows at most this many error and this many warning annotations per step.
pub const MAX_ANNOTATIONS_PER_LEVEL: usize = 10;
/// `$GITHUB_STEP_SUMMARY` takes at most 1 MiB per step.
pub const MAX_STEP_SUMMARY_BYTES: usize = 1 << 20;

/// A workflow command's data: `%`, CR and LF escaped.
pub fn escape_data(text: &str) -> String {
    text.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// A workflow command's property value: the data escapes, and `:` and `,`, which end a value.
pub fn escape_property(text: &str) -> String {
    escape_data(text).replace(':', "%3A").replace(',', "%2C")
}

/// An unguessable token for `::stop-commands::` (the thread generator, seeded by the OS).
pub fn stop_token() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

/// Text a pull request may control, made inert: commands stop for its duration.
pub fn inert(text: &str, token: &str) -> String {
    format!("::stop-commands::{token}\n{text}\n::{token}::\n")
}

/// Where a new finding is said: the line the review comments on, else the finding's own.
fn place(finding: &PlannedFinding) -> (&str, u32) {
    match &finding.anchor {
        Some(anchor) => (
            anchor.new_path.as_str(),
            anchor.line.unwrap_or(finding.finding.line).max(1),
        ),
        None => (finding.finding.path.as_str(), finding.finding.line.max(1)),
    }
}

/// The annotations for the plan's new findings: errors for those that fail the policy,
/// warnings for the rest, at most [`MAX_ANNOTATIONS_PER_LEVEL`] of each; and how many were
/// left out.
pub fn annotations(plan: &ReviewPlan) -> (String, usize) {
    let mut out = String::new();
    let (mut errors, mut warnings, mut left_out) = (0, 0, 0);
    for finding in &plan.new_findings {
        let fails = plan.fail_on.fails(finding.finding.severity);
        let (command, count) = match fails {
            true => ("error", &mut errors),
            false => ("warning", &mut warnings),
        };
        if *count == MAX_ANNOTATIONS_PER_LEVEL {
            left_out += 1;
            continue;
        }
        *count += 1;
        let (path, line) = place(finding);
        let title = format!(
            "{} ({})",
            finding.finding.rule,
            finding.finding.severity.as_str()
        );
        let _ = writeln!(
            out,
            "::{command} file={},line={line},title={}::{}",
            escape_property(path),
            escape_property(&title),
            escape_data(&finding.finding.message)
        );
    }
    (out, left_out)
}

/// The job summary: the plan's summary, and what the annotations left out; within the limit.
pub fn step_summary(plan: &ReviewPlan, left_out: usize, why_here: &str) -> String {
    let mut text = format!("{why_here}\n\n{}", plan.summary);
    if left_out > 0 {
        let _ = write!(
            text,
            "\n\n{left_out} more new finding(s) are not shown as annotations (Actions shows at most {MAX_ANNOTATIONS_PER_LEVEL} errors and {MAX_ANNOTATIONS_PER_LEVEL} warnings per step); all are listed above and in the SARIF file."
        );
    }
    truncate_bytes(text, MAX_STEP_SUMMARY_BYTES)
}

fn truncate_bytes(mut text: String, max: usize) -> String {
    const CUT: &str = "\n\n… (cut at the job summary's 1 MiB limit)\n";
    if text.len() <= max {
        return text;
    }
    let mut end = max - CUT.len();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push_str(CUT);
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_fields_cannot_end_early_or_start_a_line() {
        assert_eq!(escape_property("a,b:c%d\ne\rf"), "a%2Cb%3Ac%25d%0Ae%0Df");
        assert_eq!(
            escape_data("x::error::y\n::add-mask::z"),
            "x::error::y%0A::add-mask::z"
        );
        assert!(!escape_data("a\nb").contains('\n'));
    }

    #[test]
    fn inert_text_is_fenced_by_a_fresh_token() {
        let (a, b) = (stop_token(), stop_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 32);
        let fenced = inert("::add-mask::x", &a);
        assert!(fenced.starts_with(&format!("::stop-commands::{a}\n")));
        assert!(fenced.ends_with(&format!("\n::{a}::\n")));
    }

    #[test]
    fn summaries_stay_within_the_limit_on_a_character_boundary() {
        let long = "é".repeat(MAX_STEP_SUMMARY_BYTES);
        let cut = truncate_bytes(long, MAX_STEP_SUMMARY_BYTES);
        assert!(cut.len() <= MAX_STEP_SUMMARY_BYTES);
        assert!(cut.ends_with("limit)\n"));
    }
}
