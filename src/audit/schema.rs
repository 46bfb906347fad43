//! Polaris-format custom checks: JSON Schema (draft 2019-09, as in Polaris) evaluated by the
//! `jsonschema` crate directly over our YAML tree, so a failure points at the most specific
//! node instead of "somewhere in the object".
//!
//! Schemas come from repository config, which a pull request can influence indirectly, so they
//! are treated as untrusted: nothing is fetched (`$ref` stays inside the schema), patterns run
//! on the linear-time `regex` engine with a size limit, Polaris's Go-template placeholders
//! (`{{ .metadata.name }}`) are substituted as typed JSON values, never spliced into schema
//! text, and the schema's size is bounded when the policy loads ([`bound`]).

mod bound;
mod tree;

use std::sync::Arc;

use jsonschema::error::ValidationErrorKind;
use jsonschema::paths::Location;
use jsonschema::{Draft, Keyword as CustomKeyword, PatternOptions, ValidationError, Validator};
use serde_json::Value as Json;

use super::eval::Violation;
use crate::manifest::FieldPath;
use crate::yaml::{Node, Value};
use tree::YamlTree;

pub use bound::{MAX_EXPANDED_NODES, MAX_NESTING};

/// A compiled schema plus what the check needs to run it.
#[derive(Clone)]
pub struct SchemaCheck {
    /// The schema as written, placeholders still in.
    raw: Json,
    /// Compiled once when the schema has no placeholders.
    compiled: Option<Arc<Validator<YamlTree>>>,
    /// Container checks evaluated against the whole pod spec (Polaris's `schemaTarget: PodSpec`).
    pub pod_spec_target: bool,
    /// Other objects, one of which must match (`additionalSchemas`), by `group/Kind`.
    pub additional: Vec<(String, Json)>,
    /// Where the check is defined (`file:line`).
    pub origin: String,
}

impl std::fmt::Debug for SchemaCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchemaCheck")
            .field("raw", &self.raw)
            .field("pod_spec_target", &self.pod_spec_target)
            .field("additional", &self.additional)
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("{0}")]
    Invalid(String),
}

/// Largest compiled form of one `pattern`, so a hostile pattern cannot take the memory.
const PATTERN_SIZE_LIMIT: usize = 1 << 20;

/// Compiles one schema the one way every custom check is compiled.
fn compile(schema: &Json) -> Result<Validator<YamlTree>, SchemaError> {
    jsonschema::options_for::<YamlTree>()
        .with_draft(Draft::Draft201909)
        .offline()
        .with_pattern_options(PatternOptions::regex().size_limit(PATTERN_SIZE_LIMIT))
        // Polaris asserts formats; an unknown format must not pass everything.
        .should_validate_formats(true)
        .should_ignore_unknown_formats(false)
        .with_keyword("resourceMinimum", |_, value, _| {
            quantity_bound(value, "resourceMinimum", Bound::Minimum)
        })
        .with_keyword("resourceMaximum", |_, value, _| {
            quantity_bound(value, "resourceMaximum", Bound::Maximum)
        })
        .build(schema)
        .map_err(|e| SchemaError::Invalid(e.to_string()))
}

impl SchemaCheck {
    pub fn new(
        raw: Json,
        pod_spec_target: bool,
        additional: Vec<(String, Json)>,
        origin: String,
    ) -> Result<SchemaCheck, SchemaError> {
        let raw = polaris_compatible(raw);
        let additional: Vec<(String, Json)> = additional
            .into_iter()
            .map(|(kind, schema)| (kind, polaris_compatible(schema)))
            .collect();
        for schema in std::iter::once(&raw).chain(additional.iter().map(|(_, s)| s)) {
            check_placeholders(schema)?;
            bound::check(schema)?;
            // Compiled with placeholders as they are, so errors show at load time.
            compile(schema)?;
        }
        let compiled = if has_placeholders(&raw) {
            None
        } else {
            Some(Arc::new(compile(&raw)?))
        };
        Ok(SchemaCheck {
            raw,
            compiled,
            pod_spec_target,
            additional,
            origin,
        })
    }

    /// Validates `instance`, which sits at `path`. `template_input` is what Polaris's
    /// placeholders read.
    pub fn validate(
        &self,
        instance: &Node,
        path: &FieldPath,
        template_input: &dyn Fn() -> Json,
    ) -> Result<(), Violation> {
        let owned;
        let validator = match &self.compiled {
            Some(v) => v.as_ref(),
            None => {
                let input = template_input();
                owned = compile(&substitute(&self.raw, &input)).map_err(|e| Violation {
                    span: instance.span,
                    path: path.clone(),
                    detail: Some(e.to_string()),
                })?;
                &owned
            }
        };
        match validator.validate(instance) {
            Ok(()) => Ok(()),
            Err(error) => Err(violation(&error, instance, path)),
        }
    }

    /// Whether some object satisfies the additional schema for `group_kind`.
    pub fn additional_satisfied(
        schema: &Json,
        candidates: &[&Node],
        template_input: &Json,
    ) -> bool {
        let Ok(validator) = compile(&substitute(schema, template_input)) else {
            return false;
        };
        candidates.iter().any(|c| validator.is_valid(c))
    }
}

/// Polaris's own checks write `required:` with no list (`hostPortSet`), which its evaluator
/// reads as no requirement; the draft says `required` is a list, so the empty key is dropped.
fn polaris_compatible(mut schema: Json) -> Json {
    fn walk(value: &mut Json) {
        match value {
            Json::Object(map) => {
                if map.get("required").is_some_and(Json::is_null) {
                    map.remove("required");
                }
                // Values, not schemas: left as written.
                map.iter_mut()
                    .filter(|(k, _)| {
                        !matches!(k.as_str(), "const" | "enum" | "default" | "examples")
                    })
                    .for_each(|(_, v)| walk(v));
            }
            Json::Array(items) => items.iter_mut().for_each(walk),
            _ => {}
        }
    }
    walk(&mut schema);
    schema
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

// ---- resource quantities as keywords ---------------------------------------------------

#[derive(Clone, Copy)]
enum Bound {
    Minimum,
    Maximum,
}

/// `resourceMinimum` / `resourceMaximum`: a quantity (`100m`, `512Mi`) compared by value.
struct QuantityBound {
    limit: f64,
    bound: Bound,
}

fn quantity_bound<'a>(
    value: &'a Json,
    keyword: &str,
    bound: Bound,
) -> Result<Box<dyn for<'i> CustomKeyword<'i, YamlTree>>, ValidationError<'a>> {
    let limit = match value {
        Json::String(s) => parse_quantity(s),
        Json::Number(n) => n.as_f64(),
        _ => None,
    }
    .ok_or_else(|| ValidationError::schema(format!("`{keyword}` must be a resource quantity")))?;
    Ok(Box::new(QuantityBound { limit, bound }))
}

impl QuantityBound {
    fn holds(&self, node: &Node) -> bool {
        match (node_quantity(node), self.bound) {
            (Some(v), Bound::Minimum) => v + 1e-9 >= self.limit,
            (Some(v), Bound::Maximum) => v <= self.limit + 1e-9,
            // Not a quantity: Polaris fails the bound.
            (None, _) => false,
        }
    }
}

impl<'i> CustomKeyword<'i, YamlTree> for QuantityBound {
    fn validate(&self, instance: &'i Node) -> Result<(), ValidationError<'i>> {
        if self.holds(instance) {
            return Ok(());
        }
        let limit = self.limit;
        Err(ValidationError::custom(match self.bound {
            Bound::Minimum => format!("quantity is below {limit}"),
            Bound::Maximum => format!("quantity is above {limit}"),
        }))
    }

    fn is_valid(&self, instance: &'i Node) -> bool {
        self.holds(instance)
    }
}

// ---- errors back onto the tree ----------------------------------------------------------

/// How deep into the instance an error points; a missing or unexpected key counts as one
/// level below its mapping, where it is reported.
fn error_depth(error: &ValidationError<'_>) -> usize {
    let below = matches!(
        error.kind(),
        ValidationErrorKind::Required { .. }
            | ValidationErrorKind::AdditionalProperties { .. }
            | ValidationErrorKind::UnevaluatedProperties { .. }
            | ValidationErrorKind::PropertyNames { .. }
    );
    error.instance_path().as_str().matches('/').count() + usize::from(below)
}

/// For an `anyOf` or `oneOf` that nothing matched, the branch that got furthest explains the
/// failure best (the first such branch on a tie).
fn most_specific<'e, 'i>(error: &'e ValidationError<'i>) -> &'e ValidationError<'i> {
    match error.kind() {
        ValidationErrorKind::AnyOf { context } | ValidationErrorKind::OneOfNotValid { context } => {
            let mut best: Option<&ValidationError<'_>> = None;
            for first in context.iter().filter_map(|branch| branch.first()) {
                let candidate = most_specific(first);
                if best.is_none_or(|b| error_depth(candidate) > error_depth(b)) {
                    best = Some(candidate);
                }
            }
            best.unwrap_or(error)
        }
        _ => error,
    }
}

/// The node an instance location names, or the deepest of its ancestors that exists.
fn locate<'n>(instance: &'n Node, base: &FieldPath, location: &Location) -> (&'n Node, FieldPath) {
    let mut node = instance;
    let mut path = base.clone();
    for token in location.as_str().split('/').skip(1) {
        let token = token.replace("~1", "/").replace("~0", "~");
        match &node.value {
            Value::Map(entries) => match entries.iter().find(|e| e.key == token) {
                Some(entry) => {
                    path.push_key(&entry.key);
                    node = &entry.value;
                }
                None => break,
            },
            Value::Seq(items) => {
                let Some((i, item)) = token
                    .parse::<usize>()
                    .ok()
                    .and_then(|i| Some((i, items.get(i)?)))
                else {
                    break;
                };
                path.push_item(i, item);
                node = item;
            }
            _ => break,
        }
    }
    (node, path)
}

fn violation(error: &ValidationError<'_>, instance: &Node, base: &FieldPath) -> Violation {
    let error = most_specific(error);
    let (node, path) = locate(instance, base, error.instance_path());
    let at = |span, path, detail| Violation {
        span,
        path,
        detail: Some(detail),
    };
    match error.kind() {
        ValidationErrorKind::Required { property } => {
            let name = property.as_str().unwrap_or_default();
            at(node.span, path.key(name), format!("`{name}` is required"))
        }
        ValidationErrorKind::AdditionalProperties { unexpected }
        | ValidationErrorKind::UnevaluatedProperties { unexpected } => {
            // On the first key that is not allowed, where the fix is.
            let entry = unexpected
                .first()
                .and_then(|key| node.as_map()?.iter().find(|e| e.key == key));
            match entry {
                Some(e) => at(
                    e.value.span,
                    path.key(&e.key),
                    format!("`{}` is not allowed here", e.key),
                ),
                None => at(node.span, path, describe(error.kind())),
            }
        }
        ValidationErrorKind::PropertyNames { error: inner } => {
            let key = inner.instance().as_str().unwrap_or_default();
            match node.as_map().and_then(|m| m.iter().find(|e| e.key == key)) {
                Some(e) => at(e.key_span, path.key(&e.key), describe(inner.kind())),
                None => at(node.span, path, describe(inner.kind())),
            }
        }
        ValidationErrorKind::Type { .. } => at(
            node.span,
            path,
            format!("{}, found {}", describe(error.kind()), node.kind_name()),
        ),
        kind => at(node.span, path, describe(kind)),
    }
}

/// What failed, in a few words. Never the instance itself: it may be a whole object, and its
/// text is the pull request author's.
fn describe(kind: &ValidationErrorKind) -> String {
    use ValidationErrorKind as K;
    match kind {
        K::Type { kind } => match kind {
            jsonschema::error::TypeKind::Single(t) => format!("expected {t}"),
            jsonschema::error::TypeKind::Multiple(set) => {
                let names: Vec<String> = set.iter().map(|t| t.to_string()).collect();
                format!("expected one of {}", names.join(", "))
            }
        },
        K::Enum { .. } => "value is not one of the allowed values".into(),
        K::Constant { expected_value } => format!("expected {}", short(expected_value)),
        K::Required { property } => {
            format!("`{}` is required", property.as_str().unwrap_or_default())
        }
        K::AdditionalProperties { .. } | K::UnevaluatedProperties { .. } => {
            "has keys that are not allowed".into()
        }
        K::AdditionalItems { limit } => format!("allows at most {limit} items"),
        K::UnevaluatedItems { .. } => "has items that are not allowed".into(),
        K::MinProperties { limit } => format!("needs at least {limit} entries"),
        K::MaxProperties { limit } => format!("allows at most {limit} entries"),
        K::MinItems { limit } => format!("needs at least {limit} items"),
        K::MaxItems { limit } => format!("allows at most {limit} items"),
        K::UniqueItems => "items must be unique".into(),
        K::Contains => "no item matches what the list must contain".into(),
        K::Minimum { limit } => format!("must be at least {limit}"),
        K::Maximum { limit } => format!("must be at most {limit}"),
        K::ExclusiveMinimum { limit } => format!("must be more than {limit}"),
        K::ExclusiveMaximum { limit } => format!("must be less than {limit}"),
        K::MultipleOf { multiple_of } => format!("must be a multiple of {multiple_of}"),
        K::MinLength { limit } => format!("must be at least {limit} characters"),
        K::MaxLength { limit } => format!("must be at most {limit} characters"),
        K::Pattern { pattern } => format!("does not match `{pattern}`"),
        K::Format { format } => format!("is not a valid {format}"),
        K::Not { .. } => "matches a forbidden schema".into(),
        K::AnyOf { .. } | K::OneOfNotValid { .. } => "matches none of the alternatives".into(),
        K::OneOfMultipleValid { .. } => {
            "matches more than one alternative, exactly one allowed".into()
        }
        K::FalseSchema => "no value is allowed here".into(),
        K::PropertyNames { error } => format!("a key {}", describe(error.kind())),
        K::Custom { message, .. } => message.clone(),
        other => format!("fails `{}`", other.keyword()),
    }
}

/// A schema value for a message, cut to a readable length.
fn short(value: &Json) -> String {
    let text = value.to_string();
    if text.chars().count() <= 80 {
        text
    } else {
        format!("{}…", text.chars().take(79).collect::<String>())
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
                                    q.value.value = Value::Str(text.into());
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

    fn refused(schema: Json) -> String {
        SchemaCheck::new(schema, false, Vec::new(), "policy.yaml:3".into())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    }

    #[test]
    fn a_keyword_we_do_not_evaluate_is_refused_not_passed() {
        for keyword in ["requried", "x-kubernetes-int-or-string", "$dynamicRef"] {
            let schema = serde_json::json!({"properties": {"spec": {keyword: false}}});
            assert!(!refused(schema).is_empty(), "{keyword}");
        }
        let annotated = serde_json::json!({"title": "t", "description": "d", "$comment": "c",
            "if": {"const": 1}, "then": {"const": 1}, "else": true, "uniqueItems": false});
        assert!(check(annotated, "1").is_ok());
    }

    /// What the old evaluator refused, the crate evaluates, and a check relying on it is no
    /// longer passed silently.
    #[test]
    fn the_whole_draft_is_evaluated() {
        let unevaluated = serde_json::json!({
            "properties": {"spec": {"properties": {"replicas": true}, "unevaluatedProperties": false}}
        });
        let v = check(unevaluated, "spec:\n  replicas: 1\n  paused: true\n")
            .expect_err("paused is not allowed");
        assert_eq!(v.path.to_string(), "spec.paused");
        assert_eq!(v.span.start.line, 3);
        let dependent =
            serde_json::json!({"dependentSchemas": {"hostPath": {"required": ["readOnly"]}}});
        let v = check(dependent.clone(), "hostPath: /var\n").expect_err("needs readOnly");
        assert_eq!(v.detail.as_deref(), Some("`readOnly` is required"));
        assert!(check(dependent, "hostPath: /var\nreadOnly: true\n").is_ok());
        let anchored = serde_json::json!({"$defs": {"p": {"$anchor": "port", "maximum": 1024}},
            "properties": {"port": {"$ref": "#port"}}});
        assert!(check(anchored, "port: 8080\n").is_err());
        let format = serde_json::json!({"properties": {"ip": {"format": "ipv4"}}});
        assert!(check(format, "ip: 300.1.1.1\n").is_err());
        assert!(
            refused(serde_json::json!({"format": "kubeward-unknown"})).contains("kubeward-unknown")
        );
    }

    #[test]
    fn failures_inside_alternatives_point_at_the_deepest_branch() {
        let schema = serde_json::json!({"anyOf": [
            {"required": ["absent"]},
            {"properties": {"spec": {"properties": {"replicas": {"minimum": 2}}}}}
        ]});
        let v = check(schema, "spec:\n  replicas: 1\n").expect_err("neither branch holds");
        assert_eq!(v.path.to_string(), "spec.replicas");
        assert_eq!(v.detail.as_deref(), Some("must be at least 2"));
    }

    #[test]
    fn refs_stay_inside_the_document() {
        let local = serde_json::json!({"$defs": {"x": {"const": 1}}, "$ref": "#/$defs/x"});
        assert!(check(local, "1").is_ok());
        assert!(
            refused(serde_json::json!({"$ref": "https://example.com/schema.json"}))
                .contains("points outside")
        );
        assert!(refused(serde_json::json!({"$ref": "/etc/passwd"})).contains("points outside"));
        assert!(refused(serde_json::json!({"$ref": "#"})).contains("deeper than 64 levels"));
    }

    /// `{anyOf: [{$ref: next}, {$ref: next}]}`, 26 levels deep: 2^26 paths when every one
    /// fails, which took 11 s on one object before evaluation was bounded. Refused at load.
    #[test]
    fn exponential_schemas_are_refused_when_the_policy_loads() {
        let mut defs = serde_json::Map::new();
        for i in 0..26 {
            let next = serde_json::json!({"$ref": format!("#/$defs/d{}", i + 1)});
            defs.insert(format!("d{i}"), serde_json::json!({"anyOf": [next, next]}));
        }
        defs.insert("d26".into(), serde_json::json!({"const": "never"}));
        let error = refused(serde_json::json!({"$defs": defs, "$ref": "#/$defs/d0"}));
        assert!(error.contains("more than 10000 subschemas"), "{error}");
    }

    #[test]
    fn placeholders_cannot_place_a_schema() {
        // A placeholder where a subschema goes would let a manifest write the check.
        assert!(!refused(serde_json::json!({"not": "{{ .metadata.annotations }}"})).is_empty());
        assert!(!refused(serde_json::json!({"{{ .metadata.name }}": {"const": 1}})).is_empty());
        let typed = SchemaCheck::new(
            serde_json::json!({"properties": {"metadata": {"properties": {"name": {"const": "{{ .Polaris.expected }}"}}}}}),
            false,
            Vec::new(),
            "policy.yaml:3".into(),
        )
        .expect("a placeholder as a value compiles");
        let input = serde_json::json!({"Polaris": {"expected": "web"}});
        let doc = node("metadata:\n  name: api\n");
        let v = typed
            .validate(&doc, &FieldPath::root(), &|| input.clone())
            .expect_err("api is not web");
        assert_eq!(v.detail.as_deref(), Some("expected \"web\""));
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
