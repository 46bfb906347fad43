//! The inventory view of a file: what the cross-object rules read of its objects, and nothing
//! else. A large audit judges each file by its own rules as soon as it is parsed and keeps only
//! this view for the cross-object rules, so that the audit holds one full tree per file being
//! parsed instead of every tree of the input.
//!
//! The view is a subset of the real tree: kept entries keep their keys, spans and order, so a
//! cross-object rule reads exactly the nodes it would read on the whole tree, and reports the
//! same places. What it keeps:
//!
//! - whole objects of the kinds the cross-object rules look up (ServiceAccounts, roles,
//!   NetworkPolicies, PodDisruptionBudgets, HorizontalPodAutoscalers, Services) and of the kinds
//!   such a rule judges as a whole object (Services, Ingresses, bindings...);
//! - of every other object: its scalar fields, selectors, `scaleTargetRef`, a CRD's `names`, and
//!   the way down to its pod template, of which the labels and the pod spec's scalar fields
//!   (service account settings). A container list is kept empty: its presence makes a custom
//!   kind a workload, its items are read by per-object rules only;
//! - of every `metadata`: its scalar fields and the annotations that exempt; labels only of pod
//!   templates and of Pods, which are their own (no cross-object rule reads other labels or
//!   annotations).
//!
//! This is only sound for rules that are builtins (see [`view_suffices`]); a policy with a
//! path or schema check that looks across objects keeps whole trees.

use super::model::Target;
use super::rule::Check;
use crate::config::Policy;
use crate::manifest::{ManifestFile, Object};
use crate::yaml::{Entry, Node, ParsedDocument, Value};

/// Kinds a cross-object rule reads when it looks at *other* objects.
const LOOKED_UP_KINDS: &[&str] = &[
    "ServiceAccount",
    "Role",
    "ClusterRole",
    "NetworkPolicy",
    "PodDisruptionBudget",
    "HorizontalPodAutoscaler",
    "Service",
];

/// Whether the cross-object rules of `policy` can run on inventory views: every one of them is
/// made of builtins, whose reads this module mirrors.
pub fn view_suffices(policy: &Policy) -> bool {
    policy
        .rules
        .iter()
        .filter(|r| r.rule.check.uses_inventory())
        .all(|r| builtins_only(&r.rule.check))
}

fn builtins_only(check: &Check) -> bool {
    match check {
        Check::Builtin(_) => true,
        Check::AnyOf(parts) | Check::AllOf(parts) => parts.iter().all(builtins_only),
        Check::Require(_) | Check::Forbid(_) | Check::Schema(_) => false,
    }
}

/// Which objects a policy's cross-object rules need whole.
pub struct ViewShape<'p> {
    /// Cross-object rules that judge objects as a whole (`target: Object`).
    object_rules: Vec<&'p super::Rule>,
}

impl<'p> ViewShape<'p> {
    pub fn new(policy: &'p Policy) -> ViewShape<'p> {
        ViewShape {
            object_rules: policy
                .rules
                .iter()
                .map(|r| &r.rule)
                .filter(|r| r.check.uses_inventory() && r.target == Target::Object)
                .collect(),
        }
    }

    /// What decides which objects are kept whole, as text: part of the stores' view digest.
    pub fn whole_kinds(&self) -> Vec<String> {
        let mut parts: Vec<String> = LOOKED_UP_KINDS.iter().map(|k| (*k).to_owned()).collect();
        parts.extend(
            self.object_rules
                .iter()
                .map(|r| format!("{}: {}", r.id, r.kinds.join(","))),
        );
        parts
    }

    fn keeps_whole(&self, object: &Object<'_>) -> bool {
        LOOKED_UP_KINDS.contains(&object.kind)
            || self
                .object_rules
                .iter()
                .any(|r| r.matches_kind(object.group(), object.kind))
    }

    /// `file` as the cross-object rules see it. Documents keep their number and index (the
    /// statistics count them), parse errors stay as they are.
    pub fn view(&self, file: &ManifestFile) -> ManifestFile {
        let Ok(docs) = &file.content else {
            return file.at_path(file.path.clone());
        };
        let documents = docs
            .iter()
            .map(|doc| ParsedDocument {
                index: doc.index,
                start_line: doc.start_line,
                root: match &doc.root {
                    Ok(root) => Ok(self.document(root)),
                    Err(e) => Err(e.clone()),
                },
            })
            .collect();
        ManifestFile::from_documents(file.path.clone(), documents, file.weight)
    }

    fn document(&self, root: &Node) -> Node {
        let is_list = root
            .get("kind")
            .and_then(Node::as_str)
            .is_some_and(|k| k.ends_with("List"))
            && root.get("items").and_then(Node::as_seq).is_some();
        if is_list {
            return filtered(root, |entry| match entry.key.as_str() {
                "items" => Some(match &entry.value.value {
                    Value::Seq(items) => Node::new(
                        Value::Seq(items.iter().map(|i| self.object(i)).collect()),
                        entry.value.span,
                    ),
                    _ => entry.value.clone(),
                }),
                _ => scalar(entry),
            });
        }
        self.object(root)
    }

    fn object(&self, node: &Node) -> Node {
        let object = Object::new("", 0, node);
        // A Pod is its own pod template: its labels are the pod's.
        let labels = object.as_ref().is_some_and(|o| o.kind == "Pod");
        match object {
            Some(object) if self.keeps_whole(&object) => filtered(node, |entry| {
                Some(match entry.key.as_str() {
                    "metadata" => metadata_view(&entry.value, labels),
                    _ => entry.value.clone(),
                })
            }),
            // Not an object: no rule reads it.
            None if !matches!(node.value, Value::Map(_)) => node.clone(),
            _ => filtered(node, |entry| match entry.key.as_str() {
                "metadata" => Some(metadata_view(&entry.value, labels)),
                "spec" | "template" => Some(spec_view(&entry.value)),
                _ => scalar(entry),
            }),
        }
    }
}

/// An object's or a pod template's `metadata`: its scalar fields (name, namespace...), the
/// annotations that exempt (see [`super::is_exemption_key`]) and, with `labels`, the labels
/// selectors match (a pod template's, a Pod's).
fn metadata_view(node: &Node, labels: bool) -> Node {
    filtered(node, |entry| match entry.key.as_str() {
        "labels" if labels => Some(entry.value.clone()),
        "annotations" => Some(filtered(&entry.value, |a| {
            super::is_exemption_key(&a.key).then(|| a.value.clone())
        })),
        _ => scalar(entry),
    })
}

/// A `spec` of any kind (workload, pod, CRD, job template) or a pod template, as far as a
/// cross-object rule reads it.
fn spec_view(node: &Node) -> Node {
    filtered(node, |entry| match entry.key.as_str() {
        "metadata" => Some(metadata_view(&entry.value, true)),
        "selector" | "scaleTargetRef" => Some(entry.value.clone()),
        "spec" | "template" | "jobTemplate" | "names" => Some(spec_view(&entry.value)),
        "containers" => Some(Node::new(Value::Seq(Vec::new()), entry.value.span)),
        _ => scalar(entry),
    })
}

/// Keys whose value an object's identity or a cross-object rule reads as a scalar: kept
/// whatever they hold, so that a map where a name belongs reads as it does in the whole tree.
const READ_AS_SCALARS: &[&str] = &[
    "apiVersion",
    "kind",
    "name",
    "generateName",
    "namespace",
    "group",
    "scope",
    "serviceAccountName",
    "serviceAccount",
    "automountServiceAccountToken",
    "manualSelector",
];

/// A scalar field, or one of [`READ_AS_SCALARS`] whatever it holds.
fn scalar(entry: &Entry) -> Option<Node> {
    match entry.value.value {
        Value::Map(_) | Value::Seq(_) if !READ_AS_SCALARS.contains(&entry.key.as_str()) => None,
        _ => Some(entry.value.clone()),
    }
}

/// `node` with the entries `keep` gives a value for (a map), or `node` itself (anything else).
fn filtered(node: &Node, keep: impl Fn(&Entry) -> Option<Node>) -> Node {
    let Value::Map(entries) = &node.value else {
        return node.clone();
    };
    let kept = entries
        .iter()
        .filter_map(|entry| {
            keep(entry).map(|value| Entry {
                key: entry.key.clone(),
                key_span: entry.key_span,
                value,
            })
        })
        .collect();
    Node::new(Value::Map(kept), node.span)
}
