//! What a custom check's schema may be, decided once when the policy loads.
//!
//! The `jsonschema` crate has no step budget, so the bound is static: every keyword is one the
//! pinned draft (2019-09, Polaris's) evaluates, every `$ref` stays inside the document, and the
//! schema with its `$ref`s followed is at most [`MAX_EXPANDED_NODES`] subschemas, nested at most
//! [`MAX_NESTING`] deep. A schema then does at most that much work per instance node, so one
//! evaluation costs at most (expanded size × object size); the review's deadline covers the
//! rest. Nested `anyOf` of `$ref`s that branch 2^26 ways, or a `$ref` cycle, are refused here
//! instead of timing out on the first object.
//!
//! Placeholders cannot change this shape: in a subschema position a placeholder is a string,
//! which is no schema, so the raw schema fails to compile; in a keyword position it is an
//! unknown keyword; in `$ref`, `$id` and `$anchor` it is refused outright.

use serde_json::{Map, Value as Json};

use super::SchemaError;

/// Most subschemas a check may have with its `$ref`s followed. Real checks have tens.
pub const MAX_EXPANDED_NODES: usize = 10_000;

/// Deepest nesting of subschemas, `$ref`s followed.
pub const MAX_NESTING: usize = 64;

/// The meta-schema of the one draft custom checks are evaluated as.
const DRAFT_2019_09: &str = "https://json-schema.org/draft/2019-09/schema";

/// How a keyword's value is read: the subschemas in it, or none.
enum Shape {
    /// An annotation or an assertion on the instance; no subschemas.
    Leaf,
    /// One subschema.
    Schema,
    /// A list of subschemas.
    Schemas,
    /// A mapping of names to subschemas.
    SchemaMap,
    /// `items`: one subschema or a list of them (2019-09's tuple form).
    SchemaOrSchemas,
    /// `dependencies`: names to a subschema or to a list of names.
    Dependencies,
    /// `$defs`: subschemas reached only through `$ref`.
    Definitions,
    /// `$ref`, followed when the size is counted.
    Reference,
}

fn shape(keyword: &str) -> Result<Shape, String> {
    Ok(match keyword {
        "$schema" | "$id" | "$anchor" | "$comment" | "$vocabulary" | "type" | "enum" | "const"
        | "multipleOf" | "maximum" | "exclusiveMaximum" | "minimum" | "exclusiveMinimum"
        | "maxLength" | "minLength" | "pattern" | "maxItems" | "minItems" | "uniqueItems"
        | "maxContains" | "minContains" | "maxProperties" | "minProperties" | "required"
        | "dependentRequired" | "format" | "contentEncoding" | "contentMediaType" | "title"
        | "description" | "default" | "deprecated" | "readOnly" | "writeOnly" | "examples"
        | "resourceMinimum" | "resourceMaximum" => Shape::Leaf,
        "not"
        | "if"
        | "then"
        | "else"
        | "additionalItems"
        | "unevaluatedItems"
        | "contains"
        | "additionalProperties"
        | "unevaluatedProperties"
        | "propertyNames"
        | "contentSchema" => Shape::Schema,
        "allOf" | "anyOf" | "oneOf" => Shape::Schemas,
        "properties" | "patternProperties" | "dependentSchemas" => Shape::SchemaMap,
        "items" => Shape::SchemaOrSchemas,
        "dependencies" => Shape::Dependencies,
        "$defs" | "definitions" => Shape::Definitions,
        "$ref" => Shape::Reference,
        "prefixItems" => {
            return Err(
                "`prefixItems` is draft 2020-12; custom checks are draft 2019-09 (as in Polaris), where a list under `items` checks items by position".into(),
            );
        }
        "$dynamicRef" | "$dynamicAnchor" => {
            return Err(format!(
                "`{keyword}` is draft 2020-12; custom checks are draft 2019-09 (as in Polaris)"
            ));
        }
        "$recursiveRef" | "$recursiveAnchor" => {
            return Err(format!(
                "`{keyword}` makes a schema recursive; a custom check must finish in bounded work, so recursion is not supported"
            ));
        }
        other => {
            return Err(format!(
                "unknown keyword `{other}`: kubeward does not evaluate it, so a check using it would pass every object"
            ));
        }
    })
}

/// Checks the vocabulary and the expanded size of `root`.
pub fn check(root: &Json) -> Result<(), SchemaError> {
    vocabulary(root, "#")?;
    let mut expansion = Expansion { nodes: 0 };
    expansion.visit(root, root, 0)
}

fn invalid(at: &str, message: impl std::fmt::Display) -> SchemaError {
    SchemaError::Invalid(if at == "#" {
        message.to_string()
    } else {
        format!("at `{at}`: {message}")
    })
}

/// Every subschema, `$defs` included, uses only keywords the draft evaluates.
fn vocabulary(schema: &Json, at: &str) -> Result<(), SchemaError> {
    let map = match schema {
        Json::Bool(_) => return Ok(()),
        Json::Object(map) => map,
        _ => return Err(invalid(at, "a schema must be a mapping or a boolean")),
    };
    for (keyword, value) in map {
        let here = format!("{at}/{}", escape(keyword));
        let shape = shape(keyword).map_err(|message| invalid(at, message))?;
        if matches!(keyword.as_str(), "$ref" | "$id" | "$anchor")
            && value.as_str().is_some_and(|s| s.contains("{{"))
        {
            return Err(invalid(
                at,
                format!(
                    "`{keyword}` cannot hold a placeholder: a manifest must not choose which schema judges it"
                ),
            ));
        }
        if keyword == "$schema"
            && value.as_str().map(|s| s.trim_end_matches('#')) != Some(DRAFT_2019_09)
        {
            return Err(invalid(
                at,
                format!(
                    "`$schema: {value}`: custom checks are evaluated as JSON Schema draft 2019-09 (as in Polaris); declare `{DRAFT_2019_09}` or nothing"
                ),
            ));
        }
        match shape {
            Shape::Leaf | Shape::Reference => {}
            Shape::Schema => vocabulary(value, &here)?,
            Shape::Schemas => {
                for (i, item) in list(value, keyword, at)?.iter().enumerate() {
                    vocabulary(item, &format!("{here}/{i}"))?;
                }
            }
            Shape::SchemaOrSchemas => match value {
                Json::Array(items) => {
                    for (i, item) in items.iter().enumerate() {
                        vocabulary(item, &format!("{here}/{i}"))?;
                    }
                }
                _ => vocabulary(value, &here)?,
            },
            Shape::SchemaMap | Shape::Definitions => {
                for (name, item) in mapping(value, keyword, at)? {
                    vocabulary(item, &format!("{here}/{}", escape(name)))?;
                }
            }
            Shape::Dependencies => {
                for (name, item) in mapping(value, keyword, at)? {
                    if !item.is_array() {
                        vocabulary(item, &format!("{here}/{}", escape(name)))?;
                    }
                }
            }
        }
    }
    Ok(())
}

fn list<'a>(value: &'a Json, keyword: &str, at: &str) -> Result<&'a Vec<Json>, SchemaError> {
    value
        .as_array()
        .ok_or_else(|| invalid(at, format!("`{keyword}` must be a list of schemas")))
}

fn mapping<'a>(
    value: &'a Json,
    keyword: &str,
    at: &str,
) -> Result<&'a Map<String, Json>, SchemaError> {
    value
        .as_object()
        .ok_or_else(|| invalid(at, format!("`{keyword}` must be a mapping of schemas")))
}

/// A JSON pointer token (RFC 6901).
fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

fn unescape(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

/// The schema as the evaluator walks it: `$ref`s followed, `$defs` only through them.
struct Expansion {
    nodes: usize,
}

impl Expansion {
    /// `resource` is the subschema `$ref`s resolve against: the root, or the nearest one with
    /// its own `$id`.
    fn visit(&mut self, schema: &Json, resource: &Json, depth: usize) -> Result<(), SchemaError> {
        if depth > MAX_NESTING {
            return Err(SchemaError::Invalid(format!(
                "the schema nests deeper than {MAX_NESTING} levels with its `$ref`s followed (a `$ref` cycle?); a custom check must finish in bounded work"
            )));
        }
        self.nodes += 1;
        if self.nodes > MAX_EXPANDED_NODES {
            return Err(SchemaError::Invalid(format!(
                "the schema has more than {MAX_EXPANDED_NODES} subschemas with its `$ref`s followed (nested anyOf, oneOf or $ref multiply them); a custom check must finish in bounded work, so simplify it"
            )));
        }
        let Json::Object(map) = schema else {
            return Ok(());
        };
        let resource = if has_own_id(map) { schema } else { resource };
        // (subschema, the resource its `$ref`s resolve against)
        let mut next: Vec<(&Json, &Json)> = Vec::new();
        for (keyword, value) in map {
            // `vocabulary` accepted every keyword, so its shape is known.
            match shape(keyword).unwrap_or(Shape::Leaf) {
                Shape::Leaf | Shape::Definitions => {}
                Shape::Schema => next.push((value, resource)),
                Shape::Schemas => next.extend(
                    value
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|v| (v, resource)),
                ),
                Shape::SchemaOrSchemas => match value {
                    Json::Array(items) => next.extend(items.iter().map(|v| (v, resource))),
                    _ => next.push((value, resource)),
                },
                Shape::SchemaMap => next.extend(
                    value
                        .as_object()
                        .into_iter()
                        .flatten()
                        .map(|(_, v)| (v, resource)),
                ),
                Shape::Dependencies => next.extend(
                    value
                        .as_object()
                        .into_iter()
                        .flatten()
                        .filter(|(_, v)| !v.is_array())
                        .map(|(_, v)| (v, resource)),
                ),
                Shape::Reference => {
                    let reference = value
                        .as_str()
                        .ok_or_else(|| SchemaError::Invalid("`$ref` must be a string".into()))?;
                    next.push(resolve(reference, resource)?);
                }
            }
        }
        for (child, child_resource) in next {
            self.visit(child, child_resource, depth + 1)?;
        }
        Ok(())
    }
}

fn has_own_id(map: &Map<String, Json>) -> bool {
    map.get("$id")
        .and_then(Json::as_str)
        .is_some_and(|id| !id.starts_with('#'))
}

/// Resolves `#`, `#/json/pointer` or `#anchor` inside `resource`, and says which resource
/// the target belongs to. Anything else would leave the document.
fn resolve<'a>(reference: &str, resource: &'a Json) -> Result<(&'a Json, &'a Json), SchemaError> {
    let Some(fragment) = reference.strip_prefix('#') else {
        return Err(SchemaError::Invalid(format!(
            "`$ref: {reference}` points outside the schema; only `#/...` pointers and `#anchor`s inside it are allowed (nothing is fetched)"
        )));
    };
    let nothing = || SchemaError::Invalid(format!("`$ref: {reference}` points at nothing"));
    if fragment.is_empty() {
        return Ok((resource, resource));
    }
    let Some(pointer) = fragment.strip_prefix('/') else {
        return anchor(resource, fragment)
            .map(|target| (target, resource))
            .ok_or_else(nothing);
    };
    let mut target = resource;
    let mut target_resource = resource;
    for token in pointer.split('/') {
        let token = unescape(token);
        target = match target {
            Json::Object(map) => map.get(&token),
            Json::Array(items) => token.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => None,
        }
        .ok_or_else(nothing)?;
        if let Json::Object(map) = target
            && has_own_id(map)
        {
            target_resource = target;
        }
    }
    Ok((target, target_resource))
}

/// The subschema of `resource` declaring `$anchor: name`, not looking into embedded resources.
fn anchor<'a>(resource: &'a Json, name: &str) -> Option<&'a Json> {
    fn search<'a>(value: &'a Json, name: &str, top: bool) -> Option<&'a Json> {
        match value {
            Json::Object(map) => {
                if !top && has_own_id(map) {
                    return None;
                }
                if map.get("$anchor").and_then(Json::as_str) == Some(name) {
                    return Some(value);
                }
                map.values().find_map(|v| search(v, name, false))
            }
            Json::Array(items) => items.iter().find_map(|v| search(v, name, false)),
            _ => None,
        }
    }
    search(resource, name, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn refused(schema: Json) -> String {
        check(&schema)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    }

    #[test]
    fn every_keyword_must_be_one_the_draft_evaluates() {
        assert!(check(&json!({"properties": {"a": {"unevaluatedProperties": false}}})).is_ok());
        assert!(
            refused(json!({"properties": {"a": {"requried": ["x"]}}}))
                .contains("at `#/properties/a`: unknown keyword `requried`")
        );
        assert!(refused(json!({"prefixItems": [true]})).contains("draft 2020-12"));
        assert!(refused(json!({"$recursiveRef": "#"})).contains("recursion is not supported"));
        // Unused definitions are checked too: a typo there is a typo.
        assert!(refused(json!({"$defs": {"x": {"minimun": 1}}})).contains("`minimun`"));
        assert!(
            refused(json!({"$schema": "http://json-schema.org/draft-07/schema#"}))
                .contains("draft 2019-09")
        );
        assert!(check(&json!({"$schema": "https://json-schema.org/draft/2019-09/schema"})).is_ok());
    }

    #[test]
    fn references_stay_inside_the_document() {
        assert!(check(&json!({"$defs": {"x": {"const": 1}}, "$ref": "#/$defs/x"})).is_ok());
        assert!(
            check(&json!({"$defs": {"x": {"$anchor": "one", "const": 1}}, "$ref": "#one"})).is_ok()
        );
        assert!(refused(json!({"$ref": "https://example.com/s.json"})).contains("points outside"));
        assert!(refused(json!({"$ref": "/etc/passwd"})).contains("points outside"));
        assert!(refused(json!({"$ref": "#/$defs/missing"})).contains("points at nothing"));
        assert!(refused(json!({"$ref": "{{ .metadata.name }}"})).contains("placeholder"));
        // Inside an embedded resource, `#` pointers start at that resource.
        let embedded = json!({"$defs": {"inner": {"$id": "https://kubeward.invalid/inner",
            "$defs": {"x": {"const": 1}}, "$ref": "#/$defs/x"}}, "$ref": "#/$defs/inner"});
        assert!(check(&embedded).is_ok());
    }

    #[test]
    fn cycles_and_exponential_expansions_are_refused() {
        assert!(refused(json!({"$ref": "#"})).contains("deeper than 64 levels"));
        assert!(
            refused(json!({"properties": {"child": {"$ref": "#"}}})).contains("a `$ref` cycle")
        );
        let mut defs = Map::new();
        for i in 0..26 {
            let next = json!({"$ref": format!("#/$defs/d{}", i + 1)});
            defs.insert(format!("d{i}"), json!({"anyOf": [next, next]}));
        }
        defs.insert("d26".into(), json!({"const": "never"}));
        let exponential = json!({"$defs": defs, "$ref": "#/$defs/d0"});
        assert!(refused(exponential).contains("more than 10000 subschemas"));
    }
}
