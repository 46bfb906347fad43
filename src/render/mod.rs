//! Rendering: kustomize overlays become the objects a cluster would get, so a review can judge
//! them. A pull request's overlay is untrusted input: it is rendered in a temporary folder that
//! holds only the repository files it reads, by a tool run with a cleared environment, no
//! network, a time limit and an output cap; what it prints is then parsed under the same budgets
//! as any manifest. Every rendered object keeps its source: the file it came from
//! (`config.kubernetes.io/origin`), and the patches that may have set a field.

pub mod attribute;
pub mod helm;
pub mod judge;
pub mod kustomize;
pub mod origin;
pub mod process;
pub mod review;
pub mod targets;

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::manifest::ManifestFile;
use crate::yaml::{Limits, Node, Value, parse_file};

pub use origin::{SourcePlace, place_of};
pub use process::RunError;
pub use targets::{Closure, RenderTarget, closure, entry_points};

/// The files a render may read, by repository path (`/`-separated, no leading `/`): a
/// revision's tree, or a folder on disk.
pub trait SourceTree {
    /// A regular file's bytes; `None` for what is missing, a folder, or a link.
    fn read(&self, path: &str) -> Option<Vec<u8>>;
    fn is_dir(&self, path: &str) -> bool;
    /// Every regular file below `dir`, by repository path.
    fn files_under(&self, dir: &str) -> Vec<String>;
}

/// `relative` (a path written in a file of folder `dir`) as a path from the repository root,
/// `.` and `..` resolved; `None` when it leaves the repository.
pub fn repository_path(dir: &str, relative: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for part in dir.split('/').chain(relative.split('/')) {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            part => parts.push(part),
        }
    }
    Some(parts.join("/"))
}

/// The render tools, by path.
#[derive(Debug, Clone, Default)]
pub struct Tools {
    /// `kubectl` (its built-in kustomize renders overlays).
    pub kubectl: Option<PathBuf>,
    /// `helm` (`helm template` renders charts).
    pub helm: Option<PathBuf>,
}

impl Tools {
    /// The tools found on `PATH`.
    pub fn from_path() -> Tools {
        Tools {
            kubectl: on_path("kubectl"),
            helm: on_path("helm"),
        }
    }
}

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    })
}

/// What one render may take.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RenderLimits {
    pub time_limit: Duration,
    /// Bytes the tool may print.
    pub max_output: usize,
}

impl Default for RenderLimits {
    fn default() -> Self {
        RenderLimits {
            time_limit: Duration::from_secs(60),
            max_output: 64 << 20,
        }
    }
}

/// Why a target was not rendered. Each is named in the review, which is then incomplete.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    #[error("{0} is not installed (set its path, or put it on PATH)")]
    ToolMissing(&'static str),
    #[error("refused: {}", .0.join("; "))]
    Refused(Vec<String>),
    #[error("it reads files that are not in the repository: {}", .0.join(", "))]
    Missing(Vec<String>),
    #[error(transparent)]
    Run(#[from] RunError),
    #[error("{0}")]
    Io(String),
}

/// Runs the render of a materialized target: the folder holds exactly the files it reads.
pub trait Renderer: Sync {
    fn render(
        &self,
        target: &RenderTarget,
        folder: &Path,
        limits: &RenderLimits,
    ) -> Result<Vec<u8>, RenderError>;
}

impl Renderer for Tools {
    fn render(
        &self,
        target: &RenderTarget,
        folder: &Path,
        limits: &RenderLimits,
    ) -> Result<Vec<u8>, RenderError> {
        let home = folder.join(".kubeward-home");
        for sub in ["", "cache", "config", "data"] {
            std::fs::create_dir_all(home.join(sub)).map_err(|e| RenderError::Io(e.to_string()))?;
        }
        let home_text = home.display().to_string();
        // No network: remote inputs are refused before this, and any fetch the tool tries
        // goes to a proxy that does not answer. Helm's repositories, plugins and caches are
        // empty folders.
        let env = [
            ("HOME", home_text.clone()),
            ("XDG_CONFIG_HOME", format!("{home_text}/config")),
            ("XDG_CACHE_HOME", format!("{home_text}/cache")),
            ("XDG_DATA_HOME", format!("{home_text}/data")),
            ("HELM_CACHE_HOME", format!("{home_text}/cache")),
            ("HELM_CONFIG_HOME", format!("{home_text}/config")),
            ("HELM_DATA_HOME", format!("{home_text}/data")),
            ("HELM_PLUGINS", format!("{home_text}/data/plugins")),
            ("KUBECONFIG", format!("{home_text}/none")),
            ("HTTP_PROXY", "http://127.0.0.1:9".to_owned()),
            ("HTTPS_PROXY", "http://127.0.0.1:9".to_owned()),
            ("http_proxy", "http://127.0.0.1:9".to_owned()),
            ("https_proxy", "http://127.0.0.1:9".to_owned()),
            ("NO_PROXY", String::new()),
        ];
        let dir = |root: &str| {
            if root.is_empty() {
                ".".to_owned()
            } else {
                root.to_owned()
            }
        };
        match target {
            RenderTarget::Kustomize { root } => {
                let kubectl = self
                    .kubectl
                    .as_ref()
                    .ok_or(RenderError::ToolMissing("kubectl"))?;
                Ok(process::run(
                    kubectl,
                    &["kustomize", &dir(root)],
                    folder,
                    &env,
                    limits.time_limit,
                    limits.max_output,
                )?)
            }
            RenderTarget::Helm { root, values } => {
                let helm = self.helm.as_ref().ok_or(RenderError::ToolMissing("helm"))?;
                let args = helm::template_args(&dir(root), values);
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                Ok(process::run(
                    helm,
                    &args,
                    folder,
                    &env,
                    limits.time_limit,
                    limits.max_output,
                )?)
            }
        }
    }
}

/// A rendered target: its objects, each document's source file (from the repository root),
/// and what it read.
#[derive(Debug)]
pub struct RenderedTarget {
    pub target: RenderTarget,
    /// The rendered stream; its path names the target (`render:overlays/prod`).
    pub file: ManifestFile,
    /// By document index: the repository file each object came from.
    pub origins: Vec<Option<String>>,
    /// By document index: made by a generator (`configMapGenerator`, `secretGenerator`), its
    /// name carrying a content hash.
    pub generated: Vec<bool>,
    pub closure: Closure,
    /// Time spent inside the render tool.
    pub tool_time: Duration,
}

/// The annotations kustomize adds for `buildMetadata`: read, then removed before the audit.
const ORIGIN: &str = "config.kubernetes.io/origin";
const TRANSFORMATIONS: &str = "alpha.config.kubernetes.io/transformations";

/// The path a rendered stream's findings carry until they are placed in their source.
pub fn rendered_path(target: &RenderTarget) -> String {
    format!("render:{}", target.name())
}

/// Renders `target` from `tree`: materializes the files it reads in a temporary folder, asks
/// kustomize to annotate each object's origin, renders, and parses the output under `limits`.
pub fn render(
    tree: &dyn SourceTree,
    target: &RenderTarget,
    renderer: &dyn Renderer,
    render_limits: &RenderLimits,
    yaml_limits: Limits,
) -> Result<RenderedTarget, RenderError> {
    let closure = targets::target_closure(tree, target);
    if !closure.refused.is_empty() {
        return Err(RenderError::Refused(closure.refused));
    }
    if !closure.missing.is_empty() {
        return Err(RenderError::Missing(closure.missing));
    }
    let folder = tempfile::tempdir().map_err(|e| RenderError::Io(e.to_string()))?;
    let entry = closure.kustomizations.get(target.root()).cloned();
    for path in &closure.files {
        let Some(mut bytes) = tree.read(path) else {
            return Err(RenderError::Missing(vec![path.clone()]));
        };
        if matches!(target, RenderTarget::Kustomize { .. }) && Some(path) == entry.as_ref() {
            bytes = with_build_metadata(&String::from_utf8_lossy(&bytes)).into_bytes();
        }
        let file = folder.path().join(path);
        if let Some(dir) = file.parent() {
            std::fs::create_dir_all(dir).map_err(|e| RenderError::Io(e.to_string()))?;
        }
        std::fs::write(&file, bytes).map_err(|e| RenderError::Io(e.to_string()))?;
    }
    let tool_started = std::time::Instant::now();
    let output = renderer.render(target, folder.path(), render_limits)?;
    let tool_time = tool_started.elapsed();
    let text = String::from_utf8(output)
        .map_err(|_| RenderError::Io("the render printed text that is not UTF-8".into()))?;
    let parsed = parse_file(&text, yaml_limits);
    let sources = match target {
        RenderTarget::Helm { root, .. } => helm::sources(&text, root),
        RenderTarget::Kustomize { .. } => Vec::new(),
    };
    let mut documents = parsed.documents;
    let mut origins = Vec::with_capacity(documents.len());
    let mut generated = Vec::with_capacity(documents.len());
    for doc in &mut documents {
        let origin = doc.root.as_mut().ok().and_then(|root| {
            let origin = take_annotation(root, ORIGIN);
            take_annotation(root, TRANSFORMATIONS);
            origin
        });
        let (path, by_generator) = match target {
            RenderTarget::Helm { .. } => (
                helm::source_of(&sources, doc.start_line).map(str::to_owned),
                false,
            ),
            RenderTarget::Kustomize { .. } => origin
                .map(|o| origin_of(&o, target.root()))
                .unwrap_or((None, false)),
        };
        origins.push(path);
        generated.push(by_generator);
    }
    let file = ManifestFile::from_documents(rendered_path(target), documents, parsed.weight);
    Ok(RenderedTarget {
        target: target.clone(),
        file,
        origins,
        generated,
        closure,
        tool_time,
    })
}

/// The kustomization with `buildMetadata` set to what kubeward reads (replacing the author's).
fn with_build_metadata(text: &str) -> String {
    let mut out = String::new();
    let mut skipping = false;
    for line in text.lines() {
        if line.starts_with("buildMetadata:") {
            skipping = true;
            continue;
        }
        // Its continuation lines: indented, or list items at the key's indent.
        if skipping && (line.starts_with(' ') || line.starts_with('-') || line.is_empty()) {
            continue;
        }
        skipping = false;
        out.push_str(line);
        out.push('\n');
    }
    out.push_str("buildMetadata: [originAnnotations, transformerAnnotations]\n");
    out
}

/// Removes `metadata.annotations[key]` (and an annotations map left empty); its text.
fn take_annotation(root: &mut Node, key: &str) -> Option<String> {
    let Value::Map(entries) = &mut root.value else {
        return None;
    };
    let metadata = entries.iter_mut().find(|e| e.key == "metadata")?;
    let Value::Map(meta) = &mut metadata.value.value else {
        return None;
    };
    let index = meta.iter().position(|e| e.key == "annotations")?;
    let Value::Map(annotations) = &mut meta[index].value.value else {
        return None;
    };
    let at = annotations.iter().position(|e| e.key == key)?;
    let taken = annotations.remove(at);
    if annotations.is_empty() {
        meta.remove(index);
    }
    taken.value.as_str().map(str::to_owned)
}

/// The repository path of an origin annotation (`path: ../../base/d.yaml`, relative to the
/// target's folder; for a generated object, the kustomization that configured it), and whether
/// a generator made the object.
fn origin_of(origin: &str, root: &str) -> (Option<String>, bool) {
    let docs = crate::yaml::parse_stream(origin, Limits::default());
    let Some(Ok(annotation)) = docs.into_iter().next().map(|d| d.root) else {
        return (None, false);
    };
    let generator = annotation
        .get_path(&["configuredBy", "kind"])
        .and_then(Node::as_str)
        .is_some_and(|k| matches!(k, "ConfigMapGenerator" | "SecretGenerator"));
    // A remote origin (`repo:`) never renders: remote bases are refused.
    let path = annotation
        .get("path")
        .or_else(|| annotation.get("configuredIn"))
        .and_then(Node::as_str)
        .and_then(|p| repository_path(root, p));
    (path, generator)
}

/// A generated object's name without the content hash kustomize appends (`settings-4h2mbtbbt6`
/// is `settings`): a change to its data is the same object.
pub fn without_hash_suffix(name: &str) -> &str {
    match name.rsplit_once('-') {
        Some((stem, hash))
            if hash.len() == 10
                && hash
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()) =>
        {
            stem
        }
        _ => name,
    }
}

/// A folder on disk as a [`SourceTree`]; links are not followed, and nothing outside it is read.
pub struct DiskTree {
    pub root: PathBuf,
}

impl SourceTree for DiskTree {
    fn read(&self, path: &str) -> Option<Vec<u8>> {
        let full = self.root.join(path);
        let meta = std::fs::symlink_metadata(&full).ok()?;
        if !meta.is_file() {
            return None;
        }
        std::fs::read(full).ok()
    }

    fn is_dir(&self, path: &str) -> bool {
        std::fs::symlink_metadata(self.root.join(path)).is_ok_and(|m| m.is_dir())
    }

    fn files_under(&self, dir: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut pending = vec![dir.to_owned()];
        while let Some(dir) = pending.pop() {
            let Ok(entries) = std::fs::read_dir(self.root.join(&dir)) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let path = if dir.is_empty() {
                    name
                } else {
                    format!("{dir}/{name}")
                };
                match entry.file_type() {
                    Ok(t) if t.is_dir() => pending.push(path),
                    Ok(t) if t.is_file() => out.push(path),
                    // Links are not followed.
                    _ => {}
                }
            }
        }
        out.sort();
        out
    }
}

/// A revision of a repository as a [`SourceTree`].
pub struct GitTree<'r> {
    repo: &'r crate::git::Repository,
    files: std::collections::HashMap<String, git2::Oid>,
    dirs: std::collections::HashSet<String>,
}

impl<'r> GitTree<'r> {
    pub fn new(repo: &'r crate::git::Repository, files: &[crate::git::TreeFile]) -> GitTree<'r> {
        let mut dirs = std::collections::HashSet::new();
        for f in files {
            let mut dir = f.path.as_str();
            while let Some((parent, _)) = dir.rsplit_once('/') {
                if !dirs.insert(parent.to_owned()) {
                    break;
                }
                dir = parent;
            }
        }
        GitTree {
            repo,
            files: files.iter().map(|f| (f.path.clone(), f.blob)).collect(),
            dirs,
        }
    }
}

impl SourceTree for GitTree<'_> {
    fn read(&self, path: &str) -> Option<Vec<u8>> {
        self.repo.blob(*self.files.get(path)?).ok()
    }

    fn is_dir(&self, path: &str) -> bool {
        path.is_empty() || self.dirs.contains(path)
    }

    fn files_under(&self, dir: &str) -> Vec<String> {
        let prefix = if dir.is_empty() {
            String::new()
        } else {
            format!("{dir}/")
        };
        let mut out: Vec<String> = self
            .files
            .keys()
            .filter(|p| p.starts_with(&prefix))
            .cloned()
            .collect();
        out.sort();
        out
    }
}
