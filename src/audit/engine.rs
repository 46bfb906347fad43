//! Runs the active rules over every object and turns violations into findings.

use std::collections::BTreeMap;

use foldhash::{HashSet, HashSetExt};
use std::sync::Mutex;

use rayon::prelude::*;
use serde::Serialize;
use serde_json::Value as Json;

use super::builtins::Context;
use super::eval::{Scope, Step, Violation, expand};
use super::exempt::annotation_exemption;
use super::model::{Category, Severity, Target};
use super::rule::{Autofix, Check, Rule, kind_matches};
use super::schema::{SchemaCheck, kubernetes_view};
use super::{Finding, ObjectLocation, ObjectRef, PARSE_ERROR, Shared, fingerprint};
use crate::config::Policy;
use crate::fix::FixOp;
use crate::manifest::{Container, FieldPath, Inventory, ManifestFile, Object, Segment, SkipReason};
use crate::walk::Excluded;
use crate::yaml::{Node, Span, Value};

#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    pub files: usize,
    pub files_audited: usize,
    pub files_skipped: BTreeMap<SkipReason, usize>,
    /// Manifest candidates the walk left out, not counted in `files`: the caller's to fill.
    pub files_excluded: BTreeMap<Excluded, usize>,
    pub documents: usize,
    pub objects: usize,
    pub rules: usize,
    pub findings: BTreeMap<Severity, usize>,
    pub exempted: usize,
}

#[derive(Debug, Default)]
pub struct AuditResult {
    /// Findings that count, sorted by file and position.
    pub findings: Vec<Finding>,
    /// Findings silenced by an exemption, kept so a review can say what an exemption hides.
    pub exempted: Vec<Finding>,
    pub stats: Stats,
}

/// Audits a set of parsed files. Cross-object rules see every object of the set.
pub fn audit(files: &[ManifestFile], policy: &Policy) -> AuditResult {
    audit_focused(files, policy, &|_| true, &|_| false)
}

/// [`audit`] for outputs that show no fix (the reports of `audit`, snapshots): each finding's
/// fix operations and object location are not built, which is about a tenth of a large
/// audit's memory.
pub fn audit_without_fixes(files: &[ManifestFile], policy: &Policy) -> AuditResult {
    audit_with(files, policy, &|_| true, &|_| false, false)
}

/// Audits the files `focus` accepts fully; the others only feed cross-object rules, whose
/// findings on them are still reported (a relabelled Deployment breaks an untouched Service).
/// This is how a review audits a revision without re-auditing every untouched file. Objects
/// outside the focus that `settled` accepts are judged by no rule: the caller knows their
/// cross-object findings cannot differ from the other revision's (see [`super::Reach`]).
pub fn audit_focused(
    files: &[ManifestFile],
    policy: &Policy,
    focus: &(dyn Fn(&str) -> bool + Sync),
    settled: &(dyn Fn(&Object<'_>) -> bool + Sync),
) -> AuditResult {
    audit_with(files, policy, focus, settled, true)
}

fn audit_with(
    files: &[ManifestFile],
    policy: &Policy,
    focus: &(dyn Fn(&str) -> bool + Sync),
    settled: &(dyn Fn(&Object<'_>) -> bool + Sync),
    fixes: bool,
) -> AuditResult {
    let mut objects: Vec<Object<'_>> = Vec::with_capacity(
        files
            .iter()
            .filter_map(|f| f.content.as_ref().ok())
            .map(|docs| docs.len())
            .sum(),
    );
    for file in files {
        objects.extend(file.objects());
    }
    crate::manifest::apply_custom_scopes(&mut objects);
    let inventory = Inventory::new(objects);
    // One list per object, in object order, then one buffer that is sorted in place.
    let per_object: Vec<Vec<Finding>> = inventory
        .objects
        .par_iter()
        .map(|object| {
            let rules = match focus(object.file) {
                true => Rules::All,
                false if settled(object) => return Vec::new(),
                false => Rules::CrossObject,
            };
            audit_object(object, &inventory, policy, rules, fixes)
        })
        .collect();
    let objects = inventory.objects.len();
    let mut findings = Vec::with_capacity(per_object.iter().map(Vec::len).sum());
    findings.extend(per_object.into_iter().flatten());
    finish(files, policy, focus, objects, findings)
}

/// Which of a policy's rules an object is judged by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rules {
    All,
    /// The rules that look at other objects too.
    CrossObject,
    /// The rules that look at nothing but the object.
    PerObject,
}

impl Rules {
    fn includes(self, rule: &Rule) -> bool {
        match self {
            Rules::All => true,
            Rules::CrossObject => rule.check.uses_inventory(),
            Rules::PerObject => !rule.check.uses_inventory(),
        }
    }
}

/// An audit that judges each file as it is parsed ([`Judging::file`]) and keeps of it only its
/// inventory view (see [`super::view`]) when the policy allows; [`Judging::finish`] runs the
/// cross-object rules on the views. The same result as [`audit_without_fixes`], holding one
/// full tree per thread instead of every tree of the input.
pub struct Judging<'p> {
    policy: &'p Policy,
    shape: Option<super::view::ViewShape<'p>>,
    /// Every finding so far, each file's together and in object order. One buffer that files
    /// append to as they are judged: the findings are never held twice.
    findings: Mutex<Vec<Finding>>,
    /// (group, kind) of the objects judged with a namespace: a CustomResourceDefinition elsewhere
    /// in the input may take it away, which changes what they were judged as.
    namespaced: Mutex<HashSet<(String, String)>>,
    /// Files judged: when `finish` is given as many, none was left out and no finding needs
    /// dropping.
    judged: std::sync::atomic::AtomicUsize,
}

/// A CustomResourceDefinition of the input makes a kind cluster-scoped that some object was
/// judged namespaced: the files must be judged again as a whole ([`audit_without_fixes`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JudgeAgain;

impl<'p> Judging<'p> {
    pub fn new(policy: &'p Policy) -> Judging<'p> {
        Judging {
            shape: super::view::view_suffices(policy).then(|| super::view::ViewShape::new(policy)),
            ..Judging::keeping_trees(policy)
        }
    }

    /// A [`Judging`] that keeps every file whole: for input that cannot be read twice (stdin),
    /// so that [`Judging::finish`] never has to answer [`JudgeAgain`].
    pub fn keeping_trees(policy: &'p Policy) -> Judging<'p> {
        Judging {
            policy,
            shape: None,
            findings: Mutex::new(Vec::new()),
            namespaced: Mutex::new(HashSet::new()),
            judged: Default::default(),
        }
    }

    /// Judges `file` by the per-object rules (no fix built, as [`audit_without_fixes`]) and
    /// returns what the cross-object rules need of it. Called from many threads at once.
    pub fn file(&self, file: ManifestFile) -> ManifestFile {
        self.judged
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let empty = Inventory::default();
        let objects = file.objects();
        let findings: Vec<Finding> = objects
            .iter()
            .flat_map(|object| audit_object(object, &empty, self.policy, Rules::PerObject, false))
            .collect();
        let namespaced: Vec<(String, String)> = objects
            .iter()
            .filter(|o| o.namespace.is_some())
            .map(|o| (o.group().to_owned(), o.kind.to_owned()))
            .collect();
        drop(objects);
        if !namespaced.is_empty() {
            lock(&self.namespaced).extend(namespaced);
        }
        if !findings.is_empty() {
            lock(&self.findings).extend(findings);
        }
        match &self.shape {
            Some(shape) => shape.view(&file),
            None => file,
        }
    }

    /// Finishes the audit of `files`, each returned by [`Judging::file`]; findings on paths
    /// `files` does not hold (files a caller left out after judging) are dropped.
    pub fn finish(self, files: &[ManifestFile]) -> Result<AuditResult, JudgeAgain> {
        let policy = self.policy;
        let namespaced = self
            .namespaced
            .into_inner()
            .unwrap_or_else(|e| e.into_inner());
        let mut findings = self
            .findings
            .into_inner()
            .unwrap_or_else(|e| e.into_inner());
        let mut objects: Vec<Object<'_>> = files.iter().flat_map(|f| f.objects()).collect();
        let scoped: Vec<bool> = objects.iter().map(|o| o.namespace.is_some()).collect();
        crate::manifest::apply_custom_scopes(&mut objects);
        let lost_namespace = objects.iter().zip(&scoped).any(|(o, &had)| {
            had && o.namespace.is_none()
                && namespaced.contains(&(o.group().to_owned(), o.kind.to_owned()))
        });
        if lost_namespace {
            // Files kept whole are judged again here; views cannot be.
            return match self.shape {
                None => Ok(audit_without_fixes(files, policy)),
                Some(_) => Err(JudgeAgain),
            };
        }
        if files.len() < self.judged.into_inner() {
            let paths: HashSet<&str> = files.iter().map(|f| f.path.as_str()).collect();
            findings.retain(|f| paths.contains(f.path.as_str()));
        }
        let inventory = Inventory::new(objects);
        let cross_object: Vec<Vec<Finding>> = inventory
            .objects
            .par_iter()
            .map(|object| audit_object(object, &inventory, policy, Rules::CrossObject, false))
            .collect();
        // Each rule is either per-object or cross-object, and each file's findings were
        // appended together in object order: findings of one rule on one file keep their
        // order, and sort exactly as one pass would sort them.
        findings.reserve_exact(cross_object.iter().map(Vec::len).sum());
        findings.extend(cross_object.into_iter().flatten());
        let objects = inventory.objects.len();
        Ok(finish(files, policy, &|_| true, objects, findings))
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while judging has already failed the audit; what was appended stays valid.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// Counts, orders and splits the findings of an audit of `files`, adding their parse errors.
fn finish(
    files: &[ManifestFile],
    policy: &Policy,
    focus: &(dyn Fn(&str) -> bool + Sync),
    objects: usize,
    mut all: Vec<Finding>,
) -> AuditResult {
    let parse_errors_on = policy.parse_error_severity != Severity::Ignore;
    let parse_errors: Vec<Finding> = files
        .iter()
        .filter(|f| parse_errors_on && focus(&f.path))
        .flat_map(|file| {
            file.parse_errors()
                .map(|(_, error)| parse_error_finding(&file.path, error, policy))
        })
        .collect();
    let mut stats = Stats {
        files: files.len(),
        rules: policy.rules.len(),
        objects,
        ..Stats::default()
    };
    // Every finding once, in one buffer that is sorted in place: findings are large, and a
    // second buffer of them would be the audit's largest allocation.
    all.reserve_exact(parse_errors.len());
    all.extend(parse_errors);
    let mut counted = Vec::new();
    let mut exempted = Vec::new();
    for (i, finding) in all.iter().enumerate() {
        if finding.exempted_by.is_some() {
            exempted.push(i);
        } else {
            *stats.findings.entry(finding.severity).or_default() += 1;
            counted.push(i);
        }
    }
    for file in files {
        match &file.content {
            Ok(docs) => {
                stats.files_audited += 1;
                stats.documents += docs.len();
            }
            Err(reason) => *stats.files_skipped.entry(*reason).or_default() += 1,
        }
    }
    // Findings are ordered by (path, line, column, rule, fingerprint), ties keeping their
    // order. Sorting compact keys (the path's rank, line, column, position) decides almost
    // every comparison without touching the findings; rule and fingerprint break the rest.
    let mut paths: Vec<&str> = all.iter().map(|f| f.path.as_str()).collect();
    paths.dedup(); // an object's findings are adjacent: about one entry per file is left
    paths.sort_unstable();
    paths.dedup();
    let mut ranks = Vec::with_capacity(all.len());
    let mut last: Option<(&str, usize)> = None;
    for finding in &all {
        let path = finding.path.as_str();
        let rank = match last {
            Some((p, rank)) if p == path => rank,
            _ => paths.binary_search(&path).unwrap_or_default(),
        };
        last = Some((path, rank));
        ranks.push(rank);
    }
    let sort_key = |i: usize| (ranks[i], all[i].line, all[i].column, i);
    let tie = |i: usize| (&all[i].rule, &all[i].fingerprint);
    let order = |positions: Vec<usize>| -> Vec<usize> {
        let mut keys: Vec<_> = positions.into_iter().map(sort_key).collect();
        keys.sort_unstable_by(|a, b| {
            (a.0, a.1, a.2)
                .cmp(&(b.0, b.1, b.2))
                .then_with(|| tie(a.3).cmp(&tie(b.3)))
                .then(a.3.cmp(&b.3))
        });
        keys.into_iter().map(|k| k.3).collect()
    };
    // The counted findings in order, then the exempted ones in order.
    let mut placement = order(counted);
    let counted = placement.len();
    placement.extend(order(exempted));
    drop(paths);
    permute(&mut all, &placement);
    let exempted = all.split_off(counted);
    let mut result = AuditResult {
        findings: all,
        exempted,
        ..AuditResult::default()
    };
    stats.exempted = result.exempted.len();
    result.stats = stats;
    result
}

/// Reorders `items` in place so that `items[k]` becomes the old `items[order[k]]`; `order` is
/// a permutation. Each cycle of it is walked once with swaps: no second buffer of items.
fn permute<T>(items: &mut [T], order: &[usize]) {
    let mut placed = vec![false; items.len()];
    for start in 0..items.len() {
        if placed[start] {
            continue;
        }
        let mut at = start;
        loop {
            placed[at] = true;
            let from = order[at];
            if from == start {
                break;
            }
            items.swap(at, from);
            at = from;
        }
    }
}

fn parse_error_finding(path: &str, error: &crate::yaml::ParseError, policy: &Policy) -> Finding {
    let severity = policy.parse_error_severity;
    // Identity: the error text. A review matches findings per file, following renames, so a
    // broken file the change only renamed, moved or left alone stays "pre-existing"; the path
    // itself is not part of it.
    let field_path = format!("document:{}", error.message);
    Finding {
        rule: PARSE_ERROR.into(),
        severity,
        category: Category::Input,
        path: path.into(),
        line: error.mark.line,
        column: error.mark.col,
        end_line: error.mark.line,
        end_column: error.mark.col,
        object: None,
        container: None,
        fingerprint: fingerprint(PARSE_ERROR, None, None, &field_path),
        field_path: Default::default(),
        // A file over its parse budget may be valid YAML: its message says what it is over.
        message: match error.budget {
            Some(_) => error.message.as_str().into(),
            None => format!("not valid YAML: {}", error.message).into(),
        },
        exempted_by: None,
        fix: Vec::new(),
        location: None,
        targets: Vec::new(),
    }
}

/// Every finding for one object; an exempted one says by what (`exempted_by`).
fn audit_object(
    object: &Object<'_>,
    inventory: &Inventory<'_>,
    policy: &Policy,
    rules: Rules,
    fixes: bool,
) -> Vec<Finding> {
    // Built on the first finding (most objects have few, many have none), shared by all.
    let mut object_ref: Option<std::sync::Arc<ObjectRef>> = None;
    let mut path: Option<Shared> = None;
    let mut out = Vec::new();
    for active in &policy.rules {
        let rule = &active.rule;
        if !rules.includes(rule) {
            continue;
        }
        for (violation, scope, container) in evaluate(rule, object, inventory) {
            let fix = if fixes {
                fix_ops(rule, &scope, &violation)
            } else {
                Vec::new()
            };
            let object_ref = object_ref.get_or_insert_with(|| {
                std::sync::Arc::new(ObjectRef {
                    api_version: object.api_version.to_owned(),
                    kind: object.kind.to_owned(),
                    namespace: object.namespace_or_default().to_owned(),
                    name: object.name.to_owned(),
                })
            });
            let path = path.get_or_insert_with(|| object.file.into());
            let mut finding = make_finding(active, path, object, object_ref, container, violation);
            finding.fix = fix;
            if !fixes {
                finding.location = None;
            }
            finding.exempted_by = exemption(rule, object, container, policy);
            out.push(finding);
        }
    }
    out
}

fn exemption(
    rule: &Rule,
    object: &Object<'_>,
    container: Option<&Container<'_>>,
    policy: &Policy,
) -> Option<String> {
    if policy.annotation_exemptions
        && let Some(key) = annotation_exemption(rule, object)
    {
        return Some(format!("annotation {key}"));
    }
    if policy.config_exemptions {
        let container_name = container.map(|c| c.name);
        let mut path = None;
        for e in &policy.exemptions {
            // Only path globs need the policy's view of the path: worked out once, if at all.
            let path = match e.paths.is_empty() {
                true => "",
                false => path.get_or_insert_with(|| policy.policy_path(object.file)),
            };
            if e.matches(&rule.id, Some(object), container_name, path) {
                return Some(e.describe());
            }
        }
    }
    None
}

fn make_finding(
    active: &crate::config::ActiveRule,
    path: &Shared,
    object: &Object<'_>,
    object_ref: &std::sync::Arc<ObjectRef>,
    container: Option<&Container<'_>>,
    violation: Violation,
) -> Finding {
    let (rule, severity) = (&active.rule, active.severity);
    let field_path = violation.path.to_text();
    let container_name = container.map(|c| compact_str::CompactString::from(c.name));
    let message = match &violation.detail {
        Some(detail) => format!("{}: {detail}", rule.message).into(),
        None => rule.message.clone(),
    };
    Finding {
        rule: active.id.clone(),
        severity,
        category: rule.category,
        path: path.clone(),
        line: violation.span.start.line,
        column: violation.span.start.col,
        // Exclusive end, as SARIF regions read it: (11, 1) ends before line 11's text.
        end_line: violation.span.end.line.max(violation.span.start.line),
        end_column: violation.span.end.col,
        object: Some(object_ref.clone()),
        fingerprint: fingerprint(
            &rule.id,
            Some(object_ref),
            container_name.as_deref(),
            &field_path,
        ),
        container: container_name,
        field_path: field_path.into(),
        message,
        exempted_by: None,
        fix: Vec::new(),
        location: Some(Box::new(ObjectLocation {
            doc_index: object.doc_index,
            list_path: object.list_path.clone(),
            start_line: object.node.span.start.line,
            end_line: object.node.span.last_line(),
            container_lines: container.map(|c| (c.node.span.start.line, c.node.span.last_line())),
        })),
        targets: Vec::new(),
    }
}

/// The rule's fix for one violation, as operations on the object.
fn fix_ops(rule: &Rule, scope: &Scope<'_>, violation: &Violation) -> Vec<FixOp> {
    let mut ops = Vec::new();
    for autofix in &rule.autofix {
        match autofix {
            Autofix::Set(steps, value) => {
                let mut path = scope.path.copy_with_room(steps.len());
                for step in steps {
                    if let Step::Key(k) = step {
                        path.push_key(k);
                    }
                }
                ops.push(FixOp::Set {
                    path,
                    value: value.clone(),
                });
            }
            Autofix::Remove(steps) => {
                let related = |p: &FieldPath| {
                    let (a, b) = (p.segments(), violation.path.segments());
                    a.starts_with(b) || b.starts_with(a)
                };
                for path in expand(scope.node, scope.path, steps) {
                    if related(&path) {
                        ops.push(FixOp::Remove { path });
                    }
                }
            }
        }
    }
    ops
}

/// The path of an object's own root (List items are rebased later, from `list_path`).
static ROOT: FieldPath = FieldPath::root();

/// Violations of one rule on one object, with the container each concerns.
pub fn evaluate<'s, 'a>(
    rule: &Rule,
    object: &'s Object<'a>,
    inventory: &'s Inventory<'a>,
) -> Vec<(Violation, Scope<'s>, Option<&'s Container<'a>>)> {
    let object_scope = || Scope {
        node: object.node,
        path: &ROOT,
        anchor: object_anchor(object.node),
        object: object.node,
        pod_spec: None,
    };
    let run = |scope: Scope<'s>, container: Option<&'s Container<'a>>| {
        run_check(&rule.check, object, container, &scope, inventory)
            .into_iter()
            .map(|v| (v, scope, container))
            .collect::<Vec<_>>()
    };
    match rule.target {
        Target::Object => {
            if rule.matches_kind(object.group(), object.kind) {
                run(object_scope(), None)
            } else {
                Vec::new()
            }
        }
        Target::Controller => match &object.pod {
            Some(_) if rule.controllers.allows(object.kind) => run(object_scope(), None),
            _ => Vec::new(),
        },
        Target::PodSpec | Target::PodTemplate | Target::Container => {
            let Some(pod) = &object.pod else {
                return Vec::new();
            };
            if !rule.controllers.allows(object.kind) {
                return Vec::new();
            }
            match rule.target {
                Target::PodSpec => run(
                    Scope {
                        node: pod.spec,
                        path: &pod.spec_path,
                        anchor: pod.spec_anchor,
                        object: object.node,
                        pod_spec: None,
                    },
                    None,
                ),
                Target::PodTemplate => run(
                    Scope {
                        node: pod.template,
                        path: &pod.template_path,
                        anchor: pod.template.span,
                        object: object.node,
                        pod_spec: None,
                    },
                    None,
                ),
                _ => pod
                    .containers
                    .iter()
                    .filter(|c| rule.containers.allows(c.kind))
                    .flat_map(|c| {
                        run(
                            Scope {
                                node: c.node,
                                path: &c.path,
                                anchor: c.node.span,
                                object: object.node,
                                pod_spec: Some((pod.spec, &pod.spec_path, pod.spec_anchor)),
                            },
                            Some(c),
                        )
                    })
                    .collect(),
            }
        }
    }
}

/// The first line of an object: where to point for a missing top-level field.
fn object_anchor(node: &Node) -> Span {
    node.entry("kind").map_or(node.span, |e| e.key_span)
}

fn run_check<'a>(
    check: &Check,
    object: &Object<'a>,
    container: Option<&Container<'a>>,
    scope: &Scope<'a>,
    inventory: &Inventory<'a>,
) -> Vec<Violation> {
    match check {
        Check::Require(a) => a.require(scope),
        Check::Forbid(a) => a.forbid(scope),
        Check::AllOf(parts) => parts
            .iter()
            .flat_map(|p| run_check(p, object, container, scope, inventory))
            .collect(),
        Check::AnyOf(parts) => {
            let mut first = None;
            for part in parts {
                let violations = run_check(part, object, container, scope, inventory);
                if violations.is_empty() {
                    return Vec::new();
                }
                first.get_or_insert(violations);
            }
            first.unwrap_or_default()
        }
        Check::Builtin(builtin) => builtin.run(&Context {
            object,
            container,
            scope,
            inventory,
        }),
        Check::Schema(schema) => run_schema(schema, object, container, scope, inventory),
    }
}

/// What Polaris's template placeholders read: the object, plus `.Polaris.*` views.
fn template_input(object: &Object<'_>, container: Option<&Container<'_>>) -> Json {
    let mut input = object.node.to_json();
    if let (Some(pod), Json::Object(map)) = (&object.pod, &mut input) {
        let mut polaris = serde_json::Map::new();
        polaris.insert("PodSpec".into(), pod.spec.to_json());
        polaris.insert("PodTemplate".into(), pod.template.to_json());
        if let Some(c) = container {
            polaris.insert("Container".into(), c.node.to_json());
        }
        map.insert("Polaris".into(), Json::Object(polaris));
    }
    input
}

fn run_schema<'a>(
    schema: &SchemaCheck,
    object: &Object<'a>,
    container: Option<&Container<'a>>,
    scope: &Scope<'a>,
    inventory: &Inventory<'a>,
) -> Vec<Violation> {
    let input = || template_input(object, container);
    let mut instance = kubernetes_view(scope.node);
    let mut path = scope.path.clone();
    if schema.pod_spec_target
        && let (Some(c), Some(pod)) = (container, &object.pod)
    {
        // Polaris evaluates such checks on a copy of the pod spec holding only this container.
        instance = kubernetes_view(pod.spec);
        if let Value::Map(entries) = &mut instance.value {
            entries.retain(|e| e.key != "initContainers" && e.key != "ephemeralContainers");
            if let Some(list) = entries.iter_mut().find(|e| e.key == "containers") {
                list.value.value = Value::Seq(vec![kubernetes_view(c.node)]);
            } else {
                entries.push(crate::yaml::Entry {
                    key: "containers".into(),
                    key_span: c.node.span,
                    value: Node::new(Value::Seq(vec![kubernetes_view(c.node)]), c.node.span),
                });
            }
        }
        path = pod.spec_path.clone();
    }
    if let Err(mut violation) = schema.validate(&instance, &path, &input) {
        if schema.pod_spec_target
            && let Some(c) = container
        {
            // Errors inside the one-container copy belong to the real container.
            violation.path = rebase_container_path(&violation.path, &path, c);
        }
        return vec![violation];
    }
    if schema.additional.is_empty() {
        return Vec::new();
    }
    let input = input();
    for (group_kind, additional) in &schema.additional {
        let candidates: Vec<&Node> = inventory
            .objects
            .iter()
            .filter(|o| {
                additional_kind_matches(group_kind, o.group(), o.kind)
                    && (o.namespace.is_none() || o.same_namespace(object))
            })
            .map(|o| o.node)
            .collect();
        if SchemaCheck::additional_satisfied(additional, &candidates, &input) {
            continue;
        }
        return vec![Violation {
            span: scope.anchor,
            path: scope.path.clone(),
            detail: Some(format!("no {group_kind} in the input satisfies the check")),
        }];
    }
    Vec::new()
}

/// Polaris names additional kinds as `group/Kind`, `/Kind` or bare `Kind` for the core group.
pub(super) fn additional_kind_matches(pattern: &str, group: &str, kind: &str) -> bool {
    if pattern.contains('/') {
        kind_matches(pattern, group, kind)
    } else {
        pattern == kind && group.is_empty()
    }
}

fn rebase_container_path(path: &FieldPath, spec_path: &FieldPath, c: &Container<'_>) -> FieldPath {
    let spec_len = spec_path.segments().len();
    let segments = path.segments();
    let inside_copy = segments.len() >= spec_len + 2
        && segments[..spec_len] == *spec_path.segments()
        && matches!(&segments[spec_len], Segment::Key(k) if k == "containers");
    if inside_copy {
        c.path.extend(&segments[spec_len + 2..])
    } else {
        path.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::{audit, audit_without_fixes, permute};
    use crate::audit::registry::Registry;
    use crate::config::Policy;
    use crate::manifest::ManifestFile;

    #[test]
    fn an_audit_without_fixes_finds_the_same_findings_and_builds_no_fix() {
        let policy = Policy::defaults(&Registry::builtin().expect("built-in rules"));
        let file = ManifestFile::parse(
            "apps/web.yaml",
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: shop}\n\
             spec:\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: \
             {labels: {app: web}}\n    spec:\n      hostNetwork: true\n      containers:\n\
             \x20       - name: web\n          image: web:latest\n          securityContext:\n\
             \x20           privileged: true\n",
            crate::yaml::Limits::default(),
        );
        let files = [file];
        let with = audit(&files, &policy);
        let without = audit_without_fixes(&files, &policy);
        assert!(
            with.findings.iter().any(|f| !f.fix.is_empty()),
            "some finding here has a fix"
        );
        assert!(without.findings.iter().all(|f| f.fix.is_empty()));
        let mut stripped = with.findings.clone();
        for f in &mut stripped {
            f.fix.clear();
            f.location = None;
        }
        assert_eq!(stripped, without.findings);
        assert_eq!(with.stats.findings, without.stats.findings);
    }

    #[test]
    fn permute_places_each_item_where_the_order_says() {
        // Every permutation of five items, checked against a copy.
        let mut orders = vec![vec![]];
        for n in 0..5usize {
            orders = orders
                .into_iter()
                .flat_map(|o: Vec<usize>| {
                    (0..=n).map(move |at| {
                        let mut o = o.clone();
                        o.insert(at, n);
                        o
                    })
                })
                .collect();
        }
        assert_eq!(orders.len(), 120);
        for order in orders {
            let old: Vec<String> = (0..5).map(|i| format!("item {i}")).collect();
            let mut items = old.clone();
            permute(&mut items, &order);
            let wanted: Vec<String> = order.iter().map(|&i| old[i].clone()).collect();
            assert_eq!(items, wanted, "{order:?}");
        }
    }
}
