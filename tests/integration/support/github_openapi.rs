//! Checks a request the bot sends to GitHub against GitHub's published REST description
//! (`@octokit/openapi`, `generated/api.github.com.deref.json`, installed by `scripts/test.sh`),
//! and against the limits the description does not state (see the forge facts, B.1–B.3).
//!
//! - [`validate_request`]: the path matches a documented operation, the method exists there,
//!   path and query parameters have the documented names and types, and the JSON body is valid
//!   against the operation's `application/json` request schema (OpenAPI 3.0 schemas converted
//!   to JSON Schema draft 4, validated with the `jsonschema` crate).
//! - [`check_limits`]: size and consistency rules GitHub enforces with a 422 that the schema
//!   does not (fully) express: check-run output and annotations, comment bodies, commit status
//!   descriptions, review-comment line ranges.
//!
//! - [`validate_reply`]: a reply (of our fake GitHub) has a status the operation documents and
//!   a JSON body whose fields have the documented types (`required` is not enforced: the fake
//!   sends only the fields the bot reads, which its typed replies then require).
//!
//! The description is read once per test binary (lazily) and only what the checks need is
//! kept: path templates, parameters, request-body schemas, 2xx response schemas and the example
//! replies.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::Deserialize;
use serde_json::{Map, Value};

use super::npm;

/// The file of `@octokit/openapi` we validate against.
pub const DESCRIPTION: &str = "generated/api.github.com.deref.json";

/// Validates a request: `method` (`GET`, `post`...), `path` (`/repos/o/r/pulls/3/reviews`,
/// optionally with `?query`, or a full `https://api.github.com/...` URL) and JSON `body`.
pub fn validate_request(method: &str, path: &str, body: Option<&Value>) -> Result<(), String> {
    let request = Request::parse(method, path)?;
    let (template, operation) = spec().find(&request)?;
    let what = format!(
        "{} {} ({})",
        request.method.to_uppercase(),
        template.template,
        operation.id
    );
    let mut problems = Vec::new();
    template.check_path_params(&request, operation, &mut problems);
    operation.check_query(&request, &mut problems);
    operation.check_body(body, &mut problems);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("{what}:\n  {}", problems.join("\n  ")))
    }
}

/// Validates a reply to a request (see the module documentation). Only 2xx replies are checked.
pub fn validate_reply(method: &str, path: &str, status: u16, body: &Value) -> Result<(), String> {
    if !(200..300).contains(&status) {
        return Ok(());
    }
    let request = Request::parse(method, path)?;
    let (template, operation) = spec().find(&request)?;
    let what = format!(
        "{} {} ({}) replied {status}",
        request.method.to_uppercase(),
        template.template,
        operation.id
    );
    let Some(reply) = operation.reply_schemas.get(&status.to_string()) else {
        return Err(format!(
            "{what}: not a documented status (documented: {})",
            operation
                .reply_schemas
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        ));
    };
    let Some(schema) = &reply.schema else {
        return Ok(());
    };
    let validator = reply.validator.get_or_init(|| {
        jsonschema::options()
            .with_draft(jsonschema::Draft::Draft4)
            .build(schema)
            .map_err(|e| format!("GitHub's reply schema does not compile: {e}"))
    });
    let validator = validator.as_ref().map_err(|e| format!("{what}: {e}"))?;
    let problems: Vec<String> = validator
        .iter_errors(body)
        .take(10)
        .map(|error| {
            let at = error.instance_path().to_string();
            format!("reply {}: {error}", if at.is_empty() { "/" } else { &at })
        })
        .collect();
    match problems.is_empty() {
        true => Ok(()),
        false => Err(format!("{what}:\n  {}", problems.join("\n  "))),
    }
}

/// The operation a request goes to: `(path template, operationId)`, e.g.
/// `("/repos/{owner}/{repo}/pulls/{pull_number}/reviews", "pulls/create-review")`.
pub fn operation_for(method: &str, path: &str) -> Result<(String, String), String> {
    let request = Request::parse(method, path)?;
    let (template, operation) = spec().find(&request)?;
    Ok((template.template.clone(), operation.id.clone()))
}

/// GitHub's own example request bodies for the operation a request goes to
/// (`requestBody.content["application/json"].examples`), as `(name, value)`.
pub fn request_examples(method: &str, path: &str) -> Result<Vec<(String, Value)>, String> {
    let request = Request::parse(method, path)?;
    let (_, operation) = spec().find(&request)?;
    Ok(operation
        .body
        .as_ref()
        .map(|body| body.examples.clone())
        .unwrap_or_default())
}

/// GitHub's own example replies (2xx, JSON) of the operation a request goes to, as
/// `("201 default", value)`.
pub fn reply_examples(method: &str, path: &str) -> Result<Vec<(String, Value)>, String> {
    let request = Request::parse(method, path)?;
    let (_, operation) = spec().find(&request)?;
    Ok(operation.replies.clone())
}

/// GitHub's limits on what the bot writes, beyond the schema (forge facts B.1–B.3). Applies
/// to the request's operation:
///
/// - any top-level `body` string (comments, reviews, issues): at most 65536 characters;
/// - `checks/create`, `checks/update`: `output.title` present with `output.summary`;
///   `summary`/`text` at most 65535 characters; at most 50 annotations, each with `path`,
///   `start_line`, `end_line` (`1 <= start_line <= end_line`), `annotation_level`
///   (`notice`|`warning`|`failure`) and `message`; `start_column`/`end_column` only when
///   `start_line == end_line`; annotation `title` at most 255 characters, `message` and
///   `raw_details` at most 64 KB; at most 3 `actions` (label ≤ 20, description ≤ 40,
///   identifier ≤ 20 characters);
/// - `repos/create-commit-status`: `description` at most 140 characters;
/// - `pulls/create-review`: an `event` (without one the review stays PENDING and blocks every
///   later review), a `body` for `COMMENT`/`REQUEST_CHANGES`, and every `comments[]` entry a
///   consistent line comment (below);
/// - `pulls/create-review-comment` (unless `in_reply_to` or `subject_type: file`): a
///   consistent line comment: `line >= 1`; `side`/`start_side` `LEFT` or `RIGHT`;
///   `start_line` only with `line` and `start_line < line`; `start_side` only with
///   `start_line`; no deprecated `position`.
pub fn check_limits(method: &str, path: &str, body: Option<&Value>) -> Result<(), String> {
    let (template, operation) = operation_for(method, path)?;
    let Some(body) = body else {
        return Ok(());
    };
    let mut problems = Vec::new();
    if let Some(text) = body.get("body").and_then(Value::as_str) {
        max_chars(&mut problems, "body", text, COMMENT_BODY_MAX);
    }
    match operation.as_str() {
        "checks/create" | "checks/update" => check_run_limits(body, &mut problems),
        "repos/create-commit-status" => {
            if let Some(text) = body.get("description").and_then(Value::as_str) {
                max_chars(&mut problems, "description", text, STATUS_DESCRIPTION_MAX);
            }
        }
        "pulls/create-review" => review_limits(body, &mut problems),
        "pulls/create-review-comment" => {
            let reply = body.get("in_reply_to").is_some();
            let file_level = body.get("subject_type").and_then(Value::as_str) == Some("file");
            if !reply && !file_level {
                line_comment(body, "", &mut problems);
            }
        }
        _ => {}
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} {template} ({operation}) breaks GitHub limits:\n  {}",
            method.to_uppercase(),
            problems.join("\n  ")
        ))
    }
}

/// Check-run `output.summary` / `output.text`.
pub const CHECK_OUTPUT_MAX: usize = 65535;
/// Annotations per create/update request.
pub const ANNOTATIONS_PER_REQUEST: usize = 50;
/// Annotation `title`.
pub const ANNOTATION_TITLE_MAX: usize = 255;
/// Annotation `message` / `raw_details`, in bytes (64 KB).
pub const ANNOTATION_TEXT_MAX_BYTES: usize = 64 * 1024;
/// Issue, pull request, review and comment bodies.
pub const COMMENT_BODY_MAX: usize = 65536;
/// Commit status `description`.
pub const STATUS_DESCRIPTION_MAX: usize = 140;

fn max_chars(problems: &mut Vec<String>, field: &str, text: &str, max: usize) {
    let count = text.chars().count();
    if count > max {
        problems.push(format!(
            "{field} has {count} characters; at most {max} are allowed"
        ));
    }
}

fn check_run_limits(body: &Value, problems: &mut Vec<String>) {
    if let Some(output) = body.get("output") {
        if output.get("summary").is_some() && output.get("title").is_none_or(Value::is_null) {
            problems.push("output.title is required alongside output.summary".into());
        }
        for field in ["summary", "text"] {
            if let Some(text) = output.get(field).and_then(Value::as_str) {
                max_chars(problems, &format!("output.{field}"), text, CHECK_OUTPUT_MAX);
            }
        }
        if let Some(annotations) = output.get("annotations").and_then(Value::as_array) {
            if annotations.len() > ANNOTATIONS_PER_REQUEST {
                problems.push(format!(
                    "output.annotations has {} entries; at most {ANNOTATIONS_PER_REQUEST} per \
                     request (send the rest in further updates: they are appended)",
                    annotations.len()
                ));
            }
            for (i, annotation) in annotations.iter().enumerate() {
                annotation_limits(annotation, &format!("output.annotations[{i}]"), problems);
            }
        }
    }
    if let Some(actions) = body.get("actions").and_then(Value::as_array) {
        if actions.len() > 3 {
            problems.push(format!("actions has {} entries; at most 3", actions.len()));
        }
        for (i, action) in actions.iter().enumerate() {
            for (field, max) in [("label", 20), ("description", 40), ("identifier", 20)] {
                match action.get(field).and_then(Value::as_str) {
                    Some(text) => max_chars(problems, &format!("actions[{i}].{field}"), text, max),
                    None => problems.push(format!("actions[{i}].{field} is required")),
                }
            }
        }
    }
}

fn annotation_limits(annotation: &Value, at: &str, problems: &mut Vec<String>) {
    let line = |field: &str| annotation.get(field).and_then(Value::as_i64);
    for field in ["path", "annotation_level", "message"] {
        if annotation.get(field).and_then(Value::as_str).is_none() {
            problems.push(format!("{at}.{field} is required (a string)"));
        }
    }
    let (start, end) = (line("start_line"), line("end_line"));
    match (start, end) {
        (Some(start), Some(end)) => {
            if start < 1 || end < start {
                problems.push(format!(
                    "{at}: need 1 <= start_line <= end_line, got {start}..{end}"
                ));
            }
            let columns =
                annotation.get("start_column").is_some() || annotation.get("end_column").is_some();
            if columns && start != end {
                problems.push(format!(
                    "{at}: start_column/end_column are only allowed when start_line == end_line \
                     ({start} != {end})"
                ));
            }
        }
        _ => problems.push(format!(
            "{at}: start_line and end_line are required (integers)"
        )),
    }
    if let Some(level) = annotation.get("annotation_level").and_then(Value::as_str)
        && !matches!(level, "notice" | "warning" | "failure")
    {
        problems.push(format!(
            "{at}.annotation_level is {level:?}; must be notice, warning or failure"
        ));
    }
    if let Some(title) = annotation.get("title").and_then(Value::as_str) {
        max_chars(
            problems,
            &format!("{at}.title"),
            title,
            ANNOTATION_TITLE_MAX,
        );
    }
    for field in ["message", "raw_details"] {
        if let Some(text) = annotation.get(field).and_then(Value::as_str)
            && text.len() > ANNOTATION_TEXT_MAX_BYTES
        {
            problems.push(format!(
                "{at}.{field} has {} bytes; at most {ANNOTATION_TEXT_MAX_BYTES}",
                text.len()
            ));
        }
    }
}

fn review_limits(body: &Value, problems: &mut Vec<String>) {
    match body.get("event").and_then(Value::as_str) {
        None => problems.push(
            "event is missing: the review would stay PENDING, and a pending review blocks \
             every later one"
                .into(),
        ),
        Some(event @ ("COMMENT" | "REQUEST_CHANGES")) => {
            if body
                .get("body")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                problems.push(format!("body is required when event is {event}"));
            }
        }
        Some(_) => {}
    }
    for (i, comment) in body
        .get("comments")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let at = format!("comments[{i}].");
        if let Some(text) = comment.get("body").and_then(Value::as_str) {
            max_chars(problems, &format!("{at}body"), text, COMMENT_BODY_MAX);
        }
        line_comment(comment, &at, problems);
    }
}

/// A line-anchored review comment: `line`, `side`, `start_line`, `start_side` consistent.
fn line_comment(comment: &Value, at: &str, problems: &mut Vec<String>) {
    if comment.get("position").is_some() {
        problems.push(format!(
            "{at}position is deprecated (\"closing down\"); anchor with line/side"
        ));
    }
    for field in ["side", "start_side"] {
        if let Some(side) = comment.get(field)
            && !matches!(side.as_str(), Some("LEFT" | "RIGHT"))
        {
            problems.push(format!(
                "{at}{field} is {side}; must be \"LEFT\" or \"RIGHT\""
            ));
        }
    }
    let line = comment.get("line").and_then(Value::as_i64);
    let start_line = comment.get("start_line").and_then(Value::as_i64);
    match line {
        None => problems.push(format!("{at}line is required (an integer)")),
        Some(line) if line < 1 => problems.push(format!("{at}line is {line}; must be >= 1")),
        Some(_) => {}
    }
    if comment.get("start_line").is_some() {
        match (start_line, line) {
            (Some(start), Some(line)) if start >= 1 && start < line => {}
            (Some(start), Some(line)) => problems.push(format!(
                "{at}start_line {start} must be >= 1 and precede line {line}"
            )),
            _ => problems.push(format!(
                "{at}start_line needs an integer line and start_line"
            )),
        }
    } else if comment.get("start_side").is_some() {
        problems.push(format!("{at}start_side without start_line"));
    }
}

// ----------------------------------------------------------------------------------------
// The description, reduced to what the checks need.

struct Spec {
    templates: Vec<Template>,
}

struct Template {
    template: String,
    segments: Vec<Segment>,
    operations: BTreeMap<String, Operation>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    /// `{name}`: one segment, or one or more when the parameter is `x-multi-segment`.
    Param {
        name: String,
        multi: bool,
    },
}

struct Operation {
    id: String,
    parameters: Vec<Parameter>,
    body: Option<RequestBody>,
    /// GitHub's example replies with a 2xx status, JSON only, as `("201 default", value)`.
    replies: Vec<(String, Value)>,
    /// The 2xx statuses it documents, with their JSON schema if any (`required` dropped).
    reply_schemas: BTreeMap<String, ReplySchema>,
}

struct ReplySchema {
    schema: Option<Value>,
    validator: OnceLock<Result<jsonschema::Validator, String>>,
}

struct Parameter {
    name: String,
    location: String,
    required: bool,
    schema: Value,
}

struct RequestBody {
    required: bool,
    /// The `application/json` schema, converted; `None` when the body is not JSON.
    schema: Option<Value>,
    content_types: Vec<String>,
    /// GitHub's example bodies for the JSON content type.
    examples: Vec<(String, Value)>,
    validator: OnceLock<Result<jsonschema::Validator, String>>,
}

mod raw {
    use super::*;

    #[derive(Deserialize)]
    pub struct Spec {
        pub paths: BTreeMap<String, PathItem>,
    }

    #[derive(Deserialize)]
    pub struct PathItem {
        #[serde(default)]
        pub parameters: Vec<Parameter>,
        pub get: Option<Operation>,
        pub put: Option<Operation>,
        pub post: Option<Operation>,
        pub delete: Option<Operation>,
        pub options: Option<Operation>,
        pub head: Option<Operation>,
        pub patch: Option<Operation>,
        pub trace: Option<Operation>,
    }

    #[derive(Deserialize)]
    pub struct Operation {
        #[serde(rename = "operationId")]
        pub operation_id: Option<String>,
        #[serde(default)]
        pub parameters: Vec<Parameter>,
        #[serde(rename = "requestBody")]
        pub request_body: Option<RequestBody>,
        #[serde(default)]
        pub responses: BTreeMap<String, Response>,
    }

    #[derive(Deserialize)]
    pub struct Response {
        #[serde(default)]
        pub content: BTreeMap<String, Media>,
    }

    #[derive(Deserialize, Clone)]
    pub struct Parameter {
        pub name: String,
        #[serde(rename = "in")]
        pub location: String,
        #[serde(default)]
        pub required: bool,
        #[serde(default)]
        pub schema: Value,
        #[serde(rename = "x-multi-segment", default)]
        pub multi_segment: bool,
    }

    #[derive(Deserialize)]
    pub struct RequestBody {
        #[serde(default)]
        pub required: bool,
        #[serde(default)]
        pub content: BTreeMap<String, Media>,
    }

    #[derive(Deserialize)]
    pub struct Media {
        pub schema: Option<Value>,
        #[serde(default)]
        pub examples: BTreeMap<String, Example>,
    }

    #[derive(Deserialize)]
    pub struct Example {
        pub value: Option<Value>,
    }
}

fn spec() -> &'static Spec {
    static SPEC: OnceLock<Spec> = OnceLock::new();
    SPEC.get_or_init(|| {
        let path = npm::package_file(npm::OPENAPI, DESCRIPTION);
        let bytes =
            std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        let raw: raw::Spec = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("{} is not an OpenAPI description: {e}", path.display()));
        Spec::from_raw(raw)
    })
}

impl Spec {
    fn from_raw(raw: raw::Spec) -> Spec {
        let mut templates = Vec::new();
        for (template, item) in raw.paths {
            let mut operations = BTreeMap::new();
            let mut multi = Vec::new();
            for (method, op) in [
                ("get", item.get),
                ("put", item.put),
                ("post", item.post),
                ("delete", item.delete),
                ("options", item.options),
                ("head", item.head),
                ("patch", item.patch),
                ("trace", item.trace),
            ] {
                let Some(op) = op else { continue };
                let mut parameters: Vec<raw::Parameter> = item.parameters.clone();
                for p in op.parameters {
                    parameters.retain(|q| !(q.name == p.name && q.location == p.location));
                    parameters.push(p);
                }
                multi.extend(
                    parameters
                        .iter()
                        .filter(|p| p.location == "path" && p.multi_segment)
                        .map(|p| p.name.clone()),
                );
                let reply_schemas = op
                    .responses
                    .iter()
                    .filter(|(status, _)| status.starts_with('2'))
                    .map(|(status, response)| {
                        let schema = response
                            .content
                            .iter()
                            .find(|(ct, _)| is_json(ct))
                            .and_then(|(_, media)| media.schema.clone())
                            .map(|schema| without_required(openapi_to_json_schema(schema)));
                        let reply = ReplySchema {
                            schema,
                            validator: OnceLock::new(),
                        };
                        (status.clone(), reply)
                    })
                    .collect();
                let replies = op
                    .responses
                    .into_iter()
                    .filter(|(status, _)| status.starts_with('2'))
                    .flat_map(|(status, response)| {
                        response
                            .content
                            .into_iter()
                            .filter(|(ct, _)| is_json(ct))
                            .flat_map(|(_, media)| media.examples)
                            .filter_map(move |(name, e)| {
                                Some((format!("{status} {name}"), e.value?))
                            })
                    })
                    .collect();
                let operation = Operation {
                    replies,
                    reply_schemas,
                    id: op
                        .operation_id
                        .unwrap_or_else(|| format!("{method} {template}")),
                    parameters: parameters
                        .into_iter()
                        .map(|p| Parameter {
                            name: p.name,
                            location: p.location,
                            required: p.required,
                            schema: p.schema,
                        })
                        .collect(),
                    body: op.request_body.map(|rb| {
                        let content_types = rb.content.keys().cloned().collect();
                        let json = rb.content.into_iter().find(|(ct, _)| is_json(ct));
                        let (schema, examples) = match json {
                            Some((_, media)) => (
                                media.schema.map(openapi_to_json_schema),
                                media
                                    .examples
                                    .into_iter()
                                    .filter_map(|(name, e)| Some((name, e.value?)))
                                    .collect(),
                            ),
                            None => (None, Vec::new()),
                        };
                        RequestBody {
                            required: rb.required,
                            schema,
                            content_types,
                            examples,
                            validator: OnceLock::new(),
                        }
                    }),
                };
                operations.insert(method.to_owned(), operation);
            }
            let segments = template
                .trim_start_matches('/')
                .split('/')
                .map(
                    |s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                        Some(name) => Segment::Param {
                            name: name.to_owned(),
                            multi: multi.iter().any(|m| m == name),
                        },
                        None => Segment::Literal(s.to_owned()),
                    },
                )
                .collect();
            templates.push(Template {
                template,
                segments,
                operations,
            });
        }
        Spec { templates }
    }

    /// The most specific template matching the path, then its operation for the method.
    ///
    /// Specificity, compared segment by segment from the left: a literal beats a parameter,
    /// a one-segment parameter beats a multi-segment one; then more segments win. So
    /// `/repos/{owner}/{repo}/pulls/comments` wins over `/repos/{owner}/{repo}/pulls/{pull_number}`
    /// for `/repos/o/r/pulls/comments`, as on GitHub's router, and the method must then
    /// exist on the winner.
    fn find(&self, request: &Request) -> Result<(&Template, &Operation), String> {
        let mut best: Option<(&Template, Vec<u8>)> = None;
        for template in &self.templates {
            if template.matches(&request.segments).is_none() {
                continue;
            }
            let rank: Vec<u8> = template
                .segments
                .iter()
                .map(|s| match s {
                    Segment::Literal(_) => 3,
                    Segment::Param { multi: false, .. } => 2,
                    Segment::Param { multi: true, .. } => 1,
                })
                .collect();
            if best.as_ref().is_none_or(|(_, r)| rank > *r) {
                best = Some((template, rank));
            }
        }
        let Some((template, _)) = best else {
            return Err(format!(
                "{} {}: no operation in GitHub's REST description has this path",
                request.method.to_uppercase(),
                request.path
            ));
        };
        match template.operations.get(&request.method) {
            Some(op) => Ok((template, op)),
            None => Err(format!(
                "{} {}: the path is {} but it has no {} operation (it has: {})",
                request.method.to_uppercase(),
                request.path,
                template.template,
                request.method.to_uppercase(),
                template
                    .operations
                    .keys()
                    .map(|m| m.to_uppercase())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }
}

fn is_json(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    essence == "application/json" || essence.ends_with("+json")
}

impl Template {
    /// The parameter values, if `segments` match: name → value (multi-segment values joined
    /// with `/`).
    fn matches(&self, segments: &[String]) -> Option<Vec<(String, String)>> {
        fn go(pattern: &[Segment], path: &[String], bound: &mut Vec<(String, String)>) -> bool {
            let Some((first, rest)) = pattern.split_first() else {
                return path.is_empty();
            };
            match first {
                Segment::Literal(lit) => {
                    path.first().is_some_and(|s| s == lit) && go(rest, &path[1..], bound)
                }
                Segment::Param { name, multi } => {
                    let most = if *multi {
                        path.len()
                    } else {
                        path.len().min(1)
                    };
                    // Longest first for multi-segment parameters; backtrack on failure.
                    for take in (1..=most).rev() {
                        if path[..take].iter().any(String::is_empty) {
                            continue;
                        }
                        bound.push((name.clone(), path[..take].join("/")));
                        if go(rest, &path[take..], bound) {
                            return true;
                        }
                        bound.pop();
                    }
                    false
                }
            }
        }
        let mut bound = Vec::new();
        go(&self.segments, segments, &mut bound).then_some(bound)
    }

    fn check_path_params(&self, request: &Request, op: &Operation, problems: &mut Vec<String>) {
        let Some(bound) = self.matches(&request.segments) else {
            return;
        };
        for (name, value) in bound {
            let value = percent_decode(&value, false);
            if let Some(param) = op
                .parameters
                .iter()
                .find(|p| p.location == "path" && p.name == name)
                && let Err(e) = param.check_value(&value)
            {
                problems.push(format!("path parameter {name}={value:?}: {e}"));
            }
        }
    }
}

impl Parameter {
    /// Checks a string value (path segment or query value) against a simple schema.
    fn check_value(&self, value: &str) -> Result<(), String> {
        let schema = &self.schema;
        let typed = match schema.get("type").and_then(Value::as_str) {
            Some("integer") => value
                .parse::<i64>()
                .map(Value::from)
                .map_err(|_| "must be an integer".to_owned())?,
            Some("number") => value
                .parse::<f64>()
                .map(Value::from)
                .map_err(|_| "must be a number".to_owned())?,
            Some("boolean") => match value {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                _ => return Err("must be true or false".into()),
            },
            Some("array") => return Ok(()),
            _ => Value::String(value.to_owned()),
        };
        if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
            && !allowed.contains(&typed)
        {
            return Err(format!("must be one of {}", Value::Array(allowed.clone())));
        }
        for (keyword, ok) in [
            ("minimum", schema.get("minimum").and_then(Value::as_f64)),
            ("maximum", schema.get("maximum").and_then(Value::as_f64)),
        ] {
            if let (Some(bound), Some(v)) = (ok, typed.as_f64()) {
                let fine = if keyword == "minimum" {
                    v >= bound
                } else {
                    v <= bound
                };
                if !fine {
                    return Err(format!("{keyword} is {bound}"));
                }
            }
        }
        Ok(())
    }
}

impl Operation {
    fn check_query(&self, request: &Request, problems: &mut Vec<String>) {
        for (name, value) in &request.query {
            let base = name.strip_suffix("[]").unwrap_or(name);
            match self
                .parameters
                .iter()
                .find(|p| p.location == "query" && (p.name == *name || p.name == base))
            {
                None => problems.push(format!(
                    "query parameter {name:?} is not documented (documented: {})",
                    self.parameters
                        .iter()
                        .filter(|p| p.location == "query")
                        .map(|p| p.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
                Some(param) => {
                    if let Err(e) = param.check_value(value) {
                        problems.push(format!("query parameter {name}={value:?}: {e}"));
                    }
                }
            }
        }
        for param in self
            .parameters
            .iter()
            .filter(|p| p.location == "query" && p.required)
        {
            if !request.query.iter().any(|(n, _)| *n == param.name) {
                problems.push(format!(
                    "required query parameter {:?} is missing",
                    param.name
                ));
            }
        }
    }

    fn check_body(&self, body: Option<&Value>, problems: &mut Vec<String>) {
        let Some(spec) = &self.body else {
            if body.is_some() {
                problems.push("this operation takes no request body".into());
            }
            return;
        };
        let Some(body) = body else {
            if spec.required {
                problems.push("a request body is required".into());
            }
            return;
        };
        let Some(schema) = &spec.schema else {
            problems.push(format!(
                "the request body is not JSON here (content types: {})",
                spec.content_types.join(", ")
            ));
            return;
        };
        let validator = spec.validator.get_or_init(|| {
            jsonschema::options()
                .with_draft(jsonschema::Draft::Draft4)
                .build(schema)
                .map_err(|e| format!("GitHub's schema does not compile: {e}"))
        });
        match validator {
            Err(e) => problems.push(e.clone()),
            Ok(validator) => {
                for error in validator.iter_errors(body) {
                    let at = error.instance_path().to_string();
                    let at = if at.is_empty() { "/".to_owned() } else { at };
                    problems.push(format!("body {at}: {error}"));
                }
            }
        }
    }
}

// ----------------------------------------------------------------------------------------
// The request.

struct Request {
    method: String,
    /// The path without scheme, host, `/api/v3`, query or fragment.
    path: String,
    segments: Vec<String>,
    query: Vec<(String, String)>,
}

impl Request {
    fn parse(method: &str, path: &str) -> Result<Request, String> {
        let method = method.to_ascii_lowercase();
        let mut rest = path.trim();
        for scheme in ["https://", "http://"] {
            if let Some(after) = rest.strip_prefix(scheme) {
                rest = after.find('/').map_or("/", |i| &after[i..]);
            }
        }
        let rest = rest.split('#').next().unwrap_or_default();
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let path = path.strip_prefix("/api/v3").unwrap_or(path);
        if !path.starts_with('/') {
            return Err(format!("{path:?} is not an absolute path"));
        }
        let trimmed = path.trim_end_matches('/');
        let trimmed = if trimmed.is_empty() { "/" } else { trimmed };
        let segments = trimmed
            .trim_start_matches('/')
            .split('/')
            .map(str::to_owned)
            .collect();
        let query = query
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                (percent_decode(k, true), percent_decode(v, true))
            })
            .collect();
        Ok(Request {
            method,
            path: trimmed.to_owned(),
            segments,
            query,
        })
    }
}

/// `%XX` decoding (and `+` as a space in query strings), lossy on invalid UTF-8.
fn percent_decode(s: &str, plus_is_space: bool) -> String {
    fn hex(b: u8) -> Option<u8> {
        (b as char).to_digit(16).map(|d| d as u8)
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let decoded = match bytes[i] {
            b'%' if i + 2 < bytes.len() => hex(bytes[i + 1])
                .zip(hex(bytes[i + 2]))
                .map(|(h, l)| h * 16 + l),
            _ => None,
        };
        match (decoded, bytes[i]) {
            (Some(b), _) => {
                out.push(b);
                i += 3;
            }
            (None, b'+') if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            (None, b) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

// ----------------------------------------------------------------------------------------
// OpenAPI 3.0 schema objects → JSON Schema draft 4.

/// The schema without `required` anywhere (a property named `required` stays).
fn without_required(schema: Value) -> Value {
    match schema {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(k, v)| !(k == "required" && v.is_array()))
                .map(|(k, v)| match k.as_str() {
                    "properties" | "patternProperties" | "definitions" => {
                        let children = match v {
                            Value::Object(children) => Value::Object(
                                children
                                    .into_iter()
                                    .map(|(name, child)| (name, without_required(child)))
                                    .collect(),
                            ),
                            other => other,
                        };
                        (k, children)
                    }
                    _ => (k, without_required(v)),
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(without_required).collect()),
        other => other,
    }
}

/// Converts an OpenAPI 3.0 schema object to JSON Schema draft 4: `nullable: true` becomes a
/// union with `null`; OpenAPI-only keywords (`example`, `discriminator`, `xml`,
/// `externalDocs`, `deprecated`, `readOnly`, `writeOnly`, `x-*`) are dropped.
pub fn openapi_to_json_schema(schema: Value) -> Value {
    let Value::Object(mut map) = schema else {
        return schema; // `true`/`false` schemas and oddities pass through
    };
    for keyword in [
        "example",
        "examples",
        "discriminator",
        "xml",
        "externalDocs",
        "deprecated",
        "readOnly",
        "writeOnly",
    ] {
        map.remove(keyword);
    }
    map.retain(|k, _| !k.starts_with("x-"));
    for keyword in ["properties", "patternProperties", "definitions"] {
        if let Some(Value::Object(children)) = map.get_mut(keyword) {
            for child in children.values_mut() {
                *child = openapi_to_json_schema(child.take());
            }
        }
    }
    for keyword in ["items", "additionalProperties", "not"] {
        if let Some(child) = map.get_mut(keyword) {
            *child = match child.take() {
                Value::Array(items) => {
                    Value::Array(items.into_iter().map(openapi_to_json_schema).collect())
                }
                other => openapi_to_json_schema(other),
            };
        }
    }
    for keyword in ["allOf", "anyOf", "oneOf"] {
        if let Some(Value::Array(children)) = map.get_mut(keyword) {
            for child in children.iter_mut() {
                *child = openapi_to_json_schema(child.take());
            }
        }
    }
    let nullable = map
        .remove("nullable")
        .is_some_and(|n| n == Value::Bool(true));
    if !nullable {
        return Value::Object(map);
    }
    match map.get("type").cloned() {
        Some(Value::String(t)) => {
            map.insert("type".into(), Value::from(vec![t, "null".to_owned()]));
            if let Some(Value::Array(allowed)) = map.get_mut("enum")
                && !allowed.contains(&Value::Null)
            {
                allowed.push(Value::Null);
            }
            Value::Object(map)
        }
        _ => {
            let mut union = Map::new();
            union.insert(
                "anyOf".into(),
                Value::Array(vec![
                    serde_json::json!({ "type": "null" }),
                    Value::Object(map),
                ]),
            );
            Value::Object(union)
        }
    }
}
