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

/// Untrusted values (names, paths) in one line are cut to this many characters, so that no
/// single value crowds out the rest of a comment or the summary.
const VALUE_CHARS: usize = 200;
/// Sentences in one line (messages, notes) are cut to this many characters.
const SENTENCE_CHARS: usize = 400;
/// A comment that carries several findings aims at this many bytes: one line per finding
/// whatever it costs, the explanations folded in as far as they fit.
const COMPACT_BYTES: usize = 4_000;

/// An untrusted value as a code span of at most [`VALUE_CHARS`] characters, cut in the middle:
/// paths and names that share a long beginning differ at their end.
fn code_short(text: &str) -> String {
    let chars = text.chars().count();
    if chars <= VALUE_CHARS {
        return code(text);
    }
    let head = VALUE_CHARS / 3;
    let tail = VALUE_CHARS - head - 1;
    let kept: String = text
        .chars()
        .take(head)
        .chain(std::iter::once('…'))
        .chain(text.chars().skip(chars - tail))
        .collect();
    code(&kept)
}

/// Untrusted text for one line of Markdown: inert, on one line, at most `max_chars`. Code spans
/// it holds stay whole; an odd backtick (from a value, or from the cut) turns all of them into
/// quotes, so a span can never swallow the rest of the line.
fn inline(text: &str, max_chars: usize) -> String {
    let one_line: String = truncate(text, max_chars)
        .chars()
        .map(|c| if c == '\n' || c == '\r' { ' ' } else { c })
        .collect();
    let clean = neutralize(&one_line);
    if clean.matches('`').count() % 2 == 1 {
        clean.replace('`', "'")
    } else {
        clean
    }
}

/// Lines added to a text while they fit in a number of bytes: what the forge counts as
/// characters is never more than this.
struct Budget {
    out: String,
    room: usize,
}

impl Budget {
    fn new(room: usize) -> Budget {
        Budget {
            out: String::new(),
            room,
        }
    }

    /// Adds `text` if it fits in the room left less `keep`; says whether it did.
    fn push(&mut self, text: &str, keep: usize) -> bool {
        if text.len() + keep > self.room {
            return false;
        }
        self.out.push_str(text);
        self.room -= text.len();
        true
    }
}

fn severity_label(s: Severity) -> &'static str {
    match s {
        Severity::Danger => "🔴 danger",
        Severity::Warning => "🟡 warning",
        Severity::Ignore => "ignore",
    }
}

fn severity_mark(s: Severity) -> &'static str {
    match s {
        Severity::Danger => "🔴",
        Severity::Warning => "🟡",
        Severity::Ignore => "⚪",
    }
}

/// What the comments say of a rule: from its rule file, or the engine's own pseudo-rules.
struct RuleText<'a> {
    title: &'a str,
    doc: Option<String>,
    why: &'a str,
    fix: &'a str,
}

fn rule_text<'a>(policy: &'a Policy, id: &'a str) -> RuleText<'a> {
    if let Some(rule) = policy.registry.get(id) {
        return RuleText {
            title: rule.title.as_str(),
            doc: Some(rule.doc_url()),
            why: rule.why.trim(),
            fix: rule.fix.trim(),
        };
    }
    match crate::audit::pseudo_rule(id) {
        Some(p) => RuleText {
            title: p.title,
            doc: Some(p.doc_url()),
            why: p.why,
            fix: p.fix,
        },
        None => RuleText {
            title: id,
            doc: None,
            why: "",
            fix: "",
        },
    }
}

fn rule_ref(id: &str, doc: Option<&str>) -> String {
    match doc {
        Some(url) => format!("[`{id}`]({url})"),
        None => format!("`{id}`"),
    }
}

/// The first sentence of a rule's text, or two when the first is too short to say much (code
/// spans whole), for the folded explanations.
fn first_sentence(text: &str) -> &str {
    const ENOUGH: usize = 60;
    let mut ticks = 0;
    for (i, c) in text.char_indices() {
        match c {
            '`' => ticks += 1,
            '.' if i >= ENOUGH && ticks % 2 == 0 && text[i + 1..].starts_with([' ', '\n']) => {
                return &text[..=i];
            }
            _ => {}
        }
    }
    text
}

fn object_name(o: &crate::audit::ObjectRef) -> String {
    let name = if o.namespace.is_empty() {
        o.name.clone()
    } else {
        format!("{}/{}", o.namespace, o.name)
    };
    format!("{} {}", o.kind, code_short(&name))
}

fn subject(f: &PlannedFinding) -> String {
    let finding = &f.finding;
    let object = finding
        .object
        .as_deref()
        .map(object_name)
        .unwrap_or_default();
    match finding.container.as_deref().filter(|c| !c.is_empty()) {
        Some(c) => format!("container {} of {object}", code_short(c)),
        None => object,
    }
}

/// A container finding's field path from its container on (`resources.limits.cpu`), or the
/// whole path when the container's segment is not found in it.
fn field_in_container<'p>(field_path: &'p str, container: &str) -> &'p str {
    let segment = format!("ontainers[name={container}]");
    match field_path.find(&segment) {
        Some(i) => field_path[i + segment.len()..].trim_start_matches('.'),
        None => field_path,
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

/// Each finding's what, where, why and fix in full: the form of a comment with one finding.
fn full_findings(findings: &[&PlannedFinding], policy: &Policy) -> String {
    let mut body = String::new();
    for f in findings {
        let finding = &f.finding;
        let rule = rule_text(policy, &finding.rule);
        let _ = writeln!(
            body,
            "**{}** · {} · {}",
            severity_label(finding.severity),
            rule.title,
            rule_ref(&finding.rule, rule.doc.as_deref())
        );
        let location = if finding.field_path.is_empty() {
            subject(f)
        } else {
            format!("{} at {}", subject(f), code_short(&finding.field_path))
        };
        let _ = writeln!(
            body,
            "{}: {}",
            location.trim_start_matches(": "),
            inline(&finding.message, SENTENCE_CHARS)
        );
        if !rule.why.is_empty() {
            let _ = writeln!(body, "\n**Why:** {}", rule.why);
        }
        if !rule.fix.is_empty() {
            let _ = writeln!(body, "**Fix:** {}", rule.fix);
        }
        body.push('\n');
    }
    body
}

/// What all findings of a comment share, said once above their lines.
struct Shared<'a> {
    object: Option<&'a crate::audit::ObjectRef>,
    container: Option<&'a str>,
}

impl<'a> Shared<'a> {
    fn of(findings: &[&'a PlannedFinding]) -> Shared<'a> {
        let first = findings.first().and_then(|f| f.finding.object.as_deref());
        let object = first.filter(|o| {
            findings
                .iter()
                .all(|f| f.finding.object.as_deref() == Some(*o))
        });
        let mut containers = findings
            .iter()
            .filter_map(|f| f.finding.container.as_deref().filter(|c| !c.is_empty()));
        let container = object
            .and(containers.next())
            .filter(|c| containers.all(|o| o == *c));
        Shared { object, container }
    }
}

/// How much of a finding's place its line says.
#[derive(Clone, Copy, PartialEq)]
enum Place {
    /// The field too.
    Field,
    /// The field only where it names a list item or a quoted key (`env[name=TOKEN]`): other
    /// fields follow from the rule, which the title names. For comments over their target.
    Keyed,
}

/// One finding's line: severity, its rule linked to its page, the rule's title, and where
/// (what the comment's findings do not all share).
fn finding_line(
    f: &PlannedFinding,
    shared: &Shared<'_>,
    rule: &RuleText<'_>,
    place: Place,
) -> String {
    let finding = &f.finding;
    let mut parts: Vec<String> = Vec::new();
    if f.anchor
        .as_ref()
        .is_some_and(|a| a.kind == AnchorKind::File)
    {
        parts.push(format!("line {}", finding.line));
    }
    if shared.object.is_none()
        && let Some(o) = &finding.object
    {
        parts.push(object_name(o));
    }
    let field = match finding.container.as_deref().filter(|c| !c.is_empty()) {
        Some(c) => {
            if shared.container != Some(c) {
                parts.push(format!("container {}", code_short(c)));
            }
            field_in_container(&finding.field_path, c)
        }
        None => finding.field_path.as_str(),
    };
    if finding.object.is_none() {
        // A finding about the file itself (a parse error): its message says what is wrong.
        parts.push(inline(&finding.message, SENTENCE_CHARS));
    } else if !field.is_empty() && (place == Place::Field || field.contains('[')) {
        parts.push(code_short(field));
    }
    let where_ = if parts.is_empty() {
        String::new()
    } else {
        format!(" · {}", parts.join(", "))
    };
    format!(
        "- {} {} {}{where_}\n",
        severity_mark(finding.severity),
        rule_ref(&finding.rule, rule.doc.as_deref()),
        rule.title,
    )
}

/// Several findings, one line each, what they share said once above them, and each distinct
/// rule's why and fix folded below while the comment stays within `target` bytes (each rule's
/// page, linked from its lines, says it all). Never more than `room` bytes.
fn compact_findings(
    findings: &[&PlannedFinding],
    policy: &Policy,
    room: usize,
    target: usize,
) -> String {
    let shared = Shared::of(findings);
    let mut danger = 0;
    let mut warning = 0;
    for f in findings {
        match f.finding.severity {
            Severity::Danger => danger += 1,
            Severity::Warning => warning += 1,
            Severity::Ignore => {}
        }
    }
    let mut counts = Vec::new();
    if danger > 0 {
        counts.push(format!("{danger} danger"));
    }
    if warning > 0 {
        counts.push(format!("{warning} warning"));
    }
    let mut head = format!("**{} problems**", findings.len());
    if !counts.is_empty() {
        let _ = write!(head, " ({})", counts.join(", "));
    }
    if let Some(o) = shared.object {
        let _ = write!(head, " in {}", object_name(o));
        if let Some(c) = shared.container {
            let _ = write!(head, " and its container {}", code_short(c));
        }
    }
    head.push_str(":\n\n");

    let rules: Vec<RuleText<'_>> = findings
        .iter()
        .map(|f| rule_text(policy, &f.finding.rule))
        .collect();
    let lines_with = |place: Place| -> Vec<String> {
        findings
            .iter()
            .zip(&rules)
            .map(|(f, rule)| finding_line(f, &shared, rule, place))
            .collect()
    };
    let mut lines = lines_with(Place::Field);
    if head.len() + lines.iter().map(String::len).sum::<usize>() > target {
        lines = lines_with(Place::Keyed);
    }

    let mut body = Budget::new(room);
    body.push(&head, 0);
    let more_line =
        |n: usize| format!("- …and {n} more; `kubeward review --format json` lists them all.\n");
    let keep = more_line(findings.len()).len();
    let mut shown = 0;
    for line in &lines {
        if !body.push(line, keep) {
            body.push(&more_line(findings.len() - shown), 0);
            break;
        }
        shown += 1;
    }

    // Each distinct rule once, in the order of its first finding (most severe first).
    let mut distinct: Vec<(&str, &RuleText<'_>)> = Vec::new();
    for (f, rule) in findings.iter().zip(&rules).take(shown) {
        let id = f.finding.rule.as_str();
        if (!rule.why.is_empty() || !rule.fix.is_empty())
            && !distinct.iter().any(|(seen, _)| *seen == id)
        {
            distinct.push((id, rule));
        }
    }
    if distinct.is_empty() {
        return body.out;
    }
    const OPEN: &str = "\n<details><summary>Why and how to fix</summary>\n\n";
    const CLOSE: &str = "\n</details>\n";
    const OTHERS: &str = "- The others: on each rule's page, linked above.\n";
    const ONLY_LINKS: &str = "\nWhy each matters and how to fix it: its rule's page.\n";
    let used = room - body.room;
    let mut fold = Budget::new(target.min(room).saturating_sub(used));
    let mut explained = 0;
    if fold.push(OPEN, CLOSE.len() + OTHERS.len()) {
        for (i, (id, rule)) in distinct.iter().enumerate() {
            let mut parts = Vec::new();
            if !rule.why.is_empty() {
                parts.push(first_sentence(rule.why).to_owned());
            }
            if !rule.fix.is_empty() {
                parts.push(format!("**Fix:** {}", first_sentence(rule.fix)));
            }
            let entry = format!("- `{id}`: {}\n", parts.join(" "));
            let others = if i + 1 == distinct.len() {
                0
            } else {
                OTHERS.len()
            };
            if !fold.push(&entry, CLOSE.len() + others) {
                break;
            }
            explained += 1;
        }
    }
    if explained == 0 {
        body.push(ONLY_LINKS, 0);
        return body.out;
    }
    if explained < distinct.len() {
        fold.push(OTHERS, 0);
    }
    fold.push(CLOSE, 0);
    body.out.push_str(&fold.out);
    body.out
}

/// The body of one inline or file-level comment: its findings (in full when it carries one,
/// one line each when it carries several), an optional suggestion, owners, and the hidden
/// marker, which must stay its last line.
pub(crate) fn comment_body(
    findings: &[&PlannedFinding],
    suggestion: Option<&Suggestion>,
    policy: &Policy,
    forge: Flavor,
) -> String {
    let fps: Vec<String> = findings
        .iter()
        .map(|f| f.finding.fingerprint.to_string())
        .collect();
    let marker = marker(&fps);
    let mut owners: Vec<String> = Vec::new();
    for f in findings {
        for o in &f.owners {
            if !owners.contains(o) {
                owners.push(o.clone());
            }
        }
    }
    let owners_line = format!("Owners: {}\n", owners_text(&owners));
    let mut suggestion_block = String::new();
    if let Some(suggestion) = suggestion {
        // Longer than any run of backticks in the lines (a block scalar may hold a fence of
        // its own), so that none of them closes it; both forges accept longer fences.
        let longest = suggestion
            .lines
            .iter()
            .flat_map(|l| l.split(|c| c != '`'))
            .map(str::len)
            .max()
            .unwrap_or(0);
        let ticks = "`".repeat(longest.max(2) + 1);
        let fence = match forge {
            Flavor::GitHub => format!("{ticks}suggestion"),
            // GitLab's range is relative to the commented (last) line.
            Flavor::GitLab => format!("{ticks}suggestion:-{}+0", suggestion.lines_above()),
        };
        let _ = writeln!(
            suggestion_block,
            "{fence}\n{}\n{ticks}\n",
            suggestion.lines.join("\n")
        );
    }
    // A findings part of at least this much room; a suggestion that leaves less is not shown
    // rather than cut (a cut fence would turn the rest of the comment into code).
    const FINDINGS_ROOM: usize = 8_000;
    let fixed = owners_line.len() + marker.len() + 2;
    if fixed + suggestion_block.len() + FINDINGS_ROOM > MAX_BODY_CHARS {
        suggestion_block = "The suggested fix is too long for a comment; the review's JSON plan (`kubeward review --format json`) carries it.\n\n".to_owned();
    }
    let fixed = fixed + suggestion_block.len();
    let mut body = if findings.len() > 1 {
        let mut text = compact_findings(
            findings,
            policy,
            MAX_BODY_CHARS.saturating_sub(fixed + 1),
            COMPACT_BYTES.saturating_sub(fixed + 1),
        );
        // A blank line closes the list before what follows.
        text.push('\n');
        text
    } else {
        full_findings(findings, policy)
    };
    body.push_str(&suggestion_block);
    body.push_str(&owners_line);
    // Only the full form with an owners list in the thousands could still be over: cut
    // short of the marker, which must stay whole.
    let body = truncate(&body, MAX_BODY_CHARS.saturating_sub(marker.len() + 2));
    format!("{body}\n{marker}\n")
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

/// The summary's size in bytes: the forge's limit less the room the forge adapters keep for
/// what they append (a note on annotations left out, comments the forge refused).
const SUMMARY_BYTES: usize = MAX_BODY_CHARS - 2_000;
/// The files that make the review incomplete, one line each, take at most this.
const UNJUDGED_BYTES: usize = 12_000;
/// The other changed files the review did not judge (templates, values files), folded.
const NAMED_BYTES: usize = 4_000;
/// The notes (CODEOWNERS problems).
const NOTES_BYTES: usize = 4_000;
/// Lines of one list at most, whatever room is left.
const SHOWN: usize = 50;

/// Where the findings a cut summary leaves out are listed.
fn where_all_findings(forge: Flavor) -> &'static str {
    match forge {
        // Annotations are capped per check run: they show more, not necessarily all.
        Flavor::GitHub => {
            "the check run's annotations show more of them, and `kubeward review --format json` lists them all."
        }
        Flavor::GitLab => "`kubeward review --format json` lists them all.",
    }
}

/// Lines of a list while they fit in `room` (and at most [`SHOWN`]), then a line saying how
/// many were left out.
fn capped_list(lines: &[String], room: usize) -> String {
    let more =
        |n: usize| format!("- …and {n} more; `kubeward review --format json` names them all.\n");
    let mut list = Budget::new(room);
    let keep = more(lines.len()).len();
    for (i, line) in lines.iter().enumerate() {
        let last = i + 1 == lines.len();
        if i == SHOWN || !list.push(line, if last { 0 } else { keep }) {
            list.out.push_str(&more(lines.len() - i));
            break;
        }
    }
    list.out
}

/// The files the review did not judge: those that make it incomplete with how to proceed, the
/// others (templates, values files, ignored paths) folded. Never more than about
/// [`UNJUDGED_BYTES`] + [`NAMED_BYTES`] and the fixed text of the reasons.
fn not_reviewed_section(plan: &ReviewPlan) -> String {
    let mut out = String::new();
    let (unjudged, named): (Vec<_>, Vec<_>) = plan
        .not_reviewed
        .iter()
        .partition(|n| n.reason.makes_incomplete());
    if !unjudged.is_empty() {
        let _ = writeln!(out, "#### Not reviewed\n");
        let lines: Vec<String> = unjudged
            .iter()
            .map(|n| {
                let detail = n
                    .detail
                    .as_deref()
                    .map(|d| format!(" ({})", inline(d, SENTENCE_CHARS)))
                    .unwrap_or_default();
                format!(
                    "- {}: {}{detail}\n",
                    code_short(&n.path),
                    n.reason.describe()
                )
            })
            .collect();
        out.push_str(&capped_list(&lines, UNJUDGED_BYTES));
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
        let lines: Vec<String> = named
            .iter()
            .map(|n| format!("- {}: {}\n", code_short(&n.path), n.reason.describe()))
            .collect();
        out.push_str(&capped_list(&lines, NAMED_BYTES));
        let _ = writeln!(out, "\n</details>\n");
    }
    out
}

/// How many findings went to annotations, and the notes on the inputs (CODEOWNERS lines that
/// were skipped): never more than about [`NOTES_BYTES`].
fn notes_section(plan: &ReviewPlan, policy: &Policy) -> String {
    let mut out = String::new();
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
    // Files not reviewed have their own section.
    let listed: std::collections::HashSet<String> =
        plan.not_reviewed.iter().map(|n| n.note()).collect();
    let notes: Vec<&String> = plan.notes.iter().filter(|n| !listed.contains(*n)).collect();
    let more = |n: usize| {
        format!("> …and {n} more notes; `kubeward review --format json` lists them all.\n")
    };
    let mut lines = Budget::new(NOTES_BYTES);
    let keep = more(notes.len()).len();
    for (i, note) in notes.iter().enumerate() {
        let line = format!("> {}\n", inline(note, SENTENCE_CHARS));
        let last = i + 1 == notes.len();
        if !lines.push(&line, if last { 0 } else { keep }) {
            lines.out.push_str(&more(notes.len() - i));
            break;
        }
    }
    out.push_str(&lines.out);
    out
}

/// The new findings grouped by owner, then file, one line each, in at most `room` bytes;
/// when they do not all fit, a last line says how many are left out and where they are.
fn findings_section(plan: &ReviewPlan, policy: &Policy, room: usize) -> String {
    const NO_OWNER: &str = "\u{10ffff}"; // sorts last
    let mut groups: BTreeMap<String, BTreeMap<&str, Vec<&PlannedFinding>>> = BTreeMap::new();
    for f in &plan.new_findings {
        let owner = if f.owners.is_empty() {
            NO_OWNER.to_owned()
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
    let total = plan.new_findings.len();
    let more = |n: usize| format!("…and {n} more; {}\n\n", where_all_findings(plan.forge));
    // Room for that line, and for the blank line that ends a list before it.
    let keep = more(total).len() + 1;
    let mut out = Budget::new(room);
    let mut listed = 0;
    'groups: for (owner, files) in &groups {
        let mut heading = if owner == NO_OWNER {
            "#### No code owner\n\n".to_owned()
        } else {
            format!("#### Owned by {owner}\n\n")
        };
        for (path, findings) in files {
            // A heading and a file's name are written only with the first line under them.
            let mut pending = format!("{heading}{}\n", code_short(path));
            heading.clear();
            for f in findings {
                // Said in another file (a chart's values key that caused it): name it.
                let where_ = match &f.anchor {
                    Some(a) if a.new_path != f.finding.path && a.line.is_some() => format!(
                        "{} on {} L{}",
                        disposition(a.kind),
                        code_short(&a.new_path),
                        a.line.unwrap_or_default()
                    ),
                    Some(a) => disposition(a.kind).to_owned(),
                    None => "summary only".to_owned(),
                };
                let rule = rule_text(policy, &f.finding.rule).title;
                // A finding about the file itself (a parse error) has no object: its message
                // says what is wrong.
                let what = match f.finding.object {
                    Some(_) => subject(f),
                    None => inline(&f.finding.message, SENTENCE_CHARS),
                };
                let line = format!(
                    "{pending}- L{} **{}** `{}` {}: {what} _({where_})_\n",
                    f.finding.line,
                    f.finding.severity.as_str(),
                    f.finding.rule,
                    rule,
                );
                let last = listed + 1 == total;
                if !out.push(&line, if last { 0 } else { keep }) {
                    if !out.out.is_empty() && !out.out.ends_with("\n\n") {
                        out.out.push('\n');
                    }
                    out.out.push_str(&more(total - listed));
                    break 'groups;
                }
                pending.clear();
                listed += 1;
            }
            out.push("\n", if listed == total { 0 } else { keep });
        }
    }
    out.out
}

/// The findings the change fixed, folded, in at most `room` bytes (or nothing when even
/// their count does not fit).
fn fixed_section(plan: &ReviewPlan, room: usize) -> String {
    const FIXED_SHOWN: usize = 200;
    let fixed = &plan.fixed_findings;
    if fixed.is_empty() {
        return String::new();
    }
    let open = format!(
        "<details><summary>Fixed by this change ({})</summary>\n\n",
        fixed.len()
    );
    const CLOSE: &str = "\n</details>\n\n";
    let more = |n: usize| format!("- …and {n} more\n");
    let mut out = Budget::new(room);
    if !out.push(&open, CLOSE.len() + more(fixed.len()).len()) {
        return String::new();
    }
    for (i, f) in fixed.iter().enumerate() {
        let line = format!(
            "- {} `{}` {}\n",
            code_short(&f.finding.path),
            f.finding.rule,
            subject(f)
        );
        let keep = CLOSE.len()
            + if i + 1 == fixed.len() {
                0
            } else {
                more(fixed.len()).len()
            };
        if i == FIXED_SHOWN || !out.push(&line, keep) {
            out.push(&more(fixed.len() - i), CLOSE.len());
            break;
        }
    }
    out.push(CLOSE, 0);
    out.out
}

/// The check summary: verdict and counts, the files not reviewed, new findings grouped by
/// owner then file, the fixed ones folded, and the notes. Built by sections within
/// [`SUMMARY_BYTES`]: the verdict, counts, files not reviewed and notes always fit (each is
/// capped), the two lists of findings take what is left, and every block is closed, so the
/// summary is valid Markdown however large the change.
pub fn summary(plan: &ReviewPlan, policy: &Policy) -> String {
    let mut head = String::new();
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
    let _ = writeln!(
        head,
        "### kubeward: {}\n\n{verdict}\n",
        inline(&plan.title, SENTENCE_CHARS)
    );
    let c = &plan.counts;
    let _ = writeln!(head, "| | danger | warning |\n|---|---:|---:|");
    let _ = writeln!(head, "| New | {} | {} |", c.new.danger, c.new.warning);
    let _ = writeln!(head, "| Fixed | {} | {} |", c.fixed.danger, c.fixed.warning);
    let _ = writeln!(
        head,
        "| Already there, in changed objects | {} | {} |\n",
        c.pre_existing.danger, c.pre_existing.warning
    );
    let not_reviewed = not_reviewed_section(plan);
    let notes = notes_section(plan, policy);
    let end = format!("\n{SUMMARY_MARKER}\n");
    let room =
        SUMMARY_BYTES.saturating_sub(head.len() + not_reviewed.len() + notes.len() + end.len());
    // The fixed findings keep a fifth of the room, or what they need if less; the new ones
    // take the rest, and the fixed ones what the new ones leave.
    let fixed_need = fixed_section(plan, usize::MAX).len();
    let findings = findings_section(plan, policy, room - fixed_need.min(room / 5));
    let fixed = fixed_section(plan, room - findings.len());
    let mut out = head;
    out.push_str(&not_reviewed);
    out.push_str(&findings);
    out.push_str(&fixed);
    out.push_str(&notes);
    out.push_str(&end);
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
    fn text_for_one_line_keeps_whole_code_spans_and_breaks_cut_ones() {
        assert_eq!(
            inline("ServiceAccount `default`\nsets @x <b>", 100),
            "ServiceAccount `default` sets @\u{200b}x ‹b›"
        );
        assert_eq!(inline("a `b` c`d", 100), "a 'b' c'd");
        // Cut inside a span: no span is left to run on.
        let cut = inline("see `spec.template.spec.containers`", 12);
        assert_eq!(cut.matches('`').count() % 2, 0, "{cut}");
        assert_eq!(cut.chars().count(), 12);
    }

    #[test]
    fn long_values_keep_their_end() {
        let path = format!("apps/{}/web-7.yaml", "d".repeat(300));
        let shown = code_short(&path);
        assert_eq!(shown.chars().count(), VALUE_CHARS + 2);
        assert!(shown.starts_with("`apps/ddd") && shown.ends_with("ddd/web-7.yaml`"));
        assert!(shown.contains('…'));
        assert_eq!(code_short("web.yaml"), "`web.yaml`");
    }

    #[test]
    fn explanations_are_cut_at_a_sentence_outside_code() {
        let text = "Without a CPU limit one busy container can take every core of its node. It starves the rest.";
        assert_eq!(
            first_sentence(text),
            "Without a CPU limit one busy container can take every core of its node."
        );
        // Too short alone: the next sentence comes with it; a period in code does not end one.
        let text = "Pods are placed by requests. Set `resources.requests.cpu. x` on every container. Then more.";
        assert_eq!(
            first_sentence(text),
            "Pods are placed by requests. Set `resources.requests.cpu. x` on every container."
        );
    }

    #[test]
    fn container_fields_are_named_from_the_container_on() {
        assert_eq!(
            field_in_container(
                "spec.template.spec.containers[name=web].resources.limits.cpu",
                "web"
            ),
            "resources.limits.cpu"
        );
        assert_eq!(
            field_in_container("spec.initContainers[name=init].env[name=TOKEN]", "init"),
            "env[name=TOKEN]"
        );
        assert_eq!(field_in_container("spec.replicas", "web"), "spec.replicas");
    }

    #[test]
    fn untrusted_values_cannot_ping_or_inject_markers() {
        let value = code("@admins <!-- kubeward:v1 fp=kw1-x --> `x`");
        assert!(!value.contains("@admins"));
        assert!(!value.contains("<!--"));
        assert_eq!(value.matches('`').count(), 2);
    }
}
