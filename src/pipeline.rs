//! From a repository and two revisions to a [`ReviewPlan`]: the I/O around the pure review.
//! Shared by `kubeward review` and the bot's workers.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use git2::Oid;
use rayon::prelude::*;

use crate::audit::Registry;
use crate::config::{CONFIG_FILE_NAMES, ConfigError, ConfigFile, FailOn, Policy};
use crate::diff::FileChange;
use crate::git::{GitError, Repository, TreeFile};
use crate::manifest::{ManifestFile, SkipReason, classify_bytes, kustomize_patch_paths};
use crate::owners::{CodeOwners, Flavor, MAX_SIZE as MAX_CODEOWNERS_SIZE};
use crate::review::{ReviewInput, ReviewPlan, audit_sides, plan_from_audits};

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Git(#[from] GitError),
    /// The repository's policy file is invalid: reported with its file and line.
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Rules(String),
}

/// The three commits a review needs.
#[derive(Debug, Clone, Copy)]
pub struct Revisions {
    /// The base side of the audit.
    pub merge_base: Oid,
    pub head: Oid,
    /// Where policy and CODEOWNERS are read.
    pub base_tip: Oid,
}

impl Revisions {
    /// Resolves `base` and `head` and their merge-base.
    pub fn resolve(repo: &Repository, base: &str, head: &str) -> Result<Revisions, GitError> {
        let base_tip = repo.resolve(base)?;
        let head = repo.resolve(head)?;
        let merge_base = repo.merge_base(base_tip, head)?;
        Ok(Revisions {
            merge_base,
            head,
            base_tip,
        })
    }
}

#[derive(Debug, Clone, Default)]
pub struct Timings {
    pub git: Duration,
    pub parse: Duration,
    /// Auditing both sides.
    pub audit: Duration,
    /// Matching, anchoring, owners, fixes and text.
    pub plan: Duration,
    pub files_parsed: usize,
    pub files_listed: usize,
}

pub struct ReviewOptions<'a> {
    pub forge: Flavor,
    /// A local policy file instead of the base branch's (`--config`).
    pub config_override: Option<&'a Path>,
    /// `--fail-on`, over the policy's `failOn`.
    pub fail_on: Option<FailOn>,
}

fn is_manifest_name(path: &str) -> bool {
    path.ends_with(".yaml") || path.ends_with(".yml") || path.ends_with(".json")
}

fn read_policy(
    repo: &Repository,
    revisions: &Revisions,
    options: &ReviewOptions<'_>,
) -> Result<Policy, PipelineError> {
    let registry = Registry::builtin().map_err(|e| PipelineError::Rules(e.to_string()))?;
    let file = match options.config_override {
        Some(path) => Some(ConfigFile::load(path)?),
        None => {
            let mut found = None;
            for name in CONFIG_FILE_NAMES {
                if let Some(entry) = repo.file_at(revisions.base_tip, name)? {
                    let bytes = repo.blob(entry.blob)?;
                    let text = String::from_utf8_lossy(&bytes).into_owned();
                    found = Some(ConfigFile::parse(name, &text)?);
                    break;
                }
            }
            found
        }
    };
    let mut policy = Policy::build(&registry, file.as_ref(), None)?;
    if let Some(fail_on) = options.fail_on {
        policy.fail_on = fail_on;
    }
    Ok(policy)
}

fn read_codeowners(repo: &Repository, commit: Oid, flavor: Flavor) -> Result<CodeOwners, GitError> {
    for location in flavor.locations() {
        if let Some(entry) = repo.file_at(commit, location)? {
            if entry.size >= MAX_CODEOWNERS_SIZE && flavor == Flavor::GitHub {
                return Ok(CodeOwners::parse(
                    flavor,
                    location,
                    &"x".repeat(MAX_CODEOWNERS_SIZE),
                ));
            }
            let bytes = repo.blob(entry.blob)?;
            return Ok(CodeOwners::parse(
                flavor,
                location,
                &String::from_utf8_lossy(&bytes),
            ));
        }
    }
    Ok(CodeOwners::empty(flavor))
}

/// Manifest candidates of a revision: by extension, not ignored, not kustomize patches.
fn manifest_candidates(files: Vec<TreeFile>, repo: &Repository, policy: &Policy) -> Vec<TreeFile> {
    let mut patches = std::collections::HashSet::new();
    for f in &files {
        let name = f.path.rsplit('/').next().unwrap_or("");
        if matches!(
            name,
            "kustomization.yaml" | "kustomization.yml" | "Kustomization"
        ) && let Ok(bytes) = repo.blob(f.blob)
        {
            let dir = f.path.strip_suffix(name).unwrap_or("");
            for p in kustomize_patch_paths(&String::from_utf8_lossy(&bytes)) {
                if let Some(path) = repository_path(dir, &p) {
                    patches.insert(path);
                }
            }
        }
    }
    files
        .into_iter()
        .filter(|f| is_manifest_name(&f.path) && !policy.ignores(&f.path))
        .filter(|f| !patches.contains(&f.path))
        .collect()
}

/// `relative` (a path written in a file of folder `dir`) as a path from the repository root,
/// `.` and `..` resolved; `None` when it leaves the repository.
fn repository_path(dir: &str, relative: &str) -> Option<String> {
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

/// Reviews `revisions` of `repo`: the whole pipeline minus the forge.
pub fn review(
    repo: &Repository,
    revisions: &Revisions,
    options: &ReviewOptions<'_>,
) -> Result<(ReviewPlan, Timings), PipelineError> {
    let mut timings = Timings::default();
    let started = Instant::now();
    let policy = read_policy(repo, revisions, options)?;
    let owners = read_codeowners(repo, revisions.base_tip, options.forge)?;
    let changes: Vec<FileChange> =
        repo.changes(revisions.merge_base, revisions.head, policy.max_file_size)?;
    let base_list = manifest_candidates(repo.list_files(revisions.merge_base)?, repo, &policy);
    let head_list = manifest_candidates(repo.list_files(revisions.head)?, repo, &policy);
    timings.files_listed = base_list.len() + head_list.len();
    // Every distinct blob is read and parsed once, whichever revisions and paths hold it.
    let mut blobs: HashMap<Oid, Result<Vec<u8>, SkipReason>> = HashMap::new();
    for f in base_list.iter().chain(&head_list) {
        if blobs.contains_key(&f.blob) {
            continue;
        }
        let content = if f.size as u64 > policy.max_file_size {
            Err(SkipReason::TooLarge)
        } else {
            Ok(repo.blob(f.blob)?)
        };
        blobs.insert(f.blob, content);
    }
    timings.git = started.elapsed();
    let parse_started = Instant::now();
    let parsed: HashMap<Oid, ManifestFile> = blobs
        .par_iter()
        .map(|(oid, content)| {
            let file = match content {
                Err(reason) => ManifestFile::skipped("", *reason),
                Ok(bytes) => match classify_bytes(bytes, policy.max_file_size) {
                    Ok(text) => ManifestFile::parse("", text, policy.yaml_limits),
                    Err(reason) => ManifestFile::skipped("", reason),
                },
            };
            (*oid, file)
        })
        .collect();
    timings.files_parsed = parsed.len();
    let at = |list: &[TreeFile]| -> Vec<ManifestFile> {
        list.iter()
            .filter_map(|f| parsed.get(&f.blob).map(|m| m.at_path(f.path.clone())))
            .collect()
    };
    let base_files = at(&base_list);
    let head_files = at(&head_list);
    timings.parse = parse_started.elapsed();
    let mut head_texts = HashMap::new();
    for change in &changes {
        if let Some(path) = &change.new_path
            && let Some(f) = head_list.iter().find(|f| &f.path == path)
            && let Some(Ok(bytes)) = blobs.get(&f.blob)
            && let Ok(text) = std::str::from_utf8(bytes)
        {
            head_texts.insert(path.clone(), text.to_owned());
        }
    }
    let input = ReviewInput {
        base_files: &base_files,
        head_files: &head_files,
        changes: &changes,
        head_texts: &head_texts,
        policy: &policy,
        owners: &owners,
        forge: options.forge,
        base_sha: revisions.merge_base.to_string(),
        head_sha: revisions.head.to_string(),
        base_tip_sha: revisions.base_tip.to_string(),
    };
    let review_started = Instant::now();
    let (head_result, base_result) = audit_sides(&input);
    timings.audit = review_started.elapsed();
    let plan_started = Instant::now();
    let plan = plan_from_audits(&input, head_result, base_result);
    timings.plan = plan_started.elapsed();
    Ok((plan, timings))
}

#[cfg(test)]
mod tests {
    use super::repository_path;

    #[test]
    fn paths_named_in_a_folder_resolve_from_the_repository_root() {
        assert_eq!(
            repository_path("overlays/prod/", "../../patches/a.yaml").as_deref(),
            Some("patches/a.yaml")
        );
        assert_eq!(
            repository_path("overlays/prod/", "./b.yaml").as_deref(),
            Some("overlays/prod/b.yaml")
        );
        assert_eq!(
            repository_path("", "a/./b.yaml").as_deref(),
            Some("a/b.yaml")
        );
        assert_eq!(repository_path("a/", "../../x.yaml"), None, "outside");
    }
}
