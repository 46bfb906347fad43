//! What a change's page must be told so that it shows the plan: a pure step from the plan and
//! what we have already posted there to actions, shared by every forge adapter. Adapters only
//! read what is posted and carry out the actions; the rules live here, once.
//!
//! - A comment is posted when not all of its findings are on the page already (each of our
//!   comments carries its fingerprints in a hidden marker), so a re-run posts nothing twice.
//! - A posted comment whose findings are all gone is marked fixed, and one we marked fixed
//!   whose finding came back is reopened: on every forge.
//! - A thread a person wrote in, or resolved, is theirs too: never marked or reopened by us.
//! - Comments the forge refused to place are listed in the summary.

use std::collections::HashSet;

use super::render::SUMMARY_MARKER;
use super::{FileComment, InlineComment, ReviewPlan};

/// One of our comments (a thread we started) on the change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Posted {
    pub fingerprints: Vec<String>,
    /// We marked it fixed (GitHub: edited to say so; GitLab: resolved by us).
    pub marked_fixed: bool,
    /// A person resolved it.
    pub resolved_by_person: bool,
    /// A person wrote in it.
    pub replied: bool,
}

/// What to do, in order: post, then mark fixed and reopen (indices into what was posted).
#[derive(Debug, Default, PartialEq)]
pub struct Actions<'p> {
    pub post_inline: Vec<&'p InlineComment>,
    pub post_file: Vec<&'p FileComment>,
    /// Comments of the plan already on the page.
    pub already_posted: usize,
    pub mark_fixed: Vec<usize>,
    pub reopen: Vec<usize>,
}

pub fn reconcile<'p>(plan: &'p ReviewPlan, posted: &[Posted]) -> Actions<'p> {
    let open: HashSet<&str> = plan
        .new_findings
        .iter()
        .chain(&plan.pre_existing_findings)
        .map(|f| f.finding.fingerprint.as_str())
        .collect();
    reconcile_comments(&plan.inline_comments, &plan.file_comments, &open, posted)
}

/// [`reconcile`] of the plan's comments, given the fingerprints of the findings still open
/// (new and pre-existing).
pub fn reconcile_comments<'p>(
    inline: &'p [InlineComment],
    files: &'p [FileComment],
    open: &HashSet<&str>,
    posted: &[Posted],
) -> Actions<'p> {
    let on_page: HashSet<&str> = posted
        .iter()
        .flat_map(|p| p.fingerprints.iter().map(String::as_str))
        .collect();
    let is_posted = |fps: &[String]| fps.iter().all(|f| on_page.contains(f.as_str()));
    let mut out = Actions::default();
    for c in inline {
        if is_posted(&c.fingerprints) {
            out.already_posted += 1;
        } else {
            out.post_inline.push(c);
        }
    }
    for c in files {
        if is_posted(&c.fingerprints) {
            out.already_posted += 1;
        } else {
            out.post_file.push(c);
        }
    }
    for (i, p) in posted.iter().enumerate() {
        if p.replied || p.resolved_by_person {
            continue;
        }
        let gone = p.fingerprints.iter().all(|f| !open.contains(f.as_str()));
        match (gone, p.marked_fixed) {
            (true, false) => out.mark_fixed.push(i),
            (false, true) => out.reopen.push(i),
            _ => {}
        }
    }
    out
}

/// The summary with the comments the forge refused to place listed in it (`forge` names it).
pub fn summary_with_refused(summary: &str, forge: &str, refused: &[&InlineComment]) -> String {
    if refused.is_empty() {
        return summary.to_owned();
    }
    let mut extra = format!("\n\n{forge} refused to place some inline comments; here they are:\n");
    for c in refused {
        extra.push_str(&format!(
            "- {} line {}\n",
            super::render::code(&c.path),
            c.line
        ));
    }
    summary.replace(
        SUMMARY_MARKER,
        &format!("{}\n{SUMMARY_MARKER}", extra.trim_end()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inline(fps: &[&str]) -> InlineComment {
        InlineComment {
            path: "a.yaml".into(),
            old_path: None,
            line: 3,
            start_line: None,
            side: "RIGHT".into(),
            old_line: None,
            hunk: super::super::HunkRef {
                old_start: 1,
                old_lines: 1,
                new_start: 1,
                new_lines: 3,
            },
            body: "b".into(),
            fingerprints: fps.iter().map(|s| (*s).to_owned()).collect(),
            owners: Vec::new(),
            suggestion: None,
            severity: crate::audit::Severity::Danger,
        }
    }

    fn posted(fps: &[&str], marked_fixed: bool) -> Posted {
        Posted {
            fingerprints: fps.iter().map(|s| (*s).to_owned()).collect(),
            marked_fixed,
            ..Posted::default()
        }
    }

    #[test]
    fn what_is_on_the_page_is_not_posted_again() {
        let comments = [inline(&["a"]), inline(&["b"]), inline(&["a", "c"])];
        let open = HashSet::from(["a", "b"]);
        let actions = reconcile_comments(&comments, &[], &open, &[posted(&["a"], false)]);
        assert_eq!(actions.already_posted, 1);
        let posting: Vec<&[String]> = actions
            .post_inline
            .iter()
            .map(|c| c.fingerprints.as_slice())
            .collect();
        assert_eq!(
            posting,
            [&["b".to_owned()][..], &["a".into(), "c".into()][..]]
        );
    }

    #[test]
    fn gone_findings_are_marked_fixed_and_returning_ones_reopened_unless_a_person_took_over() {
        let open = HashSet::from(["back"]);
        let people = Posted {
            replied: true,
            ..posted(&["gone-too"], false)
        };
        let resolved = Posted {
            resolved_by_person: true,
            ..posted(&["back"], true)
        };
        let actions = reconcile_comments(
            &[],
            &[],
            &open,
            &[
                posted(&["gone"], false),
                posted(&["back"], true),
                posted(&["gone"], true),
                people,
                resolved,
            ],
        );
        assert_eq!(actions.mark_fixed, [0]);
        assert_eq!(actions.reopen, [1]);
    }

    #[test]
    fn refused_comments_are_listed_before_the_summary_marker() {
        let refused = inline(&["x"]);
        let summary = format!("Summary\n{SUMMARY_MARKER}");
        let out = summary_with_refused(&summary, "GitHub", &[&refused]);
        assert!(out.contains("GitHub refused to place some inline comments"));
        assert!(out.contains("`a.yaml` line 3"), "{out}");
        assert!(out.ends_with(SUMMARY_MARKER));
        assert_eq!(summary_with_refused(&summary, "GitHub", &[]), summary);
    }
}
