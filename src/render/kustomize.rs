//! What a kustomization reads: every path field, resolved from the repository root, so a
//! render can be given exactly those files and a review can tell whether a change touched them.

use crate::yaml::{Limits, Node, parse_stream};

/// The file names kustomize looks for in a folder, in its order.
pub const KUSTOMIZATION_NAMES: &[&str] =
    &["kustomization.yaml", "kustomization.yml", "Kustomization"];

/// One kustomization's references, paths as written (relative to its folder).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct References {
    /// `resources` and `bases`: files or folders (folders hold a kustomization).
    pub resources: Vec<String>,
    /// `components`: folders holding a `kind: Component` kustomization.
    pub components: Vec<String>,
    /// Patch files (`patches[].path`, `patchesStrategicMerge`, `patchesJson6902[].path`).
    pub patches: Vec<String>,
    /// Other files it reads: generator sources, `crds`, `openapi.path`, `replacements[].path`,
    /// `configurations`.
    pub files: Vec<String>,
    /// What kubeward refuses to render, and why: remote bases, Helm inflation, plugins.
    pub refused: Vec<String>,
    /// A `kind: Component`: included by others, never an entry point.
    pub is_component: bool,
}

/// A reference kustomize would fetch over the network.
pub fn is_remote(reference: &str) -> bool {
    reference.contains("://")
        || reference.starts_with("git@")
        || reference.starts_with("github.com/")
        || reference.starts_with("gitlab.com/")
        || reference.starts_with("bitbucket.org/")
        || reference.contains("?ref=")
        || reference.contains("//")
}

/// Reads a kustomization's references; `None` when it is not YAML kubeward can read.
pub fn references(text: &str) -> Option<References> {
    let docs = parse_stream(text, Limits::default());
    let root = docs.into_iter().next()?.root.ok()?;
    let mut refs = References {
        is_component: root.get("kind").and_then(Node::as_str) == Some("Component"),
        ..References::default()
    };
    let strings = |key: &str| -> Vec<String> {
        root.get(key)
            .and_then(Node::as_seq)
            .unwrap_or(&[])
            .iter()
            .filter_map(|n| n.as_str().map(str::to_owned))
            .collect()
    };
    for reference in strings("resources").into_iter().chain(strings("bases")) {
        if is_remote(&reference) {
            refs.refused.push(format!(
                "remote resource `{reference}` (fetched over the network)"
            ));
        } else {
            refs.resources.push(reference);
        }
    }
    for component in strings("components") {
        if is_remote(&component) {
            refs.refused.push(format!(
                "remote component `{component}` (fetched over the network)"
            ));
        } else {
            refs.components.push(component);
        }
    }
    for key in ["patches", "patchesJson6902"] {
        for item in root.get(key).and_then(Node::as_seq).unwrap_or(&[]) {
            if let Some(path) = item.get("path").and_then(Node::as_str) {
                refs.patches.push(path.to_owned());
            }
        }
    }
    // Inline strategic-merge patches are YAML text, not paths.
    for patch in strings("patchesStrategicMerge") {
        if !patch.contains('\n') {
            refs.patches.push(patch);
        }
    }
    for key in ["configMapGenerator", "secretGenerator"] {
        for item in root.get(key).and_then(Node::as_seq).unwrap_or(&[]) {
            for source in item.get("files").and_then(Node::as_seq).unwrap_or(&[]) {
                if let Some(spec) = source.as_str() {
                    // `key=path` or a path.
                    let path = spec.split_once('=').map_or(spec, |(_, p)| p);
                    refs.files.push(path.to_owned());
                }
            }
            for env in item.get("envs").and_then(Node::as_seq).unwrap_or(&[]) {
                if let Some(path) = env.as_str() {
                    refs.files.push(path.to_owned());
                }
            }
            if let Some(path) = item.get("env").and_then(Node::as_str) {
                refs.files.push(path.to_owned());
            }
        }
    }
    refs.files.extend(strings("crds"));
    refs.files.extend(strings("configurations"));
    if let Some(path) = root.get_path(&["openapi", "path"]).and_then(Node::as_str) {
        refs.files.push(path.to_owned());
    }
    for item in root
        .get("replacements")
        .and_then(Node::as_seq)
        .unwrap_or(&[])
    {
        if let Some(path) = item.get("path").and_then(Node::as_str) {
            refs.files.push(path.to_owned());
        }
    }
    if root.get("helmCharts").is_some() || root.get("helmChartInflationGenerator").is_some() {
        refs.refused.push(
            "Helm inflation (`helmCharts`: kustomize would run helm and fetch charts)".into(),
        );
    }
    for key in ["generators", "transformers", "validators"] {
        if root
            .get(key)
            .and_then(Node::as_seq)
            .is_some_and(|s| !s.is_empty())
        {
            refs.refused
                .push(format!("`{key}` (plugins and KRM functions run programs)"));
        }
    }
    Some(refs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_path_field_is_read_and_remote_or_executable_inputs_are_refused() {
        let refs = references(
            "resources:\n  - ../../base\n  - extra.yaml\n  - https://github.com/o/r//deploy?ref=v1\nbases: [legacy]\ncomponents: [../../components/tls]\npatches:\n  - path: replicas.yaml\n  - patch: |-\n      - op: replace\npatchesStrategicMerge: [memory.yaml]\npatchesJson6902:\n  - path: json.yaml\n    target: {kind: Deployment, name: web}\nconfigMapGenerator:\n  - name: settings\n    files: [app.properties, key=config/other.txt]\n    envs: [env.txt]\ncrds: [crd.yaml]\nreplacements:\n  - path: repl.yaml\nhelmCharts: [{name: x}]\ntransformers: [plugin.yaml]\n",
        )
        .expect("readable");
        assert_eq!(refs.resources, ["../../base", "extra.yaml", "legacy"]);
        assert_eq!(refs.components, ["../../components/tls"]);
        assert_eq!(refs.patches, ["replicas.yaml", "json.yaml", "memory.yaml"]);
        assert_eq!(
            refs.files,
            [
                "app.properties",
                "config/other.txt",
                "env.txt",
                "crd.yaml",
                "repl.yaml"
            ]
        );
        assert_eq!(refs.refused.len(), 3, "{:?}", refs.refused);
        assert!(!refs.is_component);
        assert!(
            references("kind: Component\n")
                .expect("readable")
                .is_component
        );
    }
}
