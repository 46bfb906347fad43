//! The heart of the product: given both sides of a change, decide which problems it introduced,
//! where exactly to say so, who owns them and how to fix them, as a [`ReviewPlan`] that the
//! forge adapters publish as it is. Pure: no I/O, no clock.

pub mod baseline;
mod exemptions;
pub mod reconcile;
pub mod render;
pub mod verify;

use std::collections::{BTreeMap, BTreeSet};

use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};

use serde::{Deserialize, Serialize};

use crate::audit::{AuditResult, Finding, ObjectRef, Severity, audit_focused};
use crate::config::{FailOn, Incomplete, Policy};
use crate::diff::{ChangeKind, FileChange, Hunk, LineKind};
use crate::fix::{FixOp, plan};
use crate::manifest::{ManifestFile, Object};
use crate::owners::{CodeOwners, Flavor};
use crate::yaml::Node;

pub use exemptions::EXEMPTION_ADDED;
pub use exemptions::severity as exemption_severity;

/// The plan's format version, part of the JSON output.
pub const PLAN_VERSION: u32 = 1;
/// Forge comment bodies and check summaries stay under this many characters (GitHub allows
/// 65535 in a check summary and 65536 in a comment; GitLab more).
pub const MAX_BODY_CHARS: usize = 60_000;
/// The most file-level comments per run; the rest go to the summary.
pub const MAX_FILE_COMMENTS: usize = 10;

/// What rendering found out about where a chart's findings came from, by fingerprint.
#[derive(Debug, Default)]
pub struct RenderHints {
    /// The values key whose change caused the finding.
    pub causes: std::collections::HashMap<String, ValuesCause>,
    /// For every finding of a chart: the lines of its template that hold the field's key.
    pub key_lines: std::collections::HashMap<String, Vec<u32>>,
}

/// A values key that caused a chart's finding.
#[derive(Debug, Clone)]
pub struct ValuesCause {
    /// The values file that sets it on the head, and the key's line there.
    pub path: String,
    pub line: u32,
    /// Dotted (`securityContext.privileged`).
    pub key: String,
    /// An edit of that file, checked by rendering with it applied.
    pub suggestion: Option<Vec<crate::fix::Edit>>,
}

/// Both sides of a change and the policy that judges it.
pub struct ReviewInput<'a> {
    /// Every manifest at the merge-base.
    pub base_files: &'a [ManifestFile],
    /// Every manifest at the head.
    pub head_files: &'a [ManifestFile],
    pub changes: &'a [FileChange],
    /// Head contents of changed files, for suggestions.
    pub head_texts: &'a std::collections::HashMap<String, String>,
    /// Findings of the render targets the change touched, at their source places (head side),
    /// fingerprints keyed by target; matched by fingerprint alone.
    pub rendered_head: &'a [Finding],
    pub rendered_head_exempted: &'a [Finding],
    /// The same on the merge-base.
    pub rendered_base: &'a [Finding],
    /// Per target, the head files it reads, kustomizations first.
    pub render_closures: &'a BTreeMap<String, Vec<String>>,
    /// Where charts' rendered findings came from.
    pub render_hints: &'a RenderHints,
    /// Changed files the review did not judge, and why. Those that make it incomplete are
    /// left out of `changes` and the head side: the review judges the rest as if the change
    /// had not touched them.
    pub not_reviewed: &'a [NotReviewed],
    /// Read at the tip of the base branch.
    pub policy: &'a Policy,
    /// Read at the tip of the base branch.
    pub owners: &'a CodeOwners,
    pub forge: Flavor,
    pub base_sha: String,
    pub head_sha: String,
    pub base_tip_sha: String,
    /// The namespaces the change touched, as the pipeline found them while it parsed (objects
    /// elsewhere are not judged); `None` judges every object.
    pub touched: Option<&'a crate::audit::Touched>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Conclusion {
    Success,
    Failure,
    /// Part of the change could not be judged and the policy says `incomplete: neutral`.
    Neutral,
}

/// How a new finding reaches the pull request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum AnchorKind {
    /// On its own line, which the change added.
    OwnLine,
    /// On the lines its suggestion replaces (shown by one hunk).
    Suggestion,
    /// On the nearest changed line of the same container.
    SameContainer,
    /// On the nearest changed line of the same object.
    SameObject,
    /// On the changed labels of another object that caused it.
    Cause,
    /// On the file, outside any hunk.
    File,
    /// Only in the summary.
    Summary,
}

/// Where a hunk sits on both sides, for forges that need it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HunkRef {
    pub old_start: u32,
    pub old_lines: u32,
    pub new_start: u32,
    pub new_lines: u32,
}

impl From<&Hunk> for HunkRef {
    fn from(h: &Hunk) -> Self {
        HunkRef {
            old_start: h.old_start,
            old_lines: h.old_lines,
            new_start: h.new_start,
            new_lines: h.new_lines,
        }
    }
}

/// A place on the new side of the diff, with everything any forge needs to point at it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Anchor {
    pub kind: AnchorKind,
    pub new_path: String,
    /// Differs from `new_path` for renamed files; absent for added ones.
    pub old_path: Option<String>,
    /// The (last) commented line on the new side.
    pub line: Option<u32>,
    /// First line of a multi-line comment.
    pub start_line: Option<u32>,
    /// The same line on the old side, when it is an unchanged context line.
    pub old_line: Option<u32>,
    pub hunk: Option<HunkRef>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlannedFinding {
    #[serde(flatten)]
    pub finding: Finding,
    pub owners: Vec<String>,
    /// Absent for fixed and pre-existing findings.
    pub anchor: Option<Anchor>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InlineComment {
    pub path: String,
    pub old_path: Option<String>,
    pub line: u32,
    pub start_line: Option<u32>,
    /// Always the new side (`RIGHT`): we only comment on what the change leaves behind.
    pub side: String,
    pub old_line: Option<u32>,
    pub hunk: HunkRef,
    pub body: String,
    pub fingerprints: Vec<String>,
    pub owners: Vec<String>,
    /// Replacement for lines `start_line..=line`.
    pub suggestion: Option<Vec<String>>,
    pub severity: Severity,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileComment {
    pub path: String,
    pub old_path: Option<String>,
    pub body: String,
    pub fingerprints: Vec<String>,
    pub owners: Vec<String>,
}

/// A finding shown as a check-run annotation instead of an inline comment (over the inline
/// limit).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Annotation {
    pub path: String,
    pub line: u32,
    pub end_line: u32,
    pub severity: Severity,
    pub title: String,
    pub message: String,
    pub fingerprint: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Counts {
    pub danger: usize,
    pub warning: usize,
}

impl Counts {
    fn add(&mut self, severity: Severity) {
        match severity {
            Severity::Danger => self.danger += 1,
            Severity::Warning => self.warning += 1,
            Severity::Ignore => {}
        }
    }

    pub fn total(&self) -> usize {
        self.danger + self.warning
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanCounts {
    pub new: Counts,
    pub fixed: Counts,
    pub pre_existing: Counts,
}

/// Everything a forge adapter publishes, decided here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReviewPlan {
    pub version: u32,
    pub forge: Flavor,
    pub base_sha: String,
    pub head_sha: String,
    pub base_tip_sha: String,
    pub conclusion: Conclusion,
    pub fail_on: FailOn,
    pub counts: PlanCounts,
    pub title: String,
    pub summary: String,
    pub inline_comments: Vec<InlineComment>,
    pub file_comments: Vec<FileComment>,
    pub annotations: Vec<Annotation>,
    pub new_findings: Vec<PlannedFinding>,
    pub fixed_findings: Vec<PlannedFinding>,
    pub pre_existing_findings: Vec<PlannedFinding>,
    /// Changed files that were not judged, and why.
    #[serde(default)]
    pub not_reviewed: Vec<NotReviewed>,
    /// Whether a changed manifest candidate went unjudged: the conclusion follows the policy's
    /// `incomplete`, never a silent pass.
    #[serde(default)]
    pub incomplete: bool,
    /// What the policy says an incomplete review concludes.
    #[serde(default)]
    pub incomplete_policy: Incomplete,
    /// Problems with the inputs (unreadable CODEOWNERS lines...).
    pub notes: Vec<String>,
}

/// Why a changed file was not judged. Some reasons make the review incomplete (the file could
/// be a manifest, and nobody looked at it); the others only name what the review leaves to
/// other tools (templates to render first, files that hold no Kubernetes object).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum NotReviewedReason {
    /// Past the review's budget of changed manifests.
    OverFileBudget,
    /// The change and its repository hold more YAML than one review may parse.
    OverReviewBudget,
    /// The file is over its own parse budget (`limits.maxFile…`): a `parseError` too.
    OverParseBudget,
    /// A render target (its folder) the change touched could not be rendered: the tool is
    /// missing, it failed, or it asks for what is refused (remote bases, plugins).
    NotRendered,
    /// A render target past the review's budget of targets.
    OverTargetBudget,
    TooLarge,
    NotUtf8,
    Binary,
    /// A symbolic link: its target is not followed.
    Symlink,
    /// The blob is missing from the fetched history (a partial clone).
    MissingBlob,
    HelmTemplate,
    KustomizePatch,
    NotKubernetes,
    /// Matched by the policy's `ignorePaths`.
    Ignored,
}

impl NotReviewedReason {
    /// Whether leaving this file unjudged makes the review incomplete.
    pub fn makes_incomplete(self) -> bool {
        !matches!(
            self,
            NotReviewedReason::HelmTemplate
                | NotReviewedReason::KustomizePatch
                | NotReviewedReason::NotKubernetes
                | NotReviewedReason::Ignored
        )
    }

    pub fn describe(self) -> &'static str {
        match self {
            NotReviewedReason::OverFileBudget => "over the review's budget of changed manifests",
            NotReviewedReason::OverReviewBudget => "over the review's parse budget",
            NotReviewedReason::OverParseBudget => "over its own parse budget",
            NotReviewedReason::NotRendered => "a render target that could not be rendered",
            NotReviewedReason::OverTargetBudget => {
                "a render target over the review's budget of targets"
            }
            NotReviewedReason::TooLarge => "larger than the size limit",
            NotReviewedReason::NotUtf8 => "not UTF-8",
            NotReviewedReason::Binary => "binary",
            NotReviewedReason::Symlink => "a symbolic link (not followed)",
            NotReviewedReason::MissingBlob => "its content is missing from the fetched history",
            NotReviewedReason::HelmTemplate => "a Helm template (rendering is not set up)",
            NotReviewedReason::KustomizePatch => "a kustomize patch (rendering is not set up)",
            NotReviewedReason::NotKubernetes => {
                "no Kubernetes objects (a values file or other YAML)"
            }
            NotReviewedReason::Ignored => "matched by the policy's `ignorePaths`",
        }
    }

    pub fn from_skip(reason: crate::manifest::SkipReason) -> NotReviewedReason {
        use crate::manifest::SkipReason;
        match reason {
            SkipReason::NotKubernetes => NotReviewedReason::NotKubernetes,
            SkipReason::HelmTemplate => NotReviewedReason::HelmTemplate,
            SkipReason::KustomizePatch => NotReviewedReason::KustomizePatch,
            SkipReason::Binary => NotReviewedReason::Binary,
            SkipReason::NotUtf8 => NotReviewedReason::NotUtf8,
            SkipReason::TooLarge => NotReviewedReason::TooLarge,
        }
    }
}

/// A changed file the review did not judge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NotReviewed {
    pub path: String,
    pub reason: NotReviewedReason,
    /// The limit or error, when there is one to name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl NotReviewed {
    /// The line the plan's `notes` carry for it.
    pub fn note(&self) -> String {
        let detail = self
            .detail
            .as_deref()
            .map(|d| format!(" ({d})"))
            .unwrap_or_default();
        format!(
            "{}: not reviewed: {}{detail}",
            self.path,
            self.reason.describe()
        )
    }
}

/// Identity of an object across revisions.
type ObjectKey<'a> = (&'a str, &'a str, &'a str, &'a str);

fn object_key(o: &ObjectRef) -> ObjectKey<'_> {
    (o.identity_group(), &o.kind, &o.namespace, &o.name)
}

struct Sides<'c> {
    /// Changed files by new path.
    by_new: HashMap<&'c str, &'c FileChange>,
    /// New path of each old path (renames map, others map to themselves).
    old_to_new: HashMap<&'c str, &'c str>,
    changed_old: HashSet<&'c str>,
}

impl<'c> Sides<'c> {
    fn new(changes: &'c [FileChange]) -> Self {
        let mut by_new = HashMap::new();
        let mut old_to_new = HashMap::new();
        let mut changed_old = HashSet::new();
        for c in changes {
            if let Some(n) = &c.new_path {
                by_new.insert(n.as_str(), c);
            }
            if let Some(o) = &c.old_path {
                changed_old.insert(o.as_str());
                if let Some(n) = &c.new_path {
                    old_to_new.insert(o.as_str(), n.as_str());
                }
            }
        }
        Sides {
            by_new,
            old_to_new,
            changed_old,
        }
    }

    fn mapped<'p>(&self, old_path: &'p str) -> &'p str
    where
        'c: 'p,
    {
        self.old_to_new.get(old_path).copied().unwrap_or(old_path)
    }
}

/// The audits a review needs: each revision, focused on the files the change touched (the rest
/// only feed cross-object rules).
pub fn audit_sides(input: &ReviewInput<'_>) -> (AuditResult, AuditResult) {
    let sides = Sides::new(input.changes);
    let settled = |o: &Object<'_>| input.touched.is_some_and(|t| t.settles(o));
    let (head, base) = rayon::join(
        || {
            audit_focused(
                input.head_files,
                input.policy,
                &|p| sides.by_new.contains_key(p),
                &settled,
            )
        },
        || {
            audit_focused(
                input.base_files,
                input.policy,
                &|p| sides.changed_old.contains(p),
                &settled,
            )
        },
    );
    (head, base)
}

/// Builds the plan for a change.
pub fn plan_review(input: &ReviewInput<'_>) -> ReviewPlan {
    let (head, base) = audit_sides(input);
    plan_from_audits(input, head, base)
}

/// Builds the plan from the audits of both sides (see [`audit_sides`]).
pub fn plan_from_audits(
    input: &ReviewInput<'_>,
    head_result: AuditResult,
    base_result: AuditResult,
) -> ReviewPlan {
    let policy = input.policy;
    let sides = Sides::new(input.changes);
    let mut head_findings = head_result.findings;
    let mut base_findings = base_result.findings;
    let head_exempted = head_result.exempted;
    // What the base's baseline accepts was there before: matched like a pre-existing finding.
    if !policy.baseline_accepted.is_empty() {
        base_findings.extend(
            head_findings
                .iter()
                .filter(|f| policy.baseline_accepted.contains(f.fingerprint.as_str()))
                .cloned(),
        );
    }

    // Exemptions a change adds are findings in their own right.
    if policy.annotation_exemptions
        && let Some(severity) = exemptions::severity(policy)
    {
        head_findings.extend(exemptions::added(
            input.head_files,
            input.base_files,
            &head_exempted,
            &sides.by_new,
            &sides.old_to_new,
            severity,
        ));
    }

    // Objects the change moved between files: matched by fingerprint alone.
    let head_objects = object_paths(input.head_files, &|p| p);
    let base_objects = object_paths(input.base_files, &|p| sides.mapped(p));
    let moved: HashSet<ObjectKey> = head_objects
        .iter()
        .filter(|(key, paths)| base_objects.get(*key).is_some_and(|b| b != *paths))
        .map(|(key, _)| *key)
        .collect();
    let is_moved = |f: &Finding| {
        f.object
            .as_ref()
            .is_some_and(|o| moved.contains(&object_key(o)))
    };
    // Only a copy of the object that arrived at a path (new in the head there) may match by
    // fingerprint alone, and only copies that left their path: the same object kept in two
    // overlays stays two objects even when a third copy moves.
    let arrived = |f: &Finding| {
        is_moved(f)
            && f.object.as_deref().is_some_and(|o| {
                !base_objects
                    .get(&object_key(o))
                    .is_some_and(|paths| paths.contains(f.path.as_str()))
            })
    };
    let left = |f: &Finding| {
        is_moved(f)
            && f.object.as_deref().is_some_and(|o| {
                !head_objects
                    .get(&object_key(o))
                    .is_some_and(|paths| paths.contains(sides.mapped(&f.path)))
            })
    };
    let base_keys: HashSet<(&str, &str)> = base_findings
        .iter()
        .map(|f| (sides.mapped(&f.path), f.fingerprint.as_str()))
        .collect();
    let base_moved_fps: HashSet<&str> = base_findings
        .iter()
        .filter(|f| left(f))
        .map(|f| f.fingerprint.as_str())
        .collect();
    // A finding the change exempted is silenced, not fixed.
    let head_keys: HashSet<(&str, &str)> = head_findings
        .iter()
        .chain(&head_exempted)
        .map(|f| (&*f.path, f.fingerprint.as_str()))
        .collect();
    let head_moved_fps: HashSet<&str> = head_findings
        .iter()
        .chain(&head_exempted)
        .filter(|f| arrived(f))
        .map(|f| f.fingerprint.as_str())
        .collect();

    let touched = touched_objects(&head_findings, &base_findings, input.changes, &sides);
    // Decided on borrowed keys first, then the findings are moved where they belong.
    enum Head {
        New,
        PreExisting,
        Untouched,
    }
    let head_verdicts: Vec<Head> = head_findings
        .iter()
        .map(|f| {
            let fingerprint = f.fingerprint.as_str();
            let matched = base_keys.contains(&(&*f.path, fingerprint))
                || (arrived(f) && base_moved_fps.contains(fingerprint));
            if !matched {
                Head::New
            } else if touched.contains(&(&*f.path, f.object.as_deref().map(object_key))) {
                Head::PreExisting
            } else {
                Head::Untouched
            }
        })
        .collect();
    let base_is_fixed: Vec<bool> = base_findings
        .iter()
        .map(|f| {
            let fingerprint = f.fingerprint.as_str();
            !(head_keys.contains(&(sides.mapped(&f.path), fingerprint))
                || (left(f) && head_moved_fps.contains(fingerprint)))
        })
        .collect();
    // Freed before the findings are planned.
    drop((
        base_keys,
        base_moved_fps,
        head_keys,
        head_moved_fps,
        touched,
    ));
    let mut new = Vec::new();
    let mut pre_existing = Vec::new();
    for (f, verdict) in head_findings.drain(..).zip(head_verdicts) {
        match verdict {
            Head::New => new.push(f),
            Head::PreExisting => pre_existing.push(f),
            Head::Untouched => {}
        }
    }
    let mut fixed: Vec<Finding> = base_findings
        .drain(..)
        .zip(base_is_fixed)
        .filter_map(|(f, is_fixed)| is_fixed.then_some(f))
        .collect();
    pair_remaining(&mut new, &mut fixed, &mut pre_existing, &sides);
    // Rendered objects are the target's: a finding is the same one wherever its source place
    // moved (a patch that now sets what the base set). One per source place, naming targets.
    if !input.rendered_head.is_empty() || !input.rendered_base.is_empty() {
        let base_fps: HashSet<&str> = input
            .rendered_base
            .iter()
            .map(|f| f.fingerprint.as_str())
            .collect();
        let head_fps: HashSet<&str> = input
            .rendered_head
            .iter()
            .chain(input.rendered_head_exempted)
            .map(|f| f.fingerprint.as_str())
            .collect();
        let new_rendered: Vec<Finding> = input
            .rendered_head
            .iter()
            .filter(|f| !base_fps.contains(f.fingerprint.as_str()))
            .cloned()
            .collect();
        let fixed_rendered: Vec<Finding> = input
            .rendered_base
            .iter()
            .filter(|f| !head_fps.contains(f.fingerprint.as_str()))
            .cloned()
            .collect();
        new.extend(merge_by_place([new_rendered]));
        fixed.extend(merge_by_place([fixed_rendered]));
    }
    // An object one revision holds in several files (a plain manifest and its kustomize base,
    // two environments) is one object per file. Matching is per file already; the path also
    // joins the fingerprints of such objects' findings, so each copy's comment, suggestion and
    // marker is its own and a copy's old comment never stands for another copy's new problem.
    // An object unique on each side keeps a fingerprint without a path.
    let in_several: HashSet<&ObjectKey> = head_objects
        .iter()
        .chain(&base_objects)
        .filter(|(_, paths)| paths.len() > 1)
        .map(|(key, _)| key)
        .collect();
    if !in_several.is_empty() {
        let qualify = |f: &mut Finding, path: &str| {
            if let Some(o) = &f.object
                && in_several.contains(&object_key(o))
            {
                f.fingerprint = crate::audit::fingerprint_at(
                    &f.rule,
                    Some(o),
                    f.container.as_deref(),
                    &f.field_path,
                    path,
                );
            }
        };
        for f in new.iter_mut().chain(pre_existing.iter_mut()) {
            let path = f.path.clone();
            qualify(f, &path);
        }
        for f in fixed.iter_mut() {
            let path = sides.mapped(&f.path).to_owned();
            qualify(f, &path);
        }
    }

    let owners_for = |path: &str| -> Vec<String> {
        let mut ownership = input.owners.owners_of(path);
        if let Some(change) = sides.by_new.get(path)
            && let Some(old) = &change.old_path
            && old != path
        {
            ownership = ownership.merge(input.owners.owners_of(old));
        }
        ownership.owners
    };
    let fixed: Vec<PlannedFinding> = fixed
        .into_iter()
        .map(|f| PlannedFinding {
            owners: input.owners.owners_of(&f.path).owners,
            finding: f,
            anchor: None,
        })
        .collect();
    let pre_existing: Vec<PlannedFinding> = pre_existing
        .into_iter()
        .map(|f| PlannedFinding {
            owners: owners_for(&f.path),
            finding: f,
            anchor: None,
        })
        .collect();

    // Fixes, merged per object, become suggestions where one hunk shows all their lines.
    let suggestions = suggestions(&new, input);
    let causes = std::cell::OnceCell::new();
    let mut new_planned: Vec<PlannedFinding> = new
        .into_iter()
        .map(|f| {
            let anchor = suggestions
                .get(f.fingerprint.as_str())
                .map(|s| s.anchor.clone())
                .unwrap_or_else(|| anchor_for(&f, &sides, input, &causes));
            PlannedFinding {
                owners: owners_for(&f.path),
                finding: f,
                anchor: Some(anchor),
            }
        })
        .collect();
    new_planned.sort_by(|a, b| {
        (
            b.finding.severity,
            &a.finding.path,
            a.finding.line,
            &a.finding.rule,
        )
            .cmp(&(
                a.finding.severity,
                &b.finding.path,
                b.finding.line,
                &b.finding.rule,
            ))
    });

    let mut counts = PlanCounts::default();
    new_planned
        .iter()
        .for_each(|f| counts.new.add(f.finding.severity));
    fixed
        .iter()
        .for_each(|f| counts.fixed.add(f.finding.severity));
    pre_existing
        .iter()
        .for_each(|f| counts.pre_existing.add(f.finding.severity));
    let incomplete = input
        .not_reviewed
        .iter()
        .any(|n| n.reason.makes_incomplete());
    let conclusion = if new_planned
        .iter()
        .any(|f| policy.fail_on.fails(f.finding.severity))
    {
        Conclusion::Failure
    } else if incomplete {
        match policy.incomplete {
            Incomplete::Failure => Conclusion::Failure,
            Incomplete::Neutral => Conclusion::Neutral,
        }
    } else {
        Conclusion::Success
    };

    let (inline_comments, file_comments, annotations) =
        comments(&mut new_planned, &suggestions, input, &sides);
    let mut notes: Vec<String> = input
        .owners
        .errors
        .iter()
        .map(|e| format!("{} line {}: {}", input.owners.path, e.line, e.message))
        .collect();
    notes.extend(input.not_reviewed.iter().map(NotReviewed::note));
    let mut plan = ReviewPlan {
        version: PLAN_VERSION,
        forge: input.forge,
        base_sha: input.base_sha.clone(),
        head_sha: input.head_sha.clone(),
        base_tip_sha: input.base_tip_sha.clone(),
        conclusion,
        fail_on: policy.fail_on,
        counts,
        title: String::new(),
        summary: String::new(),
        inline_comments,
        file_comments,
        annotations,
        new_findings: new_planned,
        fixed_findings: fixed,
        pre_existing_findings: pre_existing,
        not_reviewed: input.not_reviewed.to_vec(),
        incomplete,
        incomplete_policy: policy.incomplete,
        notes,
    };
    plan.title = render::title(&plan);
    plan.summary = render::summary(&plan, policy);
    plan
}

/// Findings of several targets, one per source place and problem, naming every target that has
/// it ("in overlays/prod, overlays/staging"): what `kubeward audit` reports.
pub fn merge_by_place(per_target: impl IntoIterator<Item = Vec<Finding>>) -> Vec<Finding> {
    let mut by_place: BTreeMap<(String, u32, u32, String, std::sync::Arc<str>), Finding> =
        BTreeMap::new();
    for findings in per_target {
        for f in findings {
            let key = (
                f.path.to_string(),
                f.line,
                f.column,
                f.rule.to_string(),
                f.message.clone(),
            );
            match by_place.get_mut(&key) {
                Some(existing) => {
                    for t in f.targets {
                        if !existing.targets.contains(&t) {
                            existing.targets.push(t);
                        }
                    }
                }
                None => {
                    by_place.insert(key, f);
                }
            }
        }
    }
    by_place.into_values().collect()
}

/// What a finding is once list keys and API versions are set aside: two findings of one
/// review that agree on it are one problem whose key changed (an RBAC rule that gained a
/// verb, an Ingress moved to `networking.k8s.io/v1`), not one fixed and one new.
type PairKey = (String, String, String, String, String, String, String);

fn pair_key(f: &Finding, path: &str) -> PairKey {
    let (group, kind, namespace, name) = f
        .object
        .as_ref()
        .map(|o| {
            (
                o.identity_group().to_owned(),
                o.kind.clone(),
                o.namespace.clone(),
                o.name.clone(),
            )
        })
        .unwrap_or_default();
    let kind_for_paths = kind.clone();
    (
        f.rule.to_string(),
        path.to_owned(),
        group,
        kind,
        format!("{namespace}/{name}"),
        f.container.as_deref().unwrap_or_default().to_owned(),
        normalized_field_path(&kind_for_paths, &strip_list_keys(&f.field_path)),
    )
}

/// A field path with its list items' keys removed: `rules[verbs=get].verbs` → `rules[].verbs`.
/// Quoted keys (`annotations["a.b/c"]`) stay.
pub fn strip_list_keys(field_path: &str) -> String {
    let mut out = String::with_capacity(field_path.len());
    let mut chars = field_path.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '[' {
            out.push(c);
            continue;
        }
        if chars.peek() == Some(&'"') {
            // A quoted key: copied through its closing `"]`.
            out.push(c);
            let mut previous = '[';
            for c in chars.by_ref() {
                out.push(c);
                if c == ']' && previous == '"' {
                    break;
                }
                previous = c;
            }
            continue;
        }
        for c in chars.by_ref() {
            if c == ']' {
                break;
            }
        }
        out.push_str("[]");
    }
    out
}

/// Field paths of kinds whose API moved, spelled as the newest version spells them, so a
/// finding on an object that only migrated is the same finding (docs/review.md lists them).
pub fn normalized_field_path(kind: &str, path: &str) -> String {
    const RENAMES: &[(&str, &[(&str, &str)])] = &[
        (
            "Ingress",
            &[
                ("spec.backend", "spec.defaultBackend"),
                (".serviceName", ".service.name"),
                (".servicePort", ".service.port"),
            ],
        ),
        (
            "HorizontalPodAutoscaler",
            &[("spec.targetCPUUtilizationPercentage", "spec.metrics")],
        ),
    ];
    let mut out = path.to_owned();
    for (k, renames) in RENAMES {
        if *k == kind {
            for (old, new) in *renames {
                if out.contains(old) {
                    out = out.replace(old, new);
                }
            }
        }
    }
    out
}

/// Pairs, one to one and in order, the new and fixed findings left after exact matching that
/// agree on their [`PairKey`]: each pair is pre-existing.
fn pair_remaining(
    new: &mut Vec<Finding>,
    fixed: &mut Vec<Finding>,
    pre_existing: &mut Vec<Finding>,
    sides: &Sides<'_>,
) {
    if new.is_empty() || fixed.is_empty() {
        return;
    }
    let mut waiting: HashMap<PairKey, std::collections::VecDeque<usize>> = HashMap::new();
    for (i, f) in fixed.iter().enumerate() {
        waiting
            .entry(pair_key(f, sides.mapped(&f.path)))
            .or_default()
            .push_back(i);
    }
    let mut paired = vec![false; fixed.len()];
    let mut still_new = Vec::with_capacity(new.len());
    for f in new.drain(..) {
        match waiting
            .get_mut(&pair_key(&f, &f.path))
            .and_then(|queue| queue.pop_front())
        {
            Some(i) => {
                paired[i] = true;
                pre_existing.push(f);
            }
            None => still_new.push(f),
        }
    }
    *new = still_new;
    let mut i = 0;
    fixed.retain(|_| {
        let keep = !paired[i];
        i += 1;
        keep
    });
}

fn object_paths<'f>(
    files: &'f [ManifestFile],
    map: &dyn Fn(&'f str) -> &'f str,
) -> HashMap<ObjectKey<'f>, BTreeSet<&'f str>> {
    let mut out: HashMap<ObjectKey<'f>, BTreeSet<&'f str>> = HashMap::new();
    for file in files {
        for o in file.objects() {
            out.entry(o.identity()).or_default().insert(map(o.file));
        }
    }
    out
}

/// Objects (by new path) whose lines the change touched: an added line inside it on the new
/// side, or a removed line inside it on the old side.
fn touched_objects<'f>(
    head: &'f [Finding],
    base: &'f [Finding],
    changes: &[FileChange],
    sides: &Sides<'f>,
) -> HashSet<(&'f str, Option<ObjectKey<'f>>)> {
    let mut touched = HashSet::new();
    let by_old: HashMap<&str, &FileChange> = changes
        .iter()
        .filter_map(|c| c.old_path.as_deref().map(|p| (p, c)))
        .collect();
    for f in head {
        let Some(loc) = &f.location else { continue };
        if let Some(change) = sides.by_new.get(f.path.as_str())
            && (change.kind == ChangeKind::Added
                || change
                    .added_lines()
                    .any(|l| (loc.start_line..=loc.end_line).contains(&l)))
        {
            touched.insert((&*f.path, f.object.as_deref().map(object_key)));
        }
    }
    for f in base {
        let Some(loc) = &f.location else { continue };
        if let Some(change) = by_old.get(f.path.as_str())
            && change
                .removed_lines()
                .any(|l| (loc.start_line..=loc.end_line).contains(&l))
        {
            touched.insert((sides.mapped(&f.path), f.object.as_deref().map(object_key)));
        }
    }
    touched
}

fn nearest(lines: impl Iterator<Item = u32>, target: u32, range: (u32, u32)) -> Option<u32> {
    lines
        .filter(|l| (range.0..=range.1).contains(l))
        .min_by_key(|l| (l.abs_diff(target), *l))
}

fn line_anchor(kind: AnchorKind, change: &FileChange, line: u32) -> Option<Anchor> {
    let hunk = change.hunk_showing(line)?;
    Some(Anchor {
        kind,
        new_path: change.path().to_owned(),
        old_path: change.old_path.clone(),
        line: Some(line),
        start_line: None,
        old_line: hunk.old_line_of(line),
        hunk: Some(hunk.into()),
    })
}

fn summary_anchor(f: &Finding) -> Anchor {
    Anchor {
        kind: AnchorKind::Summary,
        new_path: f.path.to_string(),
        old_path: None,
        line: None,
        start_line: None,
        old_line: None,
        hunk: None,
    }
}

/// Where a new finding is said: its own line if the change added it; else the nearest added
/// line of its container, then of its object; else the file; else the summary.
fn anchor_for(
    f: &Finding,
    sides: &Sides<'_>,
    input: &ReviewInput<'_>,
    causes: &std::cell::OnceCell<CauseIndex>,
) -> Anchor {
    if let Some(a) = chart_anchor(f, sides, input) {
        return a;
    }
    let Some(change) = sides.by_new.get(f.path.as_str()).copied() else {
        return cause_anchor(f, sides, input, causes)
            .or_else(|| target_anchor(f, sides, input))
            .unwrap_or_else(|| summary_anchor(f));
    };
    if change.binary || change.kind == ChangeKind::ModeOnly {
        return summary_anchor(f);
    }
    if change.is_added_line(f.line)
        && let Some(a) = line_anchor(AnchorKind::OwnLine, change, f.line)
    {
        return a;
    }
    if let Some(loc) = &f.location {
        if let Some(range) = loc.container_lines
            && let Some(line) = nearest(change.added_lines(), f.line, range)
            && let Some(a) = line_anchor(AnchorKind::SameContainer, change, line)
        {
            return a;
        }
        if let Some(line) = nearest(change.added_lines(), f.line, (loc.start_line, loc.end_line))
            && let Some(a) = line_anchor(AnchorKind::SameObject, change, line)
        {
            return a;
        }
    }
    if let Some(a) = cause_anchor(f, sides, input, causes) {
        return a;
    }
    if let Some(a) = context_anchor(f, change) {
        return a;
    }
    if let Some(a) = target_anchor(f, sides, input) {
        return a;
    }
    Anchor {
        kind: AnchorKind::File,
        new_path: change.path().to_owned(),
        old_path: change.old_path.clone(),
        line: None,
        start_line: None,
        old_line: None,
        hunk: None,
    }
}

/// A chart's finding: on the values key the change altered that caused it (found by rendering
/// with the key set back); else in its template, if the change touched it: its own line, the
/// nearest changed line holding the field's key, the template's first changed line, the line
/// where the change deleted lines, else the template as a file. `None` for other findings and
/// for a chart whose template the change did not touch.
fn chart_anchor(f: &Finding, sides: &Sides<'_>, input: &ReviewInput<'_>) -> Option<Anchor> {
    let hints = input.render_hints;
    if let Some(cause) = hints.causes.get(f.fingerprint.as_str())
        && let Some(change) = sides.by_new.get(cause.path.as_str()).copied()
    {
        // A removed key has no line of its own: the file's first changed line.
        if let Some(a) = line_anchor(AnchorKind::Cause, change, cause.line)
            .filter(|_| change.is_added_line(cause.line))
            .or_else(|| {
                let line = change.added_lines().next()?;
                line_anchor(AnchorKind::Cause, change, line)
            })
        {
            return Some(a);
        }
    }
    let key_lines = hints.key_lines.get(f.fingerprint.as_str())?;
    let change = sides.by_new.get(f.path.as_str()).copied()?;
    if change.binary || change.kind == ChangeKind::ModeOnly {
        return None;
    }
    if change.is_added_line(f.line)
        && let Some(a) = line_anchor(AnchorKind::OwnLine, change, f.line)
    {
        return Some(a);
    }
    let holding = key_lines
        .iter()
        .copied()
        .filter(|l| change.is_added_line(*l))
        .min_by_key(|l| l.abs_diff(f.line));
    if let Some(line) = holding.or_else(|| change.added_lines().next())
        && let Some(a) = line_anchor(AnchorKind::SameObject, change, line)
    {
        return Some(a);
    }
    // Only deletions: the line that now stands where they were, else (deleted at the end of
    // the file) the line shown just above them.
    let at_deletion = change.hunks.iter().find_map(|h| {
        let first = h.lines.iter().position(|l| l.kind == LineKind::Removed)?;
        let after = h.lines[first..].iter().find_map(|l| match l.kind {
            LineKind::Removed => None,
            _ => l.new_line,
        });
        after.or_else(|| h.lines[..first].iter().rev().find_map(|l| l.new_line))
    });
    if let Some(line) = at_deletion
        && let Some(a) = line_anchor(AnchorKind::SameObject, change, line)
    {
        return Some(a);
    }
    Some(Anchor {
        kind: AnchorKind::File,
        new_path: change.path().to_owned(),
        old_path: change.old_path.clone(),
        line: None,
        start_line: None,
        old_line: None,
        hunk: None,
    })
}

/// For a rendered finding whose own place the change did not touch (a base file), the change
/// that caused it is in what its target reads: an `images:` or `namespace:` line of its
/// kustomization, a patch. The first line the change added there, kustomizations first.
fn target_anchor(f: &Finding, sides: &Sides<'_>, input: &ReviewInput<'_>) -> Option<Anchor> {
    f.targets
        .iter()
        .filter_map(|t| input.render_closures.get(t))
        .flatten()
        .filter_map(|path| sides.by_new.get(path.as_str()).copied())
        .find_map(|change| {
            let line = change.added_lines().next()?;
            line_anchor(AnchorKind::Cause, change, line)
        })
}

/// For a change that only deleted lines of the finding's object (a removed `securityContext`):
/// there is no added line to point at, but the hunk shows context lines around the deletion,
/// and both forges take a comment there. The finding's own line if shown, else the nearest
/// shown line of its container, then of its object.
fn context_anchor(f: &Finding, change: &FileChange) -> Option<Anchor> {
    let loc = f.location.as_ref()?;
    let object = (loc.start_line, loc.end_line);
    let deleting: Vec<&Hunk> = change
        .hunks
        .iter()
        .filter(|h| h.lines.iter().any(|l| l.kind == LineKind::Removed))
        .filter(|h| h.new_start <= object.1 && h.new_start + h.new_lines >= object.0)
        .collect();
    let shown = || {
        deleting.iter().flat_map(|h| {
            h.lines
                .iter()
                .filter(|l| l.kind == LineKind::Context)
                .filter_map(|l| l.new_line)
        })
    };
    if shown().any(|l| l == f.line) {
        return line_anchor(AnchorKind::SameObject, change, f.line);
    }
    for (kind, range) in [
        (AnchorKind::SameContainer, loc.container_lines),
        (AnchorKind::SameObject, Some(object)),
    ] {
        if let Some(range) = range
            && let Some(line) = nearest(shown(), f.line, range)
        {
            return line_anchor(kind, change, line);
        }
    }
    None
}

/// For a finding on an object the change did not touch (a Service whose selector no longer
/// matches), the changed labels of a workload that this object selected, or now selects, are
/// the likely cause. A workload whose labels never carried a pair of the object's selector had
/// nothing to do with it: then there is no cause to point at.
type Labels = Vec<(String, String)>;
/// `(kind, namespace, name)`.
type Named = (String, String, String);

/// What cause anchors look up, built once per review (on the first finding that needs it): a
/// lookup per finding instead of a walk over every object of both revisions.
struct CauseIndex {
    /// The selector of each object, the head's copy first.
    selectors: HashMap<Named, Labels>,
    /// Workloads of changed files whose labels the change touched: who they are, their pod
    /// labels, and the first added line among their labels.
    relabelled: Vec<(Named, Labels, String, u32)>,
    /// Pod labels of the base's workloads.
    base_pods: HashMap<Named, Vec<Labels>>,
}

impl CauseIndex {
    fn build(sides: &Sides<'_>, input: &ReviewInput<'_>) -> CauseIndex {
        let named = |o: &Object<'_>| {
            (
                o.kind.to_owned(),
                o.namespace_or_default().to_owned(),
                o.name.to_owned(),
            )
        };
        let pod_labels = |o: &Object<'_>| -> Labels {
            o.pod.as_ref().map_or_else(Vec::new, |p| {
                p.labels
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), v.to_string()))
                    .collect()
            })
        };
        let mut selectors = HashMap::new();
        let mut base_pods: HashMap<Named, Vec<Labels>> = HashMap::new();
        for o in input.head_files.iter().flat_map(|f| f.objects()) {
            selectors
                .entry(named(&o))
                .or_insert_with(|| selector_pairs(o.node));
        }
        for o in input.base_files.iter().flat_map(|f| f.objects()) {
            selectors
                .entry(named(&o))
                .or_insert_with(|| selector_pairs(o.node));
            if o.pod.is_some() {
                base_pods.entry(named(&o)).or_default().push(pod_labels(&o));
            }
        }
        let mut relabelled = Vec::new();
        for file in input.head_files {
            let Some(change) = sides.by_new.get(file.path.as_str()).copied() else {
                continue;
            };
            for o in file.objects() {
                if o.pod.is_none() {
                    continue;
                }
                let label_blocks = [
                    o.node
                        .get_path(&["metadata"])
                        .and_then(|m| m.entry("labels")),
                    o.pod
                        .as_ref()
                        .and_then(|p| p.template.get("metadata"))
                        .and_then(|m| m.entry("labels")),
                ];
                if let Some(line) = label_blocks.into_iter().flatten().find_map(|entry| {
                    let range = entry.key_span.start.line
                        ..=entry.value.span.last_line().max(entry.key_span.start.line);
                    change.added_lines().find(|l| range.contains(l))
                }) {
                    relabelled.push((named(&o), pod_labels(&o), file.path.clone(), line));
                }
            }
        }
        CauseIndex {
            selectors,
            relabelled,
            base_pods,
        }
    }
}

/// For a finding on an object the change did not touch (a Service whose selector no longer
/// matches), the changed labels of a workload that this object selected, or now selects, are
/// the likely cause. A workload whose labels never carried a pair of the object's selector had
/// nothing to do with it: then there is no cause to point at.
fn cause_anchor(
    f: &Finding,
    sides: &Sides<'_>,
    input: &ReviewInput<'_>,
    causes: &std::cell::OnceCell<CauseIndex>,
) -> Option<Anchor> {
    let object = f.object.as_deref()?;
    let index = causes.get_or_init(|| CauseIndex::build(sides, input));
    let me = (
        object.kind.clone(),
        object.namespace.clone(),
        object.name.clone(),
    );
    let selector = index.selectors.get(&me)?;
    if selector.is_empty() {
        return None;
    }
    let carries_selected_pair = |labels: &Labels| {
        labels
            .iter()
            .any(|(k, v)| selector.iter().any(|(sk, sv)| sk == k && sv == v))
    };
    for (who, labels, path, line) in &index.relabelled {
        if who.1 != object.namespace || *who == me {
            continue;
        }
        let was_selected = || {
            index
                .base_pods
                .get(who)
                .is_some_and(|pods| pods.iter().any(carries_selected_pair))
        };
        if carries_selected_pair(labels) || was_selected() {
            let change = sides.by_new.get(path.as_str()).copied()?;
            return line_anchor(AnchorKind::Cause, change, *line);
        }
    }
    None
}

/// The label pairs an object selects pods by: a Service's `spec.selector`, or the
/// `matchLabels` of `spec.selector` / `spec.podSelector` (workloads, PDBs, NetworkPolicies).
fn selector_pairs(node: &Node) -> Vec<(String, String)> {
    let spec = node.get("spec");
    let blocks = [
        spec.and_then(|s| s.get("selector")),
        spec.and_then(|s| s.get_path(&["selector", "matchLabels"])),
        spec.and_then(|s| s.get_path(&["podSelector", "matchLabels"])),
    ];
    blocks
        .into_iter()
        .flatten()
        .flat_map(|block| block.as_map().unwrap_or(&[]))
        .filter_map(|e| Some((e.key.to_string(), e.value.scalar_str()?.into_owned())))
        .collect()
}

/// Chart findings' suggestions on the values files that caused them (checked by rendering).
fn values_suggestions(
    new: &[Finding],
    input: &ReviewInput<'_>,
) -> HashMap<crate::audit::Fingerprint, Suggestion> {
    let mut out = HashMap::new();
    for f in new {
        let Some(cause) = input.render_hints.causes.get(f.fingerprint.as_str()) else {
            continue;
        };
        let Some([edit]) = cause.suggestion.as_deref() else {
            continue;
        };
        let Some(change) = input
            .changes
            .iter()
            .find(|c| c.new_path.as_deref() == Some(cause.path.as_str()))
        else {
            continue;
        };
        let Some(hunk) = change.one_hunk_shows(edit.start_line, edit.end_line) else {
            continue;
        };
        out.insert(
            f.fingerprint,
            Suggestion {
                anchor: Anchor {
                    kind: AnchorKind::Suggestion,
                    new_path: cause.path.clone(),
                    old_path: change.old_path.clone(),
                    line: Some(edit.end_line),
                    start_line: (edit.start_line != edit.end_line).then_some(edit.start_line),
                    old_line: hunk.old_line_of(edit.end_line),
                    hunk: Some(hunk.into()),
                },
                lines: edit.lines.clone(),
            },
        );
    }
    out
}

/// A suggestion and the lines it replaces, shared by the findings it fixes.
#[derive(Debug, Clone)]
pub(crate) struct Suggestion {
    pub anchor: Anchor,
    pub lines: Vec<String>,
}

impl Suggestion {
    /// The first line it replaces, when that is above its anchor line.
    pub fn start_line(&self) -> Option<u32> {
        let line = self.anchor.line?;
        self.anchor.start_line.filter(|s| *s < line)
    }

    /// How many lines above its anchor line it replaces too.
    pub fn lines_above(&self) -> u32 {
        match (self.anchor.line, self.start_line()) {
            (Some(line), Some(start)) => line - start,
            _ => 0,
        }
    }
}

fn suggestions(
    new: &[Finding],
    input: &ReviewInput<'_>,
) -> HashMap<crate::audit::Fingerprint, Suggestion> {
    let mut out = values_suggestions(new, input);
    // Lines (path, first, last) that an offered suggestion replaces.
    let mut taken: Vec<(String, u32, u32)> = Vec::new();
    // Group fixable findings per object of a changed file.
    let mut groups: BTreeMap<(String, usize, String), Vec<&Finding>> = BTreeMap::new();
    for f in new.iter().filter(|f| !f.fix.is_empty()) {
        let Some(loc) = &f.location else { continue };
        let list = loc
            .list_path
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default();
        groups
            .entry((f.path.to_string(), loc.doc_index, list))
            .or_default()
            .push(f);
    }
    for ((path, doc_index, _), findings) in groups {
        let Some(text) = input.head_texts.get(&path) else {
            continue;
        };
        let Some(change) = input
            .changes
            .iter()
            .find(|c| c.new_path.as_deref() == Some(path.as_str()))
        else {
            continue;
        };
        let Some(file) = input.head_files.iter().find(|f| f.path == path) else {
            continue;
        };
        let Ok(docs) = &file.content else { continue };
        let Some(root) = docs.get(doc_index).and_then(|d| d.root.as_ref().ok()) else {
            continue;
        };
        let object = match findings[0]
            .location
            .as_ref()
            .and_then(|l| l.list_path.as_ref())
        {
            Some(list_path) => match resolve_item(root, list_path) {
                Some(node) => node,
                None => continue,
            },
            None => root,
        };
        // One merged fix for the object; when it cannot be verified, each finding's own fix
        // on its own (a finding whose fix would stop the workload gets none).
        let mut candidates: Vec<Vec<&Finding>> = vec![findings.clone()];
        if findings.len() > 1 {
            candidates.extend(findings.iter().map(|f| vec![*f]));
        }
        for group in candidates {
            if group
                .iter()
                .all(|f| out.contains_key(f.fingerprint.as_str()))
            {
                continue;
            }
            let ops: Vec<FixOp> = group.iter().flat_map(|f| f.fix.iter().cloned()).collect();
            let Some(edits) = plan(text, object, &ops) else {
                continue;
            };
            // Fallback suggestions must not touch each other's lines: applied one after the
            // other, they would conflict.
            let overlaps = edits.iter().any(|e| {
                taken.iter().any(|(p, start, end)| {
                    *p == path && e.start_line <= *end + 1 && *start <= e.end_line + 1
                })
            });
            if overlaps {
                continue;
            }
            // Offered only when verified: see `verify`.
            let first = docs.get(doc_index).map_or(1, |d| d.start_line);
            let last = docs
                .get(doc_index + 1)
                .map_or(u32::MAX, |d| d.start_line.saturating_sub(1))
                .min(u32::try_from(text.lines().count()).unwrap_or(u32::MAX))
                .max(first);
            if let Err(why) = verify::verify(
                &path,
                text,
                (first, last),
                &edits,
                &ops,
                &group,
                input.policy,
            ) {
                tracing::debug!(path = %path, ?why, "suggestion not offered");
                continue;
            }
            for edit in &edits {
                taken.push((path.clone(), edit.start_line, edit.end_line));
                let Some(hunk) = change.one_hunk_shows(edit.start_line, edit.end_line) else {
                    continue;
                };
                let anchor = Anchor {
                    kind: AnchorKind::Suggestion,
                    new_path: path.clone(),
                    old_path: change.old_path.clone(),
                    line: Some(edit.end_line),
                    start_line: (edit.start_line != edit.end_line).then_some(edit.start_line),
                    old_line: hunk.old_line_of(edit.end_line),
                    hunk: Some(hunk.into()),
                };
                for f in &group {
                    // A finding belongs to the edit its own fix would make.
                    let own = plan(text, object, &f.fix).unwrap_or_default();
                    if own
                        .iter()
                        .any(|o| o.start_line >= edit.start_line && o.end_line <= edit.end_line)
                    {
                        out.insert(
                            f.fingerprint,
                            Suggestion {
                                anchor: anchor.clone(),
                                lines: edit.lines.clone(),
                            },
                        );
                    }
                }
            }
            // The merged fix covered the object: no fallback needed.
            if group.len() == findings.len() {
                break;
            }
        }
    }
    out
}

fn resolve_item<'n>(
    root: &'n crate::yaml::Node,
    path: &crate::manifest::FieldPath,
) -> Option<&'n crate::yaml::Node> {
    use crate::manifest::{ItemKey, Segment};
    let mut node = root;
    for segment in path.segments() {
        node = match segment {
            Segment::Key(k) => node.get(k)?,
            Segment::Item(ItemKey::Index(i)) => node.as_seq()?.get(*i)?,
            Segment::Item(ItemKey::Content(c)) => node.as_seq()?.iter().find(|item| {
                item.as_map().is_some() && crate::manifest::path::content_key(item) == *c
            })?,
            Segment::Item(_) => return None,
        };
    }
    Some(node)
}

type Comments = (Vec<InlineComment>, Vec<FileComment>, Vec<Annotation>);

/// One inline comment per line (its findings combined), up to the configured limit, most severe
/// first; the rest become annotations (and are listed in the summary).
fn comments(
    new: &mut [PlannedFinding],
    suggestions: &HashMap<crate::audit::Fingerprint, Suggestion>,
    input: &ReviewInput<'_>,
    sides: &Sides<'_>,
) -> Comments {
    let limit = input.policy.review.max_inline_comments;
    let mut by_line: BTreeMap<(String, u32), Vec<usize>> = BTreeMap::new();
    let mut by_file: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, f) in new.iter().enumerate() {
        let Some(anchor) = &f.anchor else { continue };
        match (anchor.kind, anchor.line) {
            (AnchorKind::File, _) => by_file.entry(anchor.new_path.clone()).or_default().push(i),
            (AnchorKind::Summary, _) | (_, None) => {}
            (_, Some(line)) => {
                let members = by_line.entry((anchor.new_path.clone(), line)).or_default();
                // A comment never carries the same finding twice.
                if !members
                    .iter()
                    .any(|m| new[*m].finding.fingerprint == f.finding.fingerprint)
                {
                    members.push(i);
                }
            }
        }
    }
    // Most severe lines first when the limit bites.
    let mut lines: Vec<((String, u32), Vec<usize>)> = by_line.into_iter().collect();
    lines.sort_by_key(|((path, line), members)| {
        let worst = members.iter().map(|i| new[*i].finding.severity).max();
        (std::cmp::Reverse(worst), path.clone(), *line)
    });
    let mut inline = Vec::new();
    let mut annotations = Vec::new();
    for ((path, line), members) in lines {
        let findings: Vec<&PlannedFinding> = members.iter().map(|i| &new[*i]).collect();
        if inline.len() >= limit {
            for f in &findings {
                annotations.push(annotation(&f.finding, line));
            }
            for i in &members {
                if let Some(a) = new[*i].anchor.as_mut() {
                    a.kind = AnchorKind::Summary;
                }
            }
            continue;
        }
        let anchor = findings[0]
            .anchor
            .clone()
            .unwrap_or_else(|| summary_anchor(&findings[0].finding));
        let suggestion = findings
            .iter()
            .find_map(|f| suggestions.get(f.finding.fingerprint.as_str()))
            .filter(|s| s.anchor.line == Some(line));
        // A suggestion replaces exactly its own lines: the comment must span them, whichever
        // finding of the line came first.
        let start_line = match suggestion {
            Some(s) => s.start_line(),
            None => anchor.start_line.filter(|s| *s < line),
        };
        let mut owners: Vec<String> = Vec::new();
        for f in &findings {
            for o in &f.owners {
                if !owners.contains(o) {
                    owners.push(o.clone());
                }
            }
        }
        let body = render::comment_body(&findings, suggestion, input.policy, input.forge);
        inline.push(InlineComment {
            path: path.clone(),
            old_path: sides
                .by_new
                .get(path.as_str())
                .and_then(|c| c.old_path.clone()),
            line,
            start_line,
            side: "RIGHT".to_owned(),
            old_line: anchor.old_line,
            hunk: anchor.hunk.clone().unwrap_or(HunkRef {
                old_start: 0,
                old_lines: 0,
                new_start: 0,
                new_lines: 0,
            }),
            body,
            fingerprints: findings
                .iter()
                .map(|f| f.finding.fingerprint.to_string())
                .collect(),
            owners,
            suggestion: suggestion.map(|s| s.lines.clone()),
            severity: findings
                .iter()
                .map(|f| f.finding.severity)
                .max()
                .unwrap_or(Severity::Warning),
        });
    }
    inline.sort_by(|a, b| (&a.path, a.line).cmp(&(&b.path, b.line)));
    let mut file_comments = Vec::new();
    for (path, members) in by_file {
        if file_comments.len() >= MAX_FILE_COMMENTS {
            for i in &members {
                if let Some(a) = new[*i].anchor.as_mut() {
                    a.kind = AnchorKind::Summary;
                }
            }
            continue;
        }
        let findings: Vec<&PlannedFinding> = members.iter().map(|i| &new[*i]).collect();
        let mut owners: Vec<String> = Vec::new();
        for f in &findings {
            for o in &f.owners {
                if !owners.contains(o) {
                    owners.push(o.clone());
                }
            }
        }
        file_comments.push(FileComment {
            old_path: sides
                .by_new
                .get(path.as_str())
                .and_then(|c| c.old_path.clone()),
            path,
            body: render::comment_body(&findings, None, input.policy, input.forge),
            fingerprints: findings
                .iter()
                .map(|f| f.finding.fingerprint.to_string())
                .collect(),
            owners,
        });
    }
    (inline, file_comments, annotations)
}

fn annotation(f: &Finding, line: u32) -> Annotation {
    Annotation {
        path: f.path.to_string(),
        line,
        end_line: line,
        severity: f.severity,
        title: render::truncate(&format!("{} ({})", f.rule, f.severity.as_str()), 255),
        message: render::truncate(&f.message, 4000),
        fingerprint: f.fingerprint.to_string(),
    }
}
