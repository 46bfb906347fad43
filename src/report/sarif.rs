//! SARIF 2.1.0, with physical locations (what Polaris and kube-linter users asked for) and
//! `results: []` when clean (an empty run must still upload).

use serde_json::{Value, json};

use crate::audit::{AuditResult, Finding, Rule, Severity};
use crate::config::Policy;
use crate::source::InputError;

fn level(severity: Severity) -> &'static str {
    match severity {
        Severity::Danger => "error",
        Severity::Warning => "warning",
        Severity::Ignore => "none",
    }
}

/// A relative URI reference for a path: `/`-separated, unreserved characters kept.
pub fn uri_of(path: &str) -> String {
    let mut out = String::new();
    for b in path.replace('\\', "/").bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn rule_descriptor(rule: &Rule, severity: Severity) -> Value {
    json!({
        "id": rule.id,
        "name": rule.id,
        "shortDescription": {"text": rule.title},
        "fullDescription": {"text": rule.why},
        "help": {
            "text": rule.fix,
            "markdown": format!("**Why:** {}\n\n**How to fix:** {}", rule.why, rule.fix),
        },
        "helpUri": rule.doc_url(),
        "defaultConfiguration": {"level": level(severity)},
        "properties": {"category": rule.category.as_str(), "tags": [rule.category.as_str().to_lowercase()]},
    })
}

fn result_of(f: &Finding, rule_index: Option<usize>) -> Value {
    let mut region = json!({
        "startLine": f.line.max(1),
        "startColumn": f.column.max(1),
    });
    if (f.end_line, f.end_column) > (f.line, f.column) {
        region["endLine"] = json!(f.end_line);
        region["endColumn"] = json!(f.end_column.max(1));
    }
    let mut location = json!({
        "physicalLocation": {
            "artifactLocation": {"uri": uri_of(&f.path)},
            "region": region,
        }
    });
    if let Some(o) = &f.object {
        let mut name = o.display();
        if let Some(c) = f.container.as_deref().filter(|c| !c.is_empty()) {
            name.push_str(&format!("/{c}"));
        }
        location["logicalLocations"] = json!([{"fullyQualifiedName": name, "kind": "object"}]);
    }
    let mut result = json!({
        "ruleId": f.rule,
        "level": level(f.severity),
        "message": {"text": f.message},
        "locations": [location],
        "partialFingerprints": {"kubeward/v1": f.fingerprint},
    });
    if let Some(i) = rule_index {
        result["ruleIndex"] = json!(i);
    }
    result
}

pub fn sarif_report(result: &AuditResult, errors: &[InputError], policy: &Policy) -> String {
    let mut rules: Vec<Value> = Vec::new();
    let mut ids: Vec<&str> = Vec::new();
    for active in &policy.rules {
        ids.push(&active.rule.id);
        rules.push(rule_descriptor(&active.rule, active.severity));
    }
    if result
        .findings
        .iter()
        .any(|f| f.rule == crate::audit::PARSE_ERROR)
    {
        ids.push(crate::audit::PARSE_ERROR);
        rules.push(json!({
            "id": crate::audit::PARSE_ERROR,
            "name": crate::audit::PARSE_ERROR,
            "shortDescription": {"text": "The document is not valid YAML"},
            "defaultConfiguration": {"level": level(policy.parse_error_severity)},
        }));
    }
    let results: Vec<Value> = result
        .findings
        .iter()
        .map(|f| result_of(f, ids.iter().position(|id| *id == f.rule)))
        .collect();
    let notifications: Vec<Value> = errors
        .iter()
        .map(|e| {
            json!({
                "level": "warning",
                "message": {"text": format!("{}: {}", e.path, e.message)},
                "locations": [{"physicalLocation": {"artifactLocation": {"uri": uri_of(&e.path)}}}],
            })
        })
        .collect();
    let report = json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "kubeward",
                "version": env!("CARGO_PKG_VERSION"),
                "informationUri": crate::PROJECT_URL,
                "rules": rules,
            }},
            "invocations": [{
                "executionSuccessful": true,
                "toolExecutionNotifications": notifications,
            }],
            "columnKind": "unicodeCodePoints",
            "results": results,
        }],
    });
    serde_json::to_string_pretty(&report).unwrap_or_default()
}
