//! Helm charts as render targets: which folders are charts, the value sets each is rendered
//! with, the arguments of `helm template`, and where in the chart a rendered document came
//! from (`# Source:`).

use std::collections::BTreeMap;

use crate::yaml::{Limits, Node, parse_stream};

use super::SourceTree;

/// One way a chart is rendered.
#[derive(
    Debug,
    Clone,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ValueSet {
    /// Its name in findings (`default` for the chart's own `values.yaml`).
    #[serde(default = "default_name")]
    pub name: String,
    /// Values files, from the repository root, applied in order after the chart's own.
    #[serde(default)]
    pub values_files: Vec<String>,
    /// `--set key=value`, in order.
    #[serde(default)]
    pub set: BTreeMap<String, String>,
    #[serde(default)]
    pub release_name: Option<String>,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub kube_version: Option<String>,
}

fn default_name() -> String {
    "default".to_owned()
}

impl ValueSet {
    /// The chart's own values only.
    pub fn defaults() -> ValueSet {
        ValueSet {
            name: default_name(),
            ..ValueSet::default()
        }
    }
}

/// The release name used when none is configured: fixed, so renders are reproducible.
pub const RELEASE: &str = "release";

/// Chart folders among `paths`: every folder holding a `Chart.yaml` that is not a library chart
/// and not a subchart in another chart's `charts/`.
pub fn chart_roots(tree: &dyn SourceTree, paths: &[String]) -> Vec<String> {
    let mut roots: Vec<String> = paths
        .iter()
        .filter_map(|p| match p.rsplit_once('/') {
            Some((dir, "Chart.yaml")) => Some(dir.to_owned()),
            None if p == "Chart.yaml" => Some(String::new()),
            _ => None,
        })
        .collect();
    roots.sort();
    let all = roots.clone();
    roots.retain(|root| {
        let is_library = tree
            .read(&join(root, "Chart.yaml"))
            .and_then(|b| {
                parse_stream(&String::from_utf8_lossy(&b), Limits::default())
                    .into_iter()
                    .next()
                    .and_then(|d| d.root.ok())
            })
            .and_then(|n| n.get("type").and_then(Node::as_str).map(|t| t == "library"))
            .unwrap_or(false);
        let subchart = all
            .iter()
            .any(|other| other != root && root.starts_with(&join(other, "charts/")));
        !is_library && !subchart
    });
    roots
}

/// The dependencies `Chart.yaml` declares that are not in the chart's `charts/` folder (as a
/// folder or a `.tgz`): helm would need `helm dependency update`, which downloads charts from
/// repositories or OCI registries. kubeward never runs it, so such a chart is refused by name.
pub fn missing_dependencies(
    tree: &dyn SourceTree,
    root: &str,
    files: &std::collections::BTreeSet<String>,
) -> Vec<String> {
    let Some(chart) = tree
        .read(&join(root, "Chart.yaml"))
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|text| parse_stream(&text, Limits::default()).into_iter().next())
        .and_then(|d| d.root.ok())
    else {
        return Vec::new();
    };
    let charts = join(root, "charts/");
    let mut out = Vec::new();
    for dependency in chart
        .get("dependencies")
        .and_then(Node::as_seq)
        .unwrap_or(&[])
    {
        let Some(name) = dependency.get("name").and_then(Node::as_str) else {
            continue;
        };
        let vendored = files.iter().any(|f| {
            f.strip_prefix(&charts).is_some_and(|rest| {
                rest.strip_prefix(name).is_some_and(|r| {
                    r.starts_with('/') || (r.starts_with('-') && r.ends_with(".tgz"))
                })
            })
        });
        if !vendored {
            let from = dependency
                .get("repository")
                .and_then(Node::as_str)
                .filter(|r| !r.is_empty())
                .unwrap_or("no repository");
            out.push(format!(
                "dependency {name} ({from}) of {root} is not in its charts/ folder: kubeward never downloads charts (helm dependency update)"
            ));
        }
    }
    out
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_owned()
    } else {
        format!("{dir}/{name}")
    }
}

/// `helm template` arguments for a chart materialized at `chart` (a path inside the render's
/// folder), values files given as paths inside it too.
pub fn template_args(chart: &str, values: &ValueSet) -> Vec<String> {
    let mut args = vec![
        "template".to_owned(),
        values
            .release_name
            .clone()
            .unwrap_or_else(|| RELEASE.to_owned()),
        chart.to_owned(),
        // CRDs, hooks and test pods are objects a cluster gets: audited too.
        "--include-crds".to_owned(),
    ];
    if let Some(namespace) = &values.namespace {
        args.extend(["--namespace".to_owned(), namespace.clone()]);
    }
    if let Some(version) = &values.kube_version {
        args.extend(["--kube-version".to_owned(), version.clone()]);
    }
    for file in &values.values_files {
        args.extend(["--values".to_owned(), file.clone()]);
    }
    for (key, value) in &values.set {
        args.extend(["--set".to_owned(), format!("{key}={value}")]);
    }
    args
}

/// For each line of `helm template`'s output, the repository path of the template that line
/// came from: `# Source: CHART/templates/x.yaml` names it from the chart's name; the chart
/// sits at `root`.
pub fn sources(output: &str, root: &str) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    for (i, line) in output.lines().enumerate() {
        if let Some(source) = line.strip_prefix("# Source: ") {
            // The first segment is the chart's name, not its folder's.
            let within = source.split_once('/').map_or(source, |(_, rest)| rest);
            out.push((i as u32 + 1, join(root, within.trim())));
        }
    }
    out
}

/// The template of the document starting at `line`: the last `# Source:` above it.
pub fn source_of(sources: &[(u32, String)], line: u32) -> Option<&str> {
    sources
        .iter()
        .take_while(|(at, _)| *at <= line)
        .last()
        .map(|(_, path)| path.as_str())
}

/// The lines of a template that hold `key` (`privileged:`), 1-based.
pub fn lines_holding(template: &str, key: &str) -> Vec<u32> {
    template
        .lines()
        .enumerate()
        .filter(|(_, line)| holds_key(line, key))
        .map(|(i, _)| i as u32 + 1)
        .collect()
}

fn holds_key(line: &str, key: &str) -> bool {
    let t = line.trim_start().trim_start_matches("- ");
    t.strip_prefix(key)
        .is_some_and(|rest| rest.starts_with(':'))
        || t.strip_prefix('"')
            .and_then(|t| t.strip_prefix(key))
            .is_some_and(|rest| rest.starts_with("\":"))
}

/// The line of a template that holds `key` (`privileged:`), the one nearest after `near` (the
/// previous key of the path, if found), else the first; 1-based.
pub fn key_line(template: &str, keys: &[&str]) -> Option<u32> {
    let lines: Vec<&str> = template.lines().collect();
    let holds = holds_key;
    let mut from = 0;
    let mut found = None;
    for key in keys {
        if let Some(i) = (from..lines.len()).find(|&i| holds(lines[i], key)) {
            found = Some(i);
            from = i + 1;
        }
    }
    found.map(|i| i as u32 + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_name_repository_paths_from_the_chart_folder() {
        let out = "---\n# Source: web/templates/deploy.yaml\napiVersion: v1\n---\n# Source: web/charts/db/templates/s.yaml\nkind: x\n";
        let s = sources(out, "charts/web");
        assert_eq!(
            s,
            [
                (2, "charts/web/templates/deploy.yaml".to_owned()),
                (5, "charts/web/charts/db/templates/s.yaml".to_owned())
            ]
        );
        assert_eq!(source_of(&s, 3), Some("charts/web/templates/deploy.yaml"));
        assert_eq!(
            source_of(&s, 6),
            Some("charts/web/charts/db/templates/s.yaml")
        );
    }

    #[test]
    fn a_key_is_found_after_its_parents() {
        let t = "spec:\n  securityContext:\n    runAsUser: 1\n  containers:\n    - name: a\n      securityContext:\n        privileged: {{ .Values.p }}\n";
        assert_eq!(
            key_line(t, &["containers", "securityContext", "privileged"]),
            Some(7)
        );
        assert_eq!(key_line(t, &["containers", "securityContext"]), Some(6));
        assert_eq!(key_line(t, &["nothing"]), None);
    }

    #[test]
    fn dependencies_not_vendored_are_named() {
        let tree = crate::render::attribute::OverlayTree {
            inner: &crate::render::DiskTree {
                root: "/nonexistent".into(),
            },
            files: BTreeMap::from([(
                "c/Chart.yaml".to_owned(),
                b"apiVersion: v2\nname: c\nversion: 1.0.0\ndependencies:\n  - name: redis\n    version: 1.2.3\n    repository: oci://registry.example/charts\n  - name: db\n    version: 2.0.0\n    repository: https://charts.example\n  - name: local\n    version: 0.1.0\n".to_vec(),
            )]),
        };
        let files = [
            "c/Chart.yaml",
            "c/charts/db-2.0.0.tgz",
            "c/charts/local/Chart.yaml",
        ]
        .map(str::to_owned)
        .into();
        let missing = missing_dependencies(&tree, "c", &files);
        assert_eq!(missing.len(), 1, "{missing:?}");
        assert!(missing[0].starts_with("dependency redis (oci://registry.example/charts)"));
    }

    #[test]
    fn template_arguments_never_reach_out() {
        let args = template_args(
            "c",
            &ValueSet {
                name: "prod".into(),
                values_files: vec!["c/values-prod.yaml".into()],
                set: BTreeMap::from([("image.tag".to_owned(), "1.2".to_owned())]),
                release_name: None,
                namespace: Some("web".into()),
                kube_version: Some("1.30".into()),
            },
        );
        assert_eq!(
            args.join(" "),
            "template release c --include-crds --namespace web --kube-version 1.30 --values c/values-prod.yaml --set image.tag=1.2"
        );
        for never in [
            "--dependency-update",
            "--post-renderer",
            "--enable-dns",
            "--generate-name",
        ] {
            assert!(!args.iter().any(|a| a == never));
        }
    }
}
