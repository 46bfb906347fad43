//! Where the cross-object rules look besides their object. Every inventory query of a builtin
//! is confined to the object's own namespace (as [`Object::same_namespace`] compares them),
//! except the reads listed here. A review uses that to leave out the objects of namespaces the
//! change did not touch: they read the same objects on both sides, so their findings match and
//! say nothing about the change.
//!
//! A builtin that reads across namespaces must say so in [`Builtin::reads_anywhere`](super::builtins::Builtin::reads_anywhere), or a
//! review would miss what a change there does to the objects it judges.

use super::rule::Check;
use std::collections::HashSet;

use crate::config::Policy;
use crate::manifest::{Header, Object};

/// The API groups Kubernetes serves itself (a CRD's group must contain a dot, and those of
/// these with one are reserved).
const KUBERNETES_GROUPS: &[&str] = &[
    "",
    "apps",
    "batch",
    "autoscaling",
    "policy",
    "extensions",
    "networking.k8s.io",
    "rbac.authorization.k8s.io",
    "storage.k8s.io",
    "scheduling.k8s.io",
    "coordination.k8s.io",
    "discovery.k8s.io",
    "node.k8s.io",
    "admissionregistration.k8s.io",
    "apiextensions.k8s.io",
    "apiregistration.k8s.io",
    "certificates.k8s.io",
    "flowcontrol.apiserver.k8s.io",
    "events.k8s.io",
    "resource.k8s.io",
];

/// Whether a CRD could give `object`'s kind a scope: it is not one of Kubernetes' own kinds.
fn may_be_custom(object: &Header<'_>) -> bool {
    !object.is_known_kind() || !KUBERNETES_GROUPS.contains(&object.group())
}

/// Whether `object` is a CRD that claims one of Kubernetes' own kinds (no API server serves
/// it, but the audit would give the kind its scope): then no object can be settled.
pub fn claims_kubernetes_kind(object: &Object<'_>) -> bool {
    if object.kind != "CustomResourceDefinition" {
        return false;
    }
    let field = |path: &[&str]| {
        object
            .node
            .get_path(path)
            .and_then(crate::yaml::Node::as_str)
    };
    let (Some(group), Some(kind)) = (field(&["spec", "group"]), field(&["spec", "names", "kind"]))
    else {
        return false;
    };
    KUBERNETES_GROUPS.contains(&group)
        && (crate::manifest::WORKLOAD_KINDS.contains(&kind)
            || crate::manifest::KNOWN_KINDS.contains(&kind))
}

/// What a policy's cross-object rules read outside an object's namespace.
#[derive(Debug, Default)]
pub struct Reach {
    /// Kinds read from every namespace.
    anywhere: Vec<&'static str>,
    /// Kinds (as Polaris's `additionalSchemas` name them) read from every namespace when the
    /// object has no namespace.
    unnamespaced: Vec<String>,
}

impl Reach {
    pub fn of(policy: &Policy) -> Reach {
        let mut reach = Reach::default();
        for active in policy
            .rules
            .iter()
            .filter(|r| r.rule.check.uses_inventory())
        {
            reach.add(&active.rule.check);
        }
        reach
    }

    fn add(&mut self, check: &Check) {
        match check {
            Check::Builtin(builtin) => self.anywhere.extend(builtin.reads_anywhere()),
            Check::AnyOf(parts) | Check::AllOf(parts) => parts.iter().for_each(|p| self.add(p)),
            Check::Schema(schema) => self
                .unnamespaced
                .extend(schema.additional.iter().map(|(kind, _)| kind.clone())),
            Check::Require(_) | Check::Forbid(_) => {}
        }
    }

    /// Whether adding, removing or changing `object` may change cross-object findings of
    /// objects outside its namespace. A CRD may: it decides the scope of its kind's objects.
    pub fn crosses_namespaces(&self, object: &Header<'_>) -> bool {
        if object.kind == "CustomResourceDefinition" || self.anywhere.contains(&object.kind) {
            return true;
        }
        // A custom kind's CRD may take its namespace away.
        let unnamespaced = object.namespace.is_none() || !object.is_known_kind();
        unnamespaced
            && self.unnamespaced.iter().any(|pattern| {
                super::engine::additional_kind_matches(pattern, object.group(), object.kind)
            })
    }

    /// What `changed` (the objects of every file a change touched, on both sides) may alter.
    pub fn touched<'a>(self, changed: impl IntoIterator<Item = Object<'a>>) -> Touched {
        // Objects without a namespace are always judged: any changed object may land there (a
        // CRD in the revision may make its kind cluster-scoped, whatever its group).
        let mut namespaces = HashSet::from([String::new()]);
        for object in changed {
            if self.crosses_namespaces(&object.header()) {
                return Touched::All;
            }
            namespaces.insert(object.namespace_or_default().to_owned());
        }
        Touched::Namespaces {
            namespaces,
            reach: self,
        }
    }
}

/// The namespaces whose objects' cross-object findings a change may alter.
#[derive(Debug)]
pub enum Touched {
    All,
    Namespaces {
        namespaces: HashSet<String>,
        reach: Reach,
    },
}

impl Touched {
    /// Whether `object`, which the change did not touch, reads the same objects on both sides
    /// and is read by no judged object: its cross-object findings cannot differ, and no other
    /// finding depends on it. An object some rule reads from any namespace (a ClusterRole, a
    /// CRD) is never settled, nor an object of a kind a CRD may scope.
    pub fn settles(&self, object: &Object<'_>) -> bool {
        self.settles_header(&object.header())
    }

    /// [`Touched::settles`] of an object known by its header alone (a stored entry's).
    pub fn settles_header(&self, object: &Header<'_>) -> bool {
        match self {
            Touched::All => false,
            Touched::Namespaces { namespaces, reach } => {
                !namespaces.contains(object.namespace_or_default())
                    && !reach.crosses_namespaces(object)
                    && !may_be_custom(object)
            }
        }
    }
}
