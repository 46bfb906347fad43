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

/// The SARIF log as a string (tests, small outputs); [`write_sarif_report`] streams it.
pub fn sarif_report(result: &AuditResult, errors: &[InputError], policy: &Policy) -> String {
    super::to_string(|out| write_sarif_report(out, result, errors, policy))
}

/// One run's results, each built as it is written and dropped after: the log of a large
/// audit is never held whole.
struct Results<'a> {
    findings: &'a [crate::audit::Finding],
    ids: &'a [&'a str],
}

impl serde::Serialize for Results<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(
            self.findings
                .iter()
                .map(|f| result_of(f, self.ids.iter().position(|id| *id == f.rule))),
        )
    }
}

// The log's members in the order SARIF readers (and our tests) see them.
#[derive(serde::Serialize)]
struct Log<'a> {
    #[serde(rename = "$schema")]
    schema: &'static str,
    version: &'static str,
    runs: [Run<'a>; 1],
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Run<'a> {
    tool: Value,
    invocations: Value,
    column_kind: &'static str,
    results: Results<'a>,
}

/// Writes the SARIF 2.1.0 log to `out`, result by result.
pub fn write_sarif_report(
    out: &mut dyn std::io::Write,
    result: &AuditResult,
    errors: &[InputError],
    policy: &Policy,
) -> std::io::Result<()> {
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
    let log = Log {
        schema: "https://json.schemastore.org/sarif-2.1.0.json",
        version: "2.1.0",
        runs: [Run {
            tool: json!({"driver": {
                "name": "kubeward",
                "version": env!("CARGO_PKG_VERSION"),
                "informationUri": crate::PROJECT_URL,
                "rules": rules,
            }}),
            invocations: json!([{
                "executionSuccessful": true,
                "toolExecutionNotifications": notifications,
            }]),
            column_kind: "unicodeCodePoints",
            results: Results {
                findings: &result.findings,
                ids: &ids,
            },
        }],
    };
    serde_json::to_writer_pretty(out, &log).map_err(std::io::Error::other)
}
