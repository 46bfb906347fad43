//! Reading manifests from the file system and stdin: the I/O shell around the pure parser.

use std::collections::HashSet;
use std::io::Read;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::Serialize;

use crate::config::{Policy, lexical_normal};
use crate::manifest::{ManifestFile, SkipReason, classify_bytes, kustomize_patch_paths};

/// A problem with an input that is not a finding: unreadable, binary, too large.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InputError {
    pub path: String,
    pub message: String,
}

pub struct Loaded {
    pub files: Vec<ManifestFile>,
    pub errors: Vec<InputError>,
    /// Paths given on the command line that cannot be opened at all (they do not exist, or
    /// are a symlink that cannot be followed), each with why: a usage error.
    pub unusable: Vec<InputError>,
}

const MANIFEST_EXTENSIONS: &[&str] = &["yaml", "yml", "json"];
const KUSTOMIZATION_NAMES: &[&str] = &["kustomization.yaml", "kustomization.yml", "Kustomization"];

/// What is known of an input's full size when only a prefix of it was read.
#[derive(Debug, Clone, Copy)]
enum Size {
    Exact(u64),
    /// Read until the limit, with no size known beforehand: what the input is.
    Unknown(&'static str),
}

/// Parses text that came from somewhere other than a file on disk (stdin, a git blob).
pub fn parse_bytes(
    path: &str,
    bytes: &[u8],
    policy: &Policy,
) -> (ManifestFile, Option<InputError>) {
    parse_sized(path, bytes, Size::Exact(bytes.len() as u64), policy)
}

/// As [`parse_bytes`], for a prefix of an input whose full size is `size`.
fn parse_sized(
    path: &str,
    bytes: &[u8],
    size: Size,
    policy: &Policy,
) -> (ManifestFile, Option<InputError>) {
    match classify_bytes(bytes, policy.max_file_size) {
        Ok(text) => (ManifestFile::parse(path, text, policy.yaml_limits), None),
        Err(reason) => {
            let limit = policy.max_file_size;
            let message = match (reason, size) {
                (SkipReason::TooLarge, Size::Exact(size)) => {
                    format!("skipped: {size} bytes is over the {limit} byte limit")
                }
                (SkipReason::TooLarge, Size::Unknown(what)) => format!(
                    "skipped: over the {limit} byte limit (read {} bytes of {what} and stopped)",
                    bytes.len()
                ),
                (other, _) => format!("skipped: {}", other.describe()),
            };
            (
                ManifestFile::skipped(path, reason),
                Some(InputError {
                    path: path.to_owned(),
                    message,
                }),
            )
        }
    }
}

/// Loads every manifest under `paths` (files, folders recursively, `-` for stdin).
pub fn load(paths: &[PathBuf], policy: &Policy) -> Loaded {
    let mut candidates: Vec<PathBuf> = Vec::new();
    let mut errors = Vec::new();
    let mut stdin = None;
    let mut unusable = Vec::new();
    for path in paths {
        if path.as_os_str() == "-" {
            let mut bytes = Vec::new();
            let limit = policy.max_file_size + 1;
            match std::io::stdin().take(limit).read_to_end(&mut bytes) {
                Ok(_) => stdin = Some(bytes),
                Err(e) => errors.push(InputError {
                    path: "-".into(),
                    message: format!("cannot read stdin: {e}"),
                }),
            }
        } else {
            match std::fs::metadata(path) {
                Ok(meta) if meta.is_dir() => walk(path, &mut candidates, &mut errors),
                Ok(_) => candidates.push(path.clone()),
                Err(e) => unusable.push(InputError {
                    path: path.display().to_string(),
                    message: unusable_message(path, &e),
                }),
            }
        }
    }
    let patches = kustomize_patches(&candidates);
    // `a.yaml` and `./a.yaml` are one file: audit it once.
    let mut seen = HashSet::new();
    candidates.retain(|p| seen.insert(lexical_normal(p)));
    let results: Vec<(ManifestFile, Option<InputError>)> = candidates
        .par_iter()
        .filter(|p| !policy.ignores(&display(p)))
        .map(|path| {
            let name = display(path);
            if patches.contains(&lexical_normal(path)) {
                return (
                    ManifestFile::skipped(name, SkipReason::KustomizePatch),
                    None,
                );
            }
            if in_chart_templates(path) {
                return (ManifestFile::skipped(name, SkipReason::HelmTemplate), None);
            }
            match read_limited(path, policy.max_file_size) {
                Ok(bytes) => parse_sized(&name, &bytes, file_size(path, bytes.len()), policy),
                Err(e) => (
                    ManifestFile::skipped(name.clone(), SkipReason::NotUtf8),
                    Some(InputError {
                        path: name,
                        message: format!("cannot read: {e}"),
                    }),
                ),
            }
        })
        .collect();
    let mut files = Vec::new();
    for (file, error) in results {
        files.push(file);
        errors.extend(error);
    }
    if let Some(bytes) = stdin {
        let (file, error) = parse_sized("<stdin>", &bytes, Size::Unknown("stdin"), policy);
        files.push(file);
        errors.extend(error);
    }
    Loaded {
        files,
        errors,
        unusable,
    }
}

/// Whether the file lies in a `templates/` folder next to a `Chart.yaml`.
fn in_chart_templates(path: &Path) -> bool {
    path.ancestors()
        .skip(1)
        .filter(|dir| dir.file_name().is_some_and(|n| n == "templates"))
        .any(|templates| {
            templates
                .parent()
                .is_some_and(|chart| chart.join("Chart.yaml").is_file())
        })
}

/// Why a path named on the command line cannot be opened, in words that are true of it: the
/// OS's own words for anything but a plain "not found" (a self-looping symlink reads "Too many
/// levels of symbolic links", not "no such file").
fn unusable_message(path: &Path, error: &std::io::Error) -> String {
    let is_link = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
    match (error.kind(), is_link) {
        (std::io::ErrorKind::NotFound, false) => "no such file or directory".to_owned(),
        (std::io::ErrorKind::NotFound, true) => {
            let target = std::fs::read_link(path)
                .map(|t| t.display().to_string())
                .unwrap_or_default();
            format!("symbolic link to `{target}`, which does not exist")
        }
        (_, true) => format!("cannot follow the symbolic link: {error}"),
        (_, false) => format!("cannot open: {error}"),
    }
}

/// The full size of a file of which `read` bytes were read. Only a regular file's size is
/// known in advance: a device or a pipe reports 0 (`/dev/zero` is endless), and so do some
/// regular files (`/proc`), which a read past the reported size gives away.
fn file_size(path: &Path, read: usize) -> Size {
    let read = read as u64;
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() && m.len() >= read => Size::Exact(m.len()),
        Ok(m) if m.is_file() => Size::Unknown("a file whose size is not known in advance"),
        Ok(m) => Size::Unknown(special_file_kind(&m.file_type())),
        Err(_) => Size::Exact(read),
    }
}

#[cfg(unix)]
fn special_file_kind(file_type: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if file_type.is_char_device() {
        "a character device"
    } else if file_type.is_block_device() {
        "a block device"
    } else if file_type.is_fifo() {
        "a pipe"
    } else if file_type.is_socket() {
        "a socket"
    } else {
        "a special file"
    }
}

#[cfg(not(unix))]
fn special_file_kind(_: &std::fs::FileType) -> &'static str {
    "a special file"
}

/// Reads at most one byte past the limit, so an oversized file is never read whole.
fn read_limited(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(limit + 1)
        .read_to_end(&mut bytes)?;
    Ok(bytes)
}

fn display(path: &Path) -> String {
    let text = path.display().to_string();
    text.strip_prefix("./").map(str::to_owned).unwrap_or(text)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>, errors: &mut Vec<InputError>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            errors.push(InputError {
                path: display(dir),
                message: format!("cannot read folder: {e}"),
            });
            return;
        }
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in paths {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        // Symlinks are not followed: a link can point anywhere, or at its own parent.
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            if !name.starts_with('.') && name != "node_modules" && name != "target" {
                walk(&path, out, errors);
            }
        } else if meta.is_file() {
            let is_manifest = path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| MANIFEST_EXTENSIONS.contains(&e));
            if is_manifest && !name.starts_with(".kubeward") {
                out.push(path);
            }
        }
    }
}

/// Files named as patches by a kustomization next to them.
fn kustomize_patches(files: &[PathBuf]) -> HashSet<PathBuf> {
    let mut patches = HashSet::new();
    let dirs: HashSet<&Path> = files.iter().filter_map(|f| f.parent()).collect();
    for dir in dirs {
        for name in KUSTOMIZATION_NAMES {
            let Ok(text) = std::fs::read_to_string(dir.join(name)) else {
                continue;
            };
            for patch in kustomize_patch_paths(&text) {
                patches.insert(lexical_normal(&dir.join(patch)));
            }
        }
    }
    patches
}
