//! `kubeward review`: the review pipeline on a local repository.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::Context;
use git2::Oid;

use super::{EXIT_FINDINGS, EXIT_OK, EXIT_USAGE, ForgeArg, ReviewArgs, ReviewFormat, write_stdout};
use crate::audit::{AuditResult, PARSE_ERROR, Registry};
use crate::config::Policy;
use crate::git::Repository;
use crate::owners::Flavor;
use crate::pipeline::{PipelineError, Progress, ReviewBudgets, ReviewOptions, Revisions, review};
use crate::review::{Anchor, AnchorKind, Conclusion, PlannedFinding, ReviewPlan};

pub fn run(args: ReviewArgs) -> anyhow::Result<u8> {
    let repo = match Repository::open(&args.repo) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("kubeward: {e}");
            return Ok(EXIT_USAGE);
        }
    };
    let base = match args.base.clone().map_or_else(|| repo.default_base(), Ok) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("kubeward: {e}");
            return Ok(EXIT_USAGE);
        }
    };
    let revisions = match Revisions::resolve(&repo, &base, &args.head) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("kubeward: {e}");
            return Ok(EXIT_USAGE);
        }
    };
    let forge = match args.forge {
        ForgeArg::Github => Flavor::GitHub,
        ForgeArg::Gitlab => Flavor::GitLab,
    };
    // Progress only for a person watching: a pipe or a CI log gets none of it.
    let progress = (std::io::stderr().is_terminal()
        && std::env::var_os("TERM").is_none_or(|t| t != "dumb"))
    .then(|| ProgressLine::new(std::io::stderr(), PROGRESS_DELAY, PROGRESS_INTERVAL));
    let report = |p: Progress| {
        if let Some(line) = &progress {
            line.report(p);
        }
    };
    let options = ReviewOptions {
        forge,
        config_override: args.config.as_deref(),
        fail_on: args.fail_on.map(Into::into),
        budgets: ReviewBudgets::UNLIMITED,
        render: match args.render {
            super::RenderMode::Never => None,
            _ => {
                let tools = args.tools.tools();
                Some(crate::render::review::RenderOptions {
                    kubectl: tools.kubectl,
                    helm: tools.helm,
                    ..Default::default()
                })
            }
        },
        progress: progress
            .is_some()
            .then_some(&report as &(dyn Fn(Progress) + Sync)),
        views: args
            .view_store
            .clone()
            .map(|dir| crate::views::StoreSettings {
                dir,
                max_bytes: args.view_store_max_bytes,
            }),
    };
    let result = review(&repo, &revisions, &options);
    if let Some(line) = &progress {
        line.finish();
    }
    let (plan, timings) = match result {
        Ok(result) => result,
        Err(PipelineError::Config(e)) => {
            eprintln!("kubeward: configuration error: {e}");
            return Ok(EXIT_USAGE);
        }
        Err(e) => return Err(e).context("reviewing the change"),
    };
    if args.timings {
        eprintln!("{}", timings.describe());
    }
    let output = match args.format {
        ReviewFormat::Text => {
            let names = Names {
                base: &base,
                head: &args.head,
                revisions: &revisions,
            };
            text(&plan, &names)
        }
        ReviewFormat::Markdown => plan.summary.clone(),
        ReviewFormat::Json => {
            serde_json::to_string_pretty(&plan).context("serialising the plan")? + "\n"
        }
        ReviewFormat::Sarif => plan_sarif(&plan)?,
    };
    write_stdout(&output).context("writing the review")?;
    Ok(match plan.conclusion {
        Conclusion::Failure => EXIT_FINDINGS,
        Conclusion::Success | Conclusion::Neutral => EXIT_OK,
    })
}

/// SARIF of a plan's new findings (code scanning shows what the change introduced).
pub fn plan_sarif(plan: &ReviewPlan) -> anyhow::Result<String> {
    let registry = Registry::builtin().context("loading rules")?;
    let policy = Policy::defaults(&registry);
    let result = AuditResult {
        findings: plan
            .new_findings
            .iter()
            .map(|f| f.finding.clone())
            .collect(),
        ..AuditResult::default()
    };
    Ok(crate::report::sarif_report(&result, &[], &policy) + "\n")
}

/// The revisions as the user named them, for the first line of the text output.
struct Names<'a> {
    base: &'a str,
    head: &'a str,
    revisions: &'a Revisions,
}

fn short(oid: Oid) -> String {
    let mut hex = oid.to_string();
    hex.truncate(7);
    hex
}

fn text(plan: &ReviewPlan, names: &Names<'_>) -> String {
    let mut out = format!(
        "Reviewing {} ({}) → {} ({}), merge-base {}\n",
        names.base,
        short(names.revisions.base_tip),
        names.head,
        short(names.revisions.head),
        short(names.revisions.merge_base)
    );
    for f in &plan.new_findings {
        out.push_str(&finding_line(f));
        out.push('\n');
    }
    for n in &plan.not_reviewed {
        let detail = n
            .detail
            .as_deref()
            .map(|d| format!(" ({d})"))
            .unwrap_or_default();
        let effect = if n.reason.makes_incomplete() {
            "not reviewed"
        } else {
            "not a manifest to review"
        };
        out.push_str(&format!(
            "{}: {effect}: {}{detail}\n",
            n.path,
            n.reason.describe()
        ));
    }
    if plan.incomplete {
        out.push_str(&format!(
            "incomplete: some changed files were not reviewed (policy: incomplete: {})\n",
            match plan.incomplete_policy {
                crate::config::Incomplete::Failure => "failure",
                crate::config::Incomplete::Neutral => "neutral",
            }
        ));
    }
    let c = &plan.counts;
    out.push_str(&format!(
        "{}: {} new ({} danger, {} warning), {} fixed, {} already there in changed objects\n",
        match plan.conclusion {
            Conclusion::Failure => "failure",
            Conclusion::Success => "success",
            Conclusion::Neutral => "neutral",
        },
        c.new.total(),
        c.new.danger,
        c.new.warning,
        c.fixed.total(),
        c.pre_existing.total()
    ));
    out
}

/// `path:line severity rule message (object) — where it is said`, the place being the
/// finding's own; where the comment goes (perhaps another line or file) comes after.
fn finding_line(f: &PlannedFinding) -> String {
    let finding = &f.finding;
    let what = if finding.rule == PARSE_ERROR {
        // About the file itself: its message is the whole story, as a sentence.
        format!(
            "{}:{} {}: {}",
            finding.path,
            finding.line,
            finding.severity.as_str(),
            parse_error_sentence(&finding.message)
        )
    } else {
        let subject = match (&finding.object, &finding.container) {
            (Some(o), Some(c)) if !c.is_empty() => format!(" ({}, container {c})", o.display()),
            (Some(o), _) => format!(" ({})", o.display()),
            _ => String::new(),
        };
        format!(
            "{}:{} {} {} {}{subject}",
            finding.path,
            finding.line,
            finding.severity.as_str(),
            finding.rule,
            finding.message
        )
    };
    let owners = if f.owners.is_empty() {
        String::new()
    } else {
        format!("; owners: {}", f.owners.join(" "))
    };
    format!("{what} — {}{owners}", said(f))
}

/// The engine's parse-error message (`not valid YAML: …`, or a file over its parse budget) as
/// a sentence about the document.
fn parse_error_sentence(message: &str) -> String {
    if let Some(why) = message.strip_prefix("not valid YAML: ") {
        format!("the document is not valid YAML: {why}")
    } else if let Some(rest) = message.strip_prefix("file ") {
        format!("the file is {rest}")
    } else {
        message.to_owned()
    }
}

/// Where the review says a finding, in words.
fn said(f: &PlannedFinding) -> String {
    let Some(anchor) = &f.anchor else {
        return "in the summary only".to_owned();
    };
    let place = Place { f, anchor };
    match anchor.kind {
        AnchorKind::OwnLine => match place.elsewhere() {
            None => "said inline on its own line".to_owned(),
            Some(at) => format!("said inline on {at}"),
        },
        AnchorKind::Suggestion => match place.elsewhere() {
            None => "said inline on its own line, with a one-click fix".to_owned(),
            Some(at) => format!("said inline on {at}, with a one-click fix"),
        },
        AnchorKind::SameContainer => format!(
            "said on the nearest changed line of its container ({})",
            place.at()
        ),
        AnchorKind::SameObject => format!(
            "said on the nearest changed line of its object ({})",
            place.at()
        ),
        AnchorKind::Cause => format!(
            "said on the workload whose labels caused it: {}",
            place.with_path()
        ),
        AnchorKind::File if anchor.new_path == f.finding.path => {
            "said as a file comment".to_owned()
        }
        AnchorKind::File => format!("said as a file comment on {}", anchor.new_path),
        AnchorKind::Summary => "in the summary only".to_owned(),
    }
}

/// An anchor's lines, described from where the finding is.
struct Place<'a> {
    f: &'a PlannedFinding,
    anchor: &'a Anchor,
}

impl Place<'_> {
    fn lines(&self) -> Option<String> {
        let end = self.anchor.line?;
        Some(match self.anchor.start_line {
            Some(start) if start != end => format!("{start}–{end}"),
            _ => end.to_string(),
        })
    }

    fn same_file(&self) -> bool {
        self.anchor.new_path == self.f.finding.path
    }

    /// `line 12` or `lines 10–12` in the finding's file, else `other.yaml:12`.
    fn at(&self) -> String {
        match (self.same_file(), self.lines()) {
            (true, Some(lines)) if lines.contains('–') => format!("lines {lines}"),
            (true, Some(lines)) => format!("line {lines}"),
            (true, None) => "its file".to_owned(),
            (false, _) => self.with_path(),
        }
    }

    /// `path:line`, always with the path.
    fn with_path(&self) -> String {
        match self.lines() {
            Some(lines) => format!("{}:{lines}", self.anchor.new_path),
            None => self.anchor.new_path.clone(),
        }
    }

    /// Where the comment goes, unless that is exactly the finding's own line.
    fn elsewhere(&self) -> Option<String> {
        let own = self.same_file()
            && self.anchor.line == Some(self.f.finding.line)
            && self
                .anchor
                .start_line
                .is_none_or(|s| s == self.f.finding.line);
        (!own).then(|| self.at())
    }
}

/// Runs shorter than this show no progress at all: no flicker for the common small review.
const PROGRESS_DELAY: Duration = Duration::from_millis(300);
/// At most this often a redraw within one stage.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(100);

/// One line of progress on a terminal, redrawn in place and erased at the end.
struct ProgressLine<W: Write> {
    started: Instant,
    delay: Duration,
    interval: Duration,
    state: Mutex<ProgressState<W>>,
}

struct ProgressState<W> {
    out: W,
    /// When the line was last drawn, and of which stage.
    drawn: Option<(Instant, std::mem::Discriminant<Progress>)>,
}

impl<W: Write> ProgressLine<W> {
    fn new(out: W, delay: Duration, interval: Duration) -> ProgressLine<W> {
        ProgressLine {
            started: Instant::now(),
            delay,
            interval,
            state: Mutex::new(ProgressState { out, drawn: None }),
        }
    }

    fn report(&self, progress: Progress) {
        let now = Instant::now();
        if now.duration_since(self.started) < self.delay {
            return;
        }
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        let stage = std::mem::discriminant(&progress);
        if let Some((at, drawn)) = state.drawn
            && drawn == stage
            && now.duration_since(at) < self.interval
        {
            return;
        }
        // Progress is a courtesy: a terminal that fails to take it changes nothing.
        let _ = write!(state.out, "\r{}\x1b[K", describe(progress));
        let _ = state.out.flush();
        state.drawn = Some((now, stage));
    }

    /// Erases the line, so that what follows starts on a clean one.
    fn finish(&self) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        if state.drawn.take().is_some() {
            let _ = write!(state.out, "\r\x1b[K");
            let _ = state.out.flush();
        }
    }
}

fn describe(progress: Progress) -> String {
    match progress {
        Progress::Comparing => "comparing the revisions…".to_owned(),
        Progress::Reading { done, total } => {
            format!("reading files… {} of {}", thousands(done), thousands(total))
        }
        Progress::Parsing { done, total } => {
            format!("parsing files… {} of {}", thousands(done), thousands(total))
        }
        Progress::Auditing { files } => format!("auditing {} files…", thousands(files)),
        Progress::Planning { findings } => {
            format!("matching {} findings…", thousands(findings))
        }
    }
}

/// `3000` as `3,000`.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(d);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_read_with_thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(3000), "3,000");
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(
            describe(Progress::Reading {
                done: 1200,
                total: 3000
            }),
            "reading files… 1,200 of 3,000"
        );
        assert_eq!(
            describe(Progress::Auditing { files: 2950 }),
            "auditing 2,950 files…"
        );
    }

    /// On a terminal the line is redrawn in place (`\r`, erase to the end of the line), at
    /// most once per interval within a stage, and erased at the end.
    #[test]
    fn the_progress_line_is_redrawn_in_place_and_erased() {
        let line = ProgressLine::new(Vec::new(), Duration::ZERO, Duration::from_secs(3600));
        line.report(Progress::Comparing);
        line.report(Progress::Reading { done: 1, total: 3 });
        // The same stage within the interval: not redrawn.
        line.report(Progress::Reading { done: 2, total: 3 });
        line.report(Progress::Auditing { files: 3 });
        line.finish();
        let out = line.state.into_inner().map(|s| s.out).unwrap_or_default();
        assert_eq!(
            String::from_utf8_lossy(&out),
            "\rcomparing the revisions…\x1b[K\rreading files… 1 of 3\x1b[K\rauditing 3 files…\x1b[K\r\x1b[K"
        );
    }

    #[test]
    fn a_short_run_shows_no_progress() {
        let line = ProgressLine::new(Vec::new(), Duration::from_secs(3600), Duration::ZERO);
        line.report(Progress::Comparing);
        line.finish();
        let out = line.state.into_inner().map(|s| s.out).unwrap_or_default();
        assert!(out.is_empty());
    }

    /// A finding at a.yaml:10, said at each kind of anchor.
    fn planned(anchor: serde_json::Value) -> PlannedFinding {
        let f = serde_json::json!({
            "rule": "runAsPrivileged", "severity": "danger", "category": "Security",
            "path": "a.yaml", "line": 10, "column": 5, "endLine": 10, "endColumn": 9,
            "object": {"apiVersion": "v1", "kind": "Pod", "namespace": "", "name": "p"},
            "container": "web", "fieldPath": "spec.containers[web].securityContext.privileged",
            "message": "Should not be running as privileged", "fingerprint": "kw1-000000000000000000000000",
            "owners": ["@team"], "anchor": anchor,
        });
        serde_json::from_value(f).unwrap_or_else(|e| panic!("a planned finding: {e}"))
    }

    #[test]
    fn every_anchor_is_said_in_words() {
        let at = |kind: &str, path: &str, line: Option<u32>, start: Option<u32>| {
            serde_json::json!({"kind": kind, "newPath": path, "oldPath": null, "line": line,
                "startLine": start, "oldLine": null, "hunk": null})
        };
        for (anchor, said_as) in [
            (
                at("ownLine", "a.yaml", Some(10), None),
                "said inline on its own line",
            ),
            (
                at("ownLine", "a.yaml", Some(11), None),
                "said inline on line 11",
            ),
            (
                at("suggestion", "a.yaml", Some(10), None),
                "said inline on its own line, with a one-click fix",
            ),
            (
                at("suggestion", "a.yaml", Some(11), Some(9)),
                "said inline on lines 9–11, with a one-click fix",
            ),
            (
                at("sameContainer", "a.yaml", Some(12), None),
                "said on the nearest changed line of its container (line 12)",
            ),
            (
                at("sameObject", "b.yaml", Some(3), None),
                "said on the nearest changed line of its object (b.yaml:3)",
            ),
            (
                at("cause", "other.yaml", Some(12), None),
                "said on the workload whose labels caused it: other.yaml:12",
            ),
            (at("file", "a.yaml", None, None), "said as a file comment"),
            (at("summary", "a.yaml", None, None), "in the summary only"),
            (serde_json::Value::Null, "in the summary only"),
        ] {
            assert_eq!(
                finding_line(&planned(anchor)),
                format!(
                    "a.yaml:10 danger runAsPrivileged Should not be running as privileged \
                     (Pod/p, container web) — {said_as}; owners: @team"
                )
            );
        }
    }

    #[test]
    fn parse_errors_read_as_sentences() {
        assert_eq!(
            parse_error_sentence(
                "not valid YAML: while parsing a flow mapping, did not find expected ',' or '}'"
            ),
            "the document is not valid YAML: while parsing a flow mapping, did not find expected ',' or '}'"
        );
        assert_eq!(
            parse_error_sentence("file over its parse budget of 10 documents"),
            "the file is over its parse budget of 10 documents"
        );
    }
}
