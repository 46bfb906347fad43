//! Polaris-format custom checks: JSON Schema (draft 2019-09 keywords) evaluated over our YAML
//! tree, so a failure points at the most specific node instead of "somewhere in the object".
//!
//! Schemas come from repository config, which a pull request can influence indirectly, so they
//! are treated as untrusted: `$ref` resolves only inside the schema (no network, no files),
//! patterns run on the linear-time `regex` engine with a size limit, and Polaris's Go-template
//! placeholders (`{{ .metadata.name }}`) are substituted as typed JSON values, never spliced
//! into schema text.
//!
//! Evaluation is bounded too: a schema of nested `anyOf` and `$ref` can branch exponentially
//! (depth 26 took 11 s on one object), so each evaluation has a step budget and a depth limit.
//! Reaching either fails the check on that object with the check's file and line: a check that
//! could not finish never passes anything.

use std::cell::Cell;
use std::collections::HashMap;

use regex::Regex;
use serde_json::Value as Json;

use super::eval::Violation;
use crate::manifest::FieldPath;
use crate::yaml::{Node, Span, Value};

/// A compiled schema plus what the check needs to run it.
#[derive(Debug, Clone)]
pub struct SchemaCheck {
    /// The schema as written, placeholders still in.
    raw: Json,
    /// Compiled once when the schema has no placeholders.
    compiled: Option<Compiled>,
    /// Container checks evaluated against the whole pod spec (Polaris's `schemaTarget: PodSpec`).
    pub pod_spec_target: bool,
    /// Other objects, one of which must match (`additionalSchemas`), by `group/Kind`.
    pub additional: Vec<(String, Json)>,
    /// Where the check is defined (`file:line`), for a check that could not finish.
    pub origin: String,
}

/// Most schema nodes one evaluation may visit (one object or container against one check,
/// additional schemas over every candidate included). Real checks take tens to hundreds.
pub const MAX_EVAL_STEPS: usize = 100_000;

/// Why an evaluation stopped before its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GaveUp {
    Steps,
    Depth,
}

impl GaveUp {
    /// The detail of the failure it stands for, naming where the check is defined.
    pub fn detail(self, origin: &str) -> String {
        let why = match self {
            GaveUp::Steps => format!(
                "its schema took more than {MAX_EVAL_STEPS} steps on this input (nested anyOf, oneOf or $ref multiply the work)"
            ),
            GaveUp::Depth => format!(
                "its schema nests deeper than {MAX_EVAL_DEPTH} levels on this input (a $ref cycle?)"
            ),
        };
        format!(
            "the custom check could not be evaluated, so it fails: {why}; the policy must simplify the check at {origin}"
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("{0}")]
    Invalid(String),
}

impl SchemaCheck {
    pub fn new(
        raw: Json,
        pod_spec_target: bool,
        additional: Vec<(String, Json)>,
        origin: String,
    ) -> Result<SchemaCheck, SchemaError> {
        check_placeholders(&raw)?;
        for (_, schema) in &additional {
            check_placeholders(schema)?;
        }
        let compiled = if has_placeholders(&raw) {
            // Compile once with placeholders as they are, to report errors at load time.
            Compiled::new(&raw)?;
            None
        } else {
            Some(Compiled::new(&raw)?)
        };
        for (_, schema) in &additional {
            Compiled::new(schema)?;
        }
        Ok(SchemaCheck {
            raw,
            compiled,
            pod_spec_target,
            additional,
            origin,
        })
    }

    /// Validates `instance`. `template_input` is what Polaris's placeholders read.
    pub fn validate(
        &self,
        instance: &Node,
        path: &FieldPath,
        template_input: &dyn Fn() -> Json,
    ) -> Result<(), Violation> {
        let owned;
        let compiled = match &self.compiled {
            Some(c) => c,
            None => {
                let input = template_input();
                owned = Compiled::new(&substitute(&self.raw, &input)).map_err(|e| Violation {
                    span: instance.span,
                    path: path.clone(),
                    detail: Some(e.to_string()),
                })?;
                &owned
            }
        };
        compiled
            .validate(instance, path, &Cell::new(0))
            .map_err(|stop| match stop {
                Stop::Fail(failure) => failure.violation,
                Stop::GaveUp(why) => Violation {
                    span: instance.span,
                    path: path.clone(),
                    detail: Some(why.detail(&self.origin)),
                },
            })
    }

    /// Whether some object satisfies the additional schema for `group_kind`: all candidates
    /// share one step budget.
    pub fn additional_satisfied(
        schema: &Json,
        candidates: &[&Node],
        template_input: &Json,
    ) -> Result<bool, GaveUp> {
        let Ok(compiled) = Compiled::new(&substitute(schema, template_input)) else {
            return Ok(false);
        };
        let steps = Cell::new(0);
        for candidate in candidates {
            match compiled.validate(candidate, &FieldPath::root(), &steps) {
                Ok(()) => return Ok(true),
                Err(Stop::Fail(_)) => {}
                Err(Stop::GaveUp(why)) => return Err(why),
            }
        }
        Ok(false)
    }
}

// ---- placeholders -----------------------------------------------------------------------

/// `{{ .a.b }}` or `{{- .a.b -}}`: a path into the template input. Nothing else is accepted.
fn placeholder_path(inner: &str) -> Option<Vec<&str>> {
    let expr = inner
        .trim()
        .trim_start_matches('-')
        .trim_end_matches('-')
        .trim();
    let rest = expr.strip_prefix('.')?;
    if rest.is_empty() {
        return Some(Vec::new());
    }
    let parts: Vec<&str> = rest.split('.').collect();
    parts
        .iter()
        .all(|p| !p.is_empty() && p.chars().all(|c| c.is_alphanumeric() || c == '_'))
        .then_some(parts)
}

fn placeholders(text: &str) -> Vec<(usize, usize)> {
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(start) = text[from..].find("{{") {
        let start = from + start;
        let Some(len) = text[start..].find("}}") else {
            break;
        };
        found.push((start, start + len + 2));
        from = start + len + 2;
    }
    found
}

fn has_placeholders(value: &Json) -> bool {
    match value {
        Json::String(s) => s.contains("{{"),
        Json::Array(items) => items.iter().any(has_placeholders),
        Json::Object(map) => map
            .iter()
            .any(|(k, v)| k.contains("{{") || has_placeholders(v)),
        _ => false,
    }
}

fn check_placeholders(value: &Json) -> Result<(), SchemaError> {
    let check_text = |s: &str| {
        for (start, end) in placeholders(s) {
            let inner = &s[start + 2..end - 2];
            if placeholder_path(inner).is_none() {
                return Err(SchemaError::Invalid(format!(
                    "unsupported template `{}`: only `{{{{ .path.to.field }}}}` placeholders are allowed",
                    &s[start..end]
                )));
            }
        }
        Ok(())
    };
    match value {
        Json::String(s) => check_text(s),
        Json::Array(items) => items.iter().try_for_each(check_placeholders),
        Json::Object(map) => map.iter().try_for_each(|(k, v)| {
            check_text(k)?;
            check_placeholders(v)
        }),
        _ => Ok(()),
    }
}

fn lookup<'a>(input: &'a Json, path: &[&str]) -> Option<&'a Json> {
    path.iter().try_fold(input, |v, key| v.get(key))
}

/// Replaces placeholders: a string that is exactly one placeholder becomes the typed value;
/// placeholders inside longer strings become the value's text.
pub fn substitute(value: &Json, input: &Json) -> Json {
    match value {
        Json::String(s) => {
            let spots = placeholders(s);
            if spots.is_empty() {
                return value.clone();
            }
            if spots.len() == 1 && s.trim().len() == spots[0].1 - spots[0].0 {
                let (start, end) = spots[0];
                let path = placeholder_path(&s[start + 2..end - 2]).unwrap_or_default();
                return lookup(input, &path).cloned().unwrap_or(Json::Null);
            }
            let mut out = String::new();
            let mut last = 0;
            for (start, end) in spots {
                out.push_str(&s[last..start]);
                let path = placeholder_path(&s[start + 2..end - 2]).unwrap_or_default();
                match lookup(input, &path) {
                    Some(Json::String(text)) => out.push_str(text),
                    Some(Json::Null) | None => {}
                    Some(other) => out.push_str(&other.to_string()),
                }
                last = end;
            }
            out.push_str(&s[last..]);
            Json::String(out)
        }
        Json::Array(items) => Json::Array(items.iter().map(|v| substitute(v, input)).collect()),
        Json::Object(map) => Json::Object(
            map.iter()
                .map(|(k, v)| {
                    let key = match substitute(&Json::String(k.clone()), input) {
                        Json::String(s) => s,
                        other => other.to_string(),
                    };
                    (key, substitute(v, input))
                })
                .collect(),
        ),
        _ => value.clone(),
    }
}

/// Turns Polaris's `schemaString` (YAML text with placeholders) into a schema: placeholders are
/// swapped for inert tokens before parsing, so no manifest value is ever parsed as schema text.
pub fn parse_schema_string(text: &str) -> Result<Json, SchemaError> {
    let spots = placeholders(text);
    let mut tokens = Vec::new();
    let mut out = String::new();
    let mut last = 0;
    for (start, end) in spots {
        let inner = &text[start + 2..end - 2];
        if placeholder_path(inner).is_none() {
            return Err(SchemaError::Invalid(format!(
                "unsupported template `{}`: only `{{{{ .path.to.field }}}}` placeholders are allowed (no if/range)",
                &text[start..end]
            )));
        }
        let token = format!("__kubeward_placeholder_{}__", tokens.len());
        out.push_str(&text[last..start]);
        out.push_str(&token);
        tokens.push((token, text[start..end].to_owned()));
        last = end;
    }
    out.push_str(&text[last..]);
    let docs = crate::yaml::parse_stream(&out, crate::yaml::Limits::default());
    let root = docs
        .into_iter()
        .find_map(|d| d.root.ok())
        .ok_or_else(|| SchemaError::Invalid("schemaString holds no schema".into()))?;
    let mut json = root.to_json();
    restore_tokens(&mut json, &tokens);
    Ok(json)
}

fn restore_tokens(value: &mut Json, tokens: &[(String, String)]) {
    match value {
        Json::String(s) => {
            for (token, original) in tokens {
                if s.contains(token.as_str()) {
                    *s = s.replace(token.as_str(), original);
                }
            }
        }
        Json::Array(items) => items.iter_mut().for_each(|v| restore_tokens(v, tokens)),
        Json::Object(map) => {
            let entries: Vec<(String, Json)> = std::mem::take(map).into_iter().collect();
            for (mut k, mut v) in entries {
                for (token, original) in tokens {
                    k = k.replace(token.as_str(), original);
                }
                restore_tokens(&mut v, tokens);
                map.insert(k, v);
            }
        }
        _ => {}
    }
}

// ---- quantities ---------------------------------------------------------------------------

/// A Kubernetes resource quantity (`100m`, `1.5`, `512Mi`, `6G`, `1e3`) as a number.
pub fn parse_quantity(text: &str) -> Option<f64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let base: f64 = number.parse().ok()?;
    let factor = match suffix {
        "" => 1.0,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024.0_f64.powi(2),
        "Gi" => 1024.0_f64.powi(3),
        "Ti" => 1024.0_f64.powi(4),
        "Pi" => 1024.0_f64.powi(5),
        "Ei" => 1024.0_f64.powi(6),
        s if s.starts_with(['e', 'E']) => 10f64.powi(s[1..].parse().ok()?),
        _ => return None,
    };
    Some(base * factor)
}

fn node_quantity(node: &Node) -> Option<f64> {
    match &node.value {
        Value::Str(s) => parse_quantity(s),
        _ => node.as_f64(),
    }
}

// ---- the evaluator ----------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq)]
enum JsonType {
    Null,
    Boolean,
    Object,
    Array,
    Number,
    Integer,
    String,
}

#[derive(Debug, Clone)]
enum Keyword {
    Type(Vec<JsonType>),
    Enum(Vec<Json>),
    Const(Json),
    Properties(Vec<(String, usize)>),
    Required(Vec<String>),
    AdditionalProperties {
        schema: usize,
        known: Vec<String>,
        patterns: Vec<Regex>,
    },
    PatternProperties(Vec<(Regex, usize)>),
    PropertyNames(usize),
    MinProperties(usize),
    MaxProperties(usize),
    DependentRequired(Vec<(String, Vec<String>)>),
    Items(usize),
    PrefixItems(Vec<usize>),
    Contains {
        schema: usize,
        min: usize,
        max: Option<usize>,
    },
    MinItems(usize),
    MaxItems(usize),
    UniqueItems,
    Minimum(f64),
    Maximum(f64),
    ExclusiveMinimum(f64),
    ExclusiveMaximum(f64),
    MultipleOf(f64),
    MinLength(usize),
    MaxLength(usize),
    Pattern(Regex),
    AllOf(Vec<usize>),
    AnyOf(Vec<usize>),
    OneOf(Vec<usize>),
    Not(usize),
    If {
        cond: usize,
        then: Option<usize>,
        otherwise: Option<usize>,
    },
    Ref(usize),
    ResourceMinimum(f64),
    ResourceMaximum(f64),
}

#[derive(Debug, Clone)]
enum SchemaNode {
    Bool(bool),
    Keywords(Vec<Keyword>),
}

/// Schemas in an arena, so `$ref` cycles cost an index, not an infinite compile.
#[derive(Debug, Clone)]
struct Compiled {
    nodes: Vec<SchemaNode>,
}

struct Failure {
    violation: Violation,
    depth: usize,
}

/// The end of an evaluation that did not pass. A `GaveUp` is no answer, so every combinator
/// passes it on as it is: inside `not` or `anyOf` it must not turn into a pass.
enum Stop {
    Fail(Failure),
    GaveUp(GaveUp),
}

impl From<Failure> for Stop {
    fn from(failure: Failure) -> Stop {
        Stop::Fail(failure)
    }
}

const MAX_EVAL_DEPTH: usize = 64;

struct Compiler<'a> {
    root: &'a Json,
    nodes: Vec<SchemaNode>,
    refs: HashMap<String, usize>,
}

fn invalid(message: impl Into<String>) -> SchemaError {
    SchemaError::Invalid(message.into())
}

impl Compiled {
    fn new(root: &Json) -> Result<Compiled, SchemaError> {
        let mut compiler = Compiler {
            root,
            nodes: Vec::new(),
            refs: HashMap::new(),
        };
        compiler.compile(root)?;
        Ok(Compiled {
            nodes: compiler.nodes,
        })
    }

    /// `steps` counts schema nodes visited, across calls that share a budget.
    fn validate(&self, instance: &Node, path: &FieldPath, steps: &Cell<usize>) -> Result<(), Stop> {
        self.eval(0, instance, path, 0, steps)
    }

    fn fail(&self, span: Span, path: &FieldPath, detail: String) -> Failure {
        Failure {
            depth: path.segments().len(),
            violation: Violation {
                span,
                path: path.clone(),
                detail: Some(detail),
            },
        }
    }

    fn eval(
        &self,
        id: usize,
        node: &Node,
        path: &FieldPath,
        depth: usize,
        steps: &Cell<usize>,
    ) -> Result<(), Stop> {
        if depth > MAX_EVAL_DEPTH {
            return Err(Stop::GaveUp(GaveUp::Depth));
        }
        if steps.get() >= MAX_EVAL_STEPS {
            return Err(Stop::GaveUp(GaveUp::Steps));
        }
        steps.set(steps.get() + 1);
        let keywords = match &self.nodes[id] {
            SchemaNode::Bool(true) => return Ok(()),
            SchemaNode::Bool(false) => {
                return Err(self
                    .fail(node.span, path, "no value is allowed here".into())
                    .into());
            }
            SchemaNode::Keywords(k) => k,
        };
        for keyword in keywords {
            self.keyword(keyword, node, path, depth, steps)?;
        }
        Ok(())
    }

    fn keyword(
        &self,
        keyword: &Keyword,
        node: &Node,
        path: &FieldPath,
        depth: usize,
        steps: &Cell<usize>,
    ) -> Result<(), Stop> {
        let here = |detail: String| Err(Stop::Fail(self.fail(node.span, path, detail)));
        let child = |id: usize, n: &Node, p: &FieldPath| self.eval(id, n, p, depth + 1, steps);
        match keyword {
            Keyword::Type(types) => {
                if !types.iter().any(|t| type_matches(*t, node)) {
                    return here(format!("expected {types:?}, found {}", node.kind_name()));
                }
            }
            Keyword::Enum(values) => {
                if !values.iter().any(|v| json_equal(&node.to_json(), v)) {
                    return here("value is not one of the allowed values".into());
                }
            }
            Keyword::Const(value) => {
                if !json_equal(&node.to_json(), value) {
                    return here(format!("expected {value}"));
                }
            }
            Keyword::Properties(props) => {
                for (name, id) in props {
                    if let Some(entry) = node.entry(name) {
                        child(*id, &entry.value, &path.key(name))?;
                    }
                }
            }
            Keyword::Required(names) => {
                if let Some(entries) = node.as_map() {
                    for name in names {
                        if !entries.iter().any(|e| &e.key == name) {
                            return Err(Stop::Fail(Failure {
                                depth: path.segments().len() + 1,
                                violation: Violation {
                                    span: node_anchor(node),
                                    path: path.key(name),
                                    detail: Some(format!("`{name}` is required")),
                                },
                            }));
                        }
                    }
                }
            }
            Keyword::AdditionalProperties {
                schema,
                known,
                patterns,
            } => {
                for entry in node.as_map().unwrap_or(&[]) {
                    let covered = known.contains(&entry.key)
                        || patterns.iter().any(|p| p.is_match(&entry.key));
                    if !covered {
                        child(*schema, &entry.value, &path.key(&entry.key))?;
                    }
                }
            }
            Keyword::PatternProperties(patterns) => {
                for entry in node.as_map().unwrap_or(&[]) {
                    for (re, id) in patterns {
                        if re.is_match(&entry.key) {
                            child(*id, &entry.value, &path.key(&entry.key))?;
                        }
                    }
                }
            }
            Keyword::PropertyNames(id) => {
                for entry in node.as_map().unwrap_or(&[]) {
                    let key = Node::new(Value::Str(entry.key.clone()), entry.key_span);
                    child(*id, &key, &path.key(&entry.key))?;
                }
            }
            Keyword::MinProperties(n) => {
                if node.as_map().is_some_and(|m| m.len() < *n) {
                    return here(format!("needs at least {n} entries"));
                }
            }
            Keyword::MaxProperties(n) => {
                if node.as_map().is_some_and(|m| m.len() > *n) {
                    return here(format!("allows at most {n} entries"));
                }
            }
            Keyword::DependentRequired(deps) => {
                if let Some(entries) = node.as_map() {
                    for (key, needed) in deps {
                        if entries.iter().any(|e| &e.key == key) {
                            for n in needed {
                                if !entries.iter().any(|e| &e.key == n) {
                                    return here(format!("`{key}` needs `{n}`"));
                                }
                            }
                        }
                    }
                }
            }
            Keyword::Items(id) => {
                for (i, item) in node.as_seq().unwrap_or(&[]).iter().enumerate() {
                    child(*id, item, &path.item(i, item))?;
                }
            }
            Keyword::PrefixItems(ids) => {
                for ((i, item), id) in node.as_seq().unwrap_or(&[]).iter().enumerate().zip(ids) {
                    child(*id, item, &path.item(i, item))?;
                }
            }
            Keyword::Contains { schema, min, max } => {
                if let Some(items) = node.as_seq() {
                    let mut count = 0;
                    for (i, item) in items.iter().enumerate() {
                        match child(*schema, item, &path.item(i, item)) {
                            Ok(()) => count += 1,
                            Err(Stop::Fail(_)) => {}
                            Err(gave_up) => return Err(gave_up),
                        }
                    }
                    if count < *min || max.is_some_and(|m| count > m) {
                        return here("no item matches what the list must contain".into());
                    }
                }
            }
            Keyword::MinItems(n) => {
                if node.as_seq().is_some_and(|s| s.len() < *n) {
                    return here(format!("needs at least {n} items"));
                }
            }
            Keyword::MaxItems(n) => {
                if node.as_seq().is_some_and(|s| s.len() > *n) {
                    return here(format!("allows at most {n} items"));
                }
            }
            Keyword::UniqueItems => {
                if let Some(items) = node.as_seq() {
                    let values: Vec<Json> = items.iter().map(Node::to_json).collect();
                    for (i, a) in values.iter().enumerate() {
                        if values[i + 1..].iter().any(|b| json_equal(a, b)) {
                            return here("items must be unique".into());
                        }
                    }
                }
            }
            Keyword::Minimum(m) => {
                if node.as_f64().is_some_and(|v| v < *m) {
                    return here(format!("must be at least {m}"));
                }
            }
            Keyword::Maximum(m) => {
                if node.as_f64().is_some_and(|v| v > *m) {
                    return here(format!("must be at most {m}"));
                }
            }
            Keyword::ExclusiveMinimum(m) => {
                if node.as_f64().is_some_and(|v| v <= *m) {
                    return here(format!("must be more than {m}"));
                }
            }
            Keyword::ExclusiveMaximum(m) => {
                if node.as_f64().is_some_and(|v| v >= *m) {
                    return here(format!("must be less than {m}"));
                }
            }
            Keyword::MultipleOf(m) => {
                if node
                    .as_f64()
                    .is_some_and(|v| *m != 0.0 && ((v / m) - (v / m).round()).abs() > 1e-9)
                {
                    return here(format!("must be a multiple of {m}"));
                }
            }
            Keyword::MinLength(n) => {
                if node.as_str().is_some_and(|s| s.chars().count() < *n) {
                    return here(format!("must be at least {n} characters"));
                }
            }
            Keyword::MaxLength(n) => {
                if node.as_str().is_some_and(|s| s.chars().count() > *n) {
                    return here(format!("must be at most {n} characters"));
                }
            }
            Keyword::Pattern(re) => {
                if node.as_str().is_some_and(|s| !re.is_match(s)) {
                    return here(format!("does not match `{}`", re.as_str()));
                }
            }
            Keyword::AllOf(ids) => {
                for id in ids {
                    child(*id, node, path)?;
                }
            }
            Keyword::AnyOf(ids) => {
                let mut deepest: Option<Failure> = None;
                for id in ids {
                    match child(*id, node, path) {
                        Ok(()) => return Ok(()),
                        Err(Stop::Fail(f)) => {
                            if deepest.as_ref().is_none_or(|d| f.depth > d.depth) {
                                deepest = Some(f);
                            }
                        }
                        Err(gave_up) => return Err(gave_up),
                    }
                }
                if let Some(f) = deepest {
                    return Err(f.into());
                }
            }
            Keyword::OneOf(ids) => {
                let mut passed = 0;
                let mut deepest: Option<Failure> = None;
                for id in ids {
                    match child(*id, node, path) {
                        Ok(()) => passed += 1,
                        Err(Stop::Fail(f)) => {
                            if deepest.as_ref().is_none_or(|d| f.depth > d.depth) {
                                deepest = Some(f);
                            }
                        }
                        Err(gave_up) => return Err(gave_up),
                    }
                }
                if passed != 1 {
                    return match (passed, deepest) {
                        (0, Some(f)) => Err(f.into()),
                        _ => here(format!(
                            "matches {passed} alternatives, exactly one allowed"
                        )),
                    };
                }
            }
            Keyword::Not(id) => match child(*id, node, path) {
                Ok(()) => return here("matches a forbidden schema".into()),
                Err(Stop::Fail(_)) => {}
                Err(gave_up) => return Err(gave_up),
            },
            Keyword::If {
                cond,
                then,
                otherwise,
            } => {
                let branch = match child(*cond, node, path) {
                    Ok(()) => then,
                    Err(Stop::Fail(_)) => otherwise,
                    Err(gave_up) => return Err(gave_up),
                };
                if let Some(id) = branch {
                    child(*id, node, path)?;
                }
            }
            Keyword::Ref(id) => child(*id, node, path)?,
            Keyword::ResourceMinimum(min) => match node_quantity(node) {
                Some(v) if v + 1e-9 >= *min => {}
                _ => return here(format!("quantity is below {min}")),
            },
            Keyword::ResourceMaximum(max) => match node_quantity(node) {
                Some(v) if v <= *max + 1e-9 => {}
                _ => return here(format!("quantity is above {max}")),
            },
        }
        Ok(())
    }
}

/// Where to point for a missing key of `node`: the mapping's first line.
fn node_anchor(node: &Node) -> Span {
    node.span
}

fn type_matches(t: JsonType, node: &Node) -> bool {
    match (t, &node.value) {
        (JsonType::Null, Value::Null)
        | (JsonType::Boolean, Value::Bool(_))
        | (JsonType::Object, Value::Map(_))
        | (JsonType::Array, Value::Seq(_))
        | (JsonType::String, Value::Str(_))
        | (JsonType::Number, Value::Int(_) | Value::Float(_))
        | (JsonType::Integer, Value::Int(_)) => true,
        (JsonType::Integer, Value::Float(f)) => f.fract() == 0.0,
        _ => false,
    }
}

/// JSON equality with numbers compared by value (1 == 1.0).
fn json_equal(a: &Json, b: &Json) -> bool {
    match (a, b) {
        (Json::Number(x), Json::Number(y)) => x.as_f64() == y.as_f64(),
        (Json::Array(x), Json::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_equal(a, b))
        }
        (Json::Object(x), Json::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_equal(v, w)))
        }
        _ => a == b,
    }
}

fn as_usize(value: &Json, keyword: &str) -> Result<usize, SchemaError> {
    value
        .as_u64()
        .map(|n| n as usize)
        .ok_or_else(|| invalid(format!("`{keyword}` must be a non-negative integer")))
}

fn as_f64(value: &Json, keyword: &str) -> Result<f64, SchemaError> {
    value
        .as_f64()
        .ok_or_else(|| invalid(format!("`{keyword}` must be a number")))
}

fn pattern(text: &str) -> Result<Regex, SchemaError> {
    regex::RegexBuilder::new(text)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| invalid(format!("invalid pattern `{text}`: {e}")))
}

fn quantity_keyword(value: &Json, keyword: &str) -> Result<f64, SchemaError> {
    match value {
        Json::String(s) => parse_quantity(s),
        Json::Number(n) => n.as_f64(),
        _ => None,
    }
    .ok_or_else(|| invalid(format!("`{keyword}` must be a resource quantity")))
}

impl Compiler<'_> {
    fn compile(&mut self, schema: &Json) -> Result<usize, SchemaError> {
        let id = self.nodes.len();
        self.nodes.push(SchemaNode::Bool(true));
        let node = match schema {
            Json::Bool(b) => SchemaNode::Bool(*b),
            Json::Object(map) => {
                let mut keywords = Vec::new();
                for (key, value) in map {
                    if let Some(k) = self.keyword(key, value, map)? {
                        keywords.push(k);
                    }
                }
                SchemaNode::Keywords(keywords)
            }
            _ => return Err(invalid("a schema must be an object or a boolean")),
        };
        self.nodes[id] = node;
        Ok(id)
    }

    fn compile_all(&mut self, value: &Json, keyword: &str) -> Result<Vec<usize>, SchemaError> {
        value
            .as_array()
            .ok_or_else(|| invalid(format!("`{keyword}` must be a list of schemas")))?
            .iter()
            .map(|s| self.compile(s))
            .collect()
    }

    fn reference(&mut self, pointer: &str) -> Result<usize, SchemaError> {
        if let Some(id) = self.refs.get(pointer) {
            return Ok(*id);
        }
        let Some(fragment) = pointer.strip_prefix('#') else {
            return Err(invalid(format!(
                "`$ref: {pointer}` points outside the schema; only `#...` references are allowed"
            )));
        };
        let target = if fragment.is_empty() {
            Some(self.root)
        } else {
            self.root.pointer(fragment)
        }
        .ok_or_else(|| invalid(format!("`$ref: {pointer}` points at nothing")))?;
        // Reserve the slot first so a self-reference resolves to it.
        let id = self.nodes.len();
        self.refs.insert(pointer.to_owned(), id);
        let compiled = self.compile(target)?;
        debug_assert_eq!(compiled, id);
        Ok(id)
    }

    fn keyword(
        &mut self,
        key: &str,
        value: &Json,
        siblings: &serde_json::Map<String, Json>,
    ) -> Result<Option<Keyword>, SchemaError> {
        Ok(Some(match key {
            "type" => {
                let names: Vec<&str> = match value {
                    Json::String(s) => vec![s.as_str()],
                    Json::Array(a) => a.iter().filter_map(Json::as_str).collect(),
                    _ => return Err(invalid("`type` must be a name or a list of names")),
                };
                let types = names
                    .into_iter()
                    .map(|n| match n {
                        "null" => Ok(JsonType::Null),
                        "boolean" => Ok(JsonType::Boolean),
                        "object" => Ok(JsonType::Object),
                        "array" => Ok(JsonType::Array),
                        "number" => Ok(JsonType::Number),
                        "integer" => Ok(JsonType::Integer),
                        "string" => Ok(JsonType::String),
                        other => Err(invalid(format!("unknown type `{other}`"))),
                    })
                    .collect::<Result<_, _>>()?;
                Keyword::Type(types)
            }
            "enum" => Keyword::Enum(
                value
                    .as_array()
                    .ok_or_else(|| invalid("`enum` must be a list"))?
                    .clone(),
            ),
            "const" => Keyword::Const(value.clone()),
            "properties" => {
                let map = value
                    .as_object()
                    .ok_or_else(|| invalid("`properties` must be a mapping"))?;
                let mut props = Vec::new();
                for (name, schema) in map {
                    props.push((name.clone(), self.compile(schema)?));
                }
                Keyword::Properties(props)
            }
            "required" => match value {
                Json::Null => return Ok(None),
                Json::Array(items) => Keyword::Required(
                    items
                        .iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect(),
                ),
                _ => return Err(invalid("`required` must be a list of names")),
            },
            "additionalProperties" => {
                let known = siblings
                    .get("properties")
                    .and_then(Json::as_object)
                    .map(|m| m.keys().cloned().collect())
                    .unwrap_or_default();
                let patterns = siblings
                    .get("patternProperties")
                    .and_then(Json::as_object)
                    .map(|m| m.keys().map(|k| pattern(k)).collect::<Result<_, _>>())
                    .transpose()?
                    .unwrap_or_default();
                Keyword::AdditionalProperties {
                    schema: self.compile(value)?,
                    known,
                    patterns,
                }
            }
            "patternProperties" => {
                let map = value
                    .as_object()
                    .ok_or_else(|| invalid("`patternProperties` must be a mapping"))?;
                let mut out = Vec::new();
                for (p, schema) in map {
                    out.push((pattern(p)?, self.compile(schema)?));
                }
                Keyword::PatternProperties(out)
            }
            "propertyNames" => Keyword::PropertyNames(self.compile(value)?),
            "minProperties" => Keyword::MinProperties(as_usize(value, key)?),
            "maxProperties" => Keyword::MaxProperties(as_usize(value, key)?),
            "dependentRequired" => {
                let map = value
                    .as_object()
                    .ok_or_else(|| invalid("`dependentRequired` must be a mapping"))?;
                Keyword::DependentRequired(
                    map.iter()
                        .map(|(k, v)| {
                            (
                                k.clone(),
                                v.as_array()
                                    .unwrap_or(&Vec::new())
                                    .iter()
                                    .filter_map(|s| s.as_str().map(str::to_owned))
                                    .collect(),
                            )
                        })
                        .collect(),
                )
            }
            "items" => match value {
                Json::Array(_) => Keyword::PrefixItems(self.compile_all(value, key)?),
                _ => Keyword::Items(self.compile(value)?),
            },
            "prefixItems" => Keyword::PrefixItems(self.compile_all(value, key)?),
            "contains" => Keyword::Contains {
                schema: self.compile(value)?,
                min: siblings
                    .get("minContains")
                    .map(|v| as_usize(v, "minContains"))
                    .transpose()?
                    .unwrap_or(1),
                max: siblings
                    .get("maxContains")
                    .map(|v| as_usize(v, "maxContains"))
                    .transpose()?,
            },
            "minItems" => Keyword::MinItems(as_usize(value, key)?),
            "maxItems" => Keyword::MaxItems(as_usize(value, key)?),
            "uniqueItems" if value.as_bool() == Some(true) => Keyword::UniqueItems,
            "minimum" => Keyword::Minimum(as_f64(value, key)?),
            "maximum" => Keyword::Maximum(as_f64(value, key)?),
            "exclusiveMinimum" => Keyword::ExclusiveMinimum(as_f64(value, key)?),
            "exclusiveMaximum" => Keyword::ExclusiveMaximum(as_f64(value, key)?),
            "multipleOf" => Keyword::MultipleOf(as_f64(value, key)?),
            "minLength" => Keyword::MinLength(as_usize(value, key)?),
            "maxLength" => Keyword::MaxLength(as_usize(value, key)?),
            "pattern" => Keyword::Pattern(pattern(
                value
                    .as_str()
                    .ok_or_else(|| invalid("`pattern` must be a string"))?,
            )?),
            "allOf" => Keyword::AllOf(self.compile_all(value, key)?),
            "anyOf" => Keyword::AnyOf(self.compile_all(value, key)?),
            "oneOf" => Keyword::OneOf(self.compile_all(value, key)?),
            "not" => Keyword::Not(self.compile(value)?),
            "if" => Keyword::If {
                cond: self.compile(value)?,
                then: siblings.get("then").map(|s| self.compile(s)).transpose()?,
                otherwise: siblings.get("else").map(|s| self.compile(s)).transpose()?,
            },
            "$ref" => Keyword::Ref(
                self.reference(
                    value
                        .as_str()
                        .ok_or_else(|| invalid("`$ref` must be a string"))?,
                )?,
            ),
            "resourceMinimum" => Keyword::ResourceMinimum(quantity_keyword(value, key)?),
            "resourceMaximum" => Keyword::ResourceMaximum(quantity_keyword(value, key)?),
            // Read with a sibling (`then`, `else`, `minContains`), annotations, and
            // declarations: not assertions of their own.
            "then" | "else" | "minContains" | "maxContains" | "uniqueItems" | "$schema" | "$id"
            | "$comment" | "$defs" | "definitions" | "title" | "description" | "default"
            | "examples" | "deprecated" | "readOnly" | "writeOnly" | "format"
            | "contentEncoding" | "contentMediaType" | "$vocabulary" => return Ok(None),
            // A keyword we do not evaluate would pass every object: the worst a policy can do
            // silently (`unevaluatedProperties`, `dependentSchemas`, `$anchor`, a typo).
            other => {
                return Err(invalid(format!(
                    "unknown keyword `{other}`: kubeward does not evaluate it, so a check using it would pass every object"
                )));
            }
        }))
    }
}

/// Kubernetes' typed view of an object for custom checks: resource quantities are strings
/// once the API server has decoded them (`cpu: 1.5` reads back as `"1500m"`), and Polaris's
/// schemas are written against that view.
pub fn kubernetes_view(node: &Node) -> Node {
    fn walk(node: &mut Node, in_resources: bool, depth: usize) {
        if depth > 64 {
            return;
        }
        match &mut node.value {
            Value::Map(entries) => {
                for entry in entries.iter_mut() {
                    let quantities =
                        in_resources && matches!(entry.key.as_str(), "limits" | "requests");
                    if quantities {
                        if let Value::Map(qs) = &mut entry.value.value {
                            for q in qs.iter_mut() {
                                if matches!(q.value.value, Value::Int(_) | Value::Float(_))
                                    && let Some(text) = q.value.scalar_text()
                                {
                                    q.value.value = Value::Str(text);
                                }
                            }
                        }
                    } else {
                        walk(&mut entry.value, entry.key == "resources", depth + 1);
                    }
                }
            }
            Value::Seq(items) => items.iter_mut().for_each(|i| walk(i, false, depth + 1)),
            _ => {}
        }
    }
    let mut copy = node.clone();
    walk(&mut copy, false, 0);
    copy
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::{Limits, parse_stream};

    fn node(text: &str) -> Node {
        parse_stream(text, Limits::default())
            .into_iter()
            .next()
            .and_then(|d| d.root.ok())
            .expect("parses")
    }

    fn check(schema: Json, instance: &str) -> Result<(), Violation> {
        SchemaCheck::new(schema, false, Vec::new(), "policy.yaml:3".into())
            .expect("compiles")
            .validate(&node(instance), &FieldPath::root(), &|| Json::Null)
    }

    #[test]
    fn failures_point_at_the_most_specific_node() {
        let schema = serde_json::json!({
            "properties": {"spec": {"properties": {"replicas": {"minimum": 2}}}}
        });
        let v = check(schema, "spec:\n  replicas: 1\n").expect_err("too few replicas");
        assert_eq!(v.span.start.line, 2);
        assert_eq!(v.path.to_string(), "spec.replicas");
    }

    #[test]
    fn a_keyword_we_do_not_evaluate_is_refused_not_passed() {
        for keyword in [
            "unevaluatedProperties",
            "dependentSchemas",
            "$anchor",
            "requried",
        ] {
            let schema = serde_json::json!({"properties": {"spec": {keyword: false}}});
            let error = Compiled::new(&schema).err().map(|e| e.to_string());
            assert!(
                error
                    .as_deref()
                    .is_some_and(|e| e.contains(&format!("unknown keyword `{keyword}`"))),
                "{keyword}: {error:?}"
            );
        }
        let annotated = serde_json::json!({"title": "t", "description": "d", "$comment": "c",
            "if": {"const": 1}, "then": {"const": 1}, "else": true, "uniqueItems": false});
        assert!(Compiled::new(&annotated).is_ok());
    }

    #[test]
    fn refs_stay_inside_the_document() {
        let local = serde_json::json!({"$defs": {"x": {"const": 1}}, "$ref": "#/$defs/x"});
        assert!(check(local, "1").is_ok());
        let remote = serde_json::json!({"$ref": "https://example.com/schema.json"});
        assert!(Compiled::new(&remote).is_err());
        let file = serde_json::json!({"$ref": "/etc/passwd"});
        assert!(Compiled::new(&file).is_err());
        let cycle = serde_json::json!({"$ref": "#"});
        let error = check(cycle, "1").expect_err("a self-reference ends, with an error");
        assert!(
            error
                .detail
                .is_some_and(|d| d.contains("deeper than 64 levels")),
            "a check that cannot finish says so"
        );
    }

    /// `{anyOf: [{$ref: next}, {$ref: next}]}`, `depth` levels deep, ending in `end`: 2^depth
    /// paths when every one fails.
    fn nested_any_of(depth: usize, end: Json) -> Json {
        let mut defs = serde_json::Map::new();
        for i in 0..depth {
            let next = serde_json::json!({"$ref": format!("#/$defs/d{}", i + 1)});
            defs.insert(format!("d{i}"), serde_json::json!({"anyOf": [next, next]}));
        }
        defs.insert(format!("d{depth}"), end);
        serde_json::json!({"$defs": defs, "$ref": "#/$defs/d0"})
    }

    #[test]
    fn exponential_schemas_give_up_and_fail_naming_the_check() {
        let error = check(
            nested_any_of(26, serde_json::json!({"const": "never"})),
            "1",
        )
        .expect_err("a check that cannot finish fails");
        let detail = error.detail.unwrap_or_default();
        assert!(
            detail.contains("more than 100000 steps") && detail.contains("at policy.yaml:3"),
            "{detail}"
        );
        // The same schema on a value that passes early is cheap, and passes.
        assert!(check(nested_any_of(26, serde_json::json!({"const": 1})), "1").is_ok());
    }

    #[test]
    fn giving_up_is_never_turned_into_a_pass() {
        // The costly schema's definitions, under wrappers that would pass on a plain failure.
        let costly = nested_any_of(26, serde_json::json!({"const": "never"}));
        let wrap = |mut schema: Json| {
            schema["$defs"] = costly["$defs"].clone();
            schema
        };
        let inner = serde_json::json!({"$ref": "#/$defs/d0"});
        for schema in [
            wrap(serde_json::json!({"not": inner})),
            wrap(serde_json::json!({"anyOf": [inner, {"const": 1}]})),
            wrap(serde_json::json!({"oneOf": [inner, {"const": 1}]})),
            wrap(serde_json::json!({"if": inner, "then": false, "else": true})),
            serde_json::json!({"not": {"$ref": "#"}}),
        ] {
            let error = check(schema.clone(), "1").expect_err("never a pass");
            assert!(
                error
                    .detail
                    .is_some_and(|d| d.contains("could not be evaluated")),
                "{schema}"
            );
        }
        let contains = wrap(serde_json::json!({"contains": inner, "minContains": 0}));
        assert!(check(contains, "[1, 2]").is_err());
        let additional = SchemaCheck::additional_satisfied(&costly, &[&node("1")], &Json::Null);
        assert_eq!(additional, Err(GaveUp::Steps));
    }

    #[test]
    fn placeholders_are_substituted_as_typed_values() {
        let input = serde_json::json!({"metadata": {"name": "web\" injected: true", "n": 3}});
        let schema = serde_json::json!({"const": "{{ .metadata.name }}", "x": "n={{.metadata.n}}"});
        let out = substitute(&schema, &input);
        assert_eq!(out["const"], Json::String("web\" injected: true".into()));
        assert_eq!(out["x"], Json::String("n=3".into()));
        let typed = substitute(&serde_json::json!({"const": "{{ .metadata.n }}"}), &input);
        assert_eq!(typed["const"], Json::from(3));
        assert!(parse_schema_string("{{ if .x }}type: object{{ end }}").is_err());
        let parsed = parse_schema_string("const: {{ .metadata.name }}\n").expect("parses");
        assert_eq!(parsed["const"], Json::String("{{ .metadata.name }}".into()));
    }

    #[test]
    fn quantities_compare_by_value() {
        assert_eq!(parse_quantity("100m"), Some(0.1));
        assert_eq!(parse_quantity("512Mi"), Some(512.0 * 1024.0 * 1024.0));
        assert_eq!(parse_quantity("6G"), Some(6e9));
        assert_eq!(parse_quantity("1e3"), Some(1000.0));
        assert_eq!(parse_quantity("abc"), None);
    }
}
