//! A rule as written in `rules/<id>.yaml`: what it is, what it checks, and how to fix it.

use serde::{Deserialize, Serialize};

use super::builtins::Builtin;
use super::eval::{Assertion, AssertionSpec, Step, parse_path};
use super::model::{Category, Severity, Target};
use super::schema::SchemaCheck;
use crate::manifest::ContainerKind;
use crate::yaml::{DeError, Node, from_node};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KindFilter {
    #[serde(default)]
    pub include: Vec<String>,
    #[serde(default)]
    pub exclude: Vec<String>,
}

impl KindFilter {
    pub fn allows(&self, kind: &str) -> bool {
        (self.include.is_empty() || self.include.iter().any(|k| k == kind))
            && !self.exclude.iter().any(|k| k == kind)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ContainerSelector {
    Container,
    InitContainer,
    EphemeralContainer,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContainerFilter {
    #[serde(default)]
    pub include: Vec<ContainerSelector>,
    #[serde(default)]
    pub exclude: Vec<ContainerSelector>,
}

impl ContainerFilter {
    pub fn allows(&self, kind: ContainerKind) -> bool {
        let selector = match kind {
            ContainerKind::Container => ContainerSelector::Container,
            ContainerKind::InitContainer => ContainerSelector::InitContainer,
            ContainerKind::EphemeralContainer => ContainerSelector::EphemeralContainer,
        };
        (self.include.is_empty() || self.include.contains(&selector))
            && !self.exclude.contains(&selector)
    }
}

/// The names other tools give this rule, for migration and their exemption annotations.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Aliases {
    #[serde(default)]
    pub kube_linter: Vec<String>,
    #[serde(default)]
    pub kube_score: Vec<String>,
    #[serde(default)]
    pub checkov: Vec<String>,
}

/// A mechanical fix, as written in a rule file: set a field below the target to a value, or
/// remove one (`[*]` reaches list items).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AutofixSpec {
    #[serde(default)]
    pub set: Option<String>,
    #[serde(default)]
    pub value: Option<serde_json::Value>,
    #[serde(default)]
    pub remove: Option<String>,
}

/// A compiled fix step, paths relative to the rule's target.
#[derive(Debug, Clone)]
pub enum Autofix {
    Set(Vec<Step>, serde_json::Value),
    Remove(Vec<Step>),
}

impl AutofixSpec {
    fn compile(&self) -> Result<Autofix, String> {
        match (&self.set, &self.value, &self.remove) {
            (Some(path), Some(value), None) => {
                let steps = parse_path(path)?;
                if steps.iter().any(|s| !matches!(s, Step::Key(_))) {
                    return Err(format!("`set: {path}` takes no wildcards"));
                }
                Ok(Autofix::Set(steps, value.clone()))
            }
            (None, None, Some(path)) => Ok(Autofix::Remove(parse_path(path)?)),
            _ => Err("an autofix is `set` with `value`, or `remove`".into()),
        }
    }
}

/// The check as written in a rule file.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum CheckSpec {
    /// The value at `path` must satisfy the conditions; a missing value fails unless a
    /// Kubernetes `default` satisfies them.
    Require(AssertionSpec),
    /// No value at `path` may satisfy the conditions (or exist at all, when none are given).
    Forbid(AssertionSpec),
    /// Passes when one alternative passes; otherwise reports the first one's violations.
    AnyOf(Vec<CheckSpec>),
    /// Every part must pass.
    AllOf(Vec<CheckSpec>),
    /// A named check written in Rust, for what a path expression cannot say.
    Builtin(Builtin),
}

/// The check, compiled: regexes built, paths split.
#[derive(Debug, Clone)]
pub enum Check {
    Require(Assertion),
    Forbid(Assertion),
    AnyOf(Vec<Check>),
    AllOf(Vec<Check>),
    Builtin(Builtin),
    /// A Polaris-format JSON Schema custom check.
    Schema(Box<SchemaCheck>),
}

impl Check {
    /// Whether the result can depend on other objects than the one checked.
    pub fn uses_inventory(&self) -> bool {
        match self {
            Check::Require(_) | Check::Forbid(_) => false,
            Check::AnyOf(parts) | Check::AllOf(parts) => parts.iter().any(Check::uses_inventory),
            Check::Builtin(b) => b.uses_inventory(),
            Check::Schema(s) => !s.additional.is_empty(),
        }
    }
}

impl CheckSpec {
    pub fn compile(self, target: Target) -> Result<Check, String> {
        Ok(match self {
            CheckSpec::Require(a) => Check::Require(a.compile(target)?),
            CheckSpec::Forbid(a) => Check::Forbid(a.compile(target)?),
            CheckSpec::AnyOf(parts) => Check::AnyOf(
                parts
                    .into_iter()
                    .map(|p| p.compile(target))
                    .collect::<Result<_, _>>()?,
            ),
            CheckSpec::AllOf(parts) => Check::AllOf(
                parts
                    .into_iter()
                    .map(|p| p.compile(target))
                    .collect::<Result<_, _>>()?,
            ),
            CheckSpec::Builtin(b) => {
                b.validate(target)?;
                Check::Builtin(b)
            }
        })
    }
}

fn enabled_by_default() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RuleFile {
    id: String,
    title: String,
    category: Category,
    severity: Severity,
    #[serde(default = "enabled_by_default")]
    enabled: bool,
    target: Target,
    #[serde(default)]
    kinds: Vec<String>,
    #[serde(default)]
    controllers: KindFilter,
    #[serde(default)]
    containers: ContainerFilter,
    message: String,
    why: String,
    fix: String,
    #[serde(default)]
    polaris: bool,
    #[serde(default)]
    aliases: Aliases,
    check: CheckSpec,
    #[serde(default)]
    autofix: Vec<AutofixSpec>,
}

/// A loaded, compiled rule.
#[derive(Debug, Clone)]
pub struct Rule {
    pub id: String,
    pub title: String,
    pub category: Category,
    /// The severity before any configuration.
    pub default_severity: Severity,
    /// Off unless configured on (`enabled: false` in the rule file).
    pub enabled_by_default: bool,
    pub target: Target,
    pub kinds: Vec<String>,
    pub controllers: KindFilter,
    pub containers: ContainerFilter,
    /// Shared with every finding that says just this (no detail).
    pub message: std::sync::Arc<str>,
    pub why: String,
    pub fix: String,
    /// One of Polaris's built-in checks (same ID and meaning).
    pub polaris: bool,
    pub aliases: Aliases,
    pub check: Check,
    pub autofix: Vec<Autofix>,
    /// Where the rule came from: `rules/<id>.yaml` or a config file.
    pub origin: String,
}

#[derive(Debug, thiserror::Error)]
#[error("{origin}: {message}")]
pub struct RuleError {
    pub origin: String,
    pub message: String,
}

impl Rule {
    pub fn from_yaml_node(node: &Node, origin: &str) -> Result<Rule, RuleError> {
        let err = |message: String| RuleError {
            origin: origin.to_owned(),
            message,
        };
        let file: RuleFile = from_node(node).map_err(|e: DeError| err(e.to_string()))?;
        if file.target == Target::Object && file.kinds.is_empty() {
            return Err(err("target `Object` needs `kinds`".into()));
        }
        let check = file.check.compile(file.target).map_err(err)?;
        let autofix = file
            .autofix
            .iter()
            .map(AutofixSpec::compile)
            .collect::<Result<_, _>>()
            .map_err(err)?;
        Ok(Rule {
            id: file.id,
            title: file.title,
            category: file.category,
            default_severity: file.severity,
            enabled_by_default: file.enabled,
            target: file.target,
            kinds: file.kinds,
            controllers: file.controllers,
            containers: file.containers,
            message: file.message.into(),
            why: file.why,
            fix: file.fix,
            polaris: file.polaris,
            aliases: file.aliases,
            check,
            autofix,
            origin: origin.to_owned(),
        })
    }

    /// Whether the rule applies to objects of this kind (`kinds` for `Object` targets).
    pub fn matches_kind(&self, group: &str, kind: &str) -> bool {
        self.kinds.iter().any(|k| kind_matches(k, group, kind))
    }

    /// A link to the rule's documentation.
    pub fn doc_url(&self) -> String {
        format!("{}/{}.md", crate::RULE_DOCS_BASE, self.id)
    }
}

/// `rbac.authorization.k8s.io/Role`, `/ConfigMap` (core group), a bare `Kind` (any group), or
/// `*` (every kind).
pub fn kind_matches(pattern: &str, group: &str, kind: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    match pattern.rsplit_once('/') {
        Some((g, k)) => k == kind && g == group,
        None => pattern == kind,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_patterns() {
        assert!(kind_matches(
            "rbac.authorization.k8s.io/Role",
            "rbac.authorization.k8s.io",
            "Role"
        ));
        assert!(!kind_matches("rbac.authorization.k8s.io/Role", "", "Role"));
        assert!(kind_matches("/ConfigMap", "", "ConfigMap"));
        assert!(kind_matches("Ingress", "extensions", "Ingress"));
    }
}
