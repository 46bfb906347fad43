//! Render targets in a review: found on both sides, rendered where the change touched a file
//! they read, audited per target, and every finding moved to its source place.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::PathBuf;

use crate::audit::Finding;
use crate::config::Policy;
use crate::diff::FileChange;
use crate::review::{NotReviewed, NotReviewedReason, RenderHints, ValuesCause};

use super::judge::{TargetAudit, audit_targets};
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
    /// Extra renders per review for values attribution and suggestion checks.
    #[serde(default = "default_attribution_renders")]
    pub max_attribution_renders: usize,
    /// Changed values keys tried one at a time; beyond, in as many groups, bisected.
    #[serde(default = "default_attribution_keys")]
    pub attribution_keys: usize,
}

fn default_attribution_renders() -> usize {
    40
}

fn default_attribution_keys() -> usize {
    20
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
            max_attribution_renders: default_attribution_renders(),
            attribution_keys: default_attribution_keys(),
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
    /// Where charts' findings came from: values keys, template lines.
    pub hints: RenderHints,
    /// Renders run: both sides of each target rendered, and attribution's.
    pub renders: usize,
    pub attribution_renders: usize,
    /// Time spent inside helm and kubectl, over all renders.
    pub tool_time: std::time::Duration,
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
    // A target in a folder the policy ignores is not rendered, as its files are not audited.
    let targets = |side: &Side<'_>| {
        let mut found =
            super::targets::all_targets(side.tree, side.paths, &options.only, &options.charts);
        found.retain(|t| {
            let entry = match t {
                RenderTarget::Helm { root, .. } => super::repository_path(root, "Chart.yaml"),
                RenderTarget::Kustomize { root } => {
                    super::targets::kustomization_in(side.tree, root)
                }
            };
            !entry.is_some_and(|e| policy.ignores(&e))
        });
        found
    };
    let base_targets = targets(&base);
    let head_targets = targets(&head);
    // (name, base target, head target), by the head's name.
    let mut pairs: BTreeMap<String, (Option<RenderTarget>, Option<RenderTarget>)> = BTreeMap::new();
    // A chart with several value sets is several targets.
    for t in base_targets {
        let name = match renamed.get(t.root()) {
            Some(new_root) if matches!(t, RenderTarget::Kustomize { .. }) => new_root.clone(),
            _ => t.name(),
        };
        pairs.entry(name).or_default().0 = Some(t);
    }
    for t in head_targets {
        let name = t.name();
        pairs.entry(name).or_default().1 = Some(t);
    }
    let mut attribution_budget = options.max_attribution_renders;
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
        out.renders += usize::from(head_audit.is_some()) + usize::from(base_audit.is_some());
        out.tool_time += [&head_audit, &base_audit]
            .into_iter()
            .flatten()
            .map(|a| a.tool_time)
            .sum::<std::time::Duration>();
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
        if let (Some(target @ RenderTarget::Helm { .. }), Some(head_audit)) = (&h, &head_audit) {
            let spent = attribute_chart(
                ChartSides {
                    head: &head,
                    base: &base,
                    base_target: b.as_ref(),
                    target,
                },
                &changed,
                head_audit,
                base_audit.as_ref(),
                &tools,
                options,
                policy,
                &mut attribution_budget,
                &mut out.hints,
                &mut out.tool_time,
            );
            out.attribution_renders += spent;
            out.renders += spent;
        }
        // Both sides' findings carry the head's name, so a renamed target matches itself.
        let named = |mut findings: Vec<Finding>| {
            for f in &mut findings {
                f.targets = vec![name.clone()];
                f.fingerprint = crate::audit::fingerprint_at(
                    &f.rule,
                    f.object.as_deref(),
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

/// A chart target on both sides.
struct ChartSides<'a, 's> {
    head: &'a Side<'s>,
    base: &'a Side<'s>,
    base_target: Option<&'a RenderTarget>,
    target: &'a RenderTarget,
}

/// For a chart whose values the change altered: which values key caused each new finding
/// (re-rendering the head with keys set back), its line, and a values suggestion checked by
/// one more render. For every finding of the chart, the template lines holding its key.
/// Gives the renders spent.
#[allow(clippy::too_many_arguments)]
fn attribute_chart(
    sides: ChartSides<'_, '_>,
    changed: &HashSet<&str>,
    head_audit: &TargetAudit,
    base_audit: Option<&TargetAudit>,
    tools: &Tools,
    options: &RenderOptions,
    policy: &Policy,
    budget: &mut usize,
    hints: &mut RenderHints,
    tool_time_out: &mut std::time::Duration,
) -> usize {
    use super::attribute::{
        OverlayTree, REVERT_VALUES, attribute, changed_keys, key_place, merged, values_edit,
        values_files,
    };
    let RenderTarget::Helm { root, values } = sides.target else {
        return 0;
    };
    let head_findings: Vec<&Finding> = head_audit.findings.values().flatten().collect();
    // Each finding's template lines that hold its field's key: where a template change that
    // caused it is said.
    let mut templates: BTreeMap<&str, Option<String>> = BTreeMap::new();
    for f in &head_findings {
        let text = templates.entry(f.path.as_str()).or_insert_with(|| {
            sides
                .head
                .tree
                .read(&f.path)
                .and_then(|b| String::from_utf8(b).ok())
        });
        let key = crate::manifest::FieldPath::parse_display(&f.field_path).and_then(|p| {
            p.segments().iter().rev().find_map(|s| match s {
                crate::manifest::Segment::Key(k) => Some(k.clone()),
                crate::manifest::Segment::Item(_) => None,
            })
        });
        let lines = match (text, key) {
            (Some(text), Some(key)) => super::helm::lines_holding(text, &key),
            _ => Vec::new(),
        };
        hints.key_lines.insert(f.fingerprint.to_string(), lines);
    }
    let files = values_files(root, values);
    if !files.iter().any(|f| changed.contains(f.as_str())) {
        return 0;
    }
    let base_fps: HashSet<&str> = base_audit
        .iter()
        .flat_map(|a| a.findings.values().flatten())
        .map(|f| f.fingerprint.as_str())
        .collect();
    let new: HashSet<String> = head_findings
        .iter()
        .filter(|f| !base_fps.contains(f.fingerprint.as_str()))
        .map(|f| f.fingerprint.to_string())
        .collect();
    if new.is_empty() {
        return 0;
    }
    let base_files = match sides.base_target {
        Some(RenderTarget::Helm { root, values }) => values_files(root, values),
        _ => Vec::new(),
    };
    let keys = changed_keys(
        &merged(sides.base.tree, &base_files),
        &merged(sides.head.tree, &files),
    );
    let tool_time = std::cell::Cell::new(*tool_time_out);
    let render_with = |files: BTreeMap<String, Vec<u8>>, target: &RenderTarget| {
        let tree = OverlayTree {
            inner: sides.head.tree,
            files,
        };
        let audit = audit_targets(
            &tree,
            std::slice::from_ref(target),
            tools,
            &options.limits,
            policy,
        );
        tool_time.set(tool_time.get() + audit.tool_time);
        audit.failed.is_empty().then(|| {
            audit
                .findings
                .values()
                .flatten()
                .map(|f| f.fingerprint.to_string())
                .collect::<HashSet<String>>()
        })
    };
    let reverted_target = RenderTarget::Helm {
        root: root.clone(),
        values: super::helm::ValueSet {
            values_files: values
                .values_files
                .iter()
                .cloned()
                .chain([REVERT_VALUES.to_owned()])
                .collect(),
            ..values.clone()
        },
    };
    let before = *budget;
    let found = attribute(
        &keys,
        &new,
        options.attribution_keys,
        budget,
        &mut |reverting: &serde_json::Value| {
            let bytes = serde_json::to_vec(reverting).ok()?;
            render_with(
                BTreeMap::from([(REVERT_VALUES.to_owned(), bytes)]),
                &reverted_target,
            )
        },
    );
    if found.exhausted {
        tracing::info!(
            target = %sides.target.name(),
            "values attribution stopped at the review's render budget"
        );
    }
    let head_fps: HashSet<&str> = head_findings
        .iter()
        .map(|f| f.fingerprint.as_str())
        .collect();
    let by_key: HashMap<&[String], &super::attribute::ChangedKey> =
        keys.iter().map(|k| (k.key.as_slice(), k)).collect();
    for (fp, key) in found.causes {
        let Some((path, line)) = key_place(sides.head.tree, &files, &key) else {
            continue;
        };
        // A suggestion when the key holds the rendered field's value verbatim, checked by
        // rendering with it applied: the finding gone, nothing new.
        let suggestion = (|| {
            let (current, fixed) = head_audit.fix_values.get(&fp)?;
            let changed = by_key.get(key.as_slice())?;
            if changed.head.as_ref() != Some(current) || fixed.is_object() || fixed.is_array() {
                return None;
            }
            let text = String::from_utf8(sides.head.tree.read(&path)?).ok()?;
            let edits = values_edit(&text, &key, fixed)?;
            if *budget == 0 {
                return None;
            }
            *budget -= 1;
            let applied = crate::fix::apply(&text, &edits);
            let after = render_with(
                BTreeMap::from([(path.clone(), applied.into_bytes())]),
                sides.target,
            )?;
            (!after.contains(&fp) && after.iter().all(|a| head_fps.contains(a.as_str())))
                .then_some(edits)
        })();
        hints.causes.insert(
            fp,
            ValuesCause {
                path,
                line,
                key: key.join("."),
                suggestion,
            },
        );
    }
    *tool_time_out = tool_time.get();
    before - *budget
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
