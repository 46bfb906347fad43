//! Reading manifests from the file system and stdin: the I/O shell around the pure parser.

use std::collections::{BTreeMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::Serialize;

use crate::config::{Policy, lexical_normal};
use crate::manifest::{ManifestFile, SkipReason, classify_bytes, kustomize_patch_paths};
use crate::walk::{Excluded, PathFilter, is_hidden, is_manifest_name};

/// A problem with an input that is not a finding: unreadable, binary, too large.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InputError {
    pub path: String,
    pub message: String,
}

/// What a load read: each file as `F`, a [`ManifestFile`] unless a load maps it on the way.
pub struct Loaded<F = ManifestFile> {
    pub files: Vec<F>,
    pub errors: Vec<InputError>,
    /// Paths given on the command line that cannot be opened at all (they do not exist, or
    /// are a symlink that cannot be followed), each with why: a usage error.
    pub unusable: Vec<InputError>,
    /// Manifest candidates the walk left out, by reason (`stats.filesExcluded`).
    pub excluded: BTreeMap<Excluded, usize>,
}

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

/// Loads every manifest under `paths` (files, folders recursively, `-` for stdin), hidden
/// folders and `.gitignore`d files left out.
pub fn load(paths: &[PathBuf], policy: &Policy) -> Loaded {
    load_with(paths, policy, &WalkOptions::default())
}

/// [`load`], walking folders as `options` say.
pub fn load_with(paths: &[PathBuf], policy: &Policy, options: &WalkOptions) -> Loaded {
    load_each(paths, policy, options, &|file| file)
}

/// [`load_with`], handing each file to `each` as soon as it is parsed: what `each` keeps of
/// it is all that stays in memory (an audit judges a file and keeps its inventory view).
pub fn load_each<F: Send>(
    paths: &[PathBuf],
    policy: &Policy,
    options: &WalkOptions,
    each: &(dyn Fn(ManifestFile) -> F + Sync),
) -> Loaded<F> {
    let filter = PathFilter {
        policy,
        include_hidden: options.hidden,
    };
    let mut excluded = BTreeMap::new();
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
                Ok(meta) if meta.is_dir() => walk(
                    path,
                    options,
                    &filter,
                    &mut candidates,
                    &mut excluded,
                    &mut errors,
                ),
                // A file named on the command line is meant, hidden or not.
                Ok(_) => match filter.excludes("", &display(path)) {
                    Some(reason) => *excluded.entry(reason).or_default() += 1,
                    None => candidates.push(path.clone()),
                },
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
    let results: Vec<(F, Option<InputError>)> = candidates
        .par_iter()
        .map(|path| {
            let (file, error) = read_and_parse(path, &patches, policy);
            (each(file), error)
        })
        .collect();
    let mut files = Vec::new();
    for (file, error) in results {
        files.push(file);
        errors.extend(error);
    }
    if let Some(bytes) = stdin {
        let (file, error) = parse_sized("<stdin>", &bytes, Size::Unknown("stdin"), policy);
        files.push(each(file));
        errors.extend(error);
    }
    Loaded {
        files,
        errors,
        unusable,
        excluded,
    }
}

/// One candidate read from disk and parsed (or why not).
fn read_and_parse(
    path: &Path,
    patches: &HashSet<PathBuf>,
    policy: &Policy,
) -> (ManifestFile, Option<InputError>) {
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

/// How `kubeward audit` walks folders: `--hidden`, `--no-ignore`.
#[derive(Debug, Clone, Copy, Default)]
pub struct WalkOptions {
    /// Walk hidden folders and files too.
    pub hidden: bool,
    /// Do not read `.gitignore` files (nor `.git/info/exclude` or the global excludes).
    pub no_ignore: bool,
}

/// The manifest candidates below `dir`, in name order, folder by folder. `.git` is never
/// walked, symlinks are not followed (a link can point anywhere, or at its own parent), and
/// `.gitignore` applies as git reads it when `gitignore` is set.
fn manifest_files(
    dir: &Path,
    gitignore: bool,
    errors: Option<&mut Vec<InputError>>,
) -> Vec<PathBuf> {
    let walk = ignore::WalkBuilder::new(dir)
        .standard_filters(false)
        .git_ignore(gitignore)
        .git_exclude(gitignore)
        .git_global(gitignore)
        .parents(gitignore)
        .follow_links(false)
        .sort_by_file_name(|a, b| a.cmp(b))
        .filter_entry(|e| e.depth() == 0 || e.file_name() != ".git")
        .build();
    let mut files = Vec::new();
    let mut errors = errors;
    for entry in walk {
        match entry {
            Ok(entry) => {
                let path = entry.into_path();
                let is_file = std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_file());
                if is_file && is_manifest_name(&path.to_string_lossy()) {
                    files.push(path);
                }
            }
            Err(e) => {
                if let Some(errors) = errors.as_deref_mut() {
                    errors.push(walk_error(dir, &e));
                }
            }
        }
    }
    files
}

/// A walk error as an input error, on the path it happened at.
fn walk_error(dir: &Path, error: &ignore::Error) -> InputError {
    let mut at = error;
    let mut path = dir;
    loop {
        match at {
            ignore::Error::WithPath { path: p, err } => {
                path = p;
                at = err;
            }
            ignore::Error::WithDepth { err, .. } | ignore::Error::WithLineNumber { err, .. } => {
                at = err;
            }
            _ => break,
        }
    }
    let message = match at {
        ignore::Error::Io(e) => format!("cannot read folder: {e}"),
        other => format!("cannot walk: {other}"),
    };
    InputError {
        path: display(path),
        message,
    }
}

/// `path` below `dir`, `/`-separated: where hidden components count.
fn relative_text(path: &Path, dir: &Path) -> String {
    let relative = path.strip_prefix(dir).unwrap_or(path);
    relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// Walks `dir` for manifest candidates, counting those left out by reason. Files the
/// `.gitignore` leaves out are found by a second walk that reads none, so they can be
/// counted; a hidden file that is also gitignored counts as hidden.
fn walk(
    dir: &Path,
    options: &WalkOptions,
    filter: &PathFilter<'_>,
    out: &mut Vec<PathBuf>,
    excluded: &mut BTreeMap<Excluded, usize>,
    errors: &mut Vec<InputError>,
) {
    let gitignore = !options.no_ignore;
    let walked = manifest_files(dir, gitignore, Some(errors));
    if gitignore {
        let kept: HashSet<&PathBuf> = walked.iter().collect();
        for path in manifest_files(dir, false, None) {
            if kept.contains(&path) {
                continue;
            }
            let hidden = !options.hidden && is_hidden(&relative_text(&path, dir));
            let reason = if hidden {
                Excluded::Hidden
            } else {
                Excluded::Gitignored
            };
            *excluded.entry(reason).or_default() += 1;
        }
    }
    for path in walked {
        match filter.excludes(&relative_text(&path, dir), &display(&path)) {
            Some(reason) => *excluded.entry(reason).or_default() += 1,
            None => out.push(path),
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
