//! Auditing render targets: each target's rendered objects are one view of a cluster (its
//! cross-object rules see that target only), and every finding is moved to its source place.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::Value as Json;

use crate::audit::{
    AuditResult, Finding, JudgeAgain, Judging, audit, audit_without_fixes, fingerprint_at,
};
use crate::config::Policy;

use super::{RenderError, RenderLimits, RenderTarget, RenderedTarget, Renderer, SourceTree};

/// What rendering and auditing the targets gave.
#[derive(Debug, Default)]
pub struct TargetAudit {
    /// Per target, its findings at their source places; each fingerprint includes the target,
    /// so the same object in two overlays is two objects.
    pub findings: BTreeMap<RenderTarget, Vec<Finding>>,
    /// Exempted findings, likewise.
    pub exempted: BTreeMap<RenderTarget, Vec<Finding>>,
    /// Files the rendered targets read: they are judged through the targets, not as they are.
    pub consumed: BTreeSet<String>,
    /// Targets that could not be rendered, and why.
    pub failed: Vec<(RenderTarget, RenderError)>,
    /// For a chart's finding whose fix sets one field: the field's rendered value and the
    /// value the fix sets, by fingerprint (a values suggestion is offered only when a values
    /// key holds the rendered value verbatim).
    pub fix_values: HashMap<String, (Json, Json)>,
    /// Time spent inside the render tools.
    pub tool_time: std::time::Duration,
    /// Rendered documents and objects audited, over all targets.
    pub documents: usize,
    pub objects: usize,
}

/// A whole tree judged: `files` as they are, except what `targets` read, which is judged
/// through the rendered targets with findings at their source places; sorted by place. The
/// targets that could not be rendered are returned beside it.
pub fn audit_tree(
    tree: &dyn SourceTree,
    files: &[crate::manifest::ManifestFile],
    targets: &[RenderTarget],
    renderer: &dyn Renderer,
    limits: &RenderLimits,
    policy: &Policy,
) -> (AuditResult, Vec<(RenderTarget, RenderError)>) {
    let audited = audit_tree_with(tree, targets, renderer, limits, policy, |consumed| {
        // What is judged as it is shows no fix in any output of a whole tree (reports,
        // snapshots); rendered targets keep theirs, which place findings on values keys.
        let raw: Vec<crate::manifest::ManifestFile> = files
            .iter()
            .filter(|f| !consumed(&f.path))
            .map(|f| f.at_path(f.path.clone()))
            .collect();
        Ok::<_, std::convert::Infallible>((audit_without_fixes(&raw, policy), files.len()))
    });
    match audited {
        Ok(audited) => audited,
        Err(never) => match never {},
    }
}

/// [`audit_tree`] of files each judged as it was parsed ([`Judging::file`], which returned
/// `files`): the same result, holding one full tree at a time. [`JudgeAgain`] when the files
/// must be parsed again and given to [`audit_tree`].
pub fn audit_judged_tree(
    tree: &dyn SourceTree,
    files: Vec<crate::manifest::ManifestFile>,
    judging: Judging<'_>,
    targets: &[RenderTarget],
    renderer: &dyn Renderer,
    limits: &RenderLimits,
    policy: &Policy,
) -> Result<(AuditResult, Vec<(RenderTarget, RenderError)>), JudgeAgain> {
    audit_tree_with(tree, targets, renderer, limits, policy, |consumed| {
        let count = files.len();
        let raw: Vec<crate::manifest::ManifestFile> =
            files.into_iter().filter(|f| !consumed(&f.path)).collect();
        Ok((judging.finish(&raw)?, count))
    })
}

/// Renders `targets`, then audits the files they did not read with `audit_raw` (given what
/// was read; it returns its result and how many files there were in all).
fn audit_tree_with<E>(
    tree: &dyn SourceTree,
    targets: &[RenderTarget],
    renderer: &dyn Renderer,
    limits: &RenderLimits,
    policy: &Policy,
    audit_raw: impl FnOnce(&dyn Fn(&str) -> bool) -> Result<(AuditResult, usize), E>,
) -> Result<(AuditResult, Vec<(RenderTarget, RenderError)>), E> {
    if targets.is_empty() {
        return Ok((audit_raw(&|_| false)?.0, Vec::new()));
    }
    let judged = audit_targets(tree, targets, renderer, limits, policy);
    let consumed = |path: &str| judged.consumed.contains(path.trim_start_matches("./"));
    let (mut result, files) = audit_raw(&consumed)?;
    result.stats.files_audited += files - result.stats.files;
    result.stats.documents += judged.documents;
    result.stats.objects += judged.objects;
    result
        .findings
        .extend(merge_by_place(judged.findings.into_values()));
    result
        .exempted
        .extend(merge_by_place(judged.exempted.into_values()));
    result.findings.sort_by(|a, b| {
        (&a.path, a.line, a.column, &a.rule).cmp(&(&b.path, b.line, b.column, &b.rule))
    });
    result.stats.findings.clear();
    for f in &result.findings {
        *result.stats.findings.entry(f.severity).or_default() += 1;
    }
    result.stats.exempted = result.exempted.len();
    Ok((result, judged.failed))
}

/// Renders and audits `targets`, in order.
pub fn audit_targets(
    tree: &dyn SourceTree,
    targets: &[RenderTarget],
    renderer: &dyn Renderer,
    limits: &RenderLimits,
    policy: &Policy,
) -> TargetAudit {
    let mut out = TargetAudit::default();
    for target in targets {
        match super::render(tree, target, renderer, limits, policy.yaml_limits) {
            Ok(rendered) => {
                out.tool_time += rendered.tool_time;
                let result = audit(std::slice::from_ref(&rendered.file), policy);
                out.documents += result.stats.documents;
                out.objects += result.stats.objects;
                if matches!(target, RenderTarget::Helm { .. }) {
                    out.fix_values.extend(fix_values(&result, &rendered));
                }
                let (findings, mut exempted) = placed(result, &rendered, tree);
                let (findings, by_path) = exempted_by_source_path(findings, policy);
                exempted.extend(by_path);
                out.consumed.extend(rendered.closure.files.iter().cloned());
                out.findings.insert(target.clone(), findings);
                out.exempted.insert(target.clone(), exempted);
            }
            Err(error) => out.failed.push((target.clone(), error)),
        }
    }
    out
}

/// Path exemptions name repository files, and a rendered finding's file is known only once it
/// is placed: the template, patch or base file that holds it. Applied here, so a chart or base
/// the policy exempts by path is exempt through every target that renders it.
fn exempted_by_source_path(
    findings: Vec<Finding>,
    policy: &Policy,
) -> (Vec<Finding>, Vec<Finding>) {
    if !policy.config_exemptions || policy.exemptions.iter().all(|e| e.paths.is_empty()) {
        return (findings, Vec::new());
    }
    let (mut kept, mut exempted) = (Vec::new(), Vec::new());
    for mut f in findings {
        let (namespace, name) = f
            .object
            .as_ref()
            .map_or(("", ""), |o| (o.namespace.as_str(), o.name.as_str()));
        let path = policy.policy_path(&f.path);
        let by = policy
            .exemptions
            .iter()
            .filter(|e| !e.paths.is_empty())
            .find(|e| e.matches_fields(&f.rule, namespace, name, f.container.as_deref(), &path))
            .map(|e| e.describe());
        match by {
            Some(reason) => {
                f.exempted_by = Some(reason);
                exempted.push(f);
            }
            None => kept.push(f),
        }
    }
    (kept, exempted)
}

fn fix_values<'r>(
    result: &'r AuditResult,
    rendered: &'r RenderedTarget,
) -> impl Iterator<Item = (String, (Json, Json))> + 'r {
    let docs = rendered.file.content.as_ref().ok();
    result.findings.iter().filter_map(move |f| {
        let [crate::fix::FixOp::Set { path, value }] = f.fix.as_slice() else {
            return None;
        };
        let loc = f.location.as_ref().filter(|l| l.list_path.is_none())?;
        let object = docs?.get(loc.doc_index)?.root.as_ref().ok()?;
        let current = crate::fix::node_at(object, path)?.to_json();
        Some((
            fingerprint_at(
                &f.rule,
                f.object.as_deref(),
                f.container.as_deref(),
                &f.field_path,
                &format!("target:{}", rendered.target.name()),
            )
            .to_string(),
            (current, value.clone()),
        ))
    })
}

fn placed(
    result: AuditResult,
    rendered: &RenderedTarget,
    tree: &dyn SourceTree,
) -> (Vec<Finding>, Vec<Finding>) {
    let place = |mut f: Finding| {
        let doc = f.location.as_ref().map(|l| l.doc_index);
        let entry = rendered
            .closure
            .kustomizations
            .get(rendered.target.root())
            .cloned()
            .unwrap_or_default();
        let place = match &rendered.target {
            RenderTarget::Kustomize { .. } => {
                doc.and_then(|doc| super::place_of(&f, doc, rendered, tree))
            }
            RenderTarget::Helm { .. } => {
                doc.and_then(|doc| template_place(&f, doc, rendered, tree))
            }
        };
        match place {
            Some(place) => {
                f.path = place.path.into();
                f.line = place.span.start.line;
                f.column = place.span.start.col;
                f.end_line = place.span.last_line();
                f.end_column = place.span.end.col;
            }
            // No source to point at (a generated object, a parse error of the output): the
            // target's kustomization.
            None => {
                f.path = entry.into();
                f.line = 1;
                f.column = 1;
                f.end_line = 1;
                f.end_column = 1;
            }
        }
        // A generated object's identity leaves out its content hash.
        if doc.is_some_and(|d| rendered.generated.get(d).copied().unwrap_or(false))
            && let Some(object) = f.object.as_mut()
        {
            // Shared with the object's other findings, each renamed in turn: this one gets
            // its own copy.
            let object = std::sync::Arc::make_mut(object);
            object.name = super::without_hash_suffix(&object.name).to_owned();
        }
        f.fingerprint = fingerprint_at(
            &f.rule,
            f.object.as_deref(),
            f.container.as_deref(),
            &f.field_path,
            &format!("target:{}", rendered.target.name()),
        );
        // The rendered stream's positions mean nothing in the source: fixes are not offered.
        f.fix.clear();
        f.location = None;
        f.targets = vec![rendered.target.name().to_owned()];
        f
    };
    (
        result.findings.into_iter().map(place).collect(),
        result.exempted.into_iter().map(place).collect(),
    )
}

pub use crate::review::merge_by_place;

/// A chart's finding is said in the template its document came from (`# Source:`), on the line
/// that holds the field's key (after the keys above it), else on the template's first line.
fn template_place(
    f: &Finding,
    doc: usize,
    rendered: &RenderedTarget,
    tree: &dyn SourceTree,
) -> Option<super::SourcePlace> {
    let template = rendered.origins.get(doc)?.as_ref()?;
    let text = tree
        .read(template)
        .and_then(|b| String::from_utf8(b).ok())?;
    let path = crate::manifest::FieldPath::parse_display(&f.field_path)?;
    let keys: Vec<&str> = path
        .segments()
        .iter()
        .filter_map(|s| match s {
            crate::manifest::Segment::Key(k) => Some(k.as_str()),
            crate::manifest::Segment::Item(_) => None,
        })
        .collect();
    let line = super::helm::key_line(&text, &keys).unwrap_or(1);
    let mark = crate::yaml::Mark { line, col: 1 };
    Some(super::SourcePlace {
        path: template.clone(),
        span: crate::yaml::Span {
            start: mark,
            end: mark,
        },
        exact: false,
        patch: false,
    })
}
