//! The machine-readable outputs against their contracts:
//!
//! - SARIF against the official OASIS SARIF 2.1.0 JSON schema (`tests/data/sarif-schema-2.1.0.json`,
//!   see `tests/data/README.md`), plus what the schema cannot say: `results: []` when clean,
//!   physical locations, rule IDs known to the driver, severity-to-level mapping.
//! - JSON against `docs/json-output.md`: exactly the documented keys, in the documented order.
//!
//! Everything runs the real engine: `source` to read, `audit` to judge, `report` to render, and
//! a few tests run the built binary end to end.

use crate::support::manifests::{CLEAN, RISKY_POD};
use crate::support::workspace;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Output};
use std::sync::LazyLock;

use kubeward::audit::{AuditResult, Registry, Severity, audit};
use kubeward::config::{ConfigFile, Policy};
use kubeward::report::{json_report, sarif_report, uri_of};
use kubeward::source::{self, InputError};
use serde_json::Value;

// ---------------------------------------------------------------------------------------------
// Manifests

/// A Deployment whose container findings carry a container name.
const DEPLOYMENT: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
spec:
  replicas: 3
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: app
          image: nginx:1.27
          securityContext:
            privileged: true
";

/// Three documents, the second not valid YAML (line 12), the third with a finding (line 21).
const WITH_BROKEN_DOCUMENT: &str = "\
apiVersion: v1
kind: ConfigMap
metadata:
  name: a
  namespace: prod
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: b
  namespace: prod
 bad: indentation
---
apiVersion: v1
kind: Pod
metadata:
  name: third
  namespace: prod
spec:
  hostNetwork: true
  containers:
    - name: app
      image: nginx:1.27
";

// ---------------------------------------------------------------------------------------------
// Helpers

fn registry() -> Registry {
    Registry::builtin().expect("built-in rules load")
}

fn policy(config: Option<&str>, only: Option<&[&str]>) -> Policy {
    let file = config.map(|text| ConfigFile::parse(".kubeward.yaml", text).expect("config parses"));
    let only: Option<Vec<String>> = only.map(|ids| ids.iter().map(|s| (*s).to_owned()).collect());
    Policy::build(&registry(), file.as_ref(), only.as_deref()).expect("valid policy")
}

/// Audits in-memory files, as `source` does for stdin and git blobs.
fn audit_bytes(files: &[(&str, &[u8])], policy: &Policy) -> (AuditResult, Vec<InputError>) {
    let mut parsed = Vec::new();
    let mut errors = Vec::new();
    for (path, bytes) in files {
        let (file, error) = source::parse_bytes(path, bytes, policy);
        parsed.push(file);
        errors.extend(error);
    }
    (audit(&parsed, policy), errors)
}

fn sarif_of(files: &[(&str, &[u8])], policy: &Policy) -> (AuditResult, String) {
    let (result, errors) = audit_bytes(files, policy);
    let text = sarif_report(&result, &errors, policy);
    (result, text)
}

fn parse(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}):\n{text}"))
}

static SARIF_SCHEMA: LazyLock<Value> = LazyLock::new(|| {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/sarif-schema-2.1.0.json");
    let text = std::fs::read_to_string(&path).expect("tests/data/sarif-schema-2.1.0.json exists");
    serde_json::from_str(&text).expect("the SARIF schema is JSON")
});

/// The official schema, with the draft it declares (draft-04) and format checks on.
static SARIF_VALIDATOR: LazyLock<jsonschema::Validator> = LazyLock::new(|| {
    let schema = &*SARIF_SCHEMA;
    assert_eq!(
        schema["$schema"], "http://json-schema.org/draft-04/schema#",
        "the OASIS SARIF 2.1.0 schema is draft-04"
    );
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft4)
        .should_validate_formats(true)
        .build(schema)
        .expect("the SARIF schema compiles")
});

/// `uri-reference` is not a draft-04 format, so the schema's own check of artifact URIs is a
/// no-op there; check them with draft-07's definition.
static URI_REFERENCE: LazyLock<jsonschema::Validator> = LazyLock::new(|| {
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft7)
        .should_validate_formats(true)
        .build(&serde_json::json!({"type": "string", "format": "uri-reference"}))
        .expect("compiles")
});

fn schema_errors(sarif: &Value) -> Vec<String> {
    SARIF_VALIDATOR
        .iter_errors(sarif)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

fn assert_valid_sarif(sarif: &Value) {
    let errors = schema_errors(sarif);
    assert!(
        errors.is_empty(),
        "SARIF does not validate against the SARIF 2.1.0 schema:\n{}\n\n{}",
        errors.join("\n"),
        serde_json::to_string_pretty(sarif).unwrap_or_default()
    );
    let mut uris = Vec::new();
    collect_artifact_uris(sarif, &mut uris);
    for uri in uris {
        assert!(
            URI_REFERENCE.is_valid(&Value::String(uri.clone())),
            "artifactLocation.uri {uri:?} is not a valid URI reference"
        );
    }
}

fn collect_artifact_uris(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                if key == "artifactLocation"
                    && let Some(uri) = v.get("uri").and_then(Value::as_str)
                {
                    out.push(uri.to_owned());
                }
                collect_artifact_uris(v, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_artifact_uris(v, out)),
        _ => {}
    }
}

fn run_of(sarif: &Value) -> &Value {
    let runs = sarif["runs"].as_array().expect("runs is an array");
    assert_eq!(runs.len(), 1, "one run");
    &runs[0]
}

fn driver_rule_ids(run: &Value) -> Vec<String> {
    run["tool"]["driver"]["rules"]
        .as_array()
        .expect("driver.rules is an array")
        .iter()
        .map(|r| r["id"].as_str().expect("rule id").to_owned())
        .collect()
}

fn expected_level(severity: Severity) -> &'static str {
    match severity {
        Severity::Danger => "error",
        Severity::Warning => "warning",
        Severity::Ignore => "none",
    }
}

fn kubeward(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kubeward"))
        .args(args)
        .current_dir(dir)
        .env_remove("NO_COLOR")
        .output()
        .expect("kubeward runs")
}

// ---------------------------------------------------------------------------------------------
// SARIF

#[test]
fn sarif_with_findings_validates_against_the_sarif_2_1_0_schema() {
    let policy = policy(None, None);
    let (result, text) = sarif_of(
        &[
            ("deploy/risky.yaml", RISKY_POD.as_bytes()),
            // Characters that must be percent-encoded in a URI.
            ("deploy/my app/naïve #1.yaml", DEPLOYMENT.as_bytes()),
        ],
        &policy,
    );
    assert!(result.findings.len() > 5, "the manifests have findings");
    let sarif = parse(&text);
    assert_valid_sarif(&sarif);
    assert_eq!(sarif["version"], "2.1.0");
    let run = run_of(&sarif);
    assert_eq!(run["tool"]["driver"]["name"], "kubeward");
    assert_eq!(
        run["results"].as_array().map(Vec::len),
        Some(result.findings.len()),
        "one result per finding"
    );
    assert_eq!(run["invocations"][0]["executionSuccessful"], true);
}

#[test]
fn sarif_for_a_clean_manifest_validates_and_has_an_empty_results_array() {
    let policy = policy(None, None);
    let (result, text) = sarif_of(&[("clean.yaml", CLEAN.as_bytes())], &policy);
    assert!(result.findings.is_empty(), "{:?}", result.findings);
    let sarif = parse(&text);
    assert_valid_sarif(&sarif);
    let run = run_of(&sarif);
    // `results: []`, not absent or null: an empty run must still upload and close old alerts.
    assert_eq!(
        run.get("results"),
        Some(&Value::Array(Vec::new())),
        "{text}"
    );
    // The rules that ran are still described.
    assert_eq!(driver_rule_ids(run).len(), policy.rules.len());
}

#[test]
fn sarif_for_nothing_at_all_validates_and_has_an_empty_results_array() {
    let policy = policy(None, Some(&["hostNetworkSet"]));
    let (_, text) = sarif_of(&[], &policy);
    let sarif = parse(&text);
    assert_valid_sarif(&sarif);
    assert_eq!(
        run_of(&sarif).get("results"),
        Some(&Value::Array(Vec::new()))
    );
}

#[test]
fn sarif_results_point_at_physical_locations_and_rules_the_driver_describes() {
    let policy = policy(None, None);
    let (result, text) = sarif_of(
        &[
            ("deploy/risky.yaml", RISKY_POD.as_bytes()),
            ("deploy/web.yaml", DEPLOYMENT.as_bytes()),
        ],
        &policy,
    );
    let sarif = parse(&text);
    assert_valid_sarif(&sarif);
    let run = run_of(&sarif);
    let ids = driver_rule_ids(run);
    let results = run["results"].as_array().expect("results");
    assert_eq!(results.len(), result.findings.len());
    for (r, f) in results.iter().zip(&result.findings) {
        let rule_id = r["ruleId"].as_str().expect("ruleId is present");
        assert_eq!(rule_id, f.rule);
        assert!(
            ids.iter().any(|id| id == rule_id),
            "{rule_id} is not in driver.rules"
        );
        let index = r["ruleIndex"].as_u64().expect("ruleIndex is present") as usize;
        assert_eq!(
            ids.get(index).map(String::as_str),
            Some(rule_id),
            "ruleIndex of {rule_id}"
        );
        assert!(
            !r["message"]["text"].as_str().unwrap_or("").is_empty(),
            "message text"
        );

        let physical = &r["locations"][0]["physicalLocation"];
        assert_eq!(
            physical["artifactLocation"]["uri"],
            uri_of(&f.path).as_str()
        );
        let region = &physical["region"];
        assert_eq!(region["startLine"], f.line, "{rule_id} startLine");
        assert_eq!(region["startColumn"], f.column, "{rule_id} startColumn");
        assert!(region["startLine"].as_u64() >= Some(1));
        assert!(region["startColumn"].as_u64() >= Some(1));
        if let Some(end) = region.get("endLine") {
            assert!(
                end.as_u64() >= region["startLine"].as_u64(),
                "{rule_id} endLine"
            );
        }
        let object = f
            .object
            .as_ref()
            .expect("rule findings are about an object");
        let logical = r["locations"][0]["logicalLocations"][0]["fullyQualifiedName"]
            .as_str()
            .expect("logical location");
        assert!(logical.starts_with(&object.display()), "{logical}");
        assert_eq!(
            r["partialFingerprints"]["kubeward/v1"],
            f.fingerprint.as_str()
        );
    }
    // The exact place of one finding, to pin the numbers down.
    let host_network = results
        .iter()
        .find(|r| r["ruleId"] == "hostNetworkSet")
        .expect("hostNetworkSet result");
    let physical = &host_network["locations"][0]["physicalLocation"];
    assert_eq!(physical["artifactLocation"]["uri"], "deploy/risky.yaml");
    assert_eq!(physical["region"]["startLine"], 7);
    assert_eq!(physical["region"]["startColumn"], 16);
}

#[test]
fn sarif_levels_map_danger_to_error_and_warning_to_warning() {
    let policy = policy(None, None);
    let (result, text) = sarif_of(&[("risky.yaml", RISKY_POD.as_bytes())], &policy);
    let sarif = parse(&text);
    let run = run_of(&sarif);
    let results = run["results"].as_array().expect("results");
    let severities: BTreeSet<&str> = result
        .findings
        .iter()
        .map(|f| f.severity.as_str())
        .collect();
    assert_eq!(
        severities,
        BTreeSet::from(["danger", "warning"]),
        "both severities occur"
    );
    for (r, f) in results.iter().zip(&result.findings) {
        assert_eq!(r["level"], expected_level(f.severity), "{}", f.rule);
    }
    // The driver's default levels follow the policy's severities.
    let rules = run["tool"]["driver"]["rules"].as_array().expect("rules");
    for active in &policy.rules {
        let descriptor = rules
            .iter()
            .find(|r| r["id"] == active.rule.id.as_str())
            .expect("every active rule is described");
        assert_eq!(
            descriptor["defaultConfiguration"]["level"],
            expected_level(active.severity),
            "{}",
            active.rule.id
        );
    }
    let level_of = |r: &str| {
        results
            .iter()
            .find(|x| x["ruleId"] == r)
            .map(|x| x["level"].clone())
    };
    assert_eq!(level_of("hostNetworkSet"), Some("error".into()));
    assert_eq!(level_of("cpuLimitsMissing"), Some("warning".into()));
}

#[test]
fn sarif_levels_follow_severity_overrides_from_the_policy() {
    let policy = policy(
        Some("rules:\n  hostNetworkSet: warning\n  cpuLimitsMissing: danger\n"),
        None,
    );
    let (_, text) = sarif_of(&[("risky.yaml", RISKY_POD.as_bytes())], &policy);
    let sarif = parse(&text);
    assert_valid_sarif(&sarif);
    let run = run_of(&sarif);
    let result = |id: &str| {
        run["results"]
            .as_array()
            .and_then(|rs| rs.iter().find(|r| r["ruleId"] == id))
            .unwrap_or_else(|| panic!("{id} result"))
            .clone()
    };
    assert_eq!(result("hostNetworkSet")["level"], "warning");
    assert_eq!(result("cpuLimitsMissing")["level"], "error");
    let rules = run["tool"]["driver"]["rules"].as_array().expect("rules");
    let descriptor = rules
        .iter()
        .find(|r| r["id"] == "hostNetworkSet")
        .expect("described");
    assert_eq!(descriptor["defaultConfiguration"]["level"], "warning");
}

#[test]
fn sarif_with_parse_errors_and_skipped_inputs_validates() {
    let policy = policy(None, Some(&["hostNetworkSet"]));
    let (result, text) = sarif_of(
        &[
            ("multi.yaml", WITH_BROKEN_DOCUMENT.as_bytes()),
            ("logo.yaml", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"),
            (
                "latin1.yaml",
                b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: caf\xe9\n",
            ),
        ],
        &policy,
    );
    assert!(result.findings.iter().any(|f| f.rule == "parseError"));
    let sarif = parse(&text);
    assert_valid_sarif(&sarif);
    let run = run_of(&sarif);
    let ids = driver_rule_ids(run);
    assert!(ids.iter().any(|id| id == "parseError"), "{ids:?}");
    let parse_error = run["results"]
        .as_array()
        .and_then(|rs| rs.iter().find(|r| r["ruleId"] == "parseError"))
        .expect("parseError result");
    assert_eq!(parse_error["level"], "error");
    assert_eq!(
        parse_error["locations"][0]["physicalLocation"]["region"]["startLine"],
        12
    );
    assert_eq!(
        ids.get(parse_error["ruleIndex"].as_u64().expect("ruleIndex") as usize)
            .map(String::as_str),
        Some("parseError")
    );
    let notifications = run["invocations"][0]["toolExecutionNotifications"]
        .as_array()
        .expect("notifications");
    let texts: Vec<&str> = notifications
        .iter()
        .filter_map(|n| n["message"]["text"].as_str())
        .collect();
    assert_eq!(notifications.len(), 2, "{texts:?}");
    assert!(
        texts
            .iter()
            .any(|t| t.contains("logo.yaml") && t.contains("binary")),
        "{texts:?}"
    );
    assert!(
        texts
            .iter()
            .any(|t| t.contains("latin1.yaml") && t.contains("UTF-8")),
        "{texts:?}"
    );
}

#[test]
fn sarif_from_the_binary_validates_with_and_without_findings() {
    let dir = workspace(&[
        ("risky/pod.yaml", RISKY_POD.as_bytes()),
        ("clean/configmap.yaml", CLEAN.as_bytes()),
    ]);
    let out = kubeward(dir.path(), &["audit", "--format", "sarif", "risky"]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sarif = parse(&String::from_utf8(out.stdout).expect("UTF-8"));
    assert_valid_sarif(&sarif);
    assert!(
        !run_of(&sarif)["results"]
            .as_array()
            .expect("results")
            .is_empty()
    );

    let out = kubeward(dir.path(), &["audit", "--format", "sarif", "clean"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("UTF-8");
    assert!(text.ends_with("}\n"), "one JSON document and a newline");
    let sarif = parse(&text);
    assert_valid_sarif(&sarif);
    assert_eq!(
        run_of(&sarif).get("results"),
        Some(&Value::Array(Vec::new()))
    );
}

/// The validation above would prove nothing if the validator accepted anything.
#[test]
fn the_sarif_schema_rejects_what_is_not_sarif_2_1_0() {
    let policy = policy(None, None);
    let (_, text) = sarif_of(&[("risky.yaml", RISKY_POD.as_bytes())], &policy);
    let good = parse(&text);
    assert!(schema_errors(&good).is_empty());

    let mut bad_level = good.clone();
    bad_level["runs"][0]["results"][0]["level"] = "danger".into();
    assert!(
        !schema_errors(&bad_level).is_empty(),
        "level `danger` is not SARIF"
    );

    let mut line_zero = good.clone();
    line_zero["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["region"]["startLine"] =
        0.into();
    assert!(!schema_errors(&line_zero).is_empty(), "lines are 1-based");

    let mut no_version = good.clone();
    no_version
        .as_object_mut()
        .expect("object")
        .remove("version");
    assert!(
        !schema_errors(&no_version).is_empty(),
        "version is required"
    );

    let mut unknown_key = good.clone();
    unknown_key["runs"][0]["results"][0]["severity"] = "danger".into();
    assert!(
        !schema_errors(&unknown_key).is_empty(),
        "results admit no unknown keys"
    );

    assert!(!URI_REFERENCE.is_valid(&Value::String("my app/a.yaml".into())));
    assert!(URI_REFERENCE.is_valid(&Value::String(uri_of("my app/a.yaml"))));
}

/// SARIF 2.1.0 §3.14.27: a run of a tool that reads text files and has results SHALL say in
/// which unit its columns are counted. kubeward counts characters (Unicode code points).
#[test]
fn sarif_runs_with_results_declare_their_column_unit() {
    let policy = policy(None, None);
    let (_, text) = sarif_of(&[("risky.yaml", RISKY_POD.as_bytes())], &policy);
    let sarif = parse(&text);
    assert_eq!(run_of(&sarif)["columnKind"], "unicodeCodePoints");
}

// ---------------------------------------------------------------------------------------------
// JSON: exactly the keys of docs/json-output.md

const TOP_LEVEL_KEYS: &[&str] = &["schemaVersion", "tool", "findings", "errors", "stats"];
const TOOL_KEYS: &[&str] = &["name", "version"];
const FINDING_KEYS: &[&str] = &[
    "rule",
    "severity",
    "category",
    "path",
    "line",
    "column",
    "endLine",
    "endColumn",
    "object",
    "container",
    "fieldPath",
    "message",
    "fingerprint",
];
const OBJECT_KEYS: &[&str] = &["apiVersion", "kind", "namespace", "name"];
const ERROR_KEYS: &[&str] = &["path", "message"];
const STATS_KEYS: &[&str] = &[
    "files",
    "filesAudited",
    "filesSkipped",
    "filesExcluded",
    "documents",
    "objects",
    "rules",
    "findings",
    "exempted",
];
const SKIP_REASONS: &[&str] = &[
    "notKubernetes",
    "helmTemplate",
    "kustomizePatch",
    "binary",
    "notUtf8",
    "tooLarge",
];
const EXCLUDE_REASONS: &[&str] = &["hidden", "gitignored", "ignorePaths"];

fn keys(value: &Value) -> Vec<String> {
    value
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {value}"))
        .keys()
        .cloned()
        .collect()
}

fn owned(keys: &[&str]) -> Vec<String> {
    keys.iter().map(|k| (*k).to_owned()).collect()
}

/// The keys each table of `docs/json-output.md` documents, by the heading above the table.
fn documented_keys() -> BTreeMap<String, Vec<String>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/json-output.md");
    let text = std::fs::read_to_string(&path).expect("docs/json-output.md exists");
    let mut sections: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut heading = String::new();
    for line in text.lines() {
        if let Some(h) = line.strip_prefix("## ") {
            heading = h.trim().to_owned();
        } else if let Some(row) = line.strip_prefix("| `") {
            let key = row.split('`').next().unwrap_or_default().to_owned();
            sections.entry(heading.clone()).or_default().push(key);
        }
    }
    sections
}

/// One run that produces every shape the report has: findings with and without an object and a
/// container, a parse error, input errors, and every reason to skip a file.
fn json_of_everything() -> Value {
    let big = format!("{RISKY_POD}{}", "# padding\n".repeat(300));
    let dir = workspace(&[
        ("app/risky.yaml", RISKY_POD.as_bytes()),
        ("app/web.yaml", DEPLOYMENT.as_bytes()),
        ("app/multi.yaml", WITH_BROKEN_DOCUMENT.as_bytes()),
        ("app/logo.yaml", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"),
        ("app/latin1.yaml", b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: caf\xe9\n"),
        ("app/huge.yaml", big.as_bytes()),
        (
            "chart/templates/pod.yaml",
            b"apiVersion: v1\nkind: Pod\nmetadata:\n  name: {{ .Release.Name }}\n",
        ),
        ("chart/values.yaml", b"image: nginx\nreplicas: 2\n"),
        (
            "overlay/kustomization.yaml",
            b"apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [base.yaml]\npatches:\n- path: patch.yaml\n",
        ),
        ("overlay/base.yaml", CLEAN.as_bytes()),
        (
            "overlay/patch.yaml",
            b"apiVersion: v1\nkind: Pod\nmetadata:\n  name: risky\nspec:\n  hostNetwork: true\n",
        ),
        (".github/pod.yaml", RISKY_POD.as_bytes()),
        (".gitignore", b"generated/\n"),
        ("generated/pod.yaml", RISKY_POD.as_bytes()),
        ("vendor/pod.yaml", RISKY_POD.as_bytes()),
    ]);
    let policy = policy(
        Some("limits:\n  maxFileSize: 2000\nignorePaths: [\"**/vendor/**\"]\n"),
        None,
    );
    let loaded = source::load(&[dir.path().to_path_buf()], &policy);
    let mut result = audit(&loaded.files, &policy);
    // As `kubeward audit` does: the walk's counts, which the engine does not see.
    result.stats.files_excluded = loaded.excluded.clone();
    parse(&json_report(&result, &loaded.errors))
}

#[test]
fn json_output_has_exactly_the_documented_keys() {
    let json = json_of_everything();
    assert_eq!(keys(&json), owned(TOP_LEVEL_KEYS));
    assert_eq!(keys(&json["tool"]), owned(TOOL_KEYS));
    let findings = json["findings"].as_array().expect("findings");
    assert!(
        findings.iter().any(|f| f["object"].is_null()),
        "a parseError finding"
    );
    assert!(
        findings.iter().any(|f| f["container"].is_string()),
        "a container finding"
    );
    assert!(
        findings
            .iter()
            .any(|f| f["object"].is_object() && f["container"].is_null())
    );
    for f in findings {
        assert_eq!(keys(f), owned(FINDING_KEYS), "{f}");
        if f["object"].is_object() {
            assert_eq!(keys(&f["object"]), owned(OBJECT_KEYS), "{f}");
        }
    }
    let errors = json["errors"].as_array().expect("errors");
    assert!(
        errors.len() >= 3,
        "binary, not UTF-8, too large: {errors:?}"
    );
    for e in errors {
        assert_eq!(keys(e), owned(ERROR_KEYS), "{e}");
    }
    assert_eq!(keys(&json["stats"]), owned(STATS_KEYS));
    let skipped: BTreeSet<String> = keys(&json["stats"]["filesSkipped"]).into_iter().collect();
    let reasons: BTreeSet<String> = owned(SKIP_REASONS).into_iter().collect();
    assert_eq!(skipped, reasons, "every reason to skip occurs in this run");
    let excluded: BTreeSet<String> = keys(&json["stats"]["filesExcluded"]).into_iter().collect();
    let reasons: BTreeSet<String> = owned(EXCLUDE_REASONS).into_iter().collect();
    assert_eq!(
        excluded, reasons,
        "every reason to leave out occurs in this run"
    );
    let severities: BTreeSet<String> = keys(&json["stats"]["findings"]).into_iter().collect();
    assert_eq!(
        severities,
        BTreeSet::from(["danger".to_owned(), "warning".to_owned()])
    );
}

#[test]
fn docs_json_output_documents_exactly_the_emitted_keys() {
    let documented = documented_keys();
    let expect = [
        ("Top level", TOP_LEVEL_KEYS),
        ("`tool`", TOOL_KEYS),
        ("Finding", FINDING_KEYS),
        ("`object`", OBJECT_KEYS),
        ("Error", ERROR_KEYS),
        ("`stats`", STATS_KEYS),
        ("`stats.filesSkipped` reasons", SKIP_REASONS),
        ("`stats.filesExcluded` reasons", EXCLUDE_REASONS),
    ];
    for (section, keys) in expect {
        assert_eq!(
            documented.get(section),
            Some(&owned(keys)),
            "docs/json-output.md, section `## {section}`, must list exactly these keys in order"
        );
    }
    let sections: BTreeSet<&str> = documented.keys().map(String::as_str).collect();
    let expected: BTreeSet<&str> = expect.iter().map(|(s, _)| *s).collect();
    assert_eq!(
        sections, expected,
        "docs/json-output.md has a key table this test does not check"
    );
}

#[test]
fn json_values_have_the_documented_types() {
    let json = json_of_everything();
    assert_eq!(json["schemaVersion"], kubeward::report::JSON_SCHEMA_VERSION);
    assert_eq!(json["schemaVersion"], "1");
    assert_eq!(json["tool"]["name"], "kubeward");
    assert_eq!(json["tool"]["version"], env!("CARGO_PKG_VERSION"));
    let categories = ["Security", "Efficiency", "Reliability", "Input"];
    let mut previous: Option<(String, u64, u64)> = None;
    for f in json["findings"].as_array().expect("findings") {
        let rule = f["rule"].as_str().expect("rule");
        assert!(
            matches!(f["severity"].as_str(), Some("danger" | "warning")),
            "{f}"
        );
        assert!(
            categories.contains(&f["category"].as_str().expect("category")),
            "{f}"
        );
        let (line, column) = (
            f["line"].as_u64().expect("line"),
            f["column"].as_u64().expect("column"),
        );
        assert!(line >= 1 && column >= 1, "{f}");
        assert!(f["endLine"].as_u64().expect("endLine") >= line, "{f}");
        assert!(f["endColumn"].as_u64().is_some(), "{f}");
        assert!(
            f["container"].is_null() || f["container"].is_string(),
            "{f}"
        );
        assert!(
            f["fieldPath"].is_string() && f["message"].is_string(),
            "{f}"
        );
        let fingerprint = f["fingerprint"].as_str().expect("fingerprint");
        assert!(
            fingerprint.len() == 28
                && fingerprint.starts_with("kw1-")
                && fingerprint[4..].chars().all(|c| c.is_ascii_hexdigit()),
            "{fingerprint}"
        );
        if rule == "parseError" {
            assert!(f["object"].is_null() && f["container"].is_null(), "{f}");
            assert_eq!(f["category"], "Input");
            assert_eq!(f["fieldPath"], "");
        } else {
            for key in OBJECT_KEYS {
                assert!(f["object"][key].is_string(), "{f}");
            }
        }
        // Sorted by path, then position.
        let here = (f["path"].as_str().expect("path").to_owned(), line, column);
        if let Some(before) = &previous {
            assert!(
                *before <= here,
                "findings are sorted: {before:?} then {here:?}"
            );
        }
        previous = Some(here);
    }
    let stats = &json["stats"];
    for key in [
        "files",
        "filesAudited",
        "documents",
        "objects",
        "rules",
        "exempted",
    ] {
        assert!(stats[key].is_u64(), "stats.{key}");
    }
    let skipped: u64 = stats["filesSkipped"]
        .as_object()
        .expect("filesSkipped")
        .values()
        .map(|v| v.as_u64().expect("count"))
        .sum();
    assert_eq!(
        stats["files"].as_u64(),
        Some(stats["filesAudited"].as_u64().unwrap() + skipped)
    );
    let counted: u64 = stats["findings"]
        .as_object()
        .expect("findings")
        .values()
        .map(|v| v.as_u64().expect("count"))
        .sum();
    assert_eq!(
        counted,
        json["findings"].as_array().map_or(0, Vec::len) as u64
    );
}

#[test]
fn json_from_the_binary_is_one_document_and_a_newline() {
    let dir = workspace(&[("pod.yaml", RISKY_POD.as_bytes())]);
    let out = kubeward(
        dir.path(),
        &[
            "audit",
            "--format",
            "json",
            "--only",
            "hostNetworkSet",
            "pod.yaml",
        ],
    );
    assert_eq!(out.status.code(), Some(3));
    let text = String::from_utf8(out.stdout).expect("UTF-8");
    assert!(text.ends_with("}\n"), "{text:?}");
    let json = parse(&text);
    let findings = json["findings"].as_array().expect("findings");
    assert_eq!(findings.len(), 1);
    let f = &findings[0];
    assert_eq!(f["rule"], "hostNetworkSet");
    assert_eq!(f["severity"], "danger");
    assert_eq!(f["category"], "Security");
    assert_eq!(f["path"], "pod.yaml");
    assert_eq!(
        (f["line"].as_u64(), f["column"].as_u64()),
        (Some(7), Some(16))
    );
    assert_eq!(
        (f["endLine"].as_u64(), f["endColumn"].as_u64()),
        (Some(7), Some(20))
    );
    assert_eq!(
        f["object"],
        serde_json::json!({"apiVersion": "v1", "kind": "Pod", "namespace": "prod", "name": "risky"})
    );
    assert_eq!(f["container"], Value::Null);
    assert_eq!(f["fieldPath"], "spec.hostNetwork");
    assert_eq!(json["errors"], serde_json::json!([]));
    assert_eq!(json["stats"]["filesSkipped"], serde_json::json!({}));
}

/// `endLine`/`endColumn` is the exclusive end of the flagged node (docs/json-output.md). For a
/// node that runs to the end of its last line the pair must still cover that line: either
/// (last line, one past its last character) or (next line, 1).
#[test]
fn multi_line_findings_end_after_their_last_character() {
    let policy = policy(None, Some(&["runAsRootAllowed"]));
    let (result, _) = audit_bytes(&[("risky.yaml", RISKY_POD.as_bytes())], &policy);
    let f = result.findings.first().expect("runAsRootAllowed finding");
    // The container `- name: app\n      image: nginx:1.27\n` starts at 9:7, ends with line 10.
    assert_eq!((f.line, f.column), (9, 7));
    let last_line_len = RISKY_POD.lines().nth(9).map_or(0, |l| l.chars().count()) as u32;
    assert!(
        (f.end_line, f.end_column) == (10, last_line_len + 1)
            || (f.end_line, f.end_column) == (11, 1),
        "end ({}, {})",
        f.end_line,
        f.end_column
    );
}

/// `rules: {parseError: ignore}` silences parse errors, as `ignore` turns any rule off.
#[test]
fn parse_errors_set_to_ignore_are_not_reported() {
    let policy = policy(
        Some("rules:\n  parseError: ignore\n"),
        Some(&["hostNetworkSet"]),
    );
    let (result, errors) = audit_bytes(&[("multi.yaml", WITH_BROKEN_DOCUMENT.as_bytes())], &policy);
    let json = parse(&json_report(&result, &errors));
    let rules: Vec<&str> = json["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter_map(|f| f["rule"].as_str())
        .collect();
    assert_eq!(rules, ["hostNetworkSet"]);
    assert_eq!(json["stats"]["findings"], serde_json::json!({"danger": 1}));
}
