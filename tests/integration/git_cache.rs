//! The bot's bare caches, fetched over real smart HTTP from a local git server.

use crate::support::git_http;

use git2::Repository;
use kubeward::git::build;
use kubeward::git::cache::{CacheKey, FetchBudget, FetchRequest, GitCache};

const TOKEN: &str = "ghs_test.token.with.dots_and_a_length_that_is_not_forty_0123456789";

fn upstream(root: &std::path::Path) -> (git2::Oid, git2::Oid) {
    let repo = Repository::init_bare(root.join("octo/shop.git")).expect("init");
    let base = build::commit(
        &repo,
        Some("refs/heads/main"),
        &[],
        &[("a.yaml", b"a: 1\n")],
        "base",
    )
    .expect("base");
    let head = build::commit(
        &repo,
        Some("refs/pull/7/head"),
        &[base],
        &[("a.yaml", b"a: 2\n")],
        "pr",
    )
    .expect("pr");
    (base, head)
}

fn key() -> CacheKey {
    CacheKey {
        forge: "github".into(),
        host: "github.example".into(),
        repo_id: 42,
    }
}

#[tokio::test]
async fn fetches_pull_refs_with_the_token_through_the_callback_only() {
    let served = tempfile::tempdir().expect("temp");
    let (base, head) = upstream(served.path());
    let server = git_http::serve(served.path().to_path_buf(), Some(TOKEN)).await;
    let cache_root = tempfile::tempdir().expect("temp");
    let url = format!("{}/octo/shop.git", server.base_url);
    let (got_base, got_head, config_text) = tokio::task::spawn_blocking({
        let root = cache_root.path().to_path_buf();
        move || {
            let cache = GitCache::new(root, 1 << 30);
            let cached = cache.open(&key()).expect("open");
            let refspecs = vec![
                "+refs/heads/main:refs/kubeward/base/main".to_owned(),
                "+refs/pull/7/head:refs/kubeward/pull/7/head".to_owned(),
            ];
            cached
                .fetch(&FetchRequest {
                    url: &url,
                    refspecs: &refspecs,
                    credentials: Some(("x-access-token", TOKEN)),
                    depth: None,
                    budget: &FetchBudget::new(1 << 20),
                })
                .expect("fetch");
            let config =
                std::fs::read_to_string(cache.path_for(&key()).join("config")).unwrap_or_default();
            (
                cached.ref_target("refs/kubeward/base/main"),
                cached.ref_target("refs/kubeward/pull/7/head"),
                config,
            )
        }
    })
    .await
    .expect("join");
    assert_eq!(got_base, Some(base));
    assert_eq!(got_head, Some(head));
    assert!(
        !config_text.contains(TOKEN) && !config_text.contains("http"),
        "{config_text}"
    );
    assert!(
        server
            .seen_auth
            .lock()
            .expect("lock")
            .iter()
            .any(|a| a.starts_with("Basic "))
    );
    assert!(
        cache_root
            .path()
            .join("github/github.example/42.git")
            .is_dir(),
        "keyed by repository id"
    );
}

#[tokio::test]
async fn a_wrong_token_fails_cleanly_without_leaking_it() {
    let served = tempfile::tempdir().expect("temp");
    upstream(served.path());
    let server = git_http::serve(served.path().to_path_buf(), Some(TOKEN)).await;
    let cache_root = tempfile::tempdir().expect("temp");
    let url = format!("{}/octo/shop.git", server.base_url);
    let error = tokio::task::spawn_blocking(move || {
        let cache = GitCache::new(cache_root.path(), 1 << 30);
        let cached = cache.open(&key()).expect("open");
        let refspecs = vec!["+refs/heads/main:refs/kubeward/base/main".to_owned()];
        cached
            .fetch(&FetchRequest {
                url: &url,
                refspecs: &refspecs,
                credentials: Some(("x-access-token", "wrong-secret-value")),
                depth: None,
                budget: &FetchBudget::new(1 << 20),
            })
            .expect_err("rejected")
            .to_string()
    })
    .await
    .expect("join");
    assert!(!error.contains("wrong-secret-value"), "{error}");
}

/// A job's fetches share one byte cap, and a given-up job's fetches stop.
#[tokio::test]
async fn a_jobs_fetches_share_one_byte_cap_and_stop_once_given_up() {
    let served = tempfile::tempdir().expect("temp");
    let repo = Repository::init_bare(served.path().join("big.git")).expect("init");
    // Two branches of 60 kB that do not compress: each fits a 100 kB cap, both do not.
    for (branch, seed) in [
        ("refs/heads/one", 2_654_435_761u32),
        ("refs/heads/two", 2_246_822_519),
    ] {
        let blob: Vec<u8> = (0..15_000u32)
            .flat_map(|i| i.wrapping_mul(seed).rotate_left(i % 31).to_le_bytes())
            .collect();
        build::commit(&repo, Some(branch), &[], &[("big.bin", &blob)], "big").expect("commit");
    }
    let server = git_http::serve(served.path().to_path_buf(), None).await;
    let url = format!("{}/big.git", server.base_url);
    let cache_root = tempfile::tempdir().expect("temp");
    let (one, error, abandoned) = tokio::task::spawn_blocking(move || {
        let cache = GitCache::new(cache_root.path(), 1 << 30);
        let cached = cache.open(&key()).expect("open");
        let fetch = |refspec: &str, budget: &FetchBudget| {
            cached.fetch(&FetchRequest {
                url: &url,
                refspecs: &[refspec.to_owned()],
                credentials: None,
                depth: None,
                budget,
            })
        };
        // Alone, the second would fit as the first did; after it, it does not.
        let budget = FetchBudget::new(100_000);
        let one = fetch("+refs/heads/one:refs/kubeward/one", &budget).expect("fits");
        let error = fetch("+refs/heads/two:refs/kubeward/two", &budget).expect_err("capped");
        // A given-up job's next fetch does not start.
        let budget = FetchBudget::new(1 << 30);
        budget.abandon();
        let abandoned = fetch("+refs/heads/two:refs/kubeward/two", &budget).expect_err("given up");
        (one, error, abandoned)
    })
    .await
    .expect("join");
    assert!((60_000..100_000).contains(&one), "{one} bytes");
    assert!(
        matches!(abandoned, kubeward::git::GitError::FetchAbandoned),
        "{abandoned}"
    );
    assert!(
        matches!(
            error,
            kubeward::git::GitError::FetchTooLarge { cap: 100_000 }
        ),
        "a distinct error, so the job concludes instead of retrying: {error}"
    );
}

#[test]
fn caches_are_locked_per_repository_and_evicted_least_recently_used_first() {
    let root = tempfile::tempdir().expect("temp");
    let cache = GitCache::new(root.path(), 0);
    let first = cache.open(&key()).expect("open");
    let other = CacheKey {
        repo_id: 43,
        ..key()
    };
    drop(cache.open(&other).expect("open"));
    // In use: survives eviction; idle: evicted.
    cache.evict();
    assert!(cache.path_for(&key()).exists());
    assert!(!cache.path_for(&other).exists());
    // A second job on the same repository waits for the first.
    let (tx, rx) = std::sync::mpsc::channel();
    let root_path = root.path().to_path_buf();
    let waiter = std::thread::spawn(move || {
        let cache = GitCache::new(root_path, 1 << 30);
        let _second = cache.open(&key()).expect("open");
        tx.send(()).expect("send");
    });
    assert!(
        rx.recv_timeout(std::time::Duration::from_millis(200))
            .is_err(),
        "blocked while held"
    );
    drop(first);
    assert!(rx.recv_timeout(std::time::Duration::from_secs(5)).is_ok());
    waiter.join().expect("join");
}
