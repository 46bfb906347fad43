//! The path-and-condition language of rule files, evaluated over YAML nodes with their places.

use regex::Regex;
use serde::Deserialize;
use serde_json::Value as Json;

use super::rule::Target;
use crate::manifest::FieldPath;
use crate::yaml::{Node, Span, Value};

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
            default: self.default,
            conditions,
        })
    }
}

/// Where a rule is evaluated: a node, its path in the document, and where to point when a
/// field directly below it is missing.
#[derive(Debug, Clone)]
pub struct Scope<'a> {
    pub node: &'a Node,
    pub path: FieldPath,
    pub anchor: Span,
    /// The object root, for `equalsField`.
    pub object: &'a Node,
    /// The pod spec and its path, for `inherit`.
    pub pod_spec: Option<(&'a Node, FieldPath, Span)>,
}

/// One reason a check failed, and where.
#[derive(Debug, Clone, PartialEq)]
pub struct Violation {
    pub span: Span,
    pub path: FieldPath,
    pub detail: Option<String>,
}

/// A value reached by a path, or the place where it should have been.
#[derive(Debug)]
enum Reached<'a> {
    Found {
        node: &'a Node,
        path: FieldPath,
        key: Option<String>,
    },
    Missing {
        anchor: Span,
        path: FieldPath,
    },
}

fn walk<'a>(
    node: &'a Node,
    path: FieldPath,
    anchor: Span,
    key: Option<String>,
    steps: &[Step],
    out: &mut Vec<Reached<'a>>,
) {
    let Some((step, rest)) = steps.split_first() else {
        if node.is_null() {
            out.push(Reached::Missing { anchor, path });
        } else {
            out.push(Reached::Found { node, path, key });
        }
        return;
    };
    match step {
        Step::Key(k) => match node.entry(k) {
            Some(entry) if !entry.value.is_null() => {
                walk(&entry.value, path.key(k), entry.key_span, key, rest, out)
            }
            Some(entry) => out.push(Reached::Missing {
                anchor: entry.key_span,
                path: extend_keys(path.key(k), rest),
            }),
            None => {
                // Below a wildcard nothing is "missing": the list simply has no such items.
                if !rest
                    .iter()
                    .any(|s| matches!(s, Step::AnyItem | Step::AnyValue))
                {
                    out.push(Reached::Missing {
                        anchor,
                        path: extend_keys(path.key(k), rest),
                    });
                }
            }
        },
        Step::AnyItem => {
            for (i, item) in node.as_seq().unwrap_or(&[]).iter().enumerate() {
                let item_path = path.item(i, item);
                let item_key = match item_path.segments().last() {
                    Some(crate::manifest::Segment::Item(crate::manifest::ItemKey::Field(_, v))) => {
                        Some(v.clone())
                    }
                    Some(crate::manifest::Segment::Item(crate::manifest::ItemKey::Value(v))) => {
                        Some(v.clone())
                    }
                    _ => None,
                };
                walk(item, item_path, item.span, item_key, rest, out);
            }
        }
        Step::AnyValue => {
            for entry in node.as_map().unwrap_or(&[]) {
                walk(
                    &entry.value,
                    path.key(&entry.key),
                    entry.key_span,
                    Some(entry.key.clone()),
                    rest,
                    out,
                );
            }
        }
    }
}

/// The concrete paths of every existing value `steps` reaches below `node`.
pub fn expand(node: &Node, base: &FieldPath, steps: &[Step]) -> Vec<FieldPath> {
    let mut out = Vec::new();
    walk(node, base.clone(), node.span, None, steps, &mut out);
    out.into_iter()
        .filter_map(|r| match r {
            Reached::Found { path, .. } => Some(path),
            Reached::Missing { .. } => None,
        })
        .collect()
}

fn extend_keys(mut path: FieldPath, rest: &[Step]) -> FieldPath {
    for step in rest {
        if let Step::Key(k) = step {
            path = path.key(k);
        }
    }
    path
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
            Condition::Matches(re) => node.scalar_text().is_some_and(|t| re.is_match(&t)),
            Condition::NotMatches(re) => !node.scalar_text().is_some_and(|t| re.is_match(&t)),
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
                let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
                object
                    .get_path(&keys)
                    .is_some_and(|other| other.to_json() == node.to_json())
            }
        }
    }
}

fn seq_texts(node: &Node) -> Vec<String> {
    node.as_seq()
        .unwrap_or(&[])
        .iter()
        .filter_map(Node::scalar_text)
        .collect()
}

impl Assertion {
    fn satisfied(&self, node: &Node, key: Option<&str>, object: &Node) -> bool {
        self.conditions.iter().all(|c| c.holds(node, key, object))
    }

    fn reach<'a>(&self, scope: &Scope<'a>) -> Vec<Reached<'a>> {
        let mut out = Vec::new();
        walk(
            scope.node,
            scope.path.clone(),
            scope.anchor,
            None,
            &self.steps,
            &mut out,
        );
        if self.inherit
            && let Some((pod_spec, pod_path, pod_anchor)) = &scope.pod_spec
            && matches!(out.as_slice(), [Reached::Missing { .. }])
        {
            let mut from_pod = Vec::new();
            walk(
                pod_spec,
                pod_path.clone(),
                *pod_anchor,
                None,
                &self.steps,
                &mut from_pod,
            );
            if let [Reached::Found { .. }] = from_pod.as_slice() {
                return from_pod;
            }
        }
        out
    }

    fn default_node(&self, anchor: Span) -> Option<Node> {
        self.default.as_ref().map(|d| Node::from_json(d, anchor))
    }

    /// Violations of "the value must satisfy the conditions".
    pub fn require(&self, scope: &Scope<'_>) -> Vec<Violation> {
        let mut violations = Vec::new();
        for reached in self.reach(scope) {
            match reached {
                Reached::Found { node, path, key } => {
                    if !self.satisfied(node, key.as_deref(), scope.object) {
                        violations.push(Violation {
                            span: node.span,
                            path,
                            detail: None,
                        });
                    }
                }
                Reached::Missing { anchor, path } => {
                    let ok = self
                        .default_node(anchor)
                        .is_some_and(|d| self.satisfied(&d, None, scope.object));
                    if !ok {
                        violations.push(Violation {
                            span: anchor,
                            path,
                            detail: None,
                        });
                    }
                }
            }
        }
        violations
    }

    /// Violations of "no value may satisfy the conditions".
    pub fn forbid(&self, scope: &Scope<'_>) -> Vec<Violation> {
        let mut violations = Vec::new();
        for reached in self.reach(scope) {
            match reached {
                Reached::Found { node, path, key } => {
                    if self.satisfied(node, key.as_deref(), scope.object) {
                        violations.push(Violation {
                            span: node.span,
                            path,
                            detail: None,
                        });
                    }
                }
                Reached::Missing { anchor, path } => {
                    if let Some(d) = self.default_node(anchor)
                        && self.satisfied(&d, None, scope.object)
                    {
                        violations.push(Violation {
                            span: anchor,
                            path,
                            detail: None,
                        });
                    }
                }
            }
        }
        violations
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::{Limits, parse_stream};

    fn scope(root: &Node) -> Scope<'_> {
        Scope {
            node: root,
            path: FieldPath::root(),
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
