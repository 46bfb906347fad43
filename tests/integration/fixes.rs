//! Fixes: applied to the file they were made for, they must give valid YAML in which the
//! finding is gone; where Polaris publishes the fixed object for the same rule
//! (MUTATIONS.tsv), ours must be equal to it as data.

use std::collections::BTreeMap;
use std::path::Path;

use crate::support::polaris;

use kubeward::audit::{AuditResult, Registry, audit};
use kubeward::config::Policy;
use kubeward::fix::{FixOp, apply, plan};
use kubeward::manifest::ManifestFile;
use kubeward::yaml::{Limits, Node, parse_stream};

fn audit_one(registry: &Registry, rule: &str, name: &str, text: &str) -> AuditResult {
    let only = vec![rule.to_owned()];
    let policy = Policy::build(registry, None, Some(&only)).expect("policy");
    audit(
        &[ManifestFile::parse(name, text, Limits::default())],
        &policy,
    )
}

/// Applies every fix of `result` to `text`, merging per object as reviews do.
fn apply_all(text: &str, result: &AuditResult) -> Option<String> {
    let docs = parse_stream(text, Limits::default());
    let mut by_doc: BTreeMap<usize, Vec<FixOp>> = BTreeMap::new();
    for f in &result.findings {
        let location = f.location.as_ref()?;
        assert!(location.list_path.is_none(), "fixtures hold no Lists");
        by_doc
            .entry(location.doc_index)
            .or_default()
            .extend(f.fix.iter().cloned());
    }
    let mut edits = Vec::new();
    for (doc, ops) in by_doc {
        let root: &Node = docs[doc].root.as_ref().ok()?;
        edits.extend(plan(text, root, &ops)?);
    }
    Some(apply(text, &edits))
}

/// The objects as the API server sees them: an optional struct that is absent, `null` or `{}`
/// decodes to the same thing, so those differences are not differences in data.
fn as_data(text: &str) -> Vec<serde_json::Value> {
    fn normalise(value: serde_json::Value) -> Option<serde_json::Value> {
        match value {
            serde_json::Value::Null => None,
            serde_json::Value::Object(map) => {
                let map: serde_json::Map<_, _> = map
                    .into_iter()
                    .filter_map(|(k, v)| normalise(v).map(|v| (k, v)))
                    .collect();
                (!map.is_empty()).then_some(serde_json::Value::Object(map))
            }
            serde_json::Value::Array(items) => Some(serde_json::Value::Array(
                items.into_iter().filter_map(normalise).collect(),
            )),
            other => Some(other),
        }
    }
    parse_stream(text, Limits::default())
        .into_iter()
        .filter_map(|d| d.root.ok())
        .filter_map(|n| normalise(n.to_json()))
        .collect()
}

#[test]
fn fixes_equal_polaris_golden_outputs_where_both_fix_the_rule() {
    let dir = polaris::fixtures_dir();
    let registry = Registry::builtin().expect("rules load");
    let table = std::fs::read_to_string(dir.join("MUTATIONS.tsv")).expect("MUTATIONS.tsv");
    let deviations = include_str!("../conformance/polaris-deviations.tsv");
    // Where Polaris's fix would break a workload, ours differs on purpose.
    let fix_deviations: Vec<(&str, &str)> =
        include_str!("../conformance/polaris-fix-deviations.tsv")
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .map(|l| {
                let cols: Vec<&str> = l.split('\t').collect();
                assert!(
                    cols.len() == 3 && cols[2].len() > 40,
                    "rule, input, argument: {l}"
                );
                (cols[0], cols[1])
            })
            .collect();
    let mut used_fix_deviations = 0;
    let mut compared = Vec::new();
    let mut failures = Vec::new();
    for line in table.lines().skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        let (rule, input, expected) = (cols[0], cols[1], cols[2]);
        if registry.get(rule).is_none_or(|r| r.autofix.is_empty()) {
            continue; // We offer no mechanical fix for this rule (probes, resources).
        }
        if deviations.contains(&format!("{rule}\t{input}\tpass")) {
            continue; // We judge the input clean (tests/conformance/polaris-deviations.tsv).
        }
        let text = std::fs::read_to_string(dir.join(input)).expect("input");
        let want = std::fs::read_to_string(dir.join(expected)).expect("golden output");
        let result = audit_one(&registry, rule, input, &text);
        assert!(!result.findings.is_empty(), "{input}: {rule} reports");
        let Some(fixed) = apply_all(&text, &result) else {
            failures.push(format!("{input}: no fix could be written"));
            continue;
        };
        let argued = fix_deviations.contains(&(rule, input));
        if argued {
            used_fix_deviations += 1;
            if as_data(&fixed) == as_data(&want) {
                failures.push(format!(
                    "{input}: the fix deviation is stale: ours equals Polaris's"
                ));
            }
        } else if as_data(&fixed) != as_data(&want) {
            failures.push(format!("{input}: fixed object differs from Polaris's\n--- ours\n{fixed}\n--- polaris\n{want}"));
        }
        compared.push(input.to_owned());
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(
        used_fix_deviations,
        fix_deviations.len(),
        "every fix deviation is used"
    );
    // 11 of the 20 golden outputs are for rules we fix mechanically; the others invent probes
    // and resource values, which we leave to people.
    assert!(compared.len() >= 11, "compared {compared:?}");
}

#[test]
fn every_fix_in_the_rule_fixtures_yields_valid_yaml_without_the_finding() {
    let registry = Registry::builtin().expect("rules load");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/rules");
    let mut applied = 0;
    let mut failures = Vec::new();
    for rule in registry.rules().filter(|r| !r.autofix.is_empty()) {
        let Ok(entries) = std::fs::read_dir(root.join(&rule.id)) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.path().display().to_string();
            let text = std::fs::read_to_string(entry.path()).expect("fixture");
            let result = audit_one(&registry, &rule.id, &name, &text);
            if result.findings.iter().all(|f| f.fix.is_empty()) {
                continue;
            }
            let Some(fixed) = apply_all(&text, &result) else {
                continue; // Not writable safely (flow style...): no suggestion is offered.
            };
            applied += 1;
            if parse_stream(&fixed, Limits::default())
                .iter()
                .any(|d| d.root.is_err())
            {
                failures.push(format!("{name}: fixed file is not valid YAML:\n{fixed}"));
                continue;
            }
            let again = audit_one(&registry, &rule.id, &name, &fixed);
            if !again.findings.is_empty() {
                failures.push(format!(
                    "{name}: still reports {:?} after the fix:\n{fixed}",
                    again.findings.iter().map(|f| f.line).collect::<Vec<_>>()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert!(applied > 0, "some fixtures exercise fixes");
}
