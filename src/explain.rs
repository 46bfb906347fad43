//! A rule's documentation, as `kubeward rules ID` prints it and the docs pages show it.

use crate::audit::{Rule, Severity, Target};

pub fn explain(rule: &Rule, active: Option<Severity>) -> String {
    let mut out = String::new();
    out.push_str(&format!("# {}\n\n{}\n\n", rule.id, rule.title));
    let severity = match active {
        Some(s) => s.as_str().to_owned(),
        None if rule.enabled_by_default => "off (by configuration)".to_owned(),
        None => format!(
            "off by default (enable with `rules: {{{}: {}}}`)",
            rule.id,
            rule.default_severity.as_str()
        ),
    };
    out.push_str(&format!("- Category: {}\n", rule.category.as_str()));
    out.push_str(&format!(
        "- Severity: {severity} (default {})\n",
        rule.default_severity.as_str()
    ));
    let target = match rule.target {
        Target::Object => format!("objects of kind {}", rule.kinds.join(", ")),
        Target::Container => "every container of a pod template".into(),
        Target::PodSpec => "the pod spec of every workload".into(),
        Target::PodTemplate => "the pod template of every workload".into(),
        Target::Controller => "every workload".into(),
    };
    out.push_str(&format!("- Checks: {target}\n"));
    if !rule.controllers.include.is_empty() {
        out.push_str(&format!(
            "- Only for: {}\n",
            rule.controllers.include.join(", ")
        ));
    }
    if !rule.controllers.exclude.is_empty() {
        out.push_str(&format!(
            "- Not for: {}\n",
            rule.controllers.exclude.join(", ")
        ));
    }
    if rule.polaris {
        out.push_str("- Polaris: same ID and meaning as Polaris's built-in check\n");
    }
    let aliases: Vec<String> = rule
        .aliases
        .kube_linter
        .iter()
        .map(|a| format!("kube-linter `{a}`"))
        .chain(
            rule.aliases
                .kube_score
                .iter()
                .map(|a| format!("kube-score `{a}`")),
        )
        .chain(
            rule.aliases
                .checkov
                .iter()
                .map(|a| format!("Checkov `{a}`")),
        )
        .collect();
    if !aliases.is_empty() {
        out.push_str(&format!("- Also known as: {}\n", aliases.join(", ")));
    }
    out.push_str(&format!("\n## Message\n\n{}\n", rule.message));
    out.push_str(&format!("\n## Why it matters\n\n{}\n", rule.why.trim()));
    out.push_str(&format!("\n## How to fix\n\n{}\n", rule.fix.trim()));
    out.push_str(&format!(
        "\n## Exempting\n\nAnnotate the object or its pod template with `kubeward.io/{}-exempt: \"true\"`, \
         or add an exemption with a reason to `.kubeward.yaml`.\n",
        rule.id
    ));
    out
}
