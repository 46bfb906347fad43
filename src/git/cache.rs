//! Bare repository caches for the bot: one per (forge, host, repository id), fetched with the
//! installation's token, safe under concurrent jobs, bounded in size.
//!
//! The token reaches git only through the credentials callback: remotes are anonymous, so no URL
//! with a secret is ever written to the cache's config.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::SystemTime;

use git2::{AutotagOption, Cred, FetchOptions, RemoteCallbacks};

use super::{GitError, Repository};

/// Which cache: never derived from a repository *name*, which can be renamed or reused.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    pub forge: String,
    pub host: String,
    pub repo_id: i64,
}

impl CacheKey {
    fn dir_name(&self) -> String {
        let clean = |s: &str| -> String {
            s.chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect()
        };
        format!(
            "{}/{}/{}.git",
            clean(&self.forge),
            clean(&self.host),
            self.repo_id
        )
    }
}

/// What to fetch and how much is allowed.
pub struct FetchRequest<'a> {
    pub url: &'a str,
    pub refspecs: &'a [String],
    /// `(user, password)`, given to git only when the server asks.
    pub credentials: Option<(&'a str, &'a str)>,
    /// Shallow depth; `None` fetches everything not yet present.
    pub depth: Option<i32>,
    /// The job's bytes left to receive, shared by all its fetches.
    pub budget: &'a FetchBudget,
}

/// One job's allowance across all its fetches: a cap on the bytes they receive together, and
/// a flag that stops them once the job is given up (its time limit passed), so an abandoned
/// fetch does not go on holding the cache's lock.
#[derive(Debug)]
pub struct FetchBudget {
    cap: u64,
    received: AtomicU64,
    abandoned: AtomicBool,
}

impl FetchBudget {
    pub fn new(cap: u64) -> FetchBudget {
        FetchBudget {
            cap,
            received: AtomicU64::new(0),
            abandoned: AtomicBool::new(false),
        }
    }

    /// Stops the fetches: the one under way at its next progress report, later ones at once.
    pub fn abandon(&self) {
        self.abandoned.store(true, Ordering::Relaxed);
    }

    fn is_abandoned(&self) -> bool {
        self.abandoned.load(Ordering::Relaxed)
    }
}

/// Abandons the budget when dropped: held by the job's future, so a job dropped at its time
/// limit stops its fetch.
pub struct AbandonOnDrop(pub Arc<FetchBudget>);

impl Drop for AbandonOnDrop {
    fn drop(&mut self) {
        self.0.abandon();
    }
}

pub struct GitCache {
    root: PathBuf,
    max_total_bytes: u64,
}

/// A cache checked out for one job; the lock is held until it is dropped.
pub struct CachedRepo {
    pub repo: Repository,
    _lock: File,
}

impl GitCache {
    pub fn new(root: impl Into<PathBuf>, max_total_bytes: u64) -> GitCache {
        GitCache {
            root: root.into(),
            max_total_bytes,
        }
    }

    pub fn path_for(&self, key: &CacheKey) -> PathBuf {
        self.root.join(key.dir_name())
    }

    /// Opens (creating if needed) and locks the cache for `key`. Jobs on the same repository
    /// wait for each other here; different repositories proceed in parallel.
    pub fn open(&self, key: &CacheKey) -> Result<CachedRepo, GitError> {
        let path = self.path_for(key);
        let parent = path.parent().unwrap_or(&self.root).to_path_buf();
        std::fs::create_dir_all(&parent)
            .map_err(|e| GitError::Other(format!("cannot create {}: {e}", parent.display())))?;
        let lock_path = path.with_extension("lock");
        let lock = File::create(&lock_path)
            .map_err(|e| GitError::Other(format!("cannot create {}: {e}", lock_path.display())))?;
        lock.lock()
            .map_err(|e| GitError::Other(format!("cannot lock {}: {e}", lock_path.display())))?;
        let repo = match git2::Repository::open_bare(&path) {
            Ok(repo) => repo,
            Err(_) => git2::Repository::init_bare(&path).map_err(|e| GitError::Git {
                context: format!("cannot create a cache at {}", path.display()),
                source: e,
            })?,
        };
        // The last-use stamp for eviction.
        let _ = File::create(path.join("kubeward-last-use"));
        Ok(CachedRepo {
            repo: Repository::from_git2(repo),
            _lock: lock,
        })
    }

    /// Removes least recently used caches until the total is under the limit. Caches in use
    /// (locked) are skipped.
    pub fn evict(&self) -> u64 {
        let mut caches = Vec::new();
        collect_caches(&self.root, &mut caches);
        let mut total: u64 = caches.iter().map(|(_, size, _)| *size).sum();
        caches.sort_by_key(|(_, _, used)| *used);
        let mut freed = 0;
        for (path, size, _) in caches {
            if total <= self.max_total_bytes {
                break;
            }
            let Ok(lock) = File::create(path.with_extension("lock")) else {
                continue;
            };
            if lock.try_lock().is_err() {
                continue;
            }
            if std::fs::remove_dir_all(&path).is_ok() {
                total = total.saturating_sub(size);
                freed += size;
            }
        }
        freed
    }
}

fn dir_size(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

fn collect_caches(dir: &Path, out: &mut Vec<(PathBuf, u64, SystemTime)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if !path.is_dir() {
            continue;
        }
        if path.extension().is_some_and(|e| e == "git") {
            let used = std::fs::metadata(path.join("kubeward-last-use"))
                .and_then(|m| m.modified())
                .unwrap_or(SystemTime::UNIX_EPOCH);
            out.push((path.clone(), dir_size(&path), used));
        } else {
            collect_caches(&path, out);
        }
    }
}

impl CachedRepo {
    /// Fetches `refspecs` from `url` into the cache.
    pub fn fetch(&self, request: &FetchRequest<'_>) -> Result<u64, GitError> {
        fetch_into(&self.repo, request)
    }

    /// The commit a fetched ref points at.
    pub fn ref_target(&self, name: &str) -> Option<git2::Oid> {
        self.repo
            .inner()
            .find_reference(name)
            .ok()
            .and_then(|r| r.peel_to_commit().ok())
            .map(|c| c.id())
    }
}

/// Fetches `refspecs` from `url` into `repo` (the cache, or a CI job's checkout) within the
/// request's budget; the bytes received.
pub fn fetch_into(repo: &Repository, request: &FetchRequest<'_>) -> Result<u64, GitError> {
    let budget = request.budget;
    if budget.is_abandoned() {
        return Err(GitError::FetchAbandoned);
    }
    let allowance = budget
        .cap
        .saturating_sub(budget.received.load(Ordering::Relaxed));
    let received = AtomicU64::new(0);
    let mut callbacks = RemoteCallbacks::new();
    let mut asked = 0;
    callbacks.credentials(|_url, _username, _allowed| {
        asked += 1;
        match request.credentials {
            // libgit2 asks again after a rejection: stop instead of looping.
            Some((user, password)) if asked == 1 => Cred::userpass_plaintext(user, password),
            _ => Err(git2::Error::from_str("authentication failed")),
        }
    });
    callbacks.transfer_progress(|progress| {
        received.store(progress.received_bytes() as u64, Ordering::Relaxed);
        progress.received_bytes() as u64 <= allowance && !budget.is_abandoned()
    });
    let mut options = FetchOptions::new();
    options.remote_callbacks(callbacks);
    options.download_tags(AutotagOption::None);
    if let Some(depth) = request.depth {
        options.depth(depth);
    }
    let repo = repo.inner();
    let mut remote = repo
        .remote_anonymous(request.url)
        .map_err(|e| GitError::Git {
            context: "cannot set up the fetch".into(),
            source: e,
        })?;
    let specs: Vec<&str> = request.refspecs.iter().map(String::as_str).collect();
    let result = remote.fetch(&specs, Some(&mut options), None);
    let bytes = received.load(Ordering::Relaxed);
    budget.received.fetch_add(bytes, Ordering::Relaxed);
    match result {
        Ok(()) => Ok(bytes),
        Err(_) if bytes > allowance => Err(GitError::FetchTooLarge { cap: budget.cap }),
        Err(_) if budget.is_abandoned() => Err(GitError::FetchAbandoned),
        Err(e) => Err(GitError::Git {
            // The URL holds no secret: credentials only go through the callback.
            context: format!("cannot fetch from {}", request.url),
            source: e,
        }),
    }
}
