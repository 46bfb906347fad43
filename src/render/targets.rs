//! Render targets: the kustomizations that are entry points (overlays, environments), found in
//! a revision's files, and the exact set of files each one reads.

use std::collections::{BTreeMap, BTreeSet};

use super::kustomize::{KUSTOMIZATION_NAMES, References, references};
use super::{SourceTree, repository_path};

/// What to render.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum RenderTarget {
    /// `kubectl kustomize` of the folder holding the kustomization.
    Kustomize { root: String },
    /// `helm template` of the chart in `root` with one named set of values.
    Helm {
        root: String,
        values: super::helm::ValueSet,
    },
}

impl RenderTarget {
    /// The target's name in findings and summaries: its folder, and for a chart rendered with
    /// a named value set other than its defaults, that name (`charts/web (prod)`).
    pub fn name(&self) -> String {
        match self {
            RenderTarget::Kustomize { root } => root.clone(),
            RenderTarget::Helm { root, values } if values.name == "default" => root.clone(),
            RenderTarget::Helm { root, values } => format!("{root} ({})", values.name),
        }
    }

    pub fn root(&self) -> &str {
        match self {
            RenderTarget::Kustomize { root } | RenderTarget::Helm { root, .. } => root,
        }
    }
}

/// Everything one target reads, from the repository root.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Closure {
    /// Files to put in the render's folder.
    pub files: BTreeSet<String>,
    /// The kustomization files among them, by folder.
    pub kustomizations: BTreeMap<String, String>,
    /// Patch files, by the folder of the kustomization that lists them.
    pub patches: BTreeMap<String, Vec<String>>,
    /// Resource files (not folders): what the target's objects come from.
    pub resources: BTreeSet<String>,
    /// What the target asks for that is refused (remote, plugins).
    pub refused: Vec<String>,
    /// Referenced paths that do not exist, or leave the repository.
    pub missing: Vec<String>,
}

/// Everything `target` reads: for a kustomization, what it names; for a chart, every file
/// below it (templates, values, subcharts in `charts/`) and its value set's values files.
pub fn target_closure(tree: &dyn SourceTree, target: &RenderTarget) -> Closure {
    match target {
        RenderTarget::Kustomize { root } => closure(tree, root),
        RenderTarget::Helm { root, values } => {
            let mut out = Closure::default();
            out.files.extend(tree.files_under(root));
            out.refused
                .extend(super::helm::missing_dependencies(tree, root, &out.files));
            for file in &values.values_files {
                if tree.read(file).is_some() {
                    out.files.insert(file.clone());
                } else {
                    out.missing
                        .push(format!("{file} (a values file of {root})"));
                }
            }
            out
        }
    }
}

/// Every render target of a revision: kustomize entry points (or the configured ones), and
/// each chart with each of its value sets (default: its own values).
pub fn all_targets(
    tree: &dyn SourceTree,
    paths: &[String],
    kustomize: &Option<Vec<String>>,
    helm: &BTreeMap<String, Vec<super::helm::ValueSet>>,
) -> Vec<RenderTarget> {
    let mut targets = configured_or_found(tree, paths, kustomize);
    for root in super::helm::chart_roots(tree, paths) {
        let sets = helm
            .get(&root)
            .cloned()
            .unwrap_or_else(|| vec![super::helm::ValueSet::defaults()]);
        for values in sets {
            targets.push(RenderTarget::Helm {
                root: root.clone(),
                values,
            });
        }
    }
    targets
}

/// The kustomization file of a folder, if it has one.
pub fn kustomization_in(tree: &dyn SourceTree, dir: &str) -> Option<String> {
    KUSTOMIZATION_NAMES
        .iter()
        .map(|name| join(dir, name))
        .find(|path| tree.read(path).is_some())
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_owned()
    } else {
        format!("{dir}/{name}")
    }
}

fn parent(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(dir, _)| dir)
}

/// The files the kustomization in `root` reads, following bases and components.
pub fn closure(tree: &dyn SourceTree, root: &str) -> Closure {
    let mut out = Closure::default();
    let mut pending = vec![root.to_owned()];
    let mut seen = BTreeSet::new();
    while let Some(dir) = pending.pop() {
        if !seen.insert(dir.clone()) {
            continue;
        }
        let Some(file) = kustomization_in(tree, &dir) else {
            out.missing.push(format!("{dir} (no kustomization)"));
            continue;
        };
        let Some(refs) = tree
            .read(&file)
            .and_then(|bytes| references(&String::from_utf8_lossy(&bytes)))
        else {
            out.missing.push(format!("{file} (not readable)"));
            continue;
        };
        out.files.insert(file.clone());
        out.kustomizations.insert(dir.clone(), file);
        out.refused.extend(refs.refused.iter().cloned());
        let References {
            resources,
            components,
            patches,
            files,
            ..
        } = refs;
        for resource in resources {
            match repository_path(&dir, &resource) {
                Some(path) if tree.is_dir(&path) => pending.push(path),
                Some(path) if tree.read(&path).is_some() => {
                    out.resources.insert(path.clone());
                    out.files.insert(path);
                }
                _ => out.missing.push(format!("{resource} (named in {dir})")),
            }
        }
        for component in components {
            match repository_path(&dir, &component) {
                Some(path) => pending.push(path),
                None => out.missing.push(format!("{component} (named in {dir})")),
            }
        }
        for patch in patches {
            match repository_path(&dir, &patch) {
                Some(path) if tree.read(&path).is_some() => {
                    out.patches
                        .entry(dir.clone())
                        .or_default()
                        .push(path.clone());
                    out.files.insert(path);
                }
                _ => out.missing.push(format!("{patch} (named in {dir})")),
            }
        }
        for file in files {
            match repository_path(&dir, &file) {
                Some(path) if tree.read(&path).is_some() => {
                    out.files.insert(path);
                }
                _ => out.missing.push(format!("{file} (named in {dir})")),
            }
        }
    }
    out
}

/// Whether a file could make its revision have a render target at all (a kustomization or a
/// chart's `Chart.yaml`): a revision without one renders nothing, configured or not.
pub fn may_make_a_target(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    name == "Chart.yaml" || KUSTOMIZATION_NAMES.contains(&name)
}

/// The kustomizations that are entry points: every folder holding a kustomization that no
/// other kustomization includes (as a resource, base or component), that is not a Component,
/// and that is not inside a Helm chart's `charts/` folder. In path order.
pub fn entry_points(tree: &dyn SourceTree, paths: &[String]) -> Vec<RenderTarget> {
    let dirs: BTreeSet<&str> = paths
        .iter()
        .filter(|p| {
            let name = p.rsplit('/').next().unwrap_or(p);
            KUSTOMIZATION_NAMES.contains(&name)
        })
        .map(|p| parent(p))
        .collect();
    let mut included = BTreeSet::new();
    let mut components = BTreeSet::new();
    for dir in &dirs {
        let Some(refs) = kustomization_in(tree, dir)
            .and_then(|file| tree.read(&file))
            .and_then(|bytes| references(&String::from_utf8_lossy(&bytes)))
        else {
            continue;
        };
        if refs.is_component {
            components.insert((*dir).to_owned());
        }
        for reference in refs.resources.iter().chain(&refs.components) {
            if let Some(path) = repository_path(dir, reference) {
                included.insert(path);
            }
        }
    }
    dirs.into_iter()
        .filter(|dir| !included.contains(*dir) && !components.contains(*dir))
        .filter(|dir| !dir.split('/').any(|part| part == "charts") || !in_chart(paths, dir))
        .map(|dir| RenderTarget::Kustomize {
            root: dir.to_owned(),
        })
        .collect()
}

/// The configured targets (folders holding a kustomization), else every entry point found.
pub fn configured_or_found(
    tree: &dyn SourceTree,
    paths: &[String],
    configured: &Option<Vec<String>>,
) -> Vec<RenderTarget> {
    match configured {
        Some(dirs) => dirs
            .iter()
            .map(|d| d.trim_matches('/').to_owned())
            .filter(|d| kustomization_in(tree, d).is_some())
            .map(|root| RenderTarget::Kustomize { root })
            .collect(),
        None => entry_points(tree, paths),
    }
}

/// Whether `dir` lies in a `charts/` folder of a Helm chart (a subchart's own kustomization is
/// the chart's business).
fn in_chart(paths: &[String], dir: &str) -> bool {
    let parts: Vec<&str> = dir.split('/').collect();
    parts.iter().enumerate().any(|(i, part)| {
        *part == "charts" && {
            let chart = parts[..i].join("/");
            paths.iter().any(|p| *p == join(&chart, "Chart.yaml"))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct Files(HashMap<String, String>);

    impl SourceTree for Files {
        fn read(&self, path: &str) -> Option<Vec<u8>> {
            self.0.get(path).map(|t| t.clone().into_bytes())
        }
        fn is_dir(&self, path: &str) -> bool {
            let prefix = format!("{path}/");
            self.0.keys().any(|p| p.starts_with(&prefix))
        }
        fn files_under(&self, dir: &str) -> Vec<String> {
            let prefix = format!("{dir}/");
            self.0
                .keys()
                .filter(|p| p.starts_with(&prefix))
                .cloned()
                .collect()
        }
    }

    fn files(list: &[(&str, &str)]) -> (Files, Vec<String>) {
        let map: HashMap<String, String> = list
            .iter()
            .map(|(p, t)| ((*p).to_owned(), (*t).to_owned()))
            .collect();
        let paths = map.keys().cloned().collect();
        (Files(map), paths)
    }

    #[test]
    fn entry_points_are_the_kustomizations_nobody_includes() {
        let (tree, paths) = files(&[
            ("base/kustomization.yaml", "resources: [d.yaml]\n"),
            ("base/d.yaml", "kind: Deployment\n"),
            ("components/tls/kustomization.yaml", "kind: Component\n"),
            (
                "overlays/prod/kustomization.yaml",
                "resources: [../../base]\ncomponents: [../../components/tls]\npatches: [{path: p.yaml}]\n",
            ),
            ("overlays/prod/p.yaml", "kind: Deployment\n"),
            (
                "overlays/staging/kustomization.yaml",
                "resources: [../../base]\n",
            ),
            ("chart/Chart.yaml", "name: c\n"),
            ("chart/charts/sub/kustomization.yaml", "resources: []\n"),
        ]);
        let targets: Vec<String> = entry_points(&tree, &paths)
            .iter()
            .map(|t| t.name().to_owned())
            .collect();
        assert_eq!(targets, ["overlays/prod", "overlays/staging"]);
        let prod = closure(&tree, "overlays/prod");
        assert_eq!(
            prod.files.iter().map(String::as_str).collect::<Vec<_>>(),
            [
                "base/d.yaml",
                "base/kustomization.yaml",
                "components/tls/kustomization.yaml",
                "overlays/prod/kustomization.yaml",
                "overlays/prod/p.yaml"
            ]
        );
        assert_eq!(prod.patches["overlays/prod"], ["overlays/prod/p.yaml"]);
        assert!(prod.missing.is_empty(), "{:?}", prod.missing);
    }

    #[test]
    fn references_that_leave_the_repository_or_do_not_exist_are_named() {
        let (tree, _) = files(&[(
            "k/kustomization.yaml",
            "resources: [../../../etc, gone.yaml]\n",
        )]);
        let closure = closure(&tree, "k");
        assert_eq!(closure.missing.len(), 2, "{:?}", closure.missing);
    }
}
