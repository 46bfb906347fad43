//! Markdown for comments and the summary. Values copied from manifests are untrusted: they are
//! kept from pinging people (`@`) or faking our hidden markers (`<!--`).

use std::collections::BTreeMap;
use std::fmt::Write;

use super::{
    AnchorKind, Conclusion, MAX_BODY_CHARS, NotReviewedReason, PlannedFinding, ReviewPlan,
    Suggestion,
};
use crate::audit::Severity;
use crate::config::Policy;
use crate::owners::Flavor;

/// The marker that ends every finding comment: `<!-- kubeward:v1 fp=a,b -->`.
pub const MARKER_PREFIX: &str = "<!-- kubeward:v1 fp=";
/// The marker that ends the summary comment.
pub const SUMMARY_MARKER: &str = "<!-- kubeward:summary v1 -->";

/// Fingerprints of a comment we wrote, read from its final line only (a manifest value quoted
/// earlier in the body cannot fake one).
pub fn parse_marker(body: &str) -> Option<Vec<String>> {
    let last = body.trim_end().lines().last()?.trim();
    let list = last
        .strip_prefix(MARKER_PREFIX)?
        .strip_suffix("-->")?
        .trim();
    let fps: Vec<String> = list.split(',').map(str::to_owned).collect();
    fps.iter()
        .all(|f| f.starts_with("kw") && f.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
        .then_some(fps)
}

pub fn marker(fingerprints: &[String]) -> String {
    format!("{MARKER_PREFIX}{} -->", fingerprints.join(","))
}

/// Untrusted text made inert: no mentions, no HTML comments or tags.
pub fn neutralize(text: &str) -> String {
    text.replace('<', "‹")
        .replace('>', "›")
        .replace('@', "@\u{200b}")
}

/// An untrusted value as a code span.
pub fn code(text: &str) -> String {
    let clean: String = neutralize(text)
        .chars()
        .map(|c| match c {
            '`' => '\'',
            '\n' | '\r' => ' ',
            c => c,
        })
        .collect();
    format!("`{clean}`")
}

pub fn truncate(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max_chars.saturating_sub(1)).collect();
    out.push('…');
    out
}

fn severity_label(s: Severity) -> &'static str {
    match s {
        Severity::Danger => "🔴 danger",
        Severity::Warning => "🟡 warning",
        Severity::Ignore => "ignore",
    }
}

fn subject(f: &PlannedFinding) -> String {
    let finding = &f.finding;
    let object = finding
        .object
        .as_ref()
        .map(|o| {
            let name = if o.namespace.is_empty() {
                o.name.clone()
            } else {
                format!("{}/{}", o.namespace, o.name)
            };
            format!("{} {}", o.kind, code(&name))
        })
        .unwrap_or_default();
    match finding.container.as_deref().filter(|c| !c.is_empty()) {
        Some(c) => format!("container {} of {object}", code(c)),
        None => object,
    }
}

fn owners_text(owners: &[String]) -> String {
    if owners.is_empty() {
        "no code owner".into()
    } else {
        owners
            .iter()
            .map(|o| code(o))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The body of one inline or file-level comment: each finding's what, where, why and fix, an
/// optional suggestion, owners, and the hidden marker.
pub(crate) fn comment_body(
    findings: &[&PlannedFinding],
    suggestion: Option<&Suggestion>,
    policy: &Policy,
    forge: Flavor,
) -> String {
    let mut body = String::new();
    for f in findings {
        let finding = &f.finding;
        let rule = policy.registry.get(&finding.rule);
        let pseudo = crate::audit::pseudo_rule(&finding.rule);
        let title = rule
            .map(|r| r.title.as_str())
            .or(pseudo.map(|p| p.title))
            .unwrap_or(finding.rule.as_str());
        let doc = rule
            .map(|r| r.doc_url())
            .or_else(|| pseudo.map(|p| p.doc_url()));
        let rule_ref = match &doc {
            Some(url) => format!("[`{}`]({url})", finding.rule),
            None => format!("`{}`", finding.rule),
        };
        let _ = writeln!(
            body,
            "**{}** · {} · {}",
            severity_label(finding.severity),
            title,
            rule_ref
        );
        let location = if finding.field_path.is_empty() {
            subject(f)
        } else {
            format!("{} at {}", subject(f), code(&finding.field_path))
        };
        let _ = writeln!(
            body,
            "{}: {}",
            location.trim_start_matches(": "),
            neutralize(&finding.message)
        );
        let (why, fix) = match (rule, pseudo) {
            (Some(rule), _) => (rule.why.trim(), rule.fix.trim()),
            (None, Some(pseudo)) => (pseudo.why, pseudo.fix),
            (None, None) => ("", ""),
        };
        if !why.is_empty() {
            let _ = writeln!(body, "\n**Why:** {why}");
        }
        if !fix.is_empty() {
            let _ = writeln!(body, "**Fix:** {fix}");
        }
        body.push('\n');
    }
    if let Some(suggestion) = suggestion {
        let fence = match forge {
            Flavor::GitHub => "```suggestion".to_owned(),
            // GitLab's range is relative to the commented (last) line.
            Flavor::GitLab => format!("```suggestion:-{}+0", suggestion.lines_above()),
        };
        let _ = writeln!(body, "{fence}\n{}\n```\n", suggestion.lines.join("\n"));
    }
    let mut owners: Vec<String> = Vec::new();
    for f in findings {
        for o in &f.owners {
            if !owners.contains(o) {
                owners.push(o.clone());
            }
        }
    }
    let _ = writeln!(body, "Owners: {}", owners_text(&owners));
    let body = truncate(&body, MAX_BODY_CHARS - 200);
    let fps: Vec<String> = findings
        .iter()
        .map(|f| f.finding.fingerprint.clone())
        .collect();
    format!("{body}\n{}\n", marker(&fps))
}

pub fn title(plan: &ReviewPlan) -> String {
    let new = &plan.counts.new;
    let unjudged = unjudged_count(plan);
    if unjudged > 0 {
        let files = if unjudged == 1 { "file" } else { "files" };
        let text = match new.total() {
            0 => format!("Incomplete: {unjudged} changed {files} not reviewed"),
            n => format!(
                "Incomplete: {unjudged} changed {files} not reviewed; {n} new ({} danger, {} warning)",
                new.danger, new.warning
            ),
        };
        return truncate(&text, 100);
    }
    // Files that are no manifest to judge (templates, patches, values) are not a finding,
    // but "No new problems" alone would claim they were looked at.
    let others = plan.not_reviewed.len();
    let text = if new.total() == 0 {
        let fixed = match plan.counts.fixed.total() {
            0 => String::new(),
            n => format!(", {n} fixed"),
        };
        match others {
            0 => format!("No new problems{fixed}"),
            1 => format!(
                "No new problems in the manifests{fixed}; 1 other changed file not reviewed"
            ),
            n => format!(
                "No new problems in the manifests{fixed}; {n} other changed files not reviewed"
            ),
        }
    } else {
        let noun = if new.total() == 1 {
            "problem"
        } else {
            "problems"
        };
        format!(
            "{} new {noun} ({} danger, {} warning)",
            new.total(),
            new.danger,
            new.warning
        )
    };
    truncate(&text, 100)
}

fn disposition(kind: AnchorKind) -> &'static str {
    match kind {
        AnchorKind::OwnLine
        | AnchorKind::Suggestion
        | AnchorKind::SameContainer
        | AnchorKind::SameObject
        | AnchorKind::Cause => "inline",
        AnchorKind::File => "file comment",
        AnchorKind::Summary => "summary only",
    }
}

/// Changed files whose absence from the review makes it incomplete.
fn unjudged_count(plan: &ReviewPlan) -> usize {
    plan.not_reviewed
        .iter()
        .filter(|n| n.reason.makes_incomplete())
        .count()
}

/// What a user can do about a file left unjudged for this reason.
fn how_to_proceed(reason: NotReviewedReason) -> &'static str {
    match reason {
        NotReviewedReason::OverFileBudget => {
            "split the change into smaller pull requests, or ask the operator to raise `maxChangedFiles`"
        }
        NotReviewedReason::OverReviewBudget => {
            "ask the operator to raise the review's budget (`review.maxReviewBytes`, `review.maxReviewNodes`) and its memory"
        }
        NotReviewedReason::NotRendered => {
            "install the tool it names, or take out what it refuses (remote bases are fetched over the network, plugins run programs)"
        }
        NotReviewedReason::OverTargetBudget => {
            "split the change, or raise `render.maxTargets` in `.kubeward.yaml` on the base branch"
        }
        NotReviewedReason::OverParseBudget => {
            "split the file, or raise the budget its parse error names in `.kubeward.yaml` on the base branch"
        }
        NotReviewedReason::TooLarge => {
            "split the file, or raise `limits.maxFileSize` in `.kubeward.yaml` on the base branch"
        }
        NotReviewedReason::NotUtf8 | NotReviewedReason::Binary => "commit the file as UTF-8 text",
        NotReviewedReason::Symlink => "commit the manifest itself instead of a link to it",
        NotReviewedReason::MissingBlob => "make the full history available and rescan",
        NotReviewedReason::HelmTemplate
        | NotReviewedReason::KustomizePatch
        | NotReviewedReason::NotKubernetes
        | NotReviewedReason::Ignored => "",
    }
}

fn fail_on_text(plan: &ReviewPlan) -> String {
    serde_json::to_value(plan.fail_on)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// The files the review did not judge: those that make it incomplete with how to proceed, the
/// others (templates, values files, ignored paths) folded.
fn not_reviewed_section(plan: &ReviewPlan, out: &mut String) {
    const SHOWN: usize = 50;
    let (unjudged, named): (Vec<_>, Vec<_>) = plan
        .not_reviewed
        .iter()
        .partition(|n| n.reason.makes_incomplete());
    if !unjudged.is_empty() {
        let _ = writeln!(out, "#### Not reviewed\n");
        for n in unjudged.iter().take(SHOWN) {
            let detail = n
                .detail
                .as_deref()
                .map(|d| format!(" ({})", neutralize(d)))
                .unwrap_or_default();
            let _ = writeln!(out, "- {}: {}{detail}", code(&n.path), n.reason.describe());
        }
        if unjudged.len() > SHOWN {
            let _ = writeln!(out, "- …and {} more", unjudged.len() - SHOWN);
        }
        let mut reasons: Vec<NotReviewedReason> = unjudged.iter().map(|n| n.reason).collect();
        reasons.sort();
        reasons.dedup();
        let _ = writeln!(out, "\nTo review them:");
        for reason in reasons {
            let _ = writeln!(out, "- {}: {}.", reason.describe(), how_to_proceed(reason));
        }
        out.push('\n');
    }
    if !named.is_empty() {
        let _ = writeln!(
            out,
            "<details><summary>Changed, not Kubernetes manifests ({})</summary>\n",
            named.len()
        );
        for n in named.iter().take(SHOWN) {
            let _ = writeln!(out, "- {}: {}", code(&n.path), n.reason.describe());
        }
        if named.len() > SHOWN {
            let _ = writeln!(out, "- …and {} more", named.len() - SHOWN);
        }
        let _ = writeln!(out, "\n</details>\n");
    }
}

/// The check summary: new findings grouped by owner, then file; counts; fixed ones.
pub fn summary(plan: &ReviewPlan, policy: &Policy) -> String {
    let mut out = String::new();
    let unjudged = unjudged_count(plan);
    let fails_on_findings = plan
        .new_findings
        .iter()
        .any(|f| plan.fail_on.fails(f.finding.severity));
    let verdict = match plan.conclusion {
        Conclusion::Failure if fails_on_findings => format!(
            "**Failing**: new findings at or above `{}`.",
            fail_on_text(plan)
        ),
        Conclusion::Failure => format!(
            "**Failing**: {unjudged} changed file(s) could not be reviewed, and an incomplete review fails (the policy's `incomplete: failure`, the default)."
        ),
        Conclusion::Neutral => format!(
            "**Not judged**: {unjudged} changed file(s) could not be reviewed; the policy's `incomplete: neutral` makes this check neutral."
        ),
        Conclusion::Success => "**Passing**: nothing new reaches the fail-on level.".to_owned(),
    };
    let _ = writeln!(out, "### kubeward: {}\n\n{verdict}\n", plan.title);
    let c = &plan.counts;
    let _ = writeln!(out, "| | danger | warning |\n|---|---:|---:|");
    let _ = writeln!(out, "| New | {} | {} |", c.new.danger, c.new.warning);
    let _ = writeln!(out, "| Fixed | {} | {} |", c.fixed.danger, c.fixed.warning);
    let _ = writeln!(
        out,
        "| Already there, in changed objects | {} | {} |\n",
        c.pre_existing.danger, c.pre_existing.warning
    );
    not_reviewed_section(plan, &mut out);
    let mut groups: BTreeMap<String, BTreeMap<&str, Vec<&PlannedFinding>>> = BTreeMap::new();
    for f in &plan.new_findings {
        let owner = if f.owners.is_empty() {
            "\u{10ffff}".to_owned() // sorts last
        } else {
            owners_text(&f.owners)
        };
        groups
            .entry(owner)
            .or_default()
            .entry(f.finding.path.as_str())
            .or_default()
            .push(f);
    }
    let mut listed = 0;
    let total = plan.new_findings.len();
    'groups: for (owner, files) in &groups {
        let heading = if owner == "\u{10ffff}" {
            "No code owner".to_owned()
        } else {
            format!("Owned by {owner}")
        };
        let _ = writeln!(out, "#### {heading}\n");
        for (path, findings) in files {
            let _ = writeln!(out, "{}", code(path));
            for f in findings {
                if out.len() > MAX_BODY_CHARS - 2_000 {
                    let _ = writeln!(
                        out,
                        "\n…and {} more; {}",
                        total - listed,
                        match plan.forge {
                            Flavor::GitHub => "the check run's annotations list them all.",
                            Flavor::GitLab => "`kubeward review --format json` lists them all.",
                        }
                    );
                    break 'groups;
                }
                let where_ = f
                    .anchor
                    .as_ref()
                    .map_or("summary only", |a| disposition(a.kind));
                let rule = policy
                    .registry
                    .get(&f.finding.rule)
                    .map(|r| r.title.as_str())
                    .or_else(|| crate::audit::pseudo_rule(&f.finding.rule).map(|p| p.title))
                    .unwrap_or(f.finding.rule.as_str());
                // A finding about the file itself (a parse error) has no object: its message
                // says what is wrong.
                let what = match f.finding.object {
                    Some(_) => subject(f),
                    None => neutralize(&f.finding.message),
                };
                let _ = writeln!(
                    out,
                    "- L{} **{}** `{}` {}: {what} _({where_})_",
                    f.finding.line,
                    f.finding.severity.as_str(),
                    f.finding.rule,
                    rule,
                );
                listed += 1;
            }
            out.push('\n');
        }
    }
    if !plan.fixed_findings.is_empty() {
        let _ = writeln!(
            out,
            "<details><summary>Fixed by this change ({})</summary>\n",
            plan.fixed_findings.len()
        );
        for f in plan.fixed_findings.iter().take(200) {
            let _ = writeln!(
                out,
                "- {} `{}` {}",
                code(&f.finding.path),
                f.finding.rule,
                subject(f)
            );
        }
        let _ = writeln!(out, "\n</details>\n");
    }
    let overflow = plan.annotations.len();
    if overflow > 0 {
        let _ = writeln!(
            out,
            "{overflow} findings were over the limit of {} inline comments and are {} instead.\n",
            policy.review.max_inline_comments,
            match plan.forge {
                Flavor::GitHub => "shown as check-run annotations",
                Flavor::GitLab => "listed in this summary only",
            }
        );
    }
    // Files not reviewed have their own section above.
    let listed: std::collections::HashSet<String> =
        plan.not_reviewed.iter().map(|n| n.note()).collect();
    for note in plan.notes.iter().filter(|n| !listed.contains(*n)) {
        let _ = writeln!(out, "> {}", neutralize(note));
    }
    let mut out = truncate(&out, MAX_BODY_CHARS - 100);
    let _ = write!(out, "\n{SUMMARY_MARKER}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_round_trip_and_cannot_be_faked_mid_body() {
        let fps = vec!["kw1-abc".to_owned(), "kw1-def".to_owned()];
        let body = format!("text\n{}\n", marker(&fps));
        assert_eq!(parse_marker(&body), Some(fps));
        let faked = format!("{}\nreal text after it\n", marker(&["kw1-x".to_owned()]));
        assert_eq!(parse_marker(&faked), None);
        assert_eq!(parse_marker("<!-- kubeward:v1 fp=evil<script> -->"), None);
    }

    #[test]
    fn untrusted_values_cannot_ping_or_inject_markers() {
        let value = code("@admins <!-- kubeward:v1 fp=kw1-x --> `x`");
        assert!(!value.contains("@admins"));
        assert!(!value.contains("<!--"));
        assert_eq!(value.matches('`').count(), 2);
    }
}
