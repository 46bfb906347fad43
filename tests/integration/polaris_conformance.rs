//! Runs Polaris's own per-check fixtures: every row of EXPECTED.tsv, each file audited with
//! only that check enabled (custom checks from their `check.yaml`). Rows we deliberately judge
//! differently are listed, with the argument, in `tests/conformance/polaris-deviations.tsv`;
//! the list is enforced exactly, so it cannot go stale.

use std::collections::BTreeMap;
use std::path::Path;

use crate::support::polaris;

use kubeward::audit::{Registry, audit};
use kubeward::config::{ConfigFile, Policy};
use kubeward::manifest::ManifestFile;
use kubeward::yaml::Limits;

fn policy_for(registry: &Registry, dir: &Path, check: &str) -> Policy {
    let mut config = format!("checks:\n  {check}: danger\n");
    let custom = dir.join(check).join("check.yaml");
    if let Ok(text) = std::fs::read_to_string(&custom) {
        config.push_str(&format!("customChecks:\n  {check}:\n"));
        for line in text.lines() {
            config.push_str(&format!("    {line}\n"));
        }
    }
    let file = ConfigFile::parse("conformance.yaml", &config).expect("synthesised config parses");
    Policy::build(registry, Some(&file), None).expect("synthesised config is valid")
}

fn deviations() -> BTreeMap<(String, String), String> {
    let text = include_str!("../conformance/polaris-deviations.tsv");
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            assert!(cols.len() == 4, "deviation rows have 4 columns: {l}");
            assert!(cols[3].len() > 40, "a deviation needs an argument: {l}");
            ((cols[0].to_owned(), cols[1].to_owned()), cols[2].to_owned())
        })
        .collect()
}

#[test]
fn every_polaris_fixture_matches_or_is_an_argued_deviation() {
    let dir = polaris::fixtures_dir();
    let registry = Registry::builtin().expect("built-in rules load");
    let deviations = deviations();
    let expected = std::fs::read_to_string(dir.join("EXPECTED.tsv")).expect("EXPECTED.tsv");
    let mut mismatches = Vec::new();
    let mut used_deviations = 0;
    let mut rows = 0;
    for line in expected.lines().skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        let (check, file, want) = (cols[0], cols[1], cols[2]);
        rows += 1;
        let text = std::fs::read_to_string(dir.join(file)).expect("fixture exists");
        let policy = policy_for(&registry, &dir, check);
        assert_eq!(policy.rules.len(), 1, "only {check} runs");
        let parsed = ManifestFile::parse(file, &text, Limits::default());
        let result = audit(&[parsed], &policy);
        let failed = result.findings.iter().any(|f| f.rule == check);
        let got = if failed { "fail" } else { "pass" };
        let key = (check.to_owned(), file.to_owned());
        match deviations.get(&key) {
            Some(ours) => {
                used_deviations += 1;
                if got != ours || ours == want {
                    mismatches.push(format!("{file}: deviation says {ours}, got {got}"));
                }
            }
            None if got != want => {
                let detail: Vec<String> = result
                    .findings
                    .iter()
                    .map(|f| format!("{}:{} {} {}", f.line, f.column, f.rule, f.message))
                    .collect();
                mismatches.push(format!("{file}: expected {want}, got {got} {detail:?}"));
            }
            None => {}
        }
    }
    assert_eq!(rows, 302, "EXPECTED.tsv has 302 rows");
    assert_eq!(
        used_deviations,
        deviations.len(),
        "every listed deviation is a real row"
    );
    assert!(
        mismatches.is_empty(),
        "{} mismatches:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}
