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
use crate::manifest::Object;

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
    pub fn crosses_namespaces(&self, object: &Object<'_>) -> bool {
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
    pub fn touched<'a>(&self, changed: impl IntoIterator<Item = Object<'a>>) -> Touched {
        let mut namespaces = HashSet::new();
        for object in changed {
            if self.crosses_namespaces(&object) {
                return Touched::All;
            }
            namespaces.insert(object.namespace_or_default().to_owned());
            if !object.is_known_kind() {
                // A CRD that declares the kind cluster-scoped puts the object in "no namespace".
                namespaces.insert(String::new());
            }
        }
        Touched::Namespaces(namespaces)
    }
}

/// The namespaces whose objects' cross-object findings a change may alter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Touched {
    All,
    Namespaces(HashSet<String>),
}

impl Touched {
    /// Whether `object`, which the change did not touch, reads the same objects on both sides
    /// (whatever scope a CRD gives its kind): its cross-object findings cannot differ.
    pub fn settles(&self, object: &Object<'_>) -> bool {
        match self {
            Touched::All => false,
            Touched::Namespaces(touched) => {
                !touched.contains(object.namespace_or_default())
                    && (object.is_known_kind() || !touched.contains(""))
            }
        }
    }
}
