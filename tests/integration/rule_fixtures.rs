//! Every rule's own fixtures: `tests/rules/<ruleId>/*.yaml`.
//!
//! A fixture marks each line where that rule must report with a trailing comment
//! `# expect: <ruleId>`; the rule must report on exactly those lines and no others. A fixture
//! without marks must pass. Each file is audited with only its rule enabled (rules that are off by
//! default included), so the fixtures pin down both behaviour and the place of every finding.

use std::collections::BTreeSet;
use std::path::Path;

use kubeward::audit::{Registry, audit};
use kubeward::config::Policy;
use kubeward::manifest::ManifestFile;
use kubeward::yaml::Limits;

#[test]
fn every_rule_has_fixtures_and_reports_exactly_the_marked_lines() {
    let registry = Registry::builtin().expect("built-in rules load");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/rules");
    let mut failures = Vec::new();
    let mut without_fixtures = Vec::new();
    for rule in registry.rules() {
        let dir = root.join(&rule.id);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            without_fixtures.push(rule.id.clone());
            continue;
        };
        let mut files: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        files.sort();
        let (mut passing, mut failing) = (0, 0);
        let only = vec![rule.id.clone()];
        let policy = Policy::build(&registry, None, Some(&only)).expect("policy");
        for path in files {
            let text = std::fs::read_to_string(&path).expect("fixture is text");
            let name = path
                .strip_prefix(&root)
                .unwrap_or(&path)
                .display()
                .to_string();
            let marker = format!("# expect: {}", rule.id);
            let expected: BTreeSet<u32> = text
                .lines()
                .enumerate()
                .filter(|(_, l)| l.trim_end().ends_with(&marker))
                .map(|(i, _)| i as u32 + 1)
                .collect();
            if expected.is_empty() {
                passing += 1;
            } else {
                failing += 1;
            }
            let file = ManifestFile::parse(name.clone(), &text, Limits::default());
            let result = audit(&[file], &policy);
            let got: BTreeSet<u32> = result
                .findings
                .iter()
                .filter(|f| f.rule == rule.id)
                .map(|f| f.line)
                .collect();
            if got != expected {
                failures.push(format!("{name}: expected lines {expected:?}, got {got:?}"));
            }
        }
        if passing == 0 || failing == 0 {
            failures.push(format!(
                "{}: needs at least one passing and one failing fixture",
                rule.id
            ));
        }
    }
    assert!(
        without_fixtures.is_empty(),
        "rules without fixtures: {without_fixtures:?}"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
