//! `docs/rules/<id>.md` is generated from the rule files; this test fails when they drift.
//! Regenerate with `KUBEWARD_BLESS=1 cargo test --test integration rule_docs::`.

use std::path::Path;

use kubeward::audit::Registry;
use kubeward::config::Policy;
use kubeward::explain::explain;

#[test]
fn rule_docs_are_up_to_date() {
    let registry = Registry::builtin().expect("built-in rules load");
    let policy = Policy::defaults(&registry);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/rules");
    let bless = std::env::var_os("KUBEWARD_BLESS").is_some();
    let mut stale = Vec::new();
    let mut index = String::from(
        "# Rules\n\nGenerated from `rules/`; `kubeward rules ID` prints the same text.\n\n| Rule | Category | Default | Title |\n|---|---|---|---|\n",
    );
    for rule in registry.rules() {
        let text = explain(rule, policy.severity_of(&rule.id));
        let default = if rule.enabled_by_default {
            rule.default_severity.as_str()
        } else {
            "off"
        };
        index.push_str(&format!(
            "| [{id}]({id}.md) | {} | {default} | {} |\n",
            rule.category.as_str(),
            rule.title,
            id = rule.id
        ));
        let path = dir.join(format!("{}.md", rule.id));
        if bless {
            std::fs::write(&path, &text).expect("docs/rules is writable");
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            stale.push(rule.id.clone());
        }
    }
    index.push_str(
        "\nReported by the engine itself, without a rule file:\n\n| Finding | Default | Title |\n|---|---|---|\n",
    );
    for pseudo in kubeward::audit::PSEUDO_RULES {
        index.push_str(&format!(
            "| [{id}]({id}.md) | {} | {} |\n",
            pseudo.default_severity.as_str(),
            pseudo.title,
            id = pseudo.id
        ));
        let text = pseudo.explain();
        let path = dir.join(format!("{}.md", pseudo.id));
        if bless {
            std::fs::write(&path, &text).expect("docs/rules is writable");
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            stale.push(pseudo.id.to_owned());
        }
    }
    let index_path = dir.join("README.md");
    if bless {
        std::fs::write(&index_path, &index).expect("docs/rules is writable");
    } else if std::fs::read_to_string(&index_path).ok().as_deref() != Some(index.as_str()) {
        stale.push("README.md".into());
    }
    assert!(
        stale.is_empty(),
        "stale rule docs {stale:?}: run KUBEWARD_BLESS=1 cargo test --test integration rule_docs::"
    );
}
