//! Checks the fake GitLab's 2xx replies against `tests/data/gitlab/api-replies.schema.json`
//! (GitLab's documented reply fields; GitLab publishes no complete OpenAPI description).

use std::sync::OnceLock;

use serde_json::{Value, json};

fn schema() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let path = format!(
            "{}/tests/data/gitlab/api-replies.schema.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
    })
}

/// The definition a reply to `method route` (no query, below `/api/v4`) is, and whether the
/// reply is a list of it.
fn kind(method: &str, route: &str) -> Option<(&'static str, bool)> {
    let segments: Vec<&str> = route.trim_start_matches('/').split('/').collect();
    let list = method == "GET";
    Some(match segments.as_slice() {
        ["api", "v4", "projects", _] => ("project", false),
        ["api", "v4", "projects", _, "members", "all", _] => ("member", false),
        ["api", "v4", "projects", _, "merge_requests", _] => ("mergeRequest", false),
        ["api", "v4", "projects", _, "merge_requests", _, "notes"] => ("note", list),
        ["api", "v4", "projects", _, "merge_requests", _, "notes", _] => ("note", false),
        [
            "api",
            "v4",
            "projects",
            _,
            "merge_requests",
            _,
            "discussions",
        ] => ("discussion", list),
        [
            "api",
            "v4",
            "projects",
            _,
            "merge_requests",
            _,
            "discussions",
            _,
        ] => ("discussion", false),
        [
            "api",
            "v4",
            "projects",
            _,
            "repository",
            "commits",
            _,
            "statuses",
        ] => ("commitStatus", true),
        ["api", "v4", "projects", _, "statuses", _] => ("commitStatus", false),
        _ => return None,
    })
}

/// Whether a reply has the documented shape; `Ok` for routes without a definition and for
/// errors.
pub fn validate_reply(method: &str, route: &str, status: u16, body: &Value) -> Result<(), String> {
    if !(200..300).contains(&status) {
        return Ok(());
    }
    let Some((definition, list)) = kind(method, route) else {
        return Ok(());
    };
    let item = json!({"$ref": format!("#/definitions/{definition}")});
    let mut wanted = if list {
        json!({"type": "array", "items": item})
    } else {
        item
    };
    wanted["definitions"] = schema()["definitions"].clone();
    let validator = jsonschema::validator_for(&wanted).map_err(|e| format!("schema: {e}"))?;
    let problems: Vec<String> = validator
        .iter_errors(body)
        .take(5)
        .map(|e| format!("{} {}", e.instance_path(), e))
        .collect();
    match problems.is_empty() {
        true => Ok(()),
        false => Err(format!(
            "{method} {route} replied {status}, not a documented {definition}: {}",
            problems.join("; ")
        )),
    }
}
