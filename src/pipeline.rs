//! From a repository and two revisions to a [`ReviewPlan`]: the I/O around the pure review.
//! Shared by `kubeward review` and the bot's workers.

use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use git2::Oid;
use rayon::prelude::*;

use crate::audit::Registry;
use crate::config::{CONFIG_FILE_NAMES, ConfigError, ConfigFile, FailOn, Policy};
use crate::diff::FileChange;
use crate::git::{GitError, Repository, TreeFile};
use crate::manifest::{
    ManifestFile, SkipReason, classify_bytes, is_chart_template, kustomize_patch_paths,
};
use crate::owners::{CodeOwners, Flavor, MAX_SIZE as MAX_CODEOWNERS_SIZE};
use crate::render::repository_path;
use crate::render::review::{RenderOptions, ReviewRenders, Side, render_for_review};
use crate::review::{
    NotReviewed, NotReviewedReason, ReviewInput, ReviewPlan, audit_sides, plan_from_audits,
};
use crate::walk::{PathFilter, is_hidden, is_manifest_name};

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
    /// Blobs whose YAML was parsed (the rest came from the view store).
    pub blobs_parsed: usize,
    /// Files the review read but did not keep: every object in them is in a namespace the
    /// change did not touch, so no judged object reads them (see [`crate::audit::Reach`]).
    pub files_settled: usize,
    pub files_listed: usize,
    /// Rendering the targets the change touched, both sides and attribution, and of that the
    /// time inside helm and kubectl.
    pub render: Duration,
    pub render_tools: Duration,
    pub renders: usize,
    pub attribution_renders: usize,
}

impl Timings {
    /// One line, milliseconds per stage: what `kubeward review --timings` prints.
    pub fn describe(&self) -> String {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        format!(
            "git {:.0} ms, parse {:.0} ms, audit {:.0} ms, plan {:.0} ms, render {:.0} ms ({:.0} in tools, {} renders, {} for attribution); {} files listed, {} parsed ({} not kept: untouched namespaces), {} blobs parsed",
            ms(self.git),
            ms(self.parse),
            ms(self.audit),
            ms(self.plan),
            ms(self.render),
            ms(self.render_tools),
            self.renders,
            self.attribution_renders,
            self.files_listed,
            self.files_parsed,
            self.files_settled,
            self.blobs_parsed,
        )
    }
}

pub struct ReviewOptions<'a> {
    pub forge: Flavor,
    /// A local policy file instead of the base branch's (`--config`).
    pub config_override: Option<&'a Path>,
    /// `--fail-on`, over the policy's `failOn`.
    pub fail_on: Option<FailOn>,
    pub budgets: ReviewBudgets,
    /// How to render the kustomize overlays the change touches; `None`: none is rendered and
    /// changed patches are named as not reviewed.
    pub render: Option<RenderOptions>,
    /// Told how far the review has got (`kubeward review` shows it on a terminal). Called
    /// from the parsing threads too.
    pub progress: Option<&'a (dyn Fn(Progress) + Sync)>,
    /// The view store that spares parsing the blobs an earlier review parsed (see
    /// [`crate::views`]); `None`: every blob is parsed.
    pub views: Option<crate::views::StoreSettings>,
}

/// How far a review has got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Diffing the revisions and listing their trees.
    Comparing,
    /// Reading the manifest candidates of both sides (`done` of `total` files).
    Reading { done: usize, total: usize },
    /// Parsing the distinct blobs read (`done` of `total`).
    Parsing { done: usize, total: usize },
    /// Auditing both sides' manifests.
    Auditing { files: usize },
    /// Matching both sides' findings, anchoring and writing the new ones.
    Planning { findings: usize },
}

impl ReviewOptions<'_> {
    fn report(&self, progress: Progress) {
        if let Some(report) = self.progress {
            report(progress);
        }
    }
}

pub fn read_policy(
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
    read_baseline(repo, revisions.base_tip, &mut policy)?;
    Ok(policy)
}

/// The policy in the git objects of `commit` (never a working tree): the file at `path`, or
/// the first of [`CONFIG_FILE_NAMES`]; the defaults when there is none. `kubeward ci` reads
/// it at the base commit, so the change under review cannot relax what judges it.
pub fn policy_at(
    repo: &Repository,
    commit: Oid,
    path: Option<&str>,
) -> Result<Policy, PipelineError> {
    let registry = Registry::builtin().map_err(|e| PipelineError::Rules(e.to_string()))?;
    let names: Vec<&str> = match path {
        Some(path) => vec![path],
        None => CONFIG_FILE_NAMES.to_vec(),
    };
    let mut file = None;
    for name in names {
        if let Some(entry) = repo.file_at(commit, name)? {
            let bytes = repo.blob(entry.blob)?;
            file = Some(ConfigFile::parse(name, &String::from_utf8_lossy(&bytes))?);
            break;
        }
    }
    if let (Some(path), None) = (path, &file) {
        return Err(PipelineError::Config(ConfigError {
            file: path.to_owned(),
            mark: None,
            message: format!("no such file at the base commit {commit}"),
        }));
    }
    let mut policy = Policy::build(&registry, file.as_ref(), None)?;
    read_baseline(repo, commit, &mut policy)?;
    Ok(policy)
}

/// The baseline the policy names, from the git objects of `commit` (the base: a change cannot
/// accept its own findings). None written yet accepts nothing.
fn read_baseline(repo: &Repository, commit: Oid, policy: &mut Policy) -> Result<(), PipelineError> {
    let Some(path) = policy.baseline.clone() else {
        return Ok(());
    };
    let Some(baseline) = baseline_at(repo, commit, &path)? else {
        return Ok(());
    };
    policy.baseline_accepted = baseline.fingerprints();
    Ok(())
}

fn baseline_at(
    repo: &Repository,
    commit: Oid,
    path: &str,
) -> Result<Option<crate::review::baseline::Baseline>, PipelineError> {
    let Some(entry) = repo.file_at(commit, path)? else {
        return Ok(None);
    };
    let bytes = repo.blob(entry.blob)?;
    crate::review::baseline::Baseline::parse(&String::from_utf8_lossy(&bytes))
        .map(Some)
        .map_err(|message| {
            PipelineError::Config(ConfigError {
                file: path.to_owned(),
                mark: None,
                message,
            })
        })
}

/// The finding for entries a change adds to the baseline (reported like an added exemption).
fn baseline_additions(
    repo: &Repository,
    revisions: &Revisions,
    policy: &Policy,
) -> Result<Option<crate::audit::Finding>, PipelineError> {
    let (Some(path), Some(severity)) =
        (&policy.baseline, crate::review::exemption_severity(policy))
    else {
        return Ok(None);
    };
    let Some(head) = baseline_at(repo, revisions.head, path)? else {
        return Ok(None);
    };
    let base = baseline_at(repo, revisions.merge_base, path)?.unwrap_or_default();
    let text = match repo.file_at(revisions.head, path)? {
        Some(entry) => String::from_utf8_lossy(&repo.blob(entry.blob)?).into_owned(),
        None => String::new(),
    };
    Ok(crate::review::baseline::added_entries(
        path, &base, &head, &text, severity,
    ))
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

/// Files that `kustomization.yaml`s of a revision name as patches: fragments, not objects.
fn kustomize_patches(files: &[TreeFile], repo: &Repository) -> HashSet<String> {
    let mut patches = HashSet::new();
    for f in files {
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
    patches
}

/// Folders holding a `Chart.yaml`: Helm charts, whose `templates/` are not manifests.
fn chart_dirs(files: &[TreeFile]) -> HashSet<String> {
    files
        .iter()
        .filter_map(|f| match f.path.rsplit_once('/') {
            Some((dir, "Chart.yaml")) => Some(dir.to_owned()),
            None if f.path == "Chart.yaml" => Some(String::new()),
            _ => None,
        })
        .collect()
}

/// The filter a review walks a git tree with: the disk walk's, hidden folders left out (a
/// review has no `--hidden`), so the bot judges the files `kubeward audit` does. No
/// `.gitignore`: what is committed is the change.
fn tree_filter(policy: &Policy) -> PathFilter<'_> {
    PathFilter {
        policy,
        include_hidden: false,
    }
}

/// Manifest candidates of a revision: by extension, not hidden, not ignored, not kustomize
/// patches, not chart templates.
fn manifest_candidates(
    files: Vec<TreeFile>,
    patches: &HashSet<String>,
    charts: &HashSet<String>,
    policy: &Policy,
) -> Vec<TreeFile> {
    files
        .into_iter()
        .filter(|f| {
            is_manifest_name(&f.path) && tree_filter(policy).excludes(&f.path, &f.path).is_none()
        })
        .filter(|f| !patches.contains(&f.path))
        .filter(|f| !is_chart_template(&f.path, &|dir| charts.contains(dir)))
        .collect()
}

/// Per-review budgets: what one review may take on, whatever the policy's per-file limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReviewBudgets {
    /// Changed manifest candidates judged; past it the rest, in path order, are named as not
    /// reviewed. Empty files and files that are not manifest candidates do not count.
    pub max_changed_manifests: usize,
    /// Bytes of YAML one review reads, both sides together (every distinct blob once).
    pub max_bytes: u64,
    /// YAML nodes one review builds, both sides together, aliases counted at every use: what
    /// bounds the trees in memory once each file is under its own budget.
    #[serde(default = "unlimited")]
    pub max_nodes: u64,
    /// Bytes of scalar text one review builds, likewise: long strings that aliases copy cost
    /// memory that nodes do not count.
    #[serde(default = "unlimited")]
    pub max_scalar_bytes: u64,
    /// YAML documents one review parses, both sides together.
    #[serde(default = "unlimited")]
    pub max_documents: u64,
}

fn unlimited() -> u64 {
    u64::MAX
}

impl ReviewBudgets {
    /// The budgets of a review in a process of `memory_bytes`: what its trees may take (about
    /// 100 bytes a node with its share of strings and collections; a quarter of the memory in
    /// scalar text) and fixed caps on files and documents.
    pub fn within_memory(memory_bytes: u64) -> ReviewBudgets {
        ReviewBudgets {
            max_changed_manifests: 3_000,
            max_bytes: 256 << 20,
            max_nodes: memory_bytes / 100,
            max_scalar_bytes: memory_bytes / 4,
            max_documents: 200_000,
        }
    }

    /// No budget: a local review judges what it is asked to.
    pub const UNLIMITED: ReviewBudgets = ReviewBudgets {
        max_changed_manifests: usize::MAX,
        max_bytes: u64::MAX,
        max_nodes: u64::MAX,
        max_scalar_bytes: u64::MAX,
        max_documents: u64::MAX,
    };
}

impl Default for ReviewBudgets {
    fn default() -> Self {
        ReviewBudgets::UNLIMITED
    }
}

/// A blob's content as a review sees it.
enum Content {
    Bytes(Vec<u8>),
    Skipped(SkipReason),
    /// Not in the object database: a partial clone, or a shallow history.
    Missing,
    /// Its inventory view is in the view store: not read.
    Stored,
    /// Read while the review parses.
    Unread,
}

/// How many blobs' bytes a review reads ahead of its parsers.
const STREAMED_BLOBS: usize = 64;

/// One blob as a review keeps it, and its entry for the view store when the store lacks it.
struct Judged {
    outcome: Outcome,
    entry: Option<Vec<u8>>,
}

enum Outcome {
    File(Result<ManifestFile, NotReviewedReason>),
    /// No object the review judges reads it: not kept.
    Settled,
    /// Its stored entry does not decode.
    Undecodable,
}

impl Judged {
    fn outcome(outcome: Outcome) -> Judged {
        Judged {
            outcome,
            entry: None,
        }
    }
}

/// Every blob of a review, as judged.
#[derive(Default)]
struct Judgements {
    parsed: HashMap<Oid, Result<ManifestFile, NotReviewedReason>>,
    /// Entries for the view store, of the blobs it lacks.
    entries: HashMap<Oid, Vec<u8>>,
    /// Blobs no object the review judges reads: only their entries are kept.
    settled: HashSet<Oid>,
    /// Blobs whose stored entries do not decode.
    undecodable: Vec<Oid>,
}

impl Judgements {
    fn take(&mut self, oid: Oid, judged: Judged) {
        if let Some(entry) = judged.entry {
            self.entries.insert(oid, entry);
        }
        match judged.outcome {
            Outcome::File(file) => {
                self.parsed.insert(oid, file);
            }
            Outcome::Settled => {
                self.settled.insert(oid);
            }
            Outcome::Undecodable => self.undecodable.push(oid),
        }
    }
}

/// The blobs some path holds on one side only: whatever the change did to a file (an edit, a
/// rename, an addition), its blobs are here; a file left as it was is on both sides.
fn one_sided_blobs(base: &[TreeFile], head: &[TreeFile]) -> HashSet<Oid> {
    fn at(files: &[TreeFile]) -> HashSet<(&str, Oid)> {
        files.iter().map(|f| (f.path.as_str(), f.blob)).collect()
    }
    let (on_base, on_head) = (at(base), at(head));
    base.iter()
        .filter(|f| !on_head.contains(&(f.path.as_str(), f.blob)))
        .chain(
            head.iter()
                .filter(|f| !on_base.contains(&(f.path.as_str(), f.blob))),
        )
        .map(|f| f.blob)
        .collect()
}

/// Which changed manifest candidates are work, and which of them fit the file budget.
struct ChangeTriage {
    /// Paths (new, else old) of changes the review leaves out, as if the change had not
    /// touched them.
    left_out: HashSet<String>,
    not_reviewed: Vec<NotReviewed>,
}

fn triage_changes(
    changes: &[FileChange],
    base_list: &[TreeFile],
    head_list: &[TreeFile],
    patches: &HashSet<String>,
    charts: &HashSet<String>,
    policy: &Policy,
    budgets: &ReviewBudgets,
) -> ChangeTriage {
    let size_at = |list: &[TreeFile], path: Option<&str>| {
        path.and_then(|p| list.iter().find(|f| f.path == p).map(|f| f.size))
    };
    let mut triage = ChangeTriage {
        left_out: HashSet::new(),
        not_reviewed: Vec::new(),
    };
    let mut work: Vec<&FileChange> = Vec::new();
    for change in changes {
        let paths = [change.new_path.as_deref(), change.old_path.as_deref()];
        if !paths.into_iter().flatten().any(is_manifest_name) {
            continue;
        }
        let path = change.path().to_owned();
        let not_reviewed = |reason| NotReviewed {
            path: path.clone(),
            reason,
            detail: None,
        };
        // Hidden on both sides: not a candidate, as in the tree walk; named, not silent.
        if paths.into_iter().flatten().all(is_hidden) {
            triage.not_reviewed.push(NotReviewed {
                detail: Some("under a hidden (dot) folder, which kubeward skips".into()),
                ..not_reviewed(NotReviewedReason::Ignored)
            });
            continue;
        }
        if paths.into_iter().flatten().all(|p| policy.ignores(p)) {
            triage
                .not_reviewed
                .push(not_reviewed(NotReviewedReason::Ignored));
            continue;
        }
        if paths.into_iter().flatten().any(|p| patches.contains(p)) {
            triage
                .not_reviewed
                .push(not_reviewed(NotReviewedReason::KustomizePatch));
            continue;
        }
        if paths
            .into_iter()
            .flatten()
            .any(|p| is_chart_template(p, &|dir| charts.contains(dir)))
        {
            triage
                .not_reviewed
                .push(not_reviewed(NotReviewedReason::HelmTemplate));
            continue;
        }
        if change.symlink {
            triage.left_out.insert(path.clone());
            triage
                .not_reviewed
                .push(not_reviewed(NotReviewedReason::Symlink));
            continue;
        }
        // Empty on both sides (or absent): nothing to judge, and no work for the budget.
        let old = size_at(base_list, change.old_path.as_deref()).unwrap_or(0);
        let new = size_at(head_list, change.new_path.as_deref()).unwrap_or(0);
        if old == 0 && new == 0 {
            continue;
        }
        work.push(change);
    }
    // A stable order, so the same change reviews the same files every time.
    work.sort_by(|a, b| a.path().cmp(b.path()));
    for change in work.iter().skip(budgets.max_changed_manifests) {
        triage.left_out.insert(change.path().to_owned());
        triage.not_reviewed.push(NotReviewed {
            path: change.path().to_owned(),
            reason: NotReviewedReason::OverFileBudget,
            detail: Some(format!(
                "{} changed manifests; one review judges at most {}",
                work.len(),
                budgets.max_changed_manifests
            )),
        });
    }
    triage
}

/// Reviews `revisions` of `repo`: the whole pipeline minus the forge.
pub fn review(
    repo: &Repository,
    revisions: &Revisions,
    options: &ReviewOptions<'_>,
) -> Result<(ReviewPlan, Timings), PipelineError> {
    let policy = read_policy(repo, revisions, options)?;
    review_with_policy(repo, revisions, options, &policy)
}

/// [`review`] with the policy already read (the bot's review process reports the policy's
/// `incomplete` before it starts the heavy work).
pub fn review_with_policy(
    repo: &Repository,
    revisions: &Revisions,
    options: &ReviewOptions<'_>,
    policy: &Policy,
) -> Result<(ReviewPlan, Timings), PipelineError> {
    let mut timings = Timings::default();
    let started = Instant::now();
    options.report(Progress::Comparing);
    let owners = read_codeowners(repo, revisions.base_tip, options.forge)?;
    // Diffed and listed on a handle of its own: libgit2 keeps every tree it reads in the
    // handle's cache (13 MB at 25,000 documents), which the rest of the review has no use for.
    let lister = repo.reopen()?;
    let all_changes: Vec<FileChange> =
        lister.changes(revisions.merge_base, revisions.head, policy.max_file_size)?;
    let shape = crate::audit::view_suffices(policy).then(|| crate::audit::ViewShape::new(policy));
    let store = match (&options.views, &shape) {
        (Some(settings), Some(_)) => Some(crate::views::Store::new(
            settings,
            repo.inner().path(),
            policy,
        )),
        _ => None,
    };
    let pack = match &store {
        Some(store) => {
            let (pack, problem) = store.read();
            if let Some(problem) = problem {
                tracing::warn!(%problem, "the view store's pack is not used");
            }
            pack
        }
        None => crate::views::Pack::default(),
    };
    // The blobs the store holds need no size read from git (the costly part of a listing);
    // one this clone lacks keeps the size a listing gives it (none), as without a store.
    lister.know_sizes(pack.blob_sizes().filter(|(oid, _)| repo.has_object(*oid)));
    // The store's listing of an earlier base lends the subtrees this one shares with it; the
    // base is kept for the next review (a pull request's pushes and its neighbours share it).
    let stored_listing = store.as_ref().and_then(|s| s.read_listing());
    let (base_listing, head_listing) = lister.list_files_of_both(
        revisions.merge_base,
        revisions.head,
        stored_listing.as_ref(),
    )?;
    if let Some(store) = &store
        && stored_listing.and_then(|l| l.root()) != base_listing.root()
        && let Err(e) = store.write_listing(&base_listing)
    {
        tracing::warn!(error = %e, "the view store's tree listing is not written");
    }
    let (base_files_all, head_files_all) = (base_listing.files, head_listing.files);
    drop(lister);
    crate::git::return_freed_memory();
    let render = options.render.clone().map(|mut r| {
        if let Some(n) = policy.render.max_targets {
            r.max_targets = n;
        }
        if policy.render.kustomize.is_some() {
            r.only = policy.render.kustomize.clone();
        }
        r.charts = policy.render.helm.clone();
        if let Some(n) = policy.render.max_attribution_renders {
            r.max_attribution_renders = n;
        }
        r
    });
    let render_started = Instant::now();
    let may_render = |files: &[TreeFile]| {
        files
            .iter()
            .any(|f| crate::render::targets::may_make_a_target(&f.path))
    };
    let renders = match &render {
        // Nothing to render: the trees are not indexed for the renderer.
        Some(_) if !may_render(&base_files_all) && !may_render(&head_files_all) => {
            ReviewRenders::default()
        }
        Some(render) => {
            let paths =
                |files: &[TreeFile]| files.iter().map(|f| f.path.clone()).collect::<Vec<_>>();
            let (base_paths, head_paths) = (paths(&base_files_all), paths(&head_files_all));
            let base_tree = crate::render::GitTree::new(repo, &base_files_all);
            let head_tree = crate::render::GitTree::new(repo, &head_files_all);
            render_for_review(
                Side {
                    tree: &base_tree,
                    paths: &base_paths,
                },
                Side {
                    tree: &head_tree,
                    paths: &head_paths,
                },
                &all_changes,
                render,
                policy,
            )
        }
        None => ReviewRenders::default(),
    };
    timings.render = render_started.elapsed();
    timings.render_tools = renders.tool_time;
    timings.renders = renders.renders;
    timings.attribution_renders = renders.attribution_renders;
    let mut patches = kustomize_patches(&base_files_all, repo);
    patches.extend(kustomize_patches(&head_files_all, repo));
    let mut charts = chart_dirs(&base_files_all);
    charts.extend(chart_dirs(&head_files_all));
    let mut base_list = manifest_candidates(base_files_all, &patches, &charts, policy);
    let mut head_list = manifest_candidates(head_files_all, &patches, &charts, policy);
    // What rendered targets read is judged through them, not as it is.
    base_list.retain(|f| !renders.consumed.contains(&f.path));
    head_list.retain(|f| !renders.consumed.contains(&f.path));
    let triage = triage_changes(
        &all_changes,
        &base_list,
        &head_list,
        &patches,
        &charts,
        policy,
        &options.budgets,
    );
    let mut not_reviewed: Vec<NotReviewed> = triage
        .not_reviewed
        .into_iter()
        .filter(|n| !renders.covered.contains(&n.path))
        .collect();
    not_reviewed.extend(renders.not_reviewed.iter().cloned());
    // What the review leaves out it judges as the merge-base had it.
    let mut changes: Vec<FileChange> = Vec::with_capacity(all_changes.len());
    for change in all_changes {
        if !triage.left_out.contains(change.path()) {
            changes.push(change);
            continue;
        }
        head_list.retain(|f| Some(&f.path) != change.new_path.as_ref());
        if let Some(old) = &change.old_path
            && let Some(f) = base_list.iter().find(|f| &f.path == old)
        {
            head_list.retain(|h| &h.path != old);
            head_list.push(f.clone());
        }
    }
    timings.files_listed = base_list.len() + head_list.len();
    // A blob a changed path holds is judged whole. Every other blob only feeds the
    // cross-object rules: its inventory view is enough, and may come from the view store.
    let whole: HashSet<Oid> = {
        let new_paths: HashSet<&str> = changes
            .iter()
            .filter_map(|c| c.new_path.as_deref())
            .collect();
        let old_paths: HashSet<&str> = changes
            .iter()
            .filter_map(|c| c.old_path.as_deref())
            .collect();
        let head = head_list
            .iter()
            .filter(|f| new_paths.contains(f.path.as_str()));
        let base = base_list
            .iter()
            .filter(|f| old_paths.contains(f.path.as_str()));
        head.chain(base).map(|f| f.blob).collect()
    };
    // First the blobs a path holds on one side only (what the change touched), then the rest,
    // knowing which namespaces the change touched: a file wholly outside them is not kept.
    let differs = one_sided_blobs(&base_list, &head_list);
    // Every distinct blob is read and parsed once, whichever revisions and paths hold it.
    // What the change touched is read now; the rest as it is parsed, a few blobs at a time.
    let mut blobs: HashMap<Oid, Content> = HashMap::new();
    let mut bytes_to_parse = 0u64;
    let to_read = base_list.len() + head_list.len();
    for (i, f) in base_list.iter().chain(&head_list).enumerate() {
        options.report(Progress::Reading {
            done: i,
            total: to_read,
        });
        if blobs.contains_key(&f.blob) {
            continue;
        }
        let content = if f.size as u64 > policy.max_file_size {
            Content::Skipped(SkipReason::TooLarge)
        } else {
            // Counted whether stored or not: the store never changes a review's verdict.
            bytes_to_parse += f.size as u64;
            // A blob this clone lacks is missing, stored or not: the store never changes what a
            // review says.
            if !whole.contains(&f.blob) && pack.contains(&f.blob) && repo.has_object(f.blob) {
                Content::Stored
            } else if !whole.contains(&f.blob) && !differs.contains(&f.blob) {
                Content::Unread
            } else {
                match repo.blob(f.blob) {
                    Ok(bytes) => Content::Bytes(bytes),
                    Err(_) if !repo.has_object(f.blob) => Content::Missing,
                    Err(e) => return Err(e.into()),
                }
            }
        };
        blobs.insert(f.blob, content);
    }
    timings.git = started.elapsed().saturating_sub(timings.render);
    if bytes_to_parse > options.budgets.max_bytes {
        let detail = format!(
            "{bytes_to_parse} bytes of YAML across both sides; one review reads at most {}",
            options.budgets.max_bytes
        );
        let plan = over_review_budget(
            &changes,
            &base_list,
            &head_list,
            not_reviewed,
            &detail,
            policy,
            &owners,
            options.forge,
            revisions,
        );
        return Ok((plan, timings));
    }
    let parse_started = Instant::now();
    // What all parses built so far: once over one of the review's budgets no further file is
    // parsed, so the trees in memory stay within them (plus the files being parsed).
    let built = [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)];
    let limits = [
        options.budgets.max_nodes,
        options.budgets.max_scalar_bytes,
        options.budgets.max_documents,
    ];
    let over = || {
        built
            .iter()
            .zip(limits)
            .position(|(b, limit)| b.load(Ordering::Relaxed) > limit)
    };
    let parse = |content: &Content| match content {
        Content::Missing => Err(NotReviewedReason::MissingBlob),
        Content::Skipped(reason) => Ok(ManifestFile::skipped("", *reason)),
        Content::Bytes(bytes) => match classify_bytes(bytes, policy.max_file_size) {
            Ok(text) => Ok(ManifestFile::parse("", text, policy.yaml_limits)),
            Err(reason) => Ok(ManifestFile::skipped("", reason)),
        },
        // Decoded from the store, or read, before: never parsed as such.
        Content::Stored | Content::Unread => Err(NotReviewedReason::MissingBlob),
    };
    use crate::views::Kept;
    let kept = |oid: &Oid| match whole.contains(oid) {
        true => Kept::Whole,
        false => Kept::View,
    };
    // Whether the store lacks `oid` as this review keeps it (a whole entry serves as a view).
    let unstored = |oid: &Oid| match kept(oid) {
        Kept::Whole => !pack.has_whole(oid),
        Kept::View => !pack.contains(oid),
    };
    // What a blob is judged by: the whole file, or its view (the tree is dropped here).
    let keep = |oid: &Oid, file: ManifestFile, stored: Option<Kept>| match &shape {
        Some(_) if stored == Some(Kept::View) => file,
        Some(shape) if !whole.contains(oid) => shape.view(&file),
        _ => file,
    };
    let count_weight = |w: crate::yaml::Weight| {
        for (b, n) in built.iter().zip([w.nodes, w.scalar_bytes, w.documents]) {
            b.fetch_add(n as u64, Ordering::Relaxed);
        }
    };
    let count = |file: &ManifestFile| count_weight(file.weight);
    let blobs_built = AtomicUsize::new(0);
    // One blob as the review keeps it, and its entry for the store when the store lacks it;
    // a file whose every object `settles` accepts is dropped as soon as it is judged.
    type Settles<'s> = Option<&'s (dyn Fn(&crate::manifest::Header<'_>) -> bool + Sync)>;
    let judge = |oid: &Oid, content: &Content, settles: Settles<'_>| {
        if over().is_some() {
            return Judged::outcome(Outcome::File(Err(NotReviewedReason::OverReviewBudget)));
        }
        // A stored file that settles is known by its entry's summary: its trees are not
        // decoded (most of a warm review's files).
        if let (Content::Stored, Some(settles)) = (content, settles)
            && let Some(summary) = pack.summary(oid)
            && summary
                .objects
                .as_ref()
                .is_some_and(|objects| objects.iter().all(settles))
        {
            count_weight(summary.weight);
            return Judged::outcome(Outcome::Settled);
        }
        let stored = match content {
            Content::Stored => match pack.get(oid) {
                None => return Judged::outcome(Outcome::Undecodable),
                stored => stored,
            },
            // A changed file the previous push already parsed: its text is read (for
            // suggestions), its tree is not built again.
            Content::Bytes(_) if whole.contains(oid) && pack.has_whole(oid) => pack.get(oid),
            _ => None,
        };
        // A stored whole entry that does not decode is parsed and written again.
        let restore = stored.is_none() && whole.contains(oid) && pack.has_whole(oid);
        let file = match stored {
            Some((file, how)) => Ok(keep(oid, file, Some(how))),
            None => {
                blobs_built.fetch_add(1, Ordering::Relaxed);
                parse(content).map(|file| keep(oid, file, None))
            }
        };
        if let Ok(file) = &file {
            count(file);
        }
        let entry = match (&file, &store) {
            (Ok(file), Some(_)) if restore || unstored(oid) => {
                crate::views::encode(file, kept(oid)).ok()
            }
            _ => None,
        };
        let settled = |file: &ManifestFile| {
            settles.is_some_and(|settles| {
                file.content.is_ok() && file.object_headers().iter().all(|o| settles(&o.header()))
            })
        };
        let outcome = match file {
            Ok(file) if settled(&file) => Outcome::Settled,
            file => Outcome::File(file),
        };
        Judged { outcome, entry }
    };
    let mut judged = Judgements::default();
    let progress = AtomicUsize::new(0);
    let report = || {
        options.report(Progress::Parsing {
            done: progress.fetch_add(1, Ordering::Relaxed) + 1,
            total: blobs.len(),
        })
    };
    let (changed, unchanged): (Vec<_>, Vec<_>) =
        blobs.iter().partition(|(oid, _)| differs.contains(*oid));
    let judge_all = |list: Vec<(&Oid, &Content)>, settles: Settles<'_>| {
        list.into_par_iter()
            .map(|(oid, content)| {
                let judged = judge(oid, content, settles);
                report();
                (*oid, judged)
            })
            .collect::<Vec<_>>()
    };
    for (oid, one) in judge_all(changed, None) {
        judged.take(oid, one);
    }
    // Rendered targets match findings across files by fingerprint (their objects' copies in
    // plain files qualify those fingerprints), and a changed blob whose stored entry did not
    // decode is not known yet: then every namespace counts as touched.
    let mut touched =
        if renders.head.is_empty() && renders.base.is_empty() && judged.undecodable.is_empty() {
            crate::audit::Reach::of(policy).touched(
                judged
                    .parsed
                    .values()
                    .filter_map(|f| f.as_ref().ok())
                    .flat_map(ManifestFile::objects),
            )
        } else {
            crate::audit::Touched::All
        };
    let settles = |o: &crate::manifest::Header<'_>| touched.settles_header(o);
    let (unread, unchanged): (Vec<_>, Vec<_>) = unchanged
        .into_iter()
        .partition(|(_, content)| matches!(content, Content::Unread));
    for (oid, one) in judge_all(unchanged, Some(&settles)) {
        judged.take(oid, one);
    }
    // Read on a thread of its own (a repository handle is not shared between threads) while
    // the pool parses: a bounded number of blobs' bytes is in memory at once.
    let reader = repo.reopen()?;
    let streamed: Vec<(Oid, Result<Judged, GitError>)> = std::thread::scope(|scope| {
        let (send, receive) = std::sync::mpsc::sync_channel(STREAMED_BLOBS);
        scope.spawn(move || {
            for (oid, _) in unread {
                let content = match reader.blob(*oid) {
                    Ok(bytes) => Ok(Content::Bytes(bytes)),
                    Err(_) if !reader.has_object(*oid) => Ok(Content::Missing),
                    Err(e) => Err(e),
                };
                if send.send((*oid, content)).is_err() {
                    return;
                }
            }
        });
        receive
            .into_iter()
            .par_bridge()
            .map(|(oid, content)| {
                let judged = content.map(|content| judge(&oid, &content, Some(&settles)));
                report();
                (oid, judged)
            })
            .collect()
    });
    for (oid, one) in streamed {
        judged.take(oid, one?);
    }
    // A CRD that claims one of Kubernetes' own kinds may scope objects thought settled (no API
    // server serves such a CRD; the audit honours it): every file is kept after all. Their
    // weight is counted twice, which can only stop such a review sooner.
    let claims = judged
        .parsed
        .values()
        .filter_map(|f| f.as_ref().ok())
        .any(|f| {
            f.object_headers()
                .iter()
                .any(crate::audit::claims_kubernetes_kind)
        });
    if claims {
        for oid in std::mem::take(&mut judged.settled) {
            let read;
            let content = match blobs.get(&oid) {
                Some(Content::Unread) | None => {
                    read = match repo.blob(oid) {
                        Ok(bytes) => Content::Bytes(bytes),
                        Err(_) => Content::Missing,
                    };
                    &read
                }
                Some(content) => content,
            };
            judged.take(oid, judge(&oid, content, None));
        }
        touched = crate::audit::Touched::All;
    }
    let Judgements {
        mut parsed,
        mut entries,
        settled,
        undecodable,
    } = judged;
    // A stored entry that does not decode (the pack's checksum held: an engine bug) is parsed.
    for oid in undecodable {
        let content = match repo.blob(oid) {
            Ok(bytes) => Content::Bytes(bytes),
            Err(_) => Content::Missing,
        };
        blobs_built.fetch_add(1, Ordering::Relaxed);
        let file = parse(&content).map(|file| keep(&oid, file, None));
        if let Ok(file) = &file {
            count(file);
            if store.is_some()
                && let Ok(entry) = crate::views::encode(file, kept(&oid))
            {
                entries.insert(oid, entry);
            }
        }
        parsed.insert(oid, file);
    }
    timings.blobs_parsed = blobs_built.into_inner();
    timings.files_parsed = parsed.len() + settled.len();
    timings.files_settled = settled.len();
    // Only changed files' bytes are read again (their text, for suggestions).
    blobs.retain(|oid, _| whole.contains(oid));
    if let Some(which) = over() {
        drop(parsed);
        let what = ["YAML nodes", "bytes of scalar text", "YAML documents"][which];
        let detail = format!(
            "over {} {what} across both sides (aliases counted at every use); one review builds at most that",
            limits[which]
        );
        let plan = over_review_budget(
            &changes,
            &base_list,
            &head_list,
            not_reviewed,
            &detail,
            policy,
            &owners,
            options.forge,
            revisions,
        );
        return Ok((plan, timings));
    }
    let store = store.filter(|_| !entries.is_empty());
    let parsed = &parsed;
    let sizes: HashMap<Oid, u64> = base_list
        .iter()
        .chain(&head_list)
        .map(|f| (f.blob, f.size as u64))
        .collect();
    std::thread::scope(|scope| {
        // Written while the review goes on: the next review of this repository finds every
        // blob of this one. The old pack goes with the writer, and is dropped when it is done.
        let writing = store.map(|store| {
            let judged: Vec<Oid> = parsed
                .iter()
                .filter(|(_, file)| file.is_ok())
                .map(|(oid, _)| *oid)
                .chain(settled.iter().copied())
                .collect();
            scope.spawn(move || {
                let pack = pack;
                let written = judged.iter().filter_map(|oid| {
                    let payload = match entries.get(oid) {
                        Some(entry) => entry.as_slice(),
                        None => pack.raw(oid)?,
                    };
                    Some((*oid, *sizes.get(oid)?, payload))
                });
                if let Err(error) = store.write(written) {
                    tracing::warn!(%error, "the view store's pack is not written");
                }
            })
        });
        // Changed files the review could not judge, by their head (else base) content.
        let head_by_path: HashMap<&str, &TreeFile> =
            head_list.iter().map(|f| (f.path.as_str(), f)).collect();
        let base_by_path: HashMap<&str, &TreeFile> =
            base_list.iter().map(|f| (f.path.as_str(), f)).collect();
        for change in &changes {
            let side = match (&change.new_path, &change.old_path) {
                (Some(new), _) => head_by_path.get(new.as_str()),
                (None, Some(old)) => base_by_path.get(old.as_str()),
                (None, None) => None,
            };
            let Some(file) = side else { continue };
            let (reason, detail) = match parsed.get(&file.blob) {
                Some(Err(reason)) => (Some(*reason), None),
                Some(Ok(m)) => match (&m.content, m.over_budget()) {
                    (Err(skip), _) => (Some(NotReviewedReason::from_skip(*skip)), None),
                    // Reported as its `parseError` too; not judged all the same.
                    (Ok(_), Some(error)) => (
                        Some(NotReviewedReason::OverParseBudget),
                        Some(error.message.clone()),
                    ),
                    (Ok(_), None) => (None, None),
                },
                None => (None, None),
            };
            if let Some(reason) = reason
                && !renders.covered.contains(change.path())
            {
                not_reviewed.push(NotReviewed {
                    path: change.path().to_owned(),
                    reason,
                    detail,
                });
            }
        }
        not_reviewed.sort_by(|a, b| (&a.path, a.reason).cmp(&(&b.path, b.reason)));
        not_reviewed.dedup();
        let at = |list: &[TreeFile]| -> Vec<ManifestFile> {
            list.iter()
                .filter_map(|f| match parsed.get(&f.blob) {
                    Some(Ok(m)) => Some(m.at_path(f.path.clone())),
                    _ => None,
                })
                .collect()
        };
        let base_files = at(&base_list);
        let head_files = at(&head_list);
        timings.parse = parse_started.elapsed();
        let mut head_texts = std::collections::HashMap::new();
        for change in &changes {
            if let Some(path) = &change.new_path
                && let Some(f) = head_by_path.get(path.as_str())
                && let Some(Content::Bytes(bytes)) = blobs.get(&f.blob)
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
            rendered_head: &renders.head,
            rendered_head_exempted: &renders.head_exempted,
            rendered_base: &renders.base,
            render_closures: &renders.closures,
            render_hints: &renders.hints,
            not_reviewed: &not_reviewed,
            policy,
            owners: &owners,
            forge: options.forge,
            base_sha: revisions.merge_base.to_string(),
            head_sha: revisions.head.to_string(),
            base_tip_sha: revisions.base_tip.to_string(),
            touched: Some(&touched),
        };
        let review_started = Instant::now();
        options.report(Progress::Auditing {
            files: base_files.len() + head_files.len(),
        });
        let (mut head_result, base_result) = audit_sides(&input);
        head_result
            .findings
            .extend(baseline_additions(repo, revisions, policy)?);
        timings.audit = review_started.elapsed();
        options.report(Progress::Planning {
            findings: head_result.findings.len() + base_result.findings.len(),
        });
        let plan_started = Instant::now();
        let plan = plan_from_audits(&input, head_result, base_result);
        timings.plan = plan_started.elapsed();
        if let Some(writing) = writing {
            // A panic in the writer loses only the pack.
            let _ = writing.join();
        }
        Ok((plan, timings))
    })
}

/// The plan of a review over its budget: nothing is judged (cross-object rules need the
/// whole revision, so a part of it would judge wrongly) and every changed manifest is named.
#[allow(clippy::too_many_arguments)]
fn over_review_budget(
    changes: &[FileChange],
    base_list: &[TreeFile],
    head_list: &[TreeFile],
    not_reviewed: Vec<NotReviewed>,
    detail: &str,
    policy: &Policy,
    owners: &CodeOwners,
    forge: Flavor,
    revisions: &Revisions,
) -> ReviewPlan {
    let mut over: Vec<NotReviewed> = changes
        .iter()
        .filter(|c| {
            let paths = [c.new_path.as_deref(), c.old_path.as_deref()];
            paths
                .into_iter()
                .flatten()
                .any(|p| head_list.iter().chain(base_list).any(|f| f.path == p))
        })
        .map(|c| NotReviewed {
            path: c.path().to_owned(),
            reason: NotReviewedReason::OverReviewBudget,
            detail: Some(detail.to_owned()),
        })
        .collect();
    over.extend(not_reviewed);
    let input = ReviewInput {
        base_files: &[],
        head_files: &[],
        changes: &[],
        head_texts: &std::collections::HashMap::new(),
        rendered_head: &[],
        rendered_head_exempted: &[],
        rendered_base: &[],
        render_closures: &std::collections::BTreeMap::new(),
        render_hints: &Default::default(),
        not_reviewed: &over,
        policy,
        owners,
        forge,
        base_sha: revisions.merge_base.to_string(),
        head_sha: revisions.head.to_string(),
        base_tip_sha: revisions.base_tip.to_string(),
        touched: None,
    };
    let (head, base) = audit_sides(&input);
    plan_from_audits(&input, head, base)
}

/// One revision judged whole, as a snapshot of a branch sees it.
pub struct RevisionAudit {
    pub result: crate::audit::AuditResult,
    /// CODEOWNERS at that commit.
    pub owners: CodeOwners,
    /// The policy at that commit (environments included).
    pub policy: Policy,
    /// Render targets that could not be rendered, by name, and why.
    pub not_rendered: Vec<(String, String)>,
}

/// A file of a revision: its path, and its bytes or why they were not read.
type ReadFile = (String, Result<Vec<u8>, SkipReason>);

/// Audits every manifest of `commit` with the policy and CODEOWNERS of that commit; render
/// targets through `renderer` (`None`: nothing is rendered and charts' templates are not
/// judged). Everything comes from git objects, never a working tree. At most `max_bytes` of
/// YAML is read.
pub fn audit_revision(
    repo: &Repository,
    commit: Oid,
    flavor: Flavor,
    renderer: Option<&dyn crate::render::Renderer>,
    max_bytes: u64,
) -> Result<RevisionAudit, PipelineError> {
    let policy = policy_at(repo, commit, None)?;
    let owners = read_codeowners(repo, commit, flavor)?;
    let files = repo.list_files(commit)?;
    let patches = kustomize_patches(&files, repo);
    let charts = chart_dirs(&files);
    let tree = crate::render::GitTree::new(repo, &files);
    let targets = match renderer {
        Some(_) => {
            let paths: Vec<String> = files.iter().map(|f| f.path.clone()).collect();
            crate::render::targets::all_targets(
                &tree,
                &paths,
                &policy.render.kustomize,
                &policy.render.helm,
            )
        }
        None => Vec::new(),
    };
    let candidates = manifest_candidates(files.clone(), &patches, &charts, &policy);
    // Each file's bytes, or why it is not read.
    let read_all = || -> Result<Vec<ReadFile>, PipelineError> {
        let mut read = Vec::with_capacity(candidates.len());
        let mut bytes = 0u64;
        for f in &candidates {
            let content = if f.size as u64 > policy.max_file_size {
                Err(SkipReason::TooLarge)
            } else {
                bytes += f.size as u64;
                if bytes > max_bytes {
                    return Err(PipelineError::Rules(format!(
                        "the revision holds more than {max_bytes} bytes of YAML; one audit reads at most that"
                    )));
                }
                Ok(repo.blob(f.blob)?)
            };
            read.push((f.path.clone(), content));
        }
        Ok(read)
    };
    let parse = |(path, content): ReadFile| match content
        .as_ref()
        .map_err(|r| *r)
        .and_then(|bytes| classify_bytes(bytes, policy.max_file_size))
    {
        Ok(text) => ManifestFile::parse(path, text, policy.yaml_limits),
        Err(reason) => ManifestFile::skipped(path, reason),
    };
    // Each file judged as it is parsed, its bytes dropped: a revision's audit holds one full
    // tree per thread.
    let judging = crate::audit::Judging::new(&policy);
    let judged: Vec<ManifestFile> = read_all()?
        .into_par_iter()
        .map(|file| judging.file(parse(file)))
        .collect();
    let no_tools = crate::render::Tools {
        kubectl: None,
        helm: None,
    };
    let renderer = renderer.unwrap_or(&no_tools);
    let limits = crate::render::RenderLimits::default();
    use crate::render::judge::{audit_judged_tree, audit_tree};
    let (result, failed) =
        match audit_judged_tree(&tree, judged, judging, &targets, renderer, &limits, &policy) {
            Ok(audited) => audited,
            // Rare (a CRD in the revision makes a kind cluster-scoped): parsed again, whole.
            Err(crate::audit::JudgeAgain) => {
                let parsed: Vec<ManifestFile> = read_all()?.into_par_iter().map(parse).collect();
                audit_tree(&tree, &parsed, &targets, renderer, &limits, &policy)
            }
        };
    Ok(RevisionAudit {
        result,
        owners,
        policy,
        not_rendered: failed
            .into_iter()
            .map(|(target, error)| (target.name().to_owned(), error.to_string()))
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use crate::render::repository_path;

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
