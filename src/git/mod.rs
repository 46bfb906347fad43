//! git2 adapter: revisions, merge-bases, tree-to-tree diffs and blobs read straight from trees
//! (never a checkout), for a working repository or a bare cache alike.

pub mod cache;

use std::path::Path;

use git2::{Delta, DiffFindOptions, DiffOptions, ObjectType, Oid};

use crate::diff::{ChangeKind, DiffLine, FileChange, Hunk, LineKind};

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("{context}: {source}")]
    Git {
        context: String,
        #[source]
        source: git2::Error,
    },
    /// The fetch brought more than the job's byte cap: retrying cannot help.
    #[error("the fetch stopped at the cap of {cap} bytes: the change is too large to review")]
    FetchTooLarge { cap: u64 },
    /// The job gave the fetch up (its time limit passed).
    #[error("the fetch was given up with its job")]
    FetchAbandoned,
    #[error("{0}")]
    Other(String),
}

trait Context<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T, GitError>;
}

impl<T> Context<T> for Result<T, git2::Error> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T, GitError> {
        self.map_err(|source| GitError::Git {
            context: what(),
            source,
        })
    }
}

/// A blob as stored at a path of a commit.
#[derive(Debug, Clone)]
pub struct TreeFile {
    pub path: String,
    pub blob: Oid,
    pub size: usize,
}

/// A tree's files in libgit2's pre-order walk, and where each of its subtrees' files are: a
/// later listing that meets one of these subtrees (by id) copies its files instead of reading
/// it. A pull request's two sides share almost every subtree, and so do a repository's
/// successive commits (the review's view store keeps the last base listed).
#[derive(Debug, Default, Clone)]
pub struct Listing {
    pub files: Vec<TreeFile>,
    /// In pre-order, the root first.
    subtrees: Vec<Subtree>,
}

/// One subtree of a [`Listing`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subtree {
    pub oid: Oid,
    /// Its files: `files[start..end]`.
    pub start: usize,
    pub end: usize,
    /// Where its files' paths start below it (the length of its folder's path and `/`).
    pub cut: usize,
    /// How many subtrees below it follow it.
    pub below: usize,
}

impl Listing {
    /// A listing from its parts (as stored), checked to be one a walk could have made:
    /// relative paths of named components (a path goes on to the renderer's folder), ranges
    /// nested in their subtree, each path long enough and cut at a character.
    pub fn from_parts(files: Vec<TreeFile>, subtrees: Vec<Subtree>) -> Result<Listing, String> {
        if let Some(f) = files.iter().find(|f| {
            f.path
                .split('/')
                .any(|part| part.is_empty() || part == "." || part == "..")
        }) {
            return Err(format!("{:?} is not a path a tree holds", f.path));
        }
        for (i, s) in subtrees.iter().enumerate() {
            let past = || format!("subtree {i} claims subtrees past the end");
            let last = i.checked_add(s.below).ok_or_else(past)?;
            let nested = subtrees.get(i + 1..=last).ok_or_else(past)?;
            let inside = s.start <= s.end
                && s.end <= files.len()
                && nested.iter().enumerate().all(|(n, t)| {
                    s.start <= t.start
                        && t.end <= s.end
                        && s.cut <= t.cut
                        && (i + 1 + n).checked_add(t.below).is_some_and(|l| l <= last)
                });
            if !inside
                || !files[s.start..s.end]
                    .iter()
                    .all(|f| f.path.len() > s.cut && f.path.is_char_boundary(s.cut))
            {
                return Err(format!("subtree {i} does not match its files"));
            }
        }
        Ok(Listing { files, subtrees })
    }

    pub fn subtrees(&self) -> &[Subtree] {
        &self.subtrees
    }

    /// The id of the tree listed.
    pub fn root(&self) -> Option<Oid> {
        self.subtrees.first().map(|s| s.oid)
    }
}

/// A listing's subtrees by id.
struct Known<'l> {
    listing: &'l Listing,
    at: foldhash::HashMap<Oid, usize>,
}

impl<'l> Known<'l> {
    fn new(listing: &'l Listing) -> Known<'l> {
        let mut at =
            foldhash::HashMap::with_capacity_and_hasher(listing.subtrees.len(), Default::default());
        for (i, s) in listing.subtrees.iter().enumerate() {
            at.entry(s.oid).or_insert(i);
        }
        Known { listing, at }
    }
}

pub struct Repository {
    repo: git2::Repository,
    /// Blob sizes read so far: a review lists both sides of a change, which share almost every
    /// blob, and reading a size from a pack is the costly part of a listing.
    sizes: std::cell::RefCell<foldhash::HashMap<Oid, usize>>,
}

/// Gives what libgit2 freed back to the system, on a thread of its own (it walks the C heap).
/// libgit2 allocates with the C allocator, which keeps freed memory for its own later use; the
/// review's own allocations come from another allocator and cannot reuse it, so a review's
/// trees would stay resident to its end.
pub fn return_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    std::thread::spawn(|| {
        // SAFETY: malloc_trim only releases free memory of the C allocator's heap.
        unsafe {
            libc::malloc_trim(0);
        }
    });
}

/// Points OpenSSL at an empty certificate bundle for this process and what it starts.
/// libgit2 loads the whole system bundle when it starts, 17 ms of a process that only reads
/// local repositories (measured: `docs/benchmarks.md`); only an HTTPS fetch needs it.
///
/// # Safety
///
/// Sets environment variables: call it before any other thread exists.
pub unsafe fn skip_certificate_bundle() {
    // SAFETY: the caller guarantees that no other thread reads the environment.
    unsafe { std::env::set_var("SSL_CERT_FILE", "/dev/null") };
}

impl Repository {
    /// Opens the repository containing `path` (a working tree or a bare repository).
    pub fn open(path: &Path) -> Result<Repository, GitError> {
        let repo = git2::Repository::discover(path)
            .context(|| format!("no git repository at {}", path.display()))?;
        Ok(Repository::from_git2(repo))
    }

    /// Another handle on the same repository, for another thread (a handle is not shared).
    pub fn reopen(&self) -> Result<Repository, GitError> {
        let repo = git2::Repository::open(self.repo.path())
            .context(|| format!("cannot open {} again", self.repo.path().display()))?;
        Ok(Repository::from_git2(repo))
    }

    pub fn from_git2(repo: git2::Repository) -> Repository {
        Repository {
            repo,
            sizes: Default::default(),
        }
    }

    pub fn inner(&self) -> &git2::Repository {
        &self.repo
    }

    /// The commit a revision names (`HEAD`, a branch, a SHA, `main~2`...).
    pub fn resolve(&self, rev: &str) -> Result<Oid, GitError> {
        let object = self
            .repo
            .revparse_single(rev)
            .context(|| format!("unknown revision `{rev}`"))?;
        let commit = object
            .peel_to_commit()
            .context(|| format!("`{rev}` does not name a commit"))?;
        Ok(commit.id())
    }

    pub fn merge_base(&self, a: Oid, b: Oid) -> Result<Oid, GitError> {
        self.repo
            .merge_base(a, b)
            .context(|| format!("no merge-base between {a} and {b} (is the history shallow?)"))
    }

    /// The base branch a review defaults to: the upstream's default branch (`origin/HEAD`),
    /// else `main`, else `master`.
    pub fn default_base(&self) -> Result<String, GitError> {
        if let Ok(reference) = self.repo.find_reference("refs/remotes/origin/HEAD")
            && let Ok(Some(target)) = reference.symbolic_target()
        {
            return Ok(target
                .strip_prefix("refs/remotes/")
                .unwrap_or(target)
                .to_owned());
        }
        for candidate in ["origin/main", "main", "origin/master", "master"] {
            if self.repo.revparse_single(candidate).is_ok() {
                return Ok(candidate.to_owned());
            }
        }
        Err(GitError::Other(
            "cannot tell the base branch: no origin/HEAD, main or master; pass --base".into(),
        ))
    }

    fn tree(&self, commit: Oid) -> Result<git2::Tree<'_>, GitError> {
        self.repo
            .find_commit(commit)
            .and_then(|c| c.tree())
            .context(|| format!("cannot read the tree of {commit}"))
    }

    /// Sizes known from elsewhere (the view store): listings take them instead of reading them.
    pub fn know_sizes(&self, known: impl Iterator<Item = (Oid, u64)>) {
        let mut sizes = self.sizes.borrow_mut();
        for (oid, size) in known {
            if let Ok(size) = usize::try_from(size) {
                sizes.insert(oid, size);
            }
        }
    }

    /// Every blob of a commit's tree, with its size (submodules and symlinks are left out).
    pub fn list_files(&self, commit: Oid) -> Result<Vec<TreeFile>, GitError> {
        Ok(self.list(commit, &[])?.files)
    }

    /// [`Repository::list_files`] of two commits at once: a subtree the second shares with the
    /// first (almost all of them, for a pull request) or with `known` is read once, its files
    /// copied.
    pub fn list_files_of_both(
        &self,
        first: Oid,
        second: Oid,
        known: Option<&Listing>,
    ) -> Result<(Listing, Listing), GitError> {
        let mut sources: Vec<Known<'_>> = known.map(Known::new).into_iter().collect();
        let one = self.list(first, &sources)?;
        sources.insert(0, Known::new(&one));
        let two = self.list(second, &sources)?;
        drop(sources);
        Ok((one, two))
    }

    fn list(&self, commit: Oid, known: &[Known<'_>]) -> Result<Listing, GitError> {
        let root = self.tree(commit)?.id();
        let mut out = Listing::default();
        self.list_into(root, "", &mut out, known)
            .context(|| format!("cannot walk the tree of {commit}"))?;
        Ok(out)
    }

    /// Appends the blobs of tree `oid` to `out`, paths prefixed with `dir`, in the order of
    /// libgit2's pre-order walk.
    fn list_into(
        &self,
        oid: Oid,
        dir: &str,
        out: &mut Listing,
        known: &[Known<'_>],
    ) -> Result<(), git2::Error> {
        if let Some((from, i)) = known
            .iter()
            .find_map(|k| k.at.get(&oid).map(|i| (k.listing, *i)))
        {
            self.copy_subtree(from, i, dir, out);
            return Ok(());
        }
        let at = out.subtrees.len();
        out.subtrees.push(Subtree {
            oid,
            start: out.files.len(),
            end: out.files.len(),
            cut: dir.len(),
            below: 0,
        });
        let tree = self.repo.find_tree(oid)?;
        for entry in tree.iter() {
            let name = entry.name().unwrap_or("");
            match entry.kind() {
                Some(ObjectType::Blob) if entry.filemode() != 0o120000 => {
                    let size = self.size_of(entry.id());
                    out.files.push(TreeFile {
                        path: format!("{dir}{name}"),
                        blob: entry.id(),
                        size,
                    });
                }
                Some(ObjectType::Tree) => {
                    if entry.name().is_err() {
                        // As libgit2's walk: a folder name must be UTF-8 to be a path here.
                        return Err(git2::Error::from_str("a folder name is not UTF-8"));
                    }
                    self.list_into(entry.id(), &format!("{dir}{name}/"), out, known)?;
                }
                _ => {}
            }
        }
        out.subtrees[at].end = out.files.len();
        out.subtrees[at].below = out.subtrees.len() - at - 1;
        Ok(())
    }

    /// Copies subtree `i` of `from` (its files and its subtrees) to `out`, below `dir`.
    fn copy_subtree(&self, from: &Listing, i: usize, dir: &str, out: &mut Listing) {
        let s = from.subtrees[i];
        let first = out.files.len();
        out.files
            .extend(from.files[s.start..s.end].iter().map(|f| TreeFile {
                path: format!("{dir}{}", &f.path[s.cut..]),
                blob: f.blob,
                // A blob missing when that listing was made may be here now.
                size: if f.size == 0 {
                    self.size_of(f.blob)
                } else {
                    f.size
                },
            }));
        out.subtrees
            .extend(from.subtrees[i..=i + s.below].iter().map(|t| Subtree {
                oid: t.oid,
                start: t.start - s.start + first,
                end: t.end - s.start + first,
                cut: t.cut - s.cut + dir.len(),
                below: t.below,
            }));
    }

    /// A blob's size, read once.
    fn size_of(&self, blob: Oid) -> usize {
        *self.sizes.borrow_mut().entry(blob).or_insert_with(|| {
            self.repo
                .odb()
                .and_then(|odb| odb.read_header(blob))
                .map_or(0, |(size, _)| size)
        })
    }

    /// A blob's size without reading it (0 when the object is missing).
    fn blob_size(&self, oid: Oid) -> u64 {
        self.repo
            .odb()
            .and_then(|odb| odb.read_header(oid))
            .map_or(0, |(size, _)| size as u64)
    }

    /// Whether the object database holds `oid` (a partial clone may lack blobs).
    pub fn has_object(&self, oid: Oid) -> bool {
        self.repo.odb().is_ok_and(|odb| odb.exists(oid))
    }

    pub fn blob(&self, oid: Oid) -> Result<Vec<u8>, GitError> {
        let blob = self
            .repo
            .find_blob(oid)
            .context(|| format!("cannot read blob {oid}"))?;
        Ok(blob.content().to_vec())
    }

    /// The blob at `path` in a commit, if there is one.
    pub fn file_at(&self, commit: Oid, path: &str) -> Result<Option<TreeFile>, GitError> {
        let tree = self.tree(commit)?;
        let entry = match tree.get_path(Path::new(path)) {
            Ok(entry) => entry,
            Err(e) if e.code() == git2::ErrorCode::NotFound => return Ok(None),
            Err(e) => {
                return Err(GitError::Git {
                    context: format!("cannot look up {path}"),
                    source: e,
                });
            }
        };
        if entry.kind() != Some(ObjectType::Blob) {
            return Ok(None);
        }
        let size = self.blob_size(entry.id()) as usize;
        Ok(Some(TreeFile {
            path: path.to_owned(),
            blob: entry.id(),
            size,
        }))
    }

    /// Files changed from `base` to `head`, renames detected, hunks with both sides' line
    /// numbers (three lines of context, as the forges show them). Blobs over `max_blob` bytes
    /// are listed as binary, without hunks.
    pub fn changes(
        &self,
        base: Oid,
        head: Oid,
        max_blob: u64,
    ) -> Result<Vec<FileChange>, GitError> {
        self.changes_of(base, head, max_blob, true)
    }

    /// [`Repository::changes`]; `narrow` first finds the paths that differ, walking only the
    /// subtrees that differ, and hands them to libgit2 as a literal path list: its diff
    /// otherwise reads every tree of both sides (tens of milliseconds in a large monorepo).
    fn changes_of(
        &self,
        base: Oid,
        head: Oid,
        max_blob: u64,
        narrow: bool,
    ) -> Result<Vec<FileChange>, GitError> {
        let old = self.tree(base)?;
        let new = self.tree(head)?;
        let mut options = DiffOptions::new();
        options.context_lines(3).ignore_submodules(true);
        let differing = if narrow {
            self.differing_manifest_paths(&old, &new)
                .context(|| format!("cannot compare the trees of {base}..{head}"))?
        } else {
            None
        };
        match differing {
            Some(paths) if paths.is_empty() => return Ok(Vec::new()),
            Some(paths) => {
                options.disable_pathspec_match(true);
                for path in paths {
                    options.pathspec(path);
                }
            }
            // Only manifest-like paths: a review never reads any other blob (a partial clone
            // may not have them), and rename detection, the costly part of a large range,
            // compares only these.
            None => {
                for pattern in MANIFEST_PATTERNS {
                    options.pathspec(pattern);
                }
            }
        }
        let mut diff = self
            .repo
            .diff_tree_to_tree(Some(&old), Some(&new), Some(&mut options))
            .context(|| format!("cannot diff {base}..{head}"))?;
        let mut find = DiffFindOptions::new();
        find.renames(true)
            .copies(false)
            .rename_threshold(50)
            .rename_limit(RENAME_LIMIT);
        // Renames are found by content: a missing blob cannot be compared, so it is left as a
        // delete and an add (and named as missing by the review).
        if diff.find_similar(Some(&mut find)).is_err() {
            diff = self
                .repo
                .diff_tree_to_tree(Some(&old), Some(&new), Some(&mut options))
                .context(|| format!("cannot diff {base}..{head}"))?;
            let mut exact = DiffFindOptions::new();
            exact.renames(true).exact_match_only(true);
            diff.find_similar(Some(&mut exact))
                .context(|| "rename detection failed".into())?;
        }
        let mut changes = Vec::new();
        for (i, delta) in diff.deltas().enumerate() {
            let kind = match delta.status() {
                Delta::Added => ChangeKind::Added,
                Delta::Deleted => ChangeKind::Deleted,
                Delta::Renamed => ChangeKind::Renamed,
                Delta::Copied => ChangeKind::Copied,
                Delta::Modified | Delta::Typechange => ChangeKind::Modified,
                _ => continue,
            };
            let path_of =
                |f: git2::DiffFile<'_>| f.path().map(|p| p.to_string_lossy().replace('\\', "/"));
            let old_path = (kind != ChangeKind::Added)
                .then(|| path_of(delta.old_file()))
                .flatten();
            let new_path = (kind != ChangeKind::Deleted)
                .then(|| path_of(delta.new_file()))
                .flatten();
            // A tree-to-tree diff leaves `DiffFile::size` at 0: ask the object database.
            let too_big = [delta.old_file().id(), delta.new_file().id()]
                .into_iter()
                .filter(|id| !id.is_zero())
                .any(|id| self.blob_size(id) > max_blob);
            let mut change = FileChange {
                kind,
                old_path,
                new_path,
                hunks: Vec::new(),
                binary: too_big || delta.flags().is_binary(),
                symlink: [delta.old_file().mode(), delta.new_file().mode()]
                    .contains(&git2::FileMode::Link),
            };
            let missing = [delta.old_file().id(), delta.new_file().id()]
                .into_iter()
                .any(|id| !id.is_zero() && !self.has_object(id));
            if !change.binary && !missing {
                let patch = git2::Patch::from_diff(&diff, i)
                    .context(|| format!("cannot diff {}", change.path()))?;
                if let Some(patch) = patch {
                    change.binary = patch.delta().flags().is_binary();
                    change.hunks = hunks_of(&patch)?;
                }
            }
            if kind == ChangeKind::Modified
                && change.hunks.is_empty()
                && delta.old_file().id() == delta.new_file().id()
            {
                change.kind = ChangeKind::ModeOnly;
            }
            changes.push(change);
        }
        Ok(changes)
    }
}

impl Repository {
    /// The manifest-like paths (as [`MANIFEST_PATTERNS`] match them) whose entry differs between
    /// two trees: content, mode or kind. `None` when a path is a file on one side and a folder on
    /// the other (a literal path list names a folder's files too) or is not UTF-8 (it could not
    /// be named): there, only the patterns are exact.
    fn differing_manifest_paths(
        &self,
        old: &git2::Tree<'_>,
        new: &git2::Tree<'_>,
    ) -> Result<Option<Vec<String>>, git2::Error> {
        let mut differing = Vec::new();
        if !self.differing_into(Some(old), Some(new), "", &mut differing)? {
            return Ok(None);
        }
        let patterns = git2::Pathspec::new(MANIFEST_PATTERNS.iter().copied())?;
        differing
            .retain(|path| patterns.matches_path(Path::new(path), git2::PathspecFlags::USE_CASE));
        Ok(Some(differing))
    }

    /// Appends the paths below `prefix` whose entries differ; false when they cannot all be
    /// named literally.
    fn differing_into(
        &self,
        old: Option<&git2::Tree<'_>>,
        new: Option<&git2::Tree<'_>>,
        prefix: &str,
        out: &mut Vec<String>,
    ) -> Result<bool, git2::Error> {
        // An entry as a diff compares it: id, mode, kind.
        type Entry = (Oid, i32, Option<ObjectType>);
        let entries = |tree: Option<&git2::Tree<'_>>| {
            tree.map(|t| {
                t.iter()
                    .map(|e| (e.name_bytes().to_vec(), (e.id(), e.filemode(), e.kind())))
                    .collect::<std::collections::BTreeMap<_, Entry>>()
            })
            .unwrap_or_default()
        };
        let (olds, news) = (entries(old), entries(new));
        let names: std::collections::BTreeSet<&Vec<u8>> = olds.keys().chain(news.keys()).collect();
        for name in names {
            let (was, is) = (olds.get(name), news.get(name));
            if let (Some(was), Some(is)) = (was, is)
                && was.0 == is.0
                && was.1 == is.1
            {
                continue;
            }
            let is_tree = |e: Option<&Entry>| e.is_some_and(|e| e.2 == Some(ObjectType::Tree));
            let is_file = |e: Option<&Entry>| e.is_some_and(|e| e.2 != Some(ObjectType::Tree));
            if (is_tree(was) && is_file(is)) || (is_file(was) && is_tree(is)) {
                return Ok(false);
            }
            let Ok(name) = std::str::from_utf8(name) else {
                return Ok(false);
            };
            if is_tree(was) || is_tree(is) {
                let subtree = |e: Option<&Entry>| e.map(|e| self.repo.find_tree(e.0)).transpose();
                let (was, is) = (subtree(was)?, subtree(is)?);
                let dir = format!("{prefix}{name}/");
                if !self.differing_into(was.as_ref(), is.as_ref(), &dir, out)? {
                    return Ok(false);
                }
            } else {
                out.push(format!("{prefix}{name}"));
            }
        }
        Ok(true)
    }
}

fn hunks_of(patch: &git2::Patch<'_>) -> Result<Vec<Hunk>, GitError> {
    let mut hunks = Vec::new();
    for h in 0..patch.num_hunks() {
        let (hunk, count) = patch.hunk(h).context(|| "cannot read a hunk".into())?;
        let mut lines = Vec::with_capacity(count);
        for l in 0..count {
            let line = patch
                .line_in_hunk(h, l)
                .context(|| "cannot read a diff line".into())?;
            let kind = match line.origin() {
                '+' => LineKind::Added,
                '-' => LineKind::Removed,
                ' ' => LineKind::Context,
                _ => continue, // "no newline at end of file" markers
            };
            lines.push(DiffLine {
                kind,
                old_line: line.old_lineno(),
                new_line: line.new_lineno(),
            });
        }
        hunks.push(Hunk {
            old_start: hunk.old_start(),
            old_lines: hunk.old_lines(),
            new_start: hunk.new_start(),
            new_lines: hunk.new_lines(),
            lines,
        });
    }
    Ok(hunks)
}

/// The paths a review reads: manifest candidates by name.
pub const MANIFEST_PATTERNS: &[&str] = &["*.yaml", "*.yml", "*.json"];

/// Most files rename detection compares on each side, as git's `diff.renameLimit`: past it a
/// moved file is a delete and an add (its findings still match by fingerprint).
pub const RENAME_LIMIT: usize = 3_000;

/// Test and tooling helper: builds commits from `(path, contents)` lists with nested trees,
/// since a tree entry cannot hold a `/`.
pub mod build {
    use std::collections::BTreeMap;

    use git2::{Oid, Repository, Signature};

    enum Entry {
        File(Vec<u8>),
        Dir(BTreeMap<String, Entry>),
    }

    fn insert(dir: &mut BTreeMap<String, Entry>, path: &str, content: &[u8]) {
        match path.split_once('/') {
            Some((head, rest)) => {
                let child = dir
                    .entry(head.to_owned())
                    .or_insert_with(|| Entry::Dir(BTreeMap::new()));
                if let Entry::Dir(sub) = child {
                    insert(sub, rest, content);
                }
            }
            None => {
                dir.insert(path.to_owned(), Entry::File(content.to_vec()));
            }
        }
    }

    fn write(repo: &Repository, dir: &BTreeMap<String, Entry>) -> Result<Oid, git2::Error> {
        let mut builder = repo.treebuilder(None)?;
        for (name, entry) in dir {
            match entry {
                Entry::File(content) => {
                    let oid = repo.blob(content)?;
                    builder.insert(name, oid, 0o100644)?;
                }
                Entry::Dir(sub) => {
                    let oid = write(repo, sub)?;
                    builder.insert(name, oid, 0o040000)?;
                }
            }
        }
        builder.write()
    }

    /// Commits the files as the whole tree, on top of `parents`, and points `refname` at it.
    pub fn commit(
        repo: &Repository,
        refname: Option<&str>,
        parents: &[Oid],
        files: &[(&str, &[u8])],
        message: &str,
    ) -> Result<Oid, git2::Error> {
        let mut root = BTreeMap::new();
        for (path, content) in files {
            insert(&mut root, path, content);
        }
        let tree = repo.find_tree(write(repo, &root)?)?;
        let signature = Signature::new(
            "kubeward",
            "kubeward@example.invalid",
            &git2::Time::new(1_700_000_000, 0),
        )?;
        let parents: Vec<git2::Commit<'_>> = parents
            .iter()
            .map(|p| repo.find_commit(*p))
            .collect::<Result<_, _>>()?;
        let parent_refs: Vec<&git2::Commit<'_>> = parents.iter().collect();
        repo.commit(
            refname,
            &signature,
            &signature,
            message,
            &tree,
            &parent_refs,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// libgit2's own pre-order walk: what a listing must give.
    fn walked(repo: &git2::Repository, commit: Oid) -> Vec<(String, Oid, usize)> {
        let tree = repo
            .find_commit(commit)
            .and_then(|c| c.tree())
            .expect("tree");
        let mut files = Vec::new();
        tree.walk(git2::TreeWalkMode::PreOrder, |dir, entry| {
            if entry.kind() == Some(ObjectType::Blob) && entry.filemode() != 0o120000 {
                let size = repo.find_blob(entry.id()).expect("blob").size();
                files.push((
                    format!("{dir}{}", entry.name().unwrap_or("")),
                    entry.id(),
                    size,
                ));
            }
            git2::TreeWalkResult::Ok
        })
        .expect("walk");
        files
    }

    fn plain(files: Vec<TreeFile>) -> Vec<(String, Oid, usize)> {
        files
            .into_iter()
            .map(|f| (f.path, f.blob, f.size))
            .collect()
    }

    #[test]
    fn two_commits_listed_at_once_are_each_listed_as_libgit2_walks_them() {
        let dir = tempfile::tempdir().expect("temp dir");
        let git = git2::Repository::init_bare(dir.path()).expect("init");
        let base_files: Vec<(&str, &[u8])> = vec![
            ("a/b/c.yaml", b"c: 1\n"),
            ("a/b/d.yaml", b"d: 1\n"),
            ("a/e.yaml", b"e: 1\n"),
            ("x/y/z.yaml", b"z: 1\n"),
            ("top.yaml", b"top: 1\n"),
        ];
        let base = build::commit(&git, None, &[], &base_files, "base").expect("base");
        // An edit deep down, a copy of a whole folder elsewhere (one subtree at two paths), a
        // renamed folder (one subtree at a new path), a deletion.
        let head_files: Vec<(&str, &[u8])> = vec![
            ("a/b/c.yaml", b"c: 2\n"),
            ("a/b/d.yaml", b"d: 1\n"),
            ("a/e.yaml", b"e: 1\n"),
            ("copy/c.yaml", b"c: 1\n"),
            ("copy/d.yaml", b"d: 1\n"),
            ("w/y/z.yaml", b"z: 1\n"),
            ("zz/b/c.yaml", b"c: 1\n"),
            ("zz/b/d.yaml", b"d: 1\n"),
        ];
        let head = build::commit(&git, None, &[base], &head_files, "head").expect("head");
        // A third commit edits deep inside folders the others share: lent from a listing that
        // itself copied them, its untouched subtrees below must still be known.
        let third_files: Vec<(&str, &[u8])> = vec![
            ("a/b/c.yaml", b"c: 3\n"),
            ("a/b/d.yaml", b"d: 1\n"),
            ("a/e.yaml", b"e: 1\n"),
            ("copy/c.yaml", b"c: 1\n"),
            ("copy/d.yaml", b"d: 2\n"),
            ("zz/b/c.yaml", b"c: 1\n"),
        ];
        let third = build::commit(&git, None, &[head], &third_files, "third").expect("third");
        let repo = Repository::from_git2(git2::Repository::open_bare(dir.path()).expect("open"));
        let lent: Vec<Listing> = [base, head, third]
            .iter()
            .map(|c| repo.list_files_of_both(base, *c, None).expect("listed").1)
            .collect();
        for known in std::iter::once(None).chain(lent.iter().map(Some)) {
            for (first, second) in [(base, head), (head, base), (head, head), (third, head)] {
                let (one, two) = repo
                    .list_files_of_both(first, second, known)
                    .expect("listed");
                for (listing, commit) in [(one, first), (two, second)] {
                    // Its index is one a walk makes: a next listing may lend from it.
                    let again =
                        Listing::from_parts(listing.files.clone(), listing.subtrees().to_vec())
                            .expect("a valid index");
                    assert_eq!(plain(listing.files), walked(repo.inner(), commit));
                    for other in [base, head, third] {
                        let (_, next) = repo
                            .list_files_of_both(other, other, Some(&again))
                            .expect("listed");
                        assert_eq!(plain(next.files), walked(repo.inner(), other));
                    }
                }
            }
        }
        let mut broken = lent[1].clone();
        broken.subtrees[1].end = broken.files.len() + 1;
        assert!(Listing::from_parts(broken.files, broken.subtrees).is_err());
        assert_eq!(
            plain(repo.list_files(head).expect("listed")),
            walked(repo.inner(), head)
        );
    }

    /// One entry of a hand-built tree: content with a mode, or a folder.
    enum Node {
        Blob(&'static [u8], i32),
        Dir(Vec<(&'static [u8], Node)>),
    }

    fn tree_of(git: &git2::Repository, entries: &[(&'static [u8], Node)]) -> Oid {
        let mut builder = git.treebuilder(None).expect("builder");
        for (name, node) in entries {
            let (oid, mode) = match node {
                Node::Blob(content, mode) => (git.blob(content).expect("blob"), *mode),
                Node::Dir(inner) => (tree_of(git, inner), 0o040000),
            };
            builder.insert(name.to_vec(), oid, mode).expect("insert");
        }
        builder.write().expect("tree")
    }

    fn commit_of(git: &git2::Repository, entries: &[(&'static [u8], Node)]) -> Oid {
        let tree = git.find_tree(tree_of(git, entries)).expect("tree");
        let who = git2::Signature::now("t", "t@example.com").expect("signature");
        git.commit(None, &who, &who, "c", &tree, &[])
            .expect("commit")
    }

    #[test]
    fn changes_found_from_the_differing_paths_are_those_of_the_whole_diff() {
        use Node::{Blob, Dir};
        let dir = tempfile::tempdir().expect("temp dir");
        let git = git2::Repository::init_bare(dir.path()).expect("init");
        let deploy = b"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: shop\nspec:\n  replicas: 2\n";
        let moved = b"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: shop\nspec:\n  replicas: 3\n";
        // The base, and the same with only a non-manifest file changed.
        let with_readme = |readme: &'static [u8]| {
            commit_of(
                &git,
                &[
                    (b"README.md", Blob(readme, 0o100644)),
                    (
                        b"apps",
                        Dir(vec![
                            (b"web.yaml", Blob(deploy, 0o100644)),
                            (b"run.sh", Blob(b"echo\n", 0o100644)),
                            (b"cm.yml", Blob(b"a: 1\n", 0o100644)),
                            (b"link.yaml", Blob(b"cm.yml", 0o100644)),
                            (b"same", Dir(vec![(b"s.json", Blob(b"{}\n", 0o100644))])),
                        ]),
                    ),
                    (b"gone", Dir(vec![(b"old.yaml", Blob(b"b: 1\n", 0o100644))])),
                ],
            )
        };
        let base = with_readme(b"hello\n");
        let docs_only = with_readme(b"other\n");
        // Renamed with an edit, mode change, a file turned link, a deleted and an added folder,
        // a non-manifest edit, an unchanged folder.
        let head = commit_of(
            &git,
            &[
                (b"README.md", Blob(b"hello again\n", 0o100644)),
                (
                    b"apps",
                    Dir(vec![
                        (b"frontend.yaml", Blob(moved, 0o100644)),
                        (b"run.sh", Blob(b"echo 2\n", 0o100755)),
                        (b"cm.yml", Blob(b"a: 1\n", 0o100755)),
                        (b"link.yaml", Blob(b"cm.yml", 0o120000)),
                        (b"same", Dir(vec![(b"s.json", Blob(b"{}\n", 0o100644))])),
                    ]),
                ),
                (
                    b"new",
                    Dir(vec![(b"n.json", Blob(b"{\"a\": 1}\n", 0o100644))]),
                ),
            ],
        );
        // A manifest turned into a folder of that name holding a non-manifest, and a name that
        // is not UTF-8: both left to the patterns.
        let clash = commit_of(
            &git,
            &[(
                b"apps",
                Dir(vec![(
                    b"web.yaml",
                    Dir(vec![(b"notes.txt", Blob(b"x\n", 0o100644))]),
                )]),
            )],
        );
        let not_utf8 = commit_of(
            &git,
            &[(b"apps", Dir(vec![(b"w\xffb.yaml", Blob(deploy, 0o100644))]))],
        );
        let repo = Repository::from_git2(git2::Repository::open_bare(dir.path()).expect("open"));
        let pairs = [
            (base, head),
            (head, base),
            (base, docs_only),
            (base, base),
            (base, clash),
            (clash, head),
            (base, not_utf8),
        ];
        for (from, to) in pairs {
            let narrowed = repo.changes_of(from, to, 1 << 20, true).expect("narrowed");
            let whole = repo.changes_of(from, to, 1 << 20, false).expect("whole");
            assert_eq!(narrowed, whole, "{from}..{to}");
        }
        let changes = repo.changes(base, head, 1 << 20).expect("changes");
        let kinds: Vec<_> = changes
            .iter()
            .map(|c| (c.kind, c.path().to_owned()))
            .collect();
        assert!(
            kinds.contains(&(ChangeKind::Renamed, "apps/frontend.yaml".into())),
            "{kinds:?}"
        );
        assert!(
            kinds.contains(&(ChangeKind::ModeOnly, "apps/cm.yml".into())),
            "{kinds:?}"
        );
        assert!(changes.iter().any(|c| c.symlink), "{kinds:?}");
        assert!(
            kinds
                .iter()
                .all(|(_, p)| p != "README.md" && p != "apps/run.sh")
        );
        assert!(
            repo.changes(base, docs_only, 1 << 20)
                .expect("changes")
                .is_empty()
        );
        let clashed = repo.changes(base, clash, 1 << 20).expect("changes");
        assert!(
            clashed.iter().all(|c| !c.path().ends_with(".txt")),
            "{clashed:?}"
        );
        // web.yaml moved to the name that is not UTF-8, the four other manifests deleted.
        let renamed = repo.changes(base, not_utf8, 1 << 20).expect("changes");
        assert_eq!(renamed.len(), 5, "{renamed:?}");
        assert_eq!(
            renamed
                .iter()
                .filter(|c| c.kind == ChangeKind::Renamed)
                .count(),
            1
        );
    }
}
