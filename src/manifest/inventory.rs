//! Every object of an audit, indexed once for the cross-object rules.
//!
//! A rule such as "no NetworkPolicy selects this Deployment" asks about a few objects of one
//! kind in one namespace. Scanning every object for each object checked made the audit
//! quadratic in the input; the indexes below let a lookup touch only the objects that can
//! answer it: those of the right kind and namespace, with the right name, or carrying the label
//! a selector asks for.
//!
//! Lookups return *candidates*, always in input order (callers such as "the first PDB selecting
//! these pods" depend on it). A candidate set is a superset of the real answer: callers still
//! apply their full condition, so an index can only make a lookup faster, never change its
//! result.

use foldhash::{HashMap, HashSet};
use std::borrow::Cow;

use super::{Labels, Object};
use crate::yaml::Node;

/// Two-level string keys. Nested maps rather than tuple keys so that a lookup can use strings
/// of any lifetime (`&'a str: Borrow<str>`; a `(&'a str, &'a str)` key would need `'a` ones).
type ByTwo<'a, T> = HashMap<&'a str, HashMap<&'a str, T>>;

fn get2<'m, T>(map: &'m ByTwo<'_, T>, first: &str, second: &str) -> Option<&'m T> {
    map.get(first)?.get(second)
}

fn entry2<'m, 'a, T: Default>(
    map: &'m mut ByTwo<'a, T>,
    first: &'a str,
    second: &'a str,
) -> &'m mut T {
    map.entry(first).or_default().entry(second).or_default()
}

/// Label values for one label key, each with its objects.
type ByValue<'a> = HashMap<Cow<'a, str>, Chain>;

const END: usize = usize::MAX;

/// The objects filed under one key, as a chain of links in the inventory's arena ([`Links`]).
#[derive(Debug, Clone, Copy)]
struct Chain {
    first: usize,
    last: usize,
}

impl Default for Chain {
    fn default() -> Self {
        Chain {
            first: END,
            last: END,
        }
    }
}

/// One arena for every index: filing an object under a key appends a link, so the thousands of
/// small lists (one per name, per label value...) cost no allocation each. A chain lists its
/// objects in the order they were filed, which is input order.
#[derive(Debug, Default)]
struct Links {
    /// `(object id, next link or END)`.
    links: Vec<(usize, usize)>,
}

impl Links {
    fn file(&mut self, chain: &mut Chain, id: usize) {
        let at = self.links.len();
        self.links.push((id, END));
        if chain.first == END {
            chain.first = at;
        } else if let Some(last) = self.links.get_mut(chain.last) {
            last.1 = at;
        }
        chain.last = at;
    }

    fn ids(&self, chain: Option<&Chain>) -> impl Iterator<Item = usize> + '_ {
        let mut at = chain.map_or(END, |c| c.first);
        std::iter::from_fn(move || {
            let &(id, next) = self.links.get(at)?;
            at = next;
            Some(id)
        })
    }
}

#[derive(Debug, Default)]
pub struct Inventory<'a> {
    pub objects: Vec<Object<'a>>,
    custom_kind_namespaces: HashSet<&'a str>,
    links: Links,
    /// By kind, with whether Kubernetes itself defines the kind.
    by_kind: HashMap<&'a str, (Chain, bool)>,
    /// By kind and name, every namespace together.
    by_kind_name: ByTwo<'a, Chain>,
    /// Objects with a pod template, by namespace (empty for none, as
    /// [`Object::same_namespace`] compares them).
    workloads: HashMap<&'a str, Chain>,
    /// Objects with a pod template, by namespace and template label key, then label value.
    workloads_by_label: ByTwo<'a, ByValue<'a>>,
    /// Objects that select pods by a label selector, by kind and namespace.
    pod_selectors: ByTwo<'a, SelectorIndex<'a>>,
    /// HorizontalPodAutoscalers by namespace and `scaleTargetRef.name`.
    scalers: ByTwo<'a, Chain>,
}

/// Label selectors of one kind in one namespace, by a pair every selected pod must carry.
#[derive(Debug, Default)]
struct SelectorIndex<'a> {
    /// By the key and value of the first `matchLabels` pair.
    by_first_label: HashMap<&'a str, ByValue<'a>>,
    /// Selectors without such a pair (empty, expression-only, missing, or a non-scalar value):
    /// candidates for any pod.
    unkeyed: Chain,
}

/// Where a kind keeps the label selector choosing the pods it applies to.
fn pod_selector_path(kind: &str) -> Option<&'static [&'static str]> {
    match kind {
        "NetworkPolicy" => Some(&["spec", "podSelector"]),
        "PodDisruptionBudget" => Some(&["spec", "selector"]),
        _ => None,
    }
}

/// The first `matchLabels` pair of a label selector, when its value is a scalar: a pod the
/// selector selects carries exactly that label. (A non-scalar value matches pods *without*
/// the label, see `selector_matches` in the audit's builtins, so it gives no key.)
pub fn first_required_label(selector: &Node) -> Option<(&str, Cow<'_, str>)> {
    let first = selector.get("matchLabels")?.as_map()?.first()?;
    Some((first.key.as_str(), first.value.scalar_str()?))
}

impl<'a> Inventory<'a> {
    pub fn new(objects: Vec<Object<'a>>) -> Inventory<'a> {
        let mut inventory = Inventory::default();
        let links = &mut inventory.links;
        for (id, o) in objects.iter().enumerate() {
            let namespace = o.namespace_or_default();
            let (of_kind, known) = inventory
                .by_kind
                .entry(o.kind)
                .or_insert_with(|| (Chain::default(), o.is_known_kind()));
            links.file(of_kind, id);
            if !*known && !o.is_workload() {
                inventory.custom_kind_namespaces.insert(namespace);
            }
            links.file(entry2(&mut inventory.by_kind_name, o.kind, o.name), id);
            if let Some(pod) = &o.pod {
                links.file(inventory.workloads.entry(namespace).or_default(), id);
                for (key, value) in &pod.labels {
                    let by_value = entry2(&mut inventory.workloads_by_label, namespace, key);
                    links.file(by_value.entry(value.clone()).or_default(), id);
                }
            }
            if let Some(path) = pod_selector_path(o.kind) {
                let index = entry2(&mut inventory.pod_selectors, o.kind, namespace);
                let chain = match o.node.get_path(path).and_then(first_required_label) {
                    Some((key, value)) => index
                        .by_first_label
                        .entry(key)
                        .or_default()
                        .entry(value)
                        .or_default(),
                    None => &mut index.unkeyed,
                };
                links.file(chain, id);
            }
            if o.kind == "HorizontalPodAutoscaler"
                && let Some(target) = o
                    .node
                    .get_path(&["spec", "scaleTargetRef", "name"])
                    .and_then(Node::as_str)
            {
                links.file(entry2(&mut inventory.scalers, namespace, target), id);
            }
        }
        inventory.objects = objects;
        inventory
    }

    fn pick<'s>(&'s self, chain: Option<&Chain>) -> impl Iterator<Item = &'s Object<'a>> + 's {
        self.links.ids(chain).filter_map(|id| self.objects.get(id))
    }

    /// Every object of a kind.
    pub fn of_kind<'s>(&'s self, kind: &str) -> impl Iterator<Item = &'s Object<'a>> + 's {
        self.pick(self.by_kind.get(kind).map(|(chain, _)| chain))
    }

    /// Objects of a kind with this name, in any namespace.
    pub fn named<'s>(
        &'s self,
        kind: &str,
        name: &str,
    ) -> impl Iterator<Item = &'s Object<'a>> + 's {
        self.pick(get2(&self.by_kind_name, kind, name))
    }

    /// Every object with a pod template.
    pub fn workloads(&self) -> impl Iterator<Item = &Object<'a>> {
        self.objects.iter().filter(|o| o.pod.is_some())
    }

    /// Candidates among the objects with a pod template in `namespace`: those whose template
    /// carries the label `required`, or all of them when no label is required.
    pub fn workloads_in<'s>(
        &'s self,
        namespace: &str,
        required: Option<(&str, &str)>,
    ) -> impl Iterator<Item = &'s Object<'a>> + 's {
        let chain = match required {
            None => self.workloads.get(namespace),
            Some((key, value)) => get2(&self.workloads_by_label, namespace, key)
                .and_then(|by_value| by_value.get(value)),
        };
        self.pick(chain)
    }

    /// Candidates among the objects of `kind` in `namespace` whose pod selector may select pods
    /// labelled `labels`, in input order. Indexed for the kinds whose selector place is known
    /// (NetworkPolicy, PodDisruptionBudget); for others, every object of the kind there.
    pub fn selecting(&self, kind: &str, namespace: &str, labels: &Labels<'_>) -> Vec<&Object<'a>> {
        if pod_selector_path(kind).is_none() {
            return self
                .of_kind(kind)
                .filter(|o| o.namespace_or_default() == namespace)
                .collect();
        }
        let Some(index) = get2(&self.pod_selectors, kind, namespace) else {
            return Vec::new();
        };
        let mut ids: Vec<usize> = self.links.ids(Some(&index.unkeyed)).collect();
        for (key, value) in labels {
            let chain = index
                .by_first_label
                .get(key)
                .and_then(|by_value| by_value.get(value.as_ref()));
            ids.extend(self.links.ids(chain));
        }
        ids.sort_unstable();
        ids.dedup();
        ids.into_iter()
            .filter_map(|id| self.objects.get(id))
            .collect()
    }

    /// Candidates among the HorizontalPodAutoscalers of `namespace` scaling an object `name`.
    pub fn scalers_of<'s>(
        &'s self,
        namespace: &str,
        name: &str,
    ) -> impl Iterator<Item = &'s Object<'a>> + 's {
        self.pick(get2(&self.scalers, namespace, name))
    }

    /// Whether custom resources share this namespace: they may create pods or services we
    /// cannot see, so "selects nothing" findings there would be guesses.
    pub fn has_custom_resources_in(&self, namespace: &str) -> bool {
        self.custom_kind_namespaces.contains(namespace)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::{Limits, parse_stream};

    const OBJECTS: &str = r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-only, namespace: shop}
spec: {podSelector: {matchLabels: {app: web}}}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: everything, namespace: shop}
spec: {podSelector: {}}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db-only, namespace: shop}
spec: {podSelector: {matchLabels: {app: db}}}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: tier, namespace: shop}
spec: {podSelector: {matchLabels: {tier: front, app: web}}}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-elsewhere, namespace: other}
spec: {podSelector: {matchLabels: {app: web}}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web, tier: front}}
    spec: {containers: [{name: web, image: web:1}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: web:1}]}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web, namespace: shop}
spec: {scaleTargetRef: {kind: Deployment, name: web}}
---
apiVersion: example.com/v1
kind: Rollout
metadata: {name: canary, namespace: shop}
"#;

    fn names<'o>(objects: impl IntoIterator<Item = &'o Object<'o>>) -> Vec<String> {
        objects
            .into_iter()
            .map(|o| format!("{}/{}", o.namespace.unwrap_or("-"), o.name))
            .collect()
    }

    fn roots() -> Vec<Node> {
        parse_stream(OBJECTS, Limits::default())
            .into_iter()
            .map(|d| d.root.expect("fixture parses"))
            .collect()
    }

    fn inventory(roots: &[Node]) -> Inventory<'_> {
        let objects = roots
            .iter()
            .enumerate()
            .filter_map(|(i, n)| Object::new("objects.yaml", i, n))
            .collect();
        Inventory::new(objects)
    }

    #[test]
    fn selecting_finds_keyed_and_unkeyed_selectors_in_input_order() {
        let roots = roots();
        let inventory = inventory(&roots);
        let web = inventory.named("Deployment", "web").next().expect("web");
        let labels = web
            .pod
            .as_ref()
            .map(|p| p.labels.clone())
            .unwrap_or_default();
        assert_eq!(labels.len(), 2, "app=web, tier=front");
        let selecting = inventory.selecting("NetworkPolicy", "shop", &labels);
        // "tier" is filed under its first pair (tier=front) and still found; "db-only" and the
        // policy in another namespace are not candidates.
        assert_eq!(
            names(selecting),
            ["shop/web-only", "shop/everything", "shop/tier"]
        );
        assert!(
            inventory
                .selecting("NetworkPolicy", "empty", &labels)
                .is_empty()
        );
    }

    #[test]
    fn lookups_by_name_label_and_scale_target() {
        let roots = roots();
        let inventory = inventory(&roots);
        assert_eq!(
            names(inventory.named("Deployment", "web")),
            ["shop/web", "-/web"]
        );
        assert_eq!(names(inventory.workloads_in("shop", None)), ["shop/web"]);
        assert_eq!(
            names(inventory.workloads_in("", Some(("app", "web")))),
            ["-/web"]
        );
        assert!(
            inventory
                .workloads_in("shop", Some(("app", "db")))
                .next()
                .is_none()
        );
        assert_eq!(names(inventory.scalers_of("shop", "web")), ["shop/web"]);
        assert!(inventory.scalers_of("", "web").next().is_none());
        assert_eq!(inventory.of_kind("NetworkPolicy").count(), 5);
        assert!(inventory.has_custom_resources_in("shop"));
        assert!(!inventory.has_custom_resources_in("other"));
    }
}
