//! Exemptions: from annotations on the object or its pod template (ours, and the keys of the
//! tools users migrate from), and from configuration.

use globset::GlobMatcher;

use super::rule::Rule;
use crate::manifest::Object;
use crate::yaml::Node;

/// Where an exemption was declared, to tell reviewers what silenced a finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExemptionSource {
    Annotation(String),
    Config { file: String, line: u32 },
}

/// A configured exemption: every given filter must match; empty filters match everything.
#[derive(Debug, Clone)]
pub struct Exemption {
    pub rules: Vec<String>,
    pub namespaces: Vec<GlobMatcher>,
    pub names: Vec<GlobMatcher>,
    pub containers: Vec<GlobMatcher>,
    pub paths: Vec<GlobMatcher>,
    pub reason: String,
    pub source: ExemptionSource,
}

impl Exemption {
    pub fn matches(
        &self,
        rule: &str,
        object: Option<&Object<'_>>,
        container: Option<&str>,
        path: &str,
    ) -> bool {
        self.matches_fields(
            rule,
            object.map_or("", |o| o.namespace_or_default()),
            object.map_or("", |o| o.name),
            container,
            path,
        )
    }

    /// [`Exemption::matches`] by the object's namespace (empty when it has none) and name.
    pub fn matches_fields(
        &self,
        rule: &str,
        namespace: &str,
        name: &str,
        container: Option<&str>,
        path: &str,
    ) -> bool {
        let any = |globs: &[GlobMatcher], value: &str| {
            globs.is_empty() || globs.iter().any(|g| g.is_match(value))
        };
        (self.rules.is_empty() || self.rules.iter().any(|r| r == rule))
            && any(&self.namespaces, namespace)
            && any(&self.names, name)
            && (self.containers.is_empty() || container.is_some_and(|c| any(&self.containers, c)))
            && any(&self.paths, path)
    }

    pub fn describe(&self) -> String {
        match &self.source {
            ExemptionSource::Config { file, line } => {
                format!("exemption at {file}:{line}: {}", self.reason)
            }
            ExemptionSource::Annotation(key) => format!("annotation {key}"),
        }
    }
}

fn is_true(node: &Node) -> bool {
    match node.as_bool() {
        Some(b) => b,
        None => node
            .as_str()
            .is_some_and(|s| s.trim().eq_ignore_ascii_case("true")),
    }
}

/// The annotation key that exempts `rule` on this object, if any. Read from the object and
/// from its pod template: users put them on either (kube-linter issue #1180).
pub fn annotation_exemption(rule: &Rule, object: &Object<'_>) -> Option<String> {
    let sources = [
        object.annotations(),
        object.pod.as_ref().and_then(|p| p.annotations()),
    ];
    for annotations in sources.into_iter().flatten() {
        for entry in annotations.as_map().unwrap_or(&[]) {
            if annotation_exempts(&entry.key, &entry.value, rule) {
                return Some(entry.key.to_string());
            }
        }
    }
    None
}

/// Keys that exempt objects in kubeward or in the tools it reads annotations of: every key
/// [`annotation_exempts`] may accept is one.
pub fn is_exemption_key(key: &str) -> bool {
    (key.starts_with("kubeward.io/") && key.ends_with("exempt"))
        || key.starts_with("polaris.fairwinds.com/")
        || key.starts_with("ignore-check.kube-linter.io/")
        || key == "kube-linter.io/ignore-all"
        || key == "kube-score/ignore"
}

/// Whether one annotation exempts `rule`.
pub fn annotation_exempts(key: &str, value: &Node, rule: &Rule) -> bool {
    let id = rule.id.as_str();
    // `{prefix}/exempt` or `{prefix}/{id}-exempt`, compared piecewise: this runs for every
    // annotation of every finding.
    let truthy_key = |prefix: &str| {
        key.strip_prefix(prefix)
            .and_then(|rest| rest.strip_prefix('/'))
            .is_some_and(|name| {
                name == "exempt" || name.strip_suffix("-exempt").is_some_and(|r| r == id)
            })
            && is_true(value)
    };
    if truthy_key("kubeward.io") || truthy_key("polaris.fairwinds.com") {
        return true;
    }
    // kube-linter: the value is a justification, any value counts.
    if key == "kube-linter.io/ignore-all" {
        return true;
    }
    if let Some(name) = key.strip_prefix("ignore-check.kube-linter.io/") {
        return name == id || rule.aliases.kube_linter.iter().any(|a| a == name);
    }
    if key == "kube-score/ignore" {
        let names = value.as_str().unwrap_or("");
        return names
            .split(',')
            .map(str::trim)
            .any(|n| n == id || rule.aliases.kube_score.iter().any(|a| a == n));
    }
    false
}
