//! Policy configuration: `.kubeward.yaml` (or a Polaris config file, accepted unchanged) turned
//! into the [`Policy`] the engine runs.
//!
//! Every mistake is an error that names the file, line and column, and for a misspelt key or
//! rule ID the nearest valid word: a policy that silently ignores a typo is a hole.

mod custom;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use globset::{Glob, GlobMatcher};
use serde::Deserialize;

use crate::audit::{
    EXEMPTION_ADDED, Exemption, ExemptionSource, PARSE_ERROR, Registry, Rule, Severity,
};
use crate::yaml::{DeError, Limits, Mark, Node, from_node, parse_stream, unknown_word_message};

pub use custom::CustomCheckSpec;

/// File names searched for in the working tree when `--config` is not given.
pub const CONFIG_FILE_NAMES: &[&str] = &[".kubeward.yaml", ".kubeward.yml"];

/// Above this, a manifest is skipped rather than parsed.
pub const DEFAULT_MAX_FILE_SIZE: u64 = 10 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub enum FailOn {
    #[default]
    Danger,
    Warning,
    Never,
}

impl FailOn {
    pub fn fails(self, severity: Severity) -> bool {
        match self {
            FailOn::Danger => severity >= Severity::Danger,
            FailOn::Warning => severity >= Severity::Warning,
            FailOn::Never => false,
        }
    }

    pub fn parse(text: &str) -> Option<FailOn> {
        match text {
            "danger" => Some(FailOn::Danger),
            "warning" => Some(FailOn::Warning),
            "never" => Some(FailOn::Never),
            _ => None,
        }
    }
}

/// What a review that could not judge the whole change concludes (`incomplete:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub enum Incomplete {
    /// Required checks block: nothing unjudged gets through (the default).
    #[default]
    Failure,
    /// The check is neutral, which required checks count as passing: an opt-in.
    Neutral,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    pub file: String,
    pub mark: Option<Mark>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.mark {
            Some(m) => write!(f, "{}:{}:{}: {}", self.file, m.line, m.col, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ExemptionSpec {
    #[serde(default)]
    rules: Vec<String>,
    #[serde(default)]
    namespaces: Vec<String>,
    #[serde(default)]
    names: Vec<String>,
    #[serde(default)]
    containers: Vec<String>,
    #[serde(default)]
    paths: Vec<String>,
    #[serde(default)]
    reason: Option<String>,
    // Polaris's spelling: one namespace, names matched by prefix.
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    controller_names: Vec<String>,
    #[serde(default)]
    container_names: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct LimitsSpec {
    #[serde(default)]
    max_file_size: Option<u64>,
    #[serde(default)]
    max_depth: Option<usize>,
    #[serde(default)]
    max_alias_nodes: Option<usize>,
    #[serde(default)]
    max_file_nodes: Option<usize>,
    #[serde(default)]
    max_file_scalar_bytes: Option<usize>,
    #[serde(default)]
    max_file_documents: Option<usize>,
}

/// Settings for rendering kustomize overlays in reviews.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq, Eq, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RenderSettings {
    /// Render targets one review renders (default 20); the rest are named as not reviewed.
    #[serde(default)]
    pub max_targets: Option<usize>,
    /// Extra renders one review may spend finding which values key caused a chart's finding
    /// and verifying values suggestions (default 40); past it, findings are said on the
    /// chart's first changed line.
    #[serde(default)]
    pub max_attribution_renders: Option<usize>,
    /// The kustomize targets (folders), instead of every entry point found.
    #[serde(default)]
    pub kustomize: Option<Vec<String>>,
    /// Value sets by chart folder: a chart not named is rendered with its own values.
    #[serde(default)]
    pub helm: BTreeMap<String, Vec<crate::render::helm::ValueSet>>,
}

/// Settings for pull-request reviews.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ReviewSettings {
    /// Most inline comments per run; the rest go to annotations and the summary.
    #[serde(default = "default_max_inline")]
    pub max_inline_comments: usize,
    /// Review draft pull requests too.
    #[serde(default)]
    pub review_drafts: bool,
}

fn default_max_inline() -> usize {
    30
}

impl Default for ReviewSettings {
    fn default() -> Self {
        ReviewSettings {
            max_inline_comments: default_max_inline(),
            review_drafts: false,
        }
    }
}

/// One folder, or several.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum PathsSpec {
    One(String),
    Many(Vec<String>),
}

/// An environment (a cluster, a region) and the folders or render targets deployed to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Environment {
    pub name: String,
    /// Repository paths without a trailing `/`.
    pub paths: Vec<String>,
}

impl Environment {
    /// Whether a finding on `path`, rendered through `targets` (empty: not rendered), is
    /// deployed to this environment.
    pub fn holds(&self, path: &str, targets: &[String]) -> bool {
        let under = |p: &str| {
            self.paths.iter().any(|root| {
                p == root
                    || p.strip_prefix(root.as_str())
                        .is_some_and(|rest| rest.starts_with('/'))
            })
        };
        under(path) || targets.iter().any(|t| under(t))
    }
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ConfigSpec {
    /// A baseline file (`kubeward audit --write-baseline`): findings it names are accepted.
    #[serde(default)]
    baseline: Option<String>,
    #[serde(default)]
    fail_on: Option<FailOn>,
    #[serde(default)]
    incomplete: Option<Incomplete>,
    /// Severity overrides on top of the defaults.
    #[serde(default)]
    rules: BTreeMap<String, Severity>,
    #[serde(default)]
    exemptions: Vec<ExemptionSpec>,
    #[serde(default)]
    custom_checks: BTreeMap<String, CustomCheckSpec>,
    #[serde(default)]
    ignore_paths: Vec<String>,
    #[serde(default)]
    annotation_exemptions: Option<bool>,
    #[serde(default)]
    limits: LimitsSpec,
    #[serde(default)]
    review: ReviewSettings,
    #[serde(default)]
    render: RenderSettings,
    /// Where each environment (cluster) is deployed from: folders or render targets.
    #[serde(default)]
    environments: BTreeMap<String, PathsSpec>,
    // Polaris's keys, accepted as Polaris means them.
    /// The complete set of checks to run, with severities.
    #[serde(default)]
    checks: Option<BTreeMap<String, Severity>>,
    /// Polaris's mutating-webhook list: accepted, not used.
    #[serde(default)]
    #[allow(dead_code)]
    mutations: Vec<String>,
    #[serde(default)]
    disallow_exemptions: bool,
    #[serde(default)]
    disallow_config_exemptions: bool,
    #[serde(default)]
    disallow_annotation_exemptions: bool,
}

/// A configuration file as read, with its tree kept for error positions.
#[derive(Debug, Clone)]
pub struct ConfigFile {
    pub name: String,
    node: Node,
    spec: ConfigSpec,
}

impl ConfigFile {
    pub fn parse(name: &str, text: &str) -> Result<ConfigFile, ConfigError> {
        let err = |mark: Option<Mark>, message: String| ConfigError {
            file: name.to_owned(),
            mark,
            message,
        };
        let docs = parse_stream(text, Limits::default());
        let node = match docs.into_iter().next() {
            None => Node::new(crate::yaml::Value::Map(Vec::new()), Default::default()),
            Some(doc) => doc.root.map_err(|e| err(Some(e.mark), e.message))?,
        };
        if node.is_null() {
            return Ok(ConfigFile {
                name: name.to_owned(),
                node: Node::new(crate::yaml::Value::Map(Vec::new()), Default::default()),
                spec: ConfigSpec::default(),
            });
        }
        let spec: ConfigSpec = from_node(&node).map_err(|e: DeError| err(e.mark, e.message))?;
        Ok(ConfigFile {
            name: name.to_owned(),
            node,
            spec,
        })
    }

    pub fn load(path: &Path) -> Result<ConfigFile, ConfigError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: name.clone(),
            mark: None,
            message: format!("cannot read: {e}"),
        })?;
        ConfigFile::parse(&name, &text)
    }

    /// `.kubeward.yaml` in `start` or its parents, up to the repository root.
    pub fn discover(start: &Path) -> Option<PathBuf> {
        for dir in start.ancestors() {
            for name in CONFIG_FILE_NAMES {
                let candidate = dir.join(name);
                if candidate.is_file() {
                    return Some(candidate);
                }
            }
            if dir.join(".git").exists() {
                break;
            }
        }
        None
    }

    /// Where `path` is in the file: as deep as it can be followed. A step is a mapping key,
    /// or in a list an index or an item's scalar value (a rule ID in `rules: [...]`).
    fn mark_of(&self, path: &[&str]) -> Option<Mark> {
        let mut node = &self.node;
        let mut mark = None;
        for key in path {
            if let Some(items) = node.as_seq() {
                let item = match key.parse::<usize>() {
                    Ok(i) => items.get(i),
                    Err(_) => items.iter().find(|n| n.as_str() == Some(*key)),
                };
                let Some(item) = item else { break };
                mark = Some(item.span.start);
                node = item;
            } else {
                let Some(entry) = node.entry(key) else { break };
                mark = Some(entry.key_span.start);
                node = &entry.value;
            }
        }
        mark
    }

    fn error(&self, path: &[&str], message: String) -> ConfigError {
        ConfigError {
            file: self.name.clone(),
            mark: self.mark_of(path),
            message,
        }
    }

    pub fn review(&self) -> &ReviewSettings {
        &self.spec.review
    }
}

#[derive(Debug, Clone)]
pub struct ActiveRule {
    pub rule: Rule,
    pub severity: Severity,
    /// The rule's id as its findings share it.
    pub id: crate::audit::Shared,
}

/// Everything the engine needs to judge manifests.
#[derive(Debug, Clone)]
pub struct Policy {
    pub rules: Vec<ActiveRule>,
    pub exemptions: Vec<Exemption>,
    pub annotation_exemptions: bool,
    pub config_exemptions: bool,
    pub fail_on: FailOn,
    /// What a review concludes when part of the change could not be judged.
    pub incomplete: Incomplete,
    pub parse_error_severity: Severity,
    /// Severity of `exemptionAdded` in reviews.
    pub exemption_added_severity: Severity,
    pub max_file_size: u64,
    pub yaml_limits: Limits,
    pub ignore_paths: Vec<GlobMatcher>,
    pub review: ReviewSettings,
    pub render: RenderSettings,
    /// Every rule known (built-in and custom), for `rules` listings and review text.
    pub registry: Registry,
    /// The configuration file the policy came from, if any.
    pub source: Option<String>,
    /// Where path globs (`ignorePaths`, exemption `paths`) are relative to, for a policy read
    /// from disk. `None` when paths already are relative to it (a review reads repository
    /// paths and the policy at the repository root).
    pub path_root: Option<PathRoot>,
    /// The repository's baseline file (`baseline:`), a repository path.
    pub baseline: Option<String>,
    /// Fingerprints the baseline accepts, read by the shell (at the base commit in reviews):
    /// such findings are not new.
    pub baseline_accepted: std::collections::HashSet<String>,
    /// `environments:`, by name.
    pub environments: Vec<Environment>,
}

/// The folders a policy read from disk matches paths from. The shell (`cli::load_policy`)
/// reads them, so matching a path is lexical and the engine asks the process for nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathRoot {
    /// The folder of the configuration file: absolute, lexically normal.
    pub root: PathBuf,
    /// The folder relative paths were given from (the current folder): absolute, lexically
    /// normal.
    pub working_dir: PathBuf,
}

impl Policy {
    /// The defaults: built-in rules at their default severities, no exemptions.
    pub fn defaults(registry: &Registry) -> Policy {
        Policy::build(registry, None, None).unwrap_or_else(|_| Policy::empty(registry))
    }

    fn empty(registry: &Registry) -> Policy {
        Policy {
            rules: Vec::new(),
            exemptions: Vec::new(),
            annotation_exemptions: true,
            config_exemptions: true,
            fail_on: FailOn::Danger,
            incomplete: Incomplete::Failure,
            parse_error_severity: Severity::Danger,
            exemption_added_severity: Severity::Warning,
            max_file_size: DEFAULT_MAX_FILE_SIZE,
            yaml_limits: Limits::default(),
            ignore_paths: Vec::new(),
            review: ReviewSettings::default(),
            render: RenderSettings::default(),
            registry: registry.clone(),
            source: None,
            path_root: None,
            baseline: None,
            baseline_accepted: std::collections::HashSet::new(),
            environments: Vec::new(),
        }
    }

    /// Applies a configuration file and an optional `--only` list to the registry.
    pub fn build(
        registry: &Registry,
        config: Option<&ConfigFile>,
        only: Option<&[String]>,
    ) -> Result<Policy, ConfigError> {
        let mut registry = registry.clone();
        let mut policy = Policy::empty(&registry);
        let mut severities: BTreeMap<String, Severity> = registry
            .rules()
            .map(|r| {
                let s = if r.enabled_by_default {
                    r.default_severity
                } else {
                    Severity::Ignore
                };
                (r.id.clone(), s)
            })
            .collect();
        if let Some(config) = config {
            policy.source = Some(config.name.clone());
            let spec = &config.spec;
            for (id, check) in &spec.custom_checks {
                let origin = match config.mark_of(&["customChecks", id]) {
                    Some(mark) => format!("{}:{}", config.name, mark.line),
                    None => config.name.clone(),
                };
                let rule = check.to_rule(id, &origin).map_err(|m| {
                    config.error(&["customChecks", id], format!("custom check `{id}`: {m}"))
                })?;
                let severity = check.severity.unwrap_or(Severity::Warning);
                registry
                    .add(rule)
                    .map_err(|m| config.error(&["customChecks", id], m))?;
                severities.insert(id.clone(), severity);
            }
            let known: Vec<String> = registry
                .ids()
                .map(str::to_owned)
                .chain([PARSE_ERROR.to_owned(), EXEMPTION_ADDED.to_owned()])
                .collect();
            let check_id = |id: &str, path: &[&str]| -> Result<(), ConfigError> {
                if known.iter().any(|k| k == id) {
                    Ok(())
                } else {
                    Err(config.error(
                        path,
                        unknown_word_message(
                            "rule",
                            id,
                            &known.iter().map(String::as_str).collect::<Vec<_>>(),
                        ),
                    ))
                }
            };
            if let Some(checks) = &spec.checks {
                // Polaris: a check not listed does not run.
                for (id, severity) in severities.iter_mut() {
                    if !checks.contains_key(id) && !spec.custom_checks.contains_key(id) {
                        *severity = Severity::Ignore;
                    }
                }
                for (id, severity) in checks {
                    check_id(id, &["checks", id])?;
                    severities.insert(id.clone(), *severity);
                }
            }
            for (id, severity) in &spec.rules {
                check_id(id, &["rules", id])?;
                if id == PARSE_ERROR {
                    policy.parse_error_severity = *severity;
                }
                if id == EXEMPTION_ADDED {
                    policy.exemption_added_severity = *severity;
                }
                severities.insert(id.clone(), *severity);
            }
            for (i, e) in spec.exemptions.iter().enumerate() {
                let index = i.to_string();
                for id in &e.rules {
                    check_id(id, &["exemptions", &index, "rules", id])?;
                }
                policy
                    .exemptions
                    .push(exemption(config, e, i).map_err(|error| {
                        let mut at = vec!["exemptions", index.as_str()];
                        at.extend(
                            error
                                .at
                                .iter()
                                .map(String::as_str)
                                .filter(|k| !k.is_empty()),
                        );
                        config.error(&at, format!("exemption {index}: {}", error.message))
                    })?);
            }
            policy.ignore_paths = spec
                .ignore_paths
                .iter()
                .map(|g| glob(g).map_err(|m| config.error(&["ignorePaths"], m)))
                .collect::<Result<_, _>>()?;
            policy.fail_on = spec.fail_on.unwrap_or_default();
            policy.baseline = spec.baseline.clone();
            policy.incomplete = spec.incomplete.unwrap_or_default();
            policy.annotation_exemptions = spec.annotation_exemptions.unwrap_or(true)
                && !spec.disallow_annotation_exemptions
                && !spec.disallow_exemptions;
            policy.config_exemptions =
                !spec.disallow_config_exemptions && !spec.disallow_exemptions;
            if let Some(n) = spec.limits.max_file_size {
                policy.max_file_size = n;
            }
            if let Some(n) = spec.limits.max_depth {
                policy.yaml_limits.max_depth = n;
            }
            if let Some(n) = spec.limits.max_alias_nodes {
                policy.yaml_limits.max_alias_nodes = n;
            }
            if let Some(n) = spec.limits.max_file_nodes {
                policy.yaml_limits.max_file_nodes = n;
            }
            if let Some(n) = spec.limits.max_file_scalar_bytes {
                policy.yaml_limits.max_file_scalar_bytes = n;
            }
            if let Some(n) = spec.limits.max_file_documents {
                policy.yaml_limits.max_file_documents = n;
            }
            policy.review = spec.review.clone();
            policy.render = spec.render.clone();
            for (name, paths) in &spec.environments {
                let paths = match paths {
                    PathsSpec::One(p) => vec![p.clone()],
                    PathsSpec::Many(ps) => ps.clone(),
                };
                let mut normal = Vec::with_capacity(paths.len());
                for p in paths {
                    let p = p.trim_start_matches("./").trim_end_matches('/');
                    if p.is_empty() || p.starts_with('/') || p.split('/').any(|s| s == "..") {
                        return Err(config.error(
                            &["environments", name],
                            format!(
                                "environment `{name}`: `{p}` must be a folder inside the repository"
                            ),
                        ));
                    }
                    normal.push(p.to_owned());
                }
                policy.environments.push(Environment {
                    name: name.clone(),
                    paths: normal,
                });
            }
        }
        if let Some(only) = only {
            let known: Vec<&str> = registry.ids().collect();
            for id in only {
                if !known.contains(&id.as_str()) {
                    return Err(ConfigError {
                        file: "--only".into(),
                        mark: None,
                        message: unknown_word_message("rule", id, &known),
                    });
                }
            }
            for (id, severity) in severities.iter_mut() {
                if only.contains(id) {
                    if *severity == Severity::Ignore {
                        let default = registry.get(id).map(|r| r.default_severity);
                        *severity = match default {
                            Some(Severity::Ignore) | None => Severity::Warning,
                            Some(s) => s,
                        };
                    }
                } else {
                    *severity = Severity::Ignore;
                }
            }
        }
        policy.rules = registry
            .rules()
            .filter_map(|rule| {
                let severity = severities
                    .get(&rule.id)
                    .copied()
                    .unwrap_or(Severity::Ignore);
                (severity != Severity::Ignore).then(|| ActiveRule {
                    id: rule.id.as_str().into(),
                    rule: rule.clone(),
                    severity,
                })
            })
            .collect();
        policy.registry = registry;
        Ok(policy)
    }

    /// Whether a file is excluded by `ignorePaths`.
    pub fn ignores(&self, path: &str) -> bool {
        !self.ignore_paths.is_empty() && {
            let path = self.policy_path(path);
            self.ignore_paths.iter().any(|g| g.is_match(path.as_ref()))
        }
    }

    /// `path` as path globs see it: relative to [`Policy::path_root`], however it was typed
    /// (`sub/a.yaml`, `./sub/a.yaml`, an absolute path, or `.` from inside `sub`), so one
    /// policy means the same thing wherever it runs from. Paths outside the root are matched
    /// as given.
    pub fn policy_path<'p>(&self, path: &'p str) -> Cow<'p, str> {
        let as_given = || Cow::Borrowed(path.strip_prefix("./").unwrap_or(path));
        let Some(base) = &self.path_root else {
            return as_given();
        };
        if path.is_empty() {
            return as_given();
        }
        // What `std::path::absolute` would give, from the folder the shell read.
        let absolute = lexical_normal(&base.working_dir.join(path));
        match absolute.strip_prefix(&base.root) {
            Ok(relative) => Cow::Owned(
                relative
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy())
                    .collect::<Vec<_>>()
                    .join("/"),
            ),
            Err(_) => as_given(),
        }
    }

    pub fn severity_of(&self, rule: &str) -> Option<Severity> {
        self.rules
            .iter()
            .find(|r| r.rule.id == rule)
            .map(|r| r.severity)
    }
}

fn glob(pattern: &str) -> Result<GlobMatcher, String> {
    Glob::new(pattern)
        .map(|g| g.compile_matcher())
        .map_err(|e| format!("invalid glob `{pattern}`: {e}"))
}

/// Why an exemption is invalid, with where inside it: keys (and a list value) below the
/// exemption's own item, for the error's line.
struct ExemptionError {
    at: Vec<String>,
    message: String,
}

fn exemption(
    config: &ConfigFile,
    e: &ExemptionSpec,
    index: usize,
) -> Result<Exemption, ExemptionError> {
    let polaris_style =
        e.namespace.is_some() || !e.controller_names.is_empty() || !e.container_names.is_empty();
    let reason = match (&e.reason, polaris_style) {
        (Some(r), _) if !r.trim().is_empty() => r.clone(),
        (_, true) => "Polaris exemption".into(),
        _ => {
            return Err(ExemptionError {
                at: Vec::new(),
                message: "needs a `reason`".into(),
            });
        }
    };
    let compile = |field: &str, pattern: &str, text: &str| {
        glob(text).map_err(|message| ExemptionError {
            at: vec![field.to_owned(), pattern.to_owned()],
            message,
        })
    };
    let globs = |field: &str, patterns: &[String]| {
        patterns
            .iter()
            .map(|p| compile(field, p, p))
            .collect::<Result<Vec<_>, _>>()
    };
    let prefixes = |field: &str, names: &[String]| {
        names
            .iter()
            .map(|n| compile(field, n, &format!("{}*", globset_escape(n))))
            .collect::<Result<Vec<_>, _>>()
    };
    let mut namespaces = globs("namespaces", &e.namespaces)?;
    if let Some(ns) = &e.namespace {
        namespaces.push(compile("namespace", "", &globset_escape(ns))?);
    }
    let mut names = globs("names", &e.names)?;
    names.extend(prefixes("controllerNames", &e.controller_names)?);
    let mut containers = globs("containers", &e.containers)?;
    containers.extend(prefixes("containerNames", &e.container_names)?);
    let line = config
        .node
        .get("exemptions")
        .and_then(Node::as_seq)
        .and_then(|s| s.get(index))
        .map_or(0, |n| n.span.start.line);
    Ok(Exemption {
        rules: e.rules.clone(),
        namespaces,
        names,
        containers,
        paths: globs("paths", &e.paths)?,
        reason,
        source: ExemptionSource::Config {
            file: config.name.clone(),
            line,
        },
    })
}

/// `.` and `..` resolved without touching the file system.
pub fn lexical_normal(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir
                if matches!(out.components().next_back(), Some(Component::Normal(_))) =>
            {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

fn globset_escape(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '{' | '}' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry() -> Registry {
        Registry::builtin().expect("built-in rules load")
    }

    #[test]
    fn environments_name_folders_and_render_targets() {
        let file = ConfigFile::parse(
            ".kubeward.yaml",
            "environments:\n  prod-eu: overlays/prod-eu/\n  staging: [overlays/staging, clusters/staging]\n",
        )
        .expect("parses");
        let policy = Policy::build(&registry(), Some(&file), None).expect("valid");
        let names: Vec<&str> = policy
            .environments
            .iter()
            .map(|e| e.name.as_str())
            .collect();
        assert_eq!(names, ["prod-eu", "staging"]);
        let prod = &policy.environments[0];
        assert!(prod.holds("overlays/prod-eu/patch.yaml", &[]));
        assert!(
            !prod.holds("overlays/prod-eu-canary/patch.yaml", &[]),
            "a prefix is not a folder"
        );
        // A base file shared by overlays is deployed wherever an overlay renders it.
        assert!(prod.holds("base/deployment.yaml", &["overlays/prod-eu".into()]));
        assert!(policy.environments[1].holds("clusters/staging/app.yaml", &[]));
        let outside = ConfigFile::parse(".kubeward.yaml", "environments:\n  prod: ../elsewhere\n")
            .expect("parses");
        let error =
            Policy::build(&registry(), Some(&outside), None).expect_err("outside the repository");
        assert!(error.to_string().contains(".kubeward.yaml:2:"), "{error}");
    }

    #[test]
    fn policy_paths_are_worked_out_from_the_folders_the_shell_read() {
        let mut policy = Policy::defaults(&registry());
        policy.path_root = Some(PathRoot {
            root: PathBuf::from("/repo"),
            working_dir: PathBuf::from("/repo/deploy"),
        });
        assert_eq!(policy.policy_path("app/a.yaml"), "deploy/app/a.yaml");
        assert_eq!(policy.policy_path("./app/a.yaml"), "deploy/app/a.yaml");
        assert_eq!(policy.policy_path("../base/a.yaml"), "base/a.yaml");
        assert_eq!(policy.policy_path("/repo/x/a.yaml"), "x/a.yaml");
        // Outside the root, and text that is no path: as given.
        assert_eq!(policy.policy_path("/elsewhere/a.yaml"), "/elsewhere/a.yaml");
        assert_eq!(policy.policy_path("../../a.yaml"), "../../a.yaml");
        assert_eq!(policy.policy_path(""), "");
        policy.path_root = None;
        assert_eq!(policy.policy_path("./app/a.yaml"), "app/a.yaml");
    }

    #[test]
    fn unknown_keys_name_the_line_and_the_nearest_word() {
        let err = ConfigFile::parse("k.yaml", "failOn: danger\nexemptons: []\n")
            .expect_err("typo is an error");
        assert_eq!(err.mark.map(|m| m.line), Some(2));
        assert!(err.message.contains("did you mean `exemptions`"), "{err}");
    }

    #[test]
    fn unknown_rule_ids_name_the_line_and_the_nearest_id() {
        let file =
            ConfigFile::parse("k.yaml", "rules:\n  hostNetworkSett: warning\n").expect("parses");
        let err = Policy::build(&registry(), Some(&file), None).expect_err("unknown rule");
        assert_eq!(err.mark.map(|m| m.line), Some(2));
        assert!(
            err.message.contains("did you mean `hostNetworkSet`"),
            "{err}"
        );
    }

    #[test]
    fn errors_inside_an_exemption_point_at_the_offending_value() {
        let text = "exemptions:\n- rules: [hostPortSet]\n  reason: ok\n- reason: typo\n  rules:\n  - hostNetworkSet\n  - hostPortSett\n- reason: glob\n  paths: [\"ok/*\", \"bad/[\"]\n";
        let file = ConfigFile::parse("k.yaml", text).expect("parses");
        let err = Policy::build(&registry(), Some(&file), None).expect_err("unknown rule");
        assert_eq!(err.mark.map(|m| (m.line, m.col)), Some((7, 5)), "{err}");
        assert!(err.message.contains("did you mean `hostPortSet`"), "{err}");

        let fixed = text.replace("hostPortSett", "hostPortSet");
        let file = ConfigFile::parse("k.yaml", &fixed).expect("parses");
        let err = Policy::build(&registry(), Some(&file), None).expect_err("bad glob");
        assert_eq!(err.mark.map(|m| m.line), Some(9), "{err}");
        assert!(err.message.contains("exemption 2"), "{err}");
    }

    #[test]
    fn polaris_checks_list_is_the_complete_set() {
        let file = ConfigFile::parse("polaris.yaml", "checks:\n  hostNetworkSet: warning\n")
            .expect("parses");
        let policy = Policy::build(&registry(), Some(&file), None).expect("valid");
        assert_eq!(policy.rules.len(), 1);
        assert_eq!(
            policy.severity_of("hostNetworkSet"),
            Some(Severity::Warning)
        );
    }

    #[test]
    fn kubeward_exemptions_need_a_reason() {
        let file = ConfigFile::parse(
            "k.yaml",
            "exemptions:\n- rules: [hostNetworkSet]\n  names: [dns-*]\n",
        )
        .expect("parses");
        let err = Policy::build(&registry(), Some(&file), None).expect_err("no reason");
        assert!(err.message.contains("reason"), "{err}");
    }

    #[test]
    fn only_enables_rules_that_are_off_by_default() {
        let only = vec!["imageNotPinnedByDigest".to_owned()];
        let policy = Policy::build(&registry(), None, Some(&only)).expect("valid");
        assert_eq!(policy.rules.len(), 1);
        assert_eq!(policy.rules[0].rule.id, "imageNotPinnedByDigest");
    }
}
