//! Render targets in a review: found on both sides, rendered where the change touched a file
//! they read, audited per target, and every finding moved to its source place.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::PathBuf;

use crate::audit::Finding;
use crate::config::Policy;
use crate::diff::FileChange;
use crate::review::{NotReviewed, NotReviewedReason};

use super::judge::audit_targets;
use super::targets::target_closure;
use super::{RenderLimits, RenderTarget, SourceTree, Tools};

/// How a review renders.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RenderOptions {
    /// `None`: the tool is missing, and every target the change touches is named as such.
    pub kubectl: Option<PathBuf>,
    #[serde(default)]
    pub helm: Option<PathBuf>,
    /// Value sets by chart folder (the policy's `render.helm`); a chart not named is rendered
    /// with its own values.
    #[serde(default)]
    pub charts: BTreeMap<String, Vec<super::helm::ValueSet>>,
    pub limits: RenderLimits,
    /// Targets rendered per review; the rest are named as not reviewed.
    pub max_targets: usize,
    /// The targets to render (folders), instead of every entry point found.
    #[serde(default)]
    pub only: Option<Vec<String>>,
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions {
            kubectl: None,
            helm: None,
            charts: BTreeMap::new(),
            limits: RenderLimits::default(),
            max_targets: 20,
            only: None,
        }
    }
}

/// One side of the change.
pub struct Side<'a> {
    pub tree: &'a dyn SourceTree,
    /// Every file of the revision.
    pub paths: &'a [String],
}

/// What the targets a change touched gave.
#[derive(Debug, Default)]
pub struct ReviewRenders {
    /// Head findings at their source places, fingerprints keyed by target.
    pub head: Vec<Finding>,
    pub head_exempted: Vec<Finding>,
    /// Base findings likewise, at the base's paths.
    pub base: Vec<Finding>,
    /// Files that rendered targets read (either side): judged through them only.
    pub consumed: HashSet<String>,
    /// Files of every target the change touched, rendered or not: named through the target,
    /// not one by one.
    pub covered: HashSet<String>,
    /// Targets not judged, and why.
    pub not_reviewed: Vec<NotReviewed>,
    /// Per target name, the head files it reads, kustomizations first: where a finding the
    /// change caused through a transformer is said.
    pub closures: BTreeMap<String, Vec<String>>,
}

/// Renders the targets the change touched, on both sides.
pub fn render_for_review(
    base: Side<'_>,
    head: Side<'_>,
    changes: &[FileChange],
    options: &RenderOptions,
    policy: &Policy,
) -> ReviewRenders {
    let mut out = ReviewRenders::default();
    // A target is its folder; a renamed kustomization keeps its identity (the base's folder
    // is known by the head's name).
    let renamed: BTreeMap<String, String> = changes
        .iter()
        .filter_map(|c| {
            let (old, new) = (c.old_path.as_deref()?, c.new_path.as_deref()?);
            let dir = |p: &str| {
                p.rsplit_once('/')
                    .map_or(String::new(), |(d, _)| d.to_owned())
            };
            (old != new && is_kustomization(old) && is_kustomization(new))
                .then(|| (dir(old), dir(new)))
        })
        .collect();
    let changed: HashSet<&str> = changes
        .iter()
        .flat_map(|c| [c.old_path.as_deref(), c.new_path.as_deref()])
        .flatten()
        .collect();
    let base_targets =
        super::targets::all_targets(base.tree, base.paths, &options.only, &options.charts);
    let head_targets =
        super::targets::all_targets(head.tree, head.paths, &options.only, &options.charts);
    // (name, base target, head target), by the head's name.
    let mut pairs: BTreeMap<String, (Option<RenderTarget>, Option<RenderTarget>)> = BTreeMap::new();
    for t in base_targets {
        let name = renamed
            .get(t.root())
            .cloned()
            .unwrap_or_else(|| t.root().to_owned());
        pairs.entry(name).or_default().0 = Some(t);
    }
    for t in head_targets {
        let name = t.root().to_owned();
        pairs.entry(name).or_default().1 = Some(t);
    }
    let mut affected = Vec::new();
    for (name, (b, h)) in pairs {
        let base_files = b
            .as_ref()
            .map(|t| target_closure(base.tree, t))
            .unwrap_or_default();
        let head_files = h
            .as_ref()
            .map(|t| target_closure(head.tree, t))
            .unwrap_or_default();
        let touched = base_files
            .files
            .iter()
            .chain(&head_files.files)
            .any(|f| changed.contains(f.as_str()));
        if touched {
            out.covered.extend(base_files.files.iter().cloned());
            out.covered.extend(head_files.files.iter().cloned());
            let mut ordered: Vec<String> = head_files.kustomizations.values().cloned().collect();
            ordered.extend(
                head_files
                    .files
                    .iter()
                    .filter(|f| !ordered.contains(f))
                    .cloned()
                    .collect::<Vec<_>>(),
            );
            out.closures.insert(name.clone(), ordered);
            affected.push((name, b, h, base_files.files, head_files.files));
        }
    }
    for (i, (name, b, h, base_files, head_files)) in affected.into_iter().enumerate() {
        let not_reviewed = |reason, detail: String| NotReviewed {
            path: name.clone(),
            reason,
            detail: Some(detail),
        };
        if i >= options.max_targets {
            out.not_reviewed.push(not_reviewed(
                NotReviewedReason::OverTargetBudget,
                format!("one review renders at most {} targets", options.max_targets),
            ));
            continue;
        }
        let tools = Tools {
            kubectl: options.kubectl.clone(),
            helm: options.helm.clone(),
        };
        let render_side = |side: &Side<'_>, target: &Option<RenderTarget>| {
            target.as_ref().map(|t| {
                audit_targets(
                    side.tree,
                    std::slice::from_ref(t),
                    &tools,
                    &options.limits,
                    policy,
                )
            })
        };
        let head_audit = render_side(&head, &h);
        let base_audit = render_side(&base, &b);
        let failure = [("head", &head_audit), ("merge-base", &base_audit)]
            .into_iter()
            .find_map(|(side, audit)| {
                audit
                    .as_ref()
                    .and_then(|a| a.failed.first())
                    .map(|(_, e)| format!("on the {side}: {e}"))
            });
        if let Some(why) = failure {
            // One side alone would make every finding new or fixed.
            out.not_reviewed
                .push(not_reviewed(NotReviewedReason::NotRendered, why));
            continue;
        }
        out.consumed.extend(base_files);
        out.consumed.extend(head_files);
        // Both sides' findings carry the head's name, so a renamed target matches itself.
        let named = |mut findings: Vec<Finding>| {
            for f in &mut findings {
                f.targets = vec![name.clone()];
                f.fingerprint = crate::audit::fingerprint_at(
                    &f.rule,
                    f.object.as_ref(),
                    f.container.as_deref(),
                    &f.field_path,
                    &format!("target:{name}"),
                );
            }
            findings
        };
        if let Some(mut a) = head_audit {
            out.head.extend(named(
                a.findings.values_mut().flat_map(std::mem::take).collect(),
            ));
            out.head_exempted.extend(named(
                a.exempted.values_mut().flat_map(std::mem::take).collect(),
            ));
        }
        if let Some(mut a) = base_audit {
            out.base.extend(named(
                a.findings.values_mut().flat_map(std::mem::take).collect(),
            ));
        }
    }
    out
}

fn is_kustomization(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    super::kustomize::KUSTOMIZATION_NAMES.contains(&name)
}

/// The names of the targets that read `path`, for summaries.
pub fn targets_reading<'a>(renders: &'a ReviewRenders, path: &str) -> BTreeSet<&'a str> {
    renders
        .closures
        .iter()
        .filter(|(_, files)| files.iter().any(|f| f == path))
        .map(|(name, _)| name.as_str())
        .collect()
}
