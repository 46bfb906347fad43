//! The path-and-condition language of rule files, evaluated over YAML nodes with their places.

use std::borrow::Cow;

use regex::Regex;
use serde::Deserialize;
use serde_json::Value as Json;

use super::model::Target;
use crate::manifest::path::item_key;
use crate::manifest::{FieldPath, ItemKey, Segment};
use crate::yaml::{Entry, Node, Span, Value};

/// Fields of a container's `securityContext` that Kubernetes also accepts on the pod and
/// inherits from there. Anything else (privileged, readOnlyRootFilesystem...) is container-only.
pub const POD_LEVEL_SECURITY_FIELDS: &[&str] = &[
    "runAsUser",
    "runAsGroup",
    "runAsNonRoot",
    "seLinuxOptions",
    "seccompProfile",
    "appArmorProfile",
    "windowsOptions",
];

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AssertionSpec {
    /// Dotted path below the target. `[*]` walks every list item, `*` every mapping value;
    /// `["a.b/c"]` quotes a key holding dots.
    pub path: String,
    /// For container targets: fall back to the pod's `securityContext` as Kubernetes does.
    #[serde(default)]
    pub inherit: bool,
    /// The value Kubernetes uses when the field is absent.
    #[serde(default)]
    pub default: Option<Json>,
    #[serde(default)]
    pub equals: Option<Json>,
    #[serde(default)]
    pub not_equals: Option<Json>,
    #[serde(default)]
    pub one_of: Option<Vec<Json>>,
    #[serde(default)]
    pub not_one_of: Option<Vec<Json>>,
    #[serde(default)]
    pub matches: Option<String>,
    #[serde(default)]
    pub not_matches: Option<String>,
    /// The key (mapping key, or list item's name) reached by the last wildcard.
    #[serde(default)]
    pub key_matches: Option<String>,
    #[serde(default)]
    pub min: Option<f64>,
    #[serde(default)]
    pub max: Option<f64>,
    /// A list that holds every one of these.
    #[serde(default)]
    pub contains: Option<Vec<String>>,
    /// A list that holds at least one of these.
    #[serde(default)]
    pub contains_any: Option<Vec<String>>,
    #[serde(default)]
    pub min_items: Option<usize>,
    /// Not an empty string, list or mapping.
    #[serde(default)]
    pub non_empty: bool,
    /// Equal to the value at this path from the object root.
    #[serde(default)]
    pub equals_field: Option<String>,
    /// String comparisons ignore ASCII case.
    #[serde(default)]
    pub ignore_case: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    Key(String),
    AnyItem,
    AnyValue,
}

#[derive(Debug, Clone)]
pub struct Assertion {
    pub steps: Vec<Step>,
    pub inherit: bool,
    pub default: Option<Json>,
    conditions: Vec<Condition>,
    /// `default` as a node, built once (conditions never look at its place).
    default_node: Option<Node>,
    /// Whether a condition reads the key a wildcard reached (`keyMatches`).
    reads_key: bool,
}

#[derive(Debug, Clone)]
enum Condition {
    Equals(Json, bool),
    NotEquals(Json, bool),
    OneOf(Vec<Json>, bool),
    NotOneOf(Vec<Json>, bool),
    Matches(Regex),
    NotMatches(Regex),
    KeyMatches(Regex),
    Min(f64),
    Max(f64),
    Contains(Vec<String>, bool),
    ContainsAny(Vec<String>, bool),
    MinItems(usize),
    NonEmpty,
    EqualsField(Vec<String>),
}

pub fn parse_path(path: &str) -> Result<Vec<Step>, String> {
    let mut steps = Vec::new();
    let mut rest = path;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("[*]") {
            steps.push(Step::AnyItem);
            rest = after;
        } else if let Some(after) = rest.strip_prefix("[\"") {
            let end = after
                .find("\"]")
                .ok_or_else(|| format!("unclosed [\" in path `{path}`"))?;
            steps.push(Step::Key(after[..end].to_owned()));
            rest = &after[end + 2..];
        } else if let Some(after) = rest.strip_prefix('.') {
            rest = after;
        } else {
            let end = rest.find(['.', '[']).unwrap_or(rest.len());
            let key = &rest[..end];
            steps.push(if key == "*" {
                Step::AnyValue
            } else {
                Step::Key(key.to_owned())
            });
            rest = &rest[end..];
        }
    }
    if steps.is_empty() {
        return Err("empty path".into());
    }
    Ok(steps)
}

fn regex(pattern: &str, ignore_case: bool) -> Result<Regex, String> {
    regex::RegexBuilder::new(pattern)
        .case_insensitive(ignore_case)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| format!("invalid regular expression `{pattern}`: {e}"))
}

impl AssertionSpec {
    pub fn compile(self, target: Target) -> Result<Assertion, String> {
        let steps = parse_path(&self.path)?;
        if self.inherit {
            let inheritable = target == Target::Container
                && matches!(steps.as_slice(), [Step::Key(sc), Step::Key(field), ..]
                    if sc == "securityContext" && POD_LEVEL_SECURITY_FIELDS.contains(&field.as_str()));
            if !inheritable {
                return Err(format!(
                    "`inherit` needs a container target and a pod-level securityContext field, not `{}`",
                    self.path
                ));
            }
        }
        let ic = self.ignore_case;
        let mut conditions = Vec::new();
        if let Some(v) = self.equals {
            conditions.push(Condition::Equals(v, ic));
        }
        if let Some(v) = self.not_equals {
            conditions.push(Condition::NotEquals(v, ic));
        }
        if let Some(v) = self.one_of {
            conditions.push(Condition::OneOf(v, ic));
        }
        if let Some(v) = self.not_one_of {
            conditions.push(Condition::NotOneOf(v, ic));
        }
        if let Some(p) = self.matches {
            conditions.push(Condition::Matches(regex(&p, ic)?));
        }
        if let Some(p) = self.not_matches {
            conditions.push(Condition::NotMatches(regex(&p, ic)?));
        }
        if let Some(p) = self.key_matches {
            conditions.push(Condition::KeyMatches(regex(&p, ic)?));
        }
        if let Some(v) = self.min {
            conditions.push(Condition::Min(v));
        }
        if let Some(v) = self.max {
            conditions.push(Condition::Max(v));
        }
        if let Some(v) = self.contains {
            conditions.push(Condition::Contains(v, ic));
        }
        if let Some(v) = self.contains_any {
            conditions.push(Condition::ContainsAny(v, ic));
        }
        if let Some(v) = self.min_items {
            conditions.push(Condition::MinItems(v));
        }
        if self.non_empty {
            conditions.push(Condition::NonEmpty);
        }
        if let Some(p) = self.equals_field {
            let steps = parse_path(&p)?;
            let keys = steps
                .into_iter()
                .map(|s| match s {
                    Step::Key(k) => Ok(k),
                    _ => Err(format!("`equalsField` takes no wildcards: `{p}`")),
                })
                .collect::<Result<_, _>>()?;
            conditions.push(Condition::EqualsField(keys));
        }
        Ok(Assertion {
            steps,
            inherit: self.inherit,
            default_node: self
                .default
                .as_ref()
                .map(|d| Node::from_json(d, Span::default())),
            default: self.default,
            reads_key: conditions
                .iter()
                .any(|c| matches!(c, Condition::KeyMatches(_))),
            conditions,
        })
    }
}

/// Where a rule is evaluated: a node, its path in the document, and where to point when a
/// field directly below it is missing. Borrowed: a scope is built per container and rule, and
/// its path is only copied into the violations it produces.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'s> {
    pub node: &'s Node,
    pub path: &'s FieldPath,
    pub anchor: Span,
    /// The object root, for `equalsField`.
    pub object: &'s Node,
    /// The pod spec and its path, for `inherit`.
    pub pod_spec: Option<(&'s Node, &'s FieldPath, Span)>,
}

/// One reason a check failed, and where.
#[derive(Debug, Clone, PartialEq)]
pub struct Violation {
    pub span: Span,
    pub path: FieldPath,
    pub detail: Option<String>,
}

/// What a wildcard step chose on the way to a value.
#[derive(Debug, Clone, Copy)]
enum Choice<'w> {
    /// Item `index` of the list named `list` (the key above it, empty when there is none).
    Item {
        list: &'w str,
        index: usize,
        item: &'w Node,
    },
    Entry(&'w Entry),
}

impl<'w> Choice<'w> {
    /// The key `keyMatches` tests: the mapping key, or the list item's merge-key value.
    fn key(self) -> Option<Cow<'w, str>> {
        match self {
            Choice::Entry(entry) => Some(Cow::Borrowed(entry.key.as_str())),
            Choice::Item { list, index, item } => match item_key(list, index, item) {
                ItemKey::Field(_, v) | ItemKey::Value(v) => Some(Cow::Owned(v)),
                ItemKey::Content(_) | ItemKey::Index(_) => None,
            },
        }
    }
}

/// The wildcard choices made so far, innermost first, linked through the walk's stack frames:
/// walking allocates nothing, and a path is only spelled out for the values that are reported.
struct Chain<'c, 'w> {
    choice: Choice<'w>,
    parent: Option<&'c Chain<'c, 'w>>,
}

/// A value reached by a path, or the place where it should have been.
#[derive(Clone, Copy)]
enum Reached<'c, 'w> {
    Found {
        node: &'w Node,
        chain: Option<&'c Chain<'c, 'w>>,
    },
    Missing {
        anchor: Span,
        chain: Option<&'c Chain<'c, 'w>>,
    },
}

/// Follows `steps` below `node`, calling `on` for every value reached or found missing.
/// `list` names the list an item wildcard at the first step would walk (see [`item_key`]).
fn walk<'w>(
    node: &'w Node,
    anchor: Span,
    list: &'w str,
    steps: &'w [Step],
    chain: Option<&Chain<'_, 'w>>,
    on: &mut dyn FnMut(Reached<'_, 'w>),
) {
    let Some((step, rest)) = steps.split_first() else {
        if node.is_null() {
            on(Reached::Missing { anchor, chain });
        } else {
            on(Reached::Found { node, chain });
        }
        return;
    };
    match step {
        Step::Key(k) => match node.entry(k) {
            Some(entry) if !entry.value.is_null() => {
                walk(&entry.value, entry.key_span, k, rest, chain, on)
            }
            Some(entry) => on(Reached::Missing {
                anchor: entry.key_span,
                chain,
            }),
            None => {
                // Below a wildcard nothing is "missing": the list simply has no such items.
                if !rest
                    .iter()
                    .any(|s| matches!(s, Step::AnyItem | Step::AnyValue))
                {
                    on(Reached::Missing { anchor, chain });
                }
            }
        },
        Step::AnyItem => {
            for (index, item) in node.as_seq().unwrap_or(&[]).iter().enumerate() {
                let link = Chain {
                    choice: Choice::Item { list, index, item },
                    parent: chain,
                };
                walk(item, item.span, "", rest, Some(&link), on);
            }
        }
        Step::AnyValue => {
            for entry in node.as_map().unwrap_or(&[]) {
                let link = Chain {
                    choice: Choice::Entry(entry),
                    parent: chain,
                };
                walk(
                    &entry.value,
                    entry.key_span,
                    &entry.key,
                    rest,
                    Some(&link),
                    on,
                );
            }
        }
    }
}

/// The name of the list an item wildcard directly below `base` walks.
fn list_name(base: &FieldPath) -> &str {
    match base.segments().last() {
        Some(Segment::Key(k)) => k,
        _ => "",
    }
}

/// The concrete path of a reached value: `base`, then every step, wildcards replaced by their
/// choices. A value found missing has no choices for the wildcards after the missing key, which
/// then add nothing (the path names the missing key and the keys below it).
fn concrete_path(base: &FieldPath, steps: &[Step], chain: Option<&Chain<'_, '_>>) -> FieldPath {
    let mut choices = Vec::new();
    let mut link = chain;
    while let Some(l) = link {
        choices.push(l.choice);
        link = l.parent;
    }
    let mut path = base.copy_with_room(steps.len());
    for step in steps {
        match step {
            Step::Key(k) => path.push_key(k),
            Step::AnyItem | Step::AnyValue => match choices.pop() {
                Some(Choice::Item { index, item, .. }) => path.push_item(index, item),
                Some(Choice::Entry(entry)) => path.push_key(&entry.key),
                None => {}
            },
        }
    }
    path
}

/// The concrete paths of every existing value `steps` reaches below `node`.
pub fn expand(node: &Node, base: &FieldPath, steps: &[Step]) -> Vec<FieldPath> {
    let mut out = Vec::new();
    walk(node, node.span, list_name(base), steps, None, &mut |r| {
        if let Reached::Found { chain, .. } = r {
            out.push(concrete_path(base, steps, chain));
        }
    });
    out
}

fn json_eq(node: &Node, expected: &Json, ignore_case: bool) -> bool {
    match (&node.value, expected) {
        (Value::Str(a), Json::String(b)) => {
            if ignore_case {
                a.eq_ignore_ascii_case(b)
            } else {
                a == b
            }
        }
        // A string is only ever equal to a JSON string.
        (Value::Str(_), _) => false,
        (Value::Int(_) | Value::Float(_), Json::Number(n)) => node.as_f64() == n.as_f64(),
        (Value::Bool(a), Json::Bool(b)) => a == b,
        (Value::Null, Json::Null) => true,
        _ => node.to_json() == *expected,
    }
}

fn text_eq(a: &str, b: &str, ignore_case: bool) -> bool {
    if ignore_case {
        a.eq_ignore_ascii_case(b)
    } else {
        a == b
    }
}

impl Condition {
    fn holds(&self, node: &Node, key: Option<&str>, object: &Node) -> bool {
        match self {
            Condition::Equals(v, ic) => json_eq(node, v, *ic),
            Condition::NotEquals(v, ic) => !json_eq(node, v, *ic),
            Condition::OneOf(vs, ic) => vs.iter().any(|v| json_eq(node, v, *ic)),
            Condition::NotOneOf(vs, ic) => !vs.iter().any(|v| json_eq(node, v, *ic)),
            Condition::Matches(re) => node.scalar_str().is_some_and(|t| re.is_match(&t)),
            Condition::NotMatches(re) => !node.scalar_str().is_some_and(|t| re.is_match(&t)),
            Condition::KeyMatches(re) => key.is_some_and(|k| re.is_match(k)),
            Condition::Min(min) => node.as_f64().is_some_and(|v| v >= *min),
            Condition::Max(max) => node.as_f64().is_some_and(|v| v <= *max),
            Condition::Contains(wanted, ic) => {
                let items = seq_texts(node);
                wanted
                    .iter()
                    .all(|w| items.iter().any(|i| text_eq(i, w, *ic)))
            }
            Condition::ContainsAny(wanted, ic) => {
                let items = seq_texts(node);
                wanted
                    .iter()
                    .any(|w| items.iter().any(|i| text_eq(i, w, *ic)))
            }
            Condition::MinItems(n) => node.as_seq().is_some_and(|s| s.len() >= *n),
            Condition::NonEmpty => match &node.value {
                Value::Str(s) => !s.is_empty(),
                Value::Seq(s) => !s.is_empty(),
                Value::Map(m) => !m.is_empty(),
                Value::Null => false,
                _ => true,
            },
            Condition::EqualsField(keys) => {
                let mut other = Some(object);
                for k in keys {
                    other = other.and_then(|n| n.get(k));
                }
                other.is_some_and(|other| other.to_json() == node.to_json())
            }
        }
    }
}

fn seq_texts(node: &Node) -> Vec<Cow<'_, str>> {
    node.as_seq()
        .unwrap_or(&[])
        .iter()
        .filter_map(Node::scalar_str)
        .collect()
}

/// How many values a walk reached, and whether the first was found or missing.
#[derive(Default)]
struct Tally {
    count: usize,
    first_found: bool,
}

impl Tally {
    fn of(node: &Node, anchor: Span, base: &FieldPath, steps: &[Step]) -> Tally {
        let mut tally = Tally::default();
        walk(node, anchor, list_name(base), steps, None, &mut |r| {
            if tally.count == 0 {
                tally.first_found = matches!(r, Reached::Found { .. });
            }
            tally.count += 1;
        });
        tally
    }
}

impl Assertion {
    fn satisfied(&self, node: &Node, key: Option<&str>, object: &Node) -> bool {
        self.conditions.iter().all(|c| c.holds(node, key, object))
    }

    /// Walks the assertion's path from the scope, calling `on` with the base path of each
    /// value reached.
    fn reach<'w>(&'w self, scope: &Scope<'w>, on: &mut dyn FnMut(&'w FieldPath, Reached<'_, 'w>)) {
        let steps = self.steps.as_slice();
        if self.inherit
            && let Some((pod_spec, pod_path, pod_anchor)) = scope.pod_spec
        {
            // Kubernetes falls back to the pod's field when the container has none: when the
            // container's path reaches one missing value and the pod's one existing value.
            // Counting walks allocate nothing, so the chosen walk simply runs again.
            let own = Tally::of(scope.node, scope.anchor, scope.path, steps);
            if own.count == 1 && !own.first_found {
                let pod = Tally::of(pod_spec, pod_anchor, pod_path, steps);
                if pod.count == 1 && pod.first_found {
                    walk(
                        pod_spec,
                        pod_anchor,
                        list_name(pod_path),
                        steps,
                        None,
                        &mut |r| on(pod_path, r),
                    );
                    return;
                }
            }
        }
        walk(
            scope.node,
            scope.anchor,
            list_name(scope.path),
            steps,
            None,
            &mut |r| on(scope.path, r),
        );
    }

    /// The key `keyMatches` tests, computed only when a condition reads it.
    fn key<'w>(&self, chain: Option<&Chain<'_, 'w>>) -> Option<Cow<'w, str>> {
        if self.reads_key {
            chain.and_then(|c| c.choice.key())
        } else {
            None
        }
    }

    /// Whether Kubernetes' default for a missing value satisfies the conditions.
    fn default_satisfies(&self, object: &Node) -> Option<bool> {
        self.default_node
            .as_ref()
            .map(|d| self.satisfied(d, None, object))
    }

    /// Calls `report` with the base path, place and wildcard choices of every value that
    /// breaks the assertion: one failing the conditions (`require`), or satisfying them
    /// (`forbid`). A missing value stands for Kubernetes' default, when there is one.
    fn each_violation<'w>(
        &'w self,
        scope: &Scope<'w>,
        forbid: bool,
        report: &mut dyn FnMut(&'w FieldPath, Span, Option<&Chain<'_, 'w>>),
    ) {
        self.reach(scope, &mut |base, reached| match reached {
            Reached::Found { node, chain } => {
                let key = self.key(chain);
                if self.satisfied(node, key.as_deref(), scope.object) == forbid {
                    report(base, node.span, chain);
                }
            }
            Reached::Missing { anchor, chain } => {
                if (self.default_satisfies(scope.object) == Some(true)) == forbid {
                    report(base, anchor, chain);
                }
            }
        });
    }

    fn violations(&self, scope: &Scope<'_>, forbid: bool) -> Vec<Violation> {
        let mut violations = Vec::new();
        self.each_violation(scope, forbid, &mut |base, span, chain| {
            violations.push(Violation {
                span,
                path: concrete_path(base, &self.steps, chain),
                detail: None,
            });
        });
        violations
    }

    /// Violations of "the value must satisfy the conditions".
    pub fn require(&self, scope: &Scope<'_>) -> Vec<Violation> {
        self.violations(scope, false)
    }

    /// Violations of "no value may satisfy the conditions".
    pub fn forbid(&self, scope: &Scope<'_>) -> Vec<Violation> {
        self.violations(scope, true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::{Limits, parse_stream};

    static ROOT: FieldPath = FieldPath::root();

    fn scope(root: &Node) -> Scope<'_> {
        Scope {
            node: root,
            path: &ROOT,
            anchor: root.span,
            object: root,
            pod_spec: None,
        }
    }

    fn assertion(yaml: &str) -> Assertion {
        let docs = parse_stream(yaml, Limits::default());
        let node = docs[0].root.as_ref().expect("spec parses");
        let spec: AssertionSpec = crate::yaml::from_node(node).expect("valid assertion");
        spec.compile(Target::Container).expect("compiles")
    }

    #[test]
    fn paths_parse_with_wildcards_and_quoted_keys() {
        assert_eq!(
            parse_path("a.b[*].c").expect("parses"),
            vec![
                Step::Key("a".into()),
                Step::Key("b".into()),
                Step::AnyItem,
                Step::Key("c".into())
            ]
        );
        assert_eq!(
            parse_path("metadata.labels[\"app.kubernetes.io/name\"]").expect("parses"),
            vec![
                Step::Key("metadata".into()),
                Step::Key("labels".into()),
                Step::Key("app.kubernetes.io/name".into())
            ]
        );
        assert_eq!(
            parse_path("data.*").expect("parses"),
            vec![Step::Key("data".into()), Step::AnyValue]
        );
    }

    #[test]
    fn a_missing_field_points_at_its_nearest_existing_parent() {
        let docs = parse_stream(
            "name: web\nsecurityContext:\n  privileged: false\n",
            Limits::default(),
        );
        let root = docs[0].root.as_ref().expect("parses");
        let a = assertion("path: securityContext.runAsNonRoot\nequals: true\n");
        let v = a.require(&scope(root));
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].span.start.line, 2, "points at the securityContext key");
        assert_eq!(v[0].path.to_string(), "securityContext.runAsNonRoot");
    }

    #[test]
    fn forbid_reports_each_offending_item() {
        let docs = parse_stream(
            "securityContext:\n  capabilities:\n    add: [NET_BIND_SERVICE, sys_admin, ALL]\n",
            Limits::default(),
        );
        let root = docs[0].root.as_ref().expect("parses");
        let a = assertion(
            "path: securityContext.capabilities.add[*]\noneOf: [SYS_ADMIN, ALL]\nignoreCase: true\n",
        );
        let v = a.forbid(&scope(root));
        let paths: Vec<_> = v.iter().map(|v| v.path.to_string()).collect();
        assert_eq!(
            paths,
            [
                "securityContext.capabilities.add[=sys_admin]",
                "securityContext.capabilities.add[=ALL]"
            ]
        );
    }

    #[test]
    fn defaults_stand_in_for_missing_values() {
        let docs = parse_stream("spec: {}\n", Limits::default());
        let root = docs[0].root.as_ref().expect("parses");
        let a = assertion("path: spec.replicas\ndefault: 1\nmin: 2\n");
        assert_eq!(a.require(&scope(root)).len(), 1);
        let docs = parse_stream("spec: {replicas: 3}\n", Limits::default());
        let root = docs[0].root.as_ref().expect("parses");
        assert!(a.require(&scope(root)).is_empty());
    }

    #[test]
    fn inherit_needs_a_pod_level_field() {
        let docs = parse_stream(
            "path: securityContext.privileged\ninherit: true\nequals: false\n",
            Limits::default(),
        );
        let node = docs[0].root.as_ref().expect("parses");
        let spec: AssertionSpec = crate::yaml::from_node(node).expect("valid");
        let err = spec
            .compile(Target::Container)
            .expect_err("privileged is container-only");
        assert!(err.contains("pod-level"), "{err}");
    }
}
