//! The check run is always concluded: a review that outruns its time limit or fails for good
//! on its last attempt leaves a completed check that says so, never one in progress.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use kubeward::bot::github::{BotSettings, GitAccess, GitHubWorker};
use kubeward::bot::runner::BoxFuture;
use kubeward::bot::worker::{WorkerSettings, run as run_worker};
use kubeward::forge::github::api::{ApiError, ApiFuture, ApiRequest, GitHubApi, Method};
use kubeward::forge::github::fake::FakeGitHub;
use kubeward::forge::job::{GitHubJob, RepoRef};
use kubeward::git::build;
use kubeward::git::cache::GitCache;
use kubeward::queue::{Queue, QueueConfig, now_ms};
use serde_json::json;
use tokio::sync::watch;

/// The upstream repository on disk; asking for credentials takes `delay` (a slow fetch).
pub(crate) struct LocalGit {
    pub(crate) url: String,
    pub(crate) delay: Duration,
}
impl From<String> for LocalGit {
    fn from(url: String) -> LocalGit {
        LocalGit {
            url,
            delay: Duration::ZERO,
        }
    }
}
impl GitAccess for LocalGit {
    fn url(&self, _repo: &RepoRef) -> String {
        self.url.clone()
    }
    fn credentials(&self, _i: u64) -> BoxFuture<'_, Result<Option<(String, String)>, ApiError>> {
        Box::pin(async {
            tokio::time::sleep(self.delay).await;
            Ok(None)
        })
    }
}

/// The fake GitHub, with chosen requests slowed down or failing.
struct Wrapped {
    fake: Arc<FakeGitHub>,
    slow_get: Option<(String, Duration)>,
    /// POSTs whose path contains the text fail with the status.
    fail_post: Option<(String, u16)>,
    /// How many check-run updates carrying annotations land but lose their answer.
    lost_annotation_answers: AtomicUsize,
}
impl Wrapped {
    fn around(fake: Arc<FakeGitHub>) -> Wrapped {
        Wrapped {
            fake,
            slow_get: None,
            fail_post: None,
            lost_annotation_answers: AtomicUsize::new(0),
        }
    }
}
impl GitHubApi for Wrapped {
    fn call(&self, installation: u64, request: ApiRequest) -> ApiFuture<'_> {
        Box::pin(async move {
            let carries_annotations = request.method == Method::Patch
                && request.body.as_ref().is_some_and(|b| {
                    b["output"]["annotations"]
                        .as_array()
                        .is_some_and(|a| !a.is_empty())
                });
            if carries_annotations
                && self
                    .lost_annotation_answers
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok()
            {
                self.fake.call(installation, request.clone()).await?;
                return Err(ApiError::Unconfirmed(format!("PATCH {}", request.path)));
            }
            if let Some((needle, d)) = &self.slow_get
                && request.method == Method::Get
                && request.path.contains(needle.as_str())
            {
                tokio::time::sleep(*d).await;
            }
            if let Some((needle, status)) = &self.fail_post
                && request.method == Method::Post
                && request.path.contains(needle.as_str())
            {
                return Err(ApiError::Status {
                    method: "POST",
                    path: request.path.clone(),
                    status: *status,
                    message: "refused".into(),
                });
            }
            self.fake.call(installation, request).await
        })
    }
}

pub(crate) const DEPLOY: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: s, namespace: s}\nspec:\n  selector: {matchLabels: {a: s}}\n  template:\n    metadata: {labels: {a: s}}\n    spec:\n      containers:\n        - name: w\n          image: s:1\n          securityContext:\n            privileged: true\n";

fn setup() -> (tempfile::TempDir, String, git2::Oid, git2::Oid) {
    setup_with(DEPLOY)
}

/// A repository whose pull request 7 adds `d.yaml` with this text.
fn setup_with(manifest: &str) -> (tempfile::TempDir, String, git2::Oid, git2::Oid) {
    let readme: &[(&str, &[u8])] = &[("README", b"x\n")];
    setup_files(readme, &[("d.yaml", manifest.as_bytes())])
}

/// A repository whose main branch holds `base_files` and whose pull request 7 adds
/// `added_files` to them.
pub(crate) fn setup_files(
    base_files: &[(&str, &[u8])],
    added_files: &[(&str, &[u8])],
) -> (tempfile::TempDir, String, git2::Oid, git2::Oid) {
    let dir = tempfile::tempdir().expect("test setup");
    let path = dir.path().join("up.git");
    let repo = git2::Repository::init_bare(&path).expect("test setup");
    let base =
        build::commit(&repo, Some("refs/heads/main"), &[], base_files, "b").expect("test setup");
    let head_files: Vec<(&str, &[u8])> = base_files.iter().chain(added_files).copied().collect();
    let head = build::commit(&repo, Some("refs/pull/7/head"), &[base], &head_files, "h")
        .expect("test setup");
    (dir, path.display().to_string(), base, head)
}

pub(crate) fn pull(base: git2::Oid, head: git2::Oid) -> serde_json::Value {
    json!({"number": 7, "state": "open", "draft": false,
        "head": {"sha": head.to_string(), "ref": "f", "repo": {"id": 1}},
        "base": {"sha": base.to_string(), "ref": "main", "repo": {"id": 1}}})
}

/// A second push to pull request 7, on top of `head`.
fn push_again(git: &str, head: git2::Oid) -> git2::Oid {
    let repo = git2::Repository::open_bare(git).expect("repo");
    build::commit(
        &repo,
        Some("refs/pull/7/head"),
        &[head],
        &[("README", b"y\n"), ("d.yaml", DEPLOY.as_bytes())],
        "newer",
    )
    .expect("commit")
}

pub(crate) fn review_job(head: &str) -> kubeward::queue::NewJob {
    push_job(head, None)
}

/// A review of `head`, queued by a push that replaced `previous_head`.
fn push_job(head: &str, previous_head: Option<String>) -> kubeward::queue::NewJob {
    GitHubJob::Review {
        installation: 1,
        repo: RepoRef {
            id: 1,
            owner: "o".into(),
            name: "r".into(),
        },
        number: 7,
        head_sha: head.into(),
        trigger: "synchronize".into(),
        new_check_run: false,
        previous_head,
    }
    .to_new_job("github")
}

/// A real worker on `queue`; send `true` to stop it.
fn start_worker(
    queue: &Queue,
    api: Arc<dyn GitHubApi>,
    git: impl Into<LocalGit>,
    dir: &std::path::Path,
    job_timeout: Duration,
    review_time_limit: Duration,
) -> (watch::Sender<bool>, tokio::task::JoinHandle<()>) {
    let review = crate::support::review_limits(100, review_time_limit);
    start_worker_with(queue, api, Arc::new(git.into()), dir, job_timeout, review)
}

/// [`start_worker`] with these review limits.
pub(crate) fn start_worker_with(
    queue: &Queue,
    api: Arc<dyn GitHubApi>,
    git: Arc<dyn GitAccess>,
    dir: &std::path::Path,
    job_timeout: Duration,
    review: kubeward::bot::fetch::ReviewLimits,
) -> (watch::Sender<bool>, tokio::task::JoinHandle<()>) {
    let worker = Arc::new(GitHubWorker {
        api,
        git,
        cache: Arc::new(GitCache::new(dir.join("cache"), 1 << 30)),
        settings: BotSettings {
            bot_login: "kubeward[bot]".into(),
            review_drafts: false,
            host: "t".into(),
            details_url: None,
            review,
            max_annotations: kubeward::forge::github::publish::DEFAULT_MAX_ANNOTATIONS,
        },
    });
    let runners: kubeward::bot::worker::Runners = Arc::new(std::collections::HashMap::from([(
        "github".to_owned(),
        worker as Arc<dyn kubeward::bot::runner::JobRunner>,
    )]));
    let (stop, rx) = watch::channel(false);
    let task = tokio::spawn(run_worker(
        "w".into(),
        queue.clone(),
        runners,
        WorkerSettings {
            poll_interval: Duration::from_millis(20),
            job_timeout,
            // Heartbeats every second: a superseded job learns of it within one.
            lease: Duration::from_secs(3),
            ..WorkerSettings::default()
        },
        rx,
    ));
    (stop, task)
}

async fn run_until_settled(
    queue: &Queue,
    api: Arc<dyn GitHubApi>,
    git: impl Into<LocalGit>,
    dir: &std::path::Path,
    job_timeout: Duration,
    review_time_limit: Duration,
) {
    let (stop, task) = start_worker(queue, api, git, dir, job_timeout, review_time_limit);
    wait_until_settled(queue).await;
    let _ = stop.send(true);
    let _ = task.await;
}

/// Waits (30 s at most) until no job is queued or running.
pub(crate) async fn wait_until_settled(queue: &Queue) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = queue.stats(now_ms()).await.expect("test setup");
        if s.queued == 0 && s.running == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "{s:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Queues a review of `head` and runs a worker (usual limits) until the queue is empty; the
/// job's id.
async fn review_until_settled(
    queue: &Queue,
    api: Arc<dyn GitHubApi>,
    git: &str,
    dir: &std::path::Path,
    head: git2::Oid,
) -> i64 {
    let id = queue
        .enqueue(review_job(&head.to_string()))
        .await
        .expect("enqueue")
        .id;
    let limits = (Duration::from_secs(30), Duration::from_secs(20));
    run_until_settled(queue, api, git.to_owned(), dir, limits.0, limits.1).await;
    id
}

/// The fake GitHub holding pull request 7 from `base` to `head`.
pub(crate) fn github_with_pull(base: git2::Oid, head: git2::Oid) -> Arc<FakeGitHub> {
    let fake = Arc::new(FakeGitHub::new("kubeward[bot]"));
    fake.add_pull(7, pull(base, head));
    fake.set_merge_base(&base.to_string(), &head.to_string(), &base.to_string());
    fake
}

pub(crate) fn summary_comment(fake: &FakeGitHub) -> String {
    fake.issue_comments()
        .into_iter()
        .find_map(|c| c["body"].as_str().map(str::to_owned))
        .expect("a summary comment")
}

pub(crate) fn only_check_run(fake: &FakeGitHub) -> serde_json::Value {
    let runs = fake.check_runs();
    assert_eq!(runs.len(), 1, "{runs:#?}");
    runs[0].clone()
}

/// The conclusions of the check runs on `head`, in creation order ("in progress" if none).
fn conclusions_on(fake: &FakeGitHub, head: git2::Oid) -> Vec<String> {
    fake.check_runs()
        .iter()
        .filter(|r| r["head_sha"] == head.to_string())
        .map(|r| r["conclusion"].as_str().unwrap_or("in progress").to_owned())
        .collect()
}

pub(crate) async fn one_attempt_queue() -> Queue {
    Queue::connect("sqlite::memory:")
        .await
        .expect("queue")
        .with_config(QueueConfig::default().with_max_attempts(1))
        .expect("config")
}

/// Fetching and reviewing past the review time limit leaves the change unjudged: the check
/// says so and fails (the policy's default `incomplete: failure`), never a neutral that
/// required checks let pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_review_past_its_time_limit_concludes_its_check_failure() {
    let (dir, git, base, head) = setup();
    let fake = github_with_pull(base, head);
    let queue = one_attempt_queue().await;
    queue
        .enqueue(review_job(&head.to_string()))
        .await
        .expect("enqueue");
    let slow_fetch = LocalGit {
        url: git,
        delay: Duration::from_secs(3),
    };
    let limits = (Duration::from_secs(30), Duration::from_millis(300));
    run_until_settled(
        &queue,
        fake.clone(),
        slow_fetch,
        dir.path(),
        limits.0,
        limits.1,
    )
    .await;
    let check = only_check_run(&fake);
    assert_eq!(check["status"], "completed", "{check:#}");
    assert_eq!(check["conclusion"], "failure", "{check:#}");
    assert!(
        check["output"]["title"]
            .as_str()
            .is_some_and(|t| t.contains("time limit")),
        "{check:#}"
    );
}

/// Once there is a plan, a slow publish is not cut short by the review time limit: the check
/// concludes with the plan's conclusion, never a neutral that required checks let pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_publish_still_concludes_with_the_reviews_conclusion() {
    let (dir, git, base, head) = setup();
    let fake = github_with_pull(base, head);
    let api = Arc::new(Wrapped {
        slow_get: Some(("/pulls/7/comments".into(), Duration::from_secs(1))),
        ..Wrapped::around(fake.clone())
    });
    let queue = one_attempt_queue().await;
    queue
        .enqueue(review_job(&head.to_string()))
        .await
        .expect("enqueue");
    let limits = (Duration::from_secs(30), Duration::from_millis(300));
    run_until_settled(&queue, api, git, dir.path(), limits.0, limits.1).await;
    let check = only_check_run(&fake);
    assert_eq!(check["status"], "completed", "{check:#}");
    assert_eq!(check["conclusion"], "failure", "{check:#}");
}

/// A job the worker cuts off at its own time limit (here: publishing hangs) concluded nothing
/// itself; on its last attempt the worker has its check failed, saying why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_cut_off_by_the_worker_on_its_last_attempt_fails_its_check() {
    let (dir, git, base, head) = setup();
    let fake = github_with_pull(base, head);
    let api = Arc::new(Wrapped {
        slow_get: Some(("/pulls/7/comments".into(), Duration::from_secs(30))),
        ..Wrapped::around(fake.clone())
    });
    let queue = one_attempt_queue().await;
    let id = queue
        .enqueue(review_job(&head.to_string()))
        .await
        .expect("enqueue")
        .id;
    let limits = (Duration::from_secs(2), Duration::from_secs(20));
    run_until_settled(&queue, api, git, dir.path(), limits.0, limits.1).await;
    let job = queue.get(id).await.expect("read").expect("job");
    assert_eq!(job.state, kubeward::queue::JobState::Dead, "{job:?}");
    let check = only_check_run(&fake);
    assert_eq!(check["status"], "completed", "{check:#}");
    assert_eq!(check["conclusion"], "failure", "{check:#}");
    let summary = check["output"]["summary"].as_str().unwrap_or("");
    assert!(summary.contains("time limit"), "{check:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_review_failing_at_the_api_on_its_last_attempt_concludes_its_check() {
    let (dir, git, base, head) = setup();
    let fake = github_with_pull(base, head);
    let api = Arc::new(Wrapped {
        fail_post: Some(("/issues/7/comments".into(), 500)),
        ..Wrapped::around(fake.clone())
    });
    let queue = one_attempt_queue().await;
    let id = review_until_settled(&queue, api, &git, dir.path(), head).await;
    let job = queue.get(id).await.expect("read").expect("job");
    assert!(job.last_error.is_some(), "{job:?}");
    let check = only_check_run(&fake);
    assert_eq!(check["status"], "completed", "{check:#}");
    assert_eq!(check["conclusion"], "failure", "{check:#}");
}

/// A re-requested check on a known pull request is that PR's work: a newer push supersedes it
/// while it waits, instead of two jobs publishing on the same pull request.
#[tokio::test]
async fn a_newer_push_supersedes_a_queued_rerequest_of_the_same_pull_request() {
    let queue = one_attempt_queue().await;
    let repo = RepoRef {
        id: 1,
        owner: "o".into(),
        name: "r".into(),
    };
    let rerequest = GitHubJob::Rerequest {
        installation: 1,
        repo: repo.clone(),
        head_sha: "a".repeat(40),
        pull_numbers: vec![7],
    }
    .to_new_job("github");
    assert_eq!(rerequest.pr_number, Some(7));
    let rerequest = queue.enqueue(rerequest).await.expect("enqueue").id;
    queue
        .enqueue(review_job(&"b".repeat(40)))
        .await
        .expect("enqueue");
    let job = queue.get(rerequest).await.expect("read").expect("job");
    assert_eq!(job.state, kubeward::queue::JobState::Superseded, "{job:?}");
}

/// A failed attempt that will be retried concludes its check as a failure (never neutral, which
/// a required check counts as passing): if a newer push then supersedes the retry, the older
/// head's check is not left in progress.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_review_superseded_while_waiting_leaves_no_check_in_progress() {
    let (dir, git, base, head) = setup();
    let fake = github_with_pull(base, head);
    let api = Arc::new(Wrapped {
        fail_post: Some(("/issues/7/comments".into(), 500)),
        ..Wrapped::around(fake.clone())
    });
    let queue = Queue::connect("sqlite::memory:")
        .await
        .expect("queue")
        .with_config(
            QueueConfig::default()
                .with_max_attempts(3)
                .with_backoff(60_000, 60_000),
        )
        .expect("config");
    let id = queue
        .enqueue(review_job(&head.to_string()))
        .await
        .expect("enqueue")
        .id;
    let (stop, task) = start_worker(
        &queue,
        api,
        git,
        dir.path(),
        Duration::from_secs(30),
        Duration::from_secs(20),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let job = queue.get(id).await.expect("read").expect("job");
        if job.attempts >= 1 && job.state == kubeward::queue::JobState::Queued {
            break;
        }
        assert!(Instant::now() < deadline, "{job:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = stop.send(true);
    let _ = task.await;
    let check = only_check_run(&fake);
    assert_eq!(check["status"], "completed", "{check:#}");
    assert_eq!(check["conclusion"], "failure", "{check:#}");

    // A newer push supersedes the waiting retry; nothing is left in progress.
    queue
        .enqueue(review_job(&"f".repeat(40)))
        .await
        .expect("enqueue");
    let job = queue.get(id).await.expect("read").expect("job");
    assert_eq!(job.state, kubeward::queue::JobState::Superseded);
    assert!(
        fake.check_runs().iter().all(|r| r["status"] == "completed"),
        "{:#?}",
        fake.check_runs()
    );
}

/// GitHub rejects a whole review (422) without saying which comment. When even the retry with
/// the comments GitHub's own diff can anchor is refused, every comment is said in the summary
/// comment: the job still concludes, nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn comments_of_a_rejected_review_are_said_in_the_summary_and_the_check_concludes() {
    let (dir, git, base, head) = setup();
    let fake = github_with_pull(base, head);
    fake.set_diff_lines("d.yaml", 1..=13);
    let api = Arc::new(Wrapped {
        fail_post: Some(("/pulls/7/reviews".into(), 422)),
        ..Wrapped::around(fake.clone())
    });
    let queue = one_attempt_queue().await;
    let id = review_until_settled(&queue, api, &git, dir.path(), head).await;
    let job = queue.get(id).await.expect("read").expect("job");
    assert_eq!(job.state, kubeward::queue::JobState::Done, "{job:?}");
    assert!(
        fake.review_comments().is_empty(),
        "{:#?}",
        fake.review_comments()
    );
    let summary = summary_comment(&fake);
    assert!(
        summary.contains("GitHub refused to place some inline comments")
            && summary.contains("- `d.yaml` line 10")
            && summary.contains("- `d.yaml` line 13"),
        "{summary}"
    );
    let check = only_check_run(&fake);
    assert_eq!(check["status"], "completed", "{check:#}");
    assert_eq!(check["conclusion"], "failure", "{check:#}");
}

/// Reviews that end without a plan conclude as docs/bot.md's table says: a draft neutral, an
/// invalid policy on the base branch a failure naming the file and line. Neither posts a
/// review. (A change over `maxChangedFiles` is reviewed as far as it fits: see
/// `hostile_pr`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drafts_invalid_policies_and_oversize_changes_conclude_as_documented() {
    let readme: (&str, &[u8]) = ("README", b"x\n");
    let deployment: (&str, &[u8]) = ("d.yaml", DEPLOY.as_bytes());
    let bad_policy: (&str, &[u8]) = (
        ".kubeward.yaml",
        b"failOn: warning\nrules:\n  noSuchRule: ignore\n",
    );
    struct Case<'a> {
        name: &'a str,
        base_files: Vec<(&'a str, &'a [u8])>,
        added_files: Vec<(&'a str, &'a [u8])>,
        draft: bool,
        conclusion: &'a str,
        says: &'a [&'a str],
    }
    let cases = [
        Case {
            name: "draft",
            base_files: vec![readme],
            added_files: vec![deployment],
            draft: true,
            conclusion: "neutral",
            says: &["Draft"],
        },
        Case {
            name: "invalid policy",
            base_files: vec![readme, bad_policy],
            added_files: vec![deployment],
            draft: false,
            conclusion: "failure",
            says: &[
                "Invalid kubeward configuration",
                ".kubeward.yaml:3:3",
                "noSuchRule",
            ],
        },
    ];
    for Case {
        name: case,
        base_files,
        added_files,
        draft,
        conclusion,
        says,
    } in cases
    {
        let (dir, git, base, head) = setup_files(&base_files, &added_files);
        let fake = github_with_pull(base, head);
        let mut pr = pull(base, head);
        pr["draft"] = json!(draft);
        fake.add_pull(7, pr);
        let queue = one_attempt_queue().await;
        let id = review_until_settled(&queue, fake.clone(), &git, dir.path(), head).await;
        let job = queue.get(id).await.expect("read").expect("job");
        assert_eq!(
            job.state,
            kubeward::queue::JobState::Done,
            "{case}: {job:?}"
        );
        let check = only_check_run(&fake);
        assert_eq!(check["status"], "completed", "{case}: {check:#}");
        assert_eq!(check["conclusion"], conclusion, "{case}: {check:#}");
        let output = format!(
            "{} {}",
            check["output"]["title"], check["output"]["summary"]
        );
        for text in says {
            assert!(output.contains(text), "{case}: {text:?} in {output}");
        }
        assert!(fake.review_comments().is_empty(), "{case}: no review");
    }
}

/// The policy comes from the base branch's tip, which is fetched by its commit: a base branch
/// whose name git allows but a refspec would mangle (`+`, `@`) is judged by its own tip, not
/// by the older merge-base.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_policy_comes_from_the_tip_of_a_base_branch_with_any_name() {
    let (dir, git, merge_base, head) = setup();
    let repo = git2::Repository::open_bare(&git).expect("repo");
    // After the pull request branched off, the base branch stopped failing on anything.
    let tip = build::commit(
        &repo,
        Some("refs/heads/release+1@x"),
        &[merge_base],
        &[("README", b"x\n"), (".kubeward.yaml", b"failOn: never\n")],
        "relax",
    )
    .expect("commit");
    repo.find_reference("refs/heads/main")
        .expect("main")
        .delete()
        .expect("delete main");
    let fake = github_with_pull(tip, head);
    fake.set_merge_base(&tip.to_string(), &head.to_string(), &merge_base.to_string());
    let mut pr = pull(tip, head);
    pr["base"]["ref"] = json!("release+1@x");
    fake.add_pull(7, pr);
    // Over smart HTTP, as from GitHub: only what is asked for arrives.
    let server = crate::support::git_http::serve(dir.path().to_owned(), None).await;
    let url = format!("{}/up.git", server.base_url);
    let queue = one_attempt_queue().await;
    let id = review_until_settled(&queue, fake.clone(), &url, dir.path(), head).await;
    let job = queue.get(id).await.expect("read").expect("job");
    assert_eq!(job.state, kubeward::queue::JobState::Done, "{job:?}");
    let check = only_check_run(&fake);
    assert_eq!(check["conclusion"], "success", "{check:#}");
}

/// A review superseded by a newer push while it runs concludes its check `cancelled`; the
/// newer head gets its own run with the review's conclusion.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_review_superseded_while_running_concludes_cancelled() {
    let (dir, git, base, head) = setup();
    let newer = push_again(&git, head);
    let fake = github_with_pull(base, head);
    fake.set_merge_base(&base.to_string(), &newer.to_string(), &base.to_string());
    let queue = one_attempt_queue().await;
    let first = queue
        .enqueue(review_job(&head.to_string()))
        .await
        .expect("enqueue")
        .id;
    // The fetch takes long enough for the heartbeat to learn of the newer push.
    let slow_fetch = LocalGit {
        url: git.clone(),
        delay: Duration::from_secs(3),
    };
    let (stop, task) = start_worker(
        &queue,
        fake.clone(),
        slow_fetch,
        dir.path(),
        Duration::from_secs(30),
        Duration::from_secs(20),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while queue.get(first).await.expect("read").expect("job").state
        != kubeward::queue::JobState::Running
    {
        assert!(Instant::now() < deadline, "the first review never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    fake.add_pull(7, pull(base, newer));
    queue
        .enqueue(review_job(&newer.to_string()))
        .await
        .expect("enqueue");
    wait_until_settled(&queue).await;
    let _ = stop.send(true);
    let _ = task.await;
    assert_eq!(conclusions_on(&fake, head), ["cancelled"]);
    assert_eq!(conclusions_on(&fake, newer), ["failure"]);
}

/// A push's review concludes `cancelled` whatever is still open on the head it replaced (a
/// review of it released at a shutdown and superseded while queued never resumes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_cancels_the_open_check_runs_of_the_head_it_replaced() {
    let (dir, git, base, head) = setup();
    let newer = push_again(&git, head);
    let fake = github_with_pull(base, newer);
    fake.set_merge_base(&base.to_string(), &newer.to_string(), &base.to_string());
    // The replaced head's run, left in progress by a review that never resumed.
    fake.call(
        1,
        ApiRequest::post(
            "/repos/o/r/check-runs",
            json!({"name": "kubeward", "head_sha": head.to_string(), "status": "in_progress",
                "external_id": "left-behind"}),
        ),
    )
    .await
    .expect("a run in progress");
    let queue = one_attempt_queue().await;
    let job = push_job(&newer.to_string(), Some(head.to_string()));
    queue.enqueue(job).await.expect("enqueue");
    let limits = (Duration::from_secs(30), Duration::from_secs(20));
    run_until_settled(&queue, fake.clone(), git, dir.path(), limits.0, limits.1).await;
    assert_eq!(conclusions_on(&fake, head), ["cancelled"]);
    assert_eq!(conclusions_on(&fake, newer), ["failure"]);
}

/// Annotations append on every check-run update. When an update carrying them lands but its
/// answer is lost, the publisher reads the run back and goes on from what landed: the check
/// ends with each annotation once, over several updates of at most 50.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_run_update_with_a_lost_answer_adds_no_annotation_twice() {
    let manifest = (0..20)
        .map(|i| DEPLOY.replace("name: s,", &format!("name: s{i},")))
        .collect::<Vec<_>>()
        .join("---\n");
    let lines = manifest.lines().count() as u64;
    let (dir, git, base, head) = setup_with(&manifest);
    let mut runs = Vec::new();
    for lost in [0, 2] {
        let fake = github_with_pull(base, head);
        fake.set_diff_lines("d.yaml", 1..=lines);
        // A refused review: its comments become annotations.
        let api = Arc::new(Wrapped {
            fail_post: Some(("/pulls/7/reviews".into(), 422)),
            lost_annotation_answers: AtomicUsize::new(lost),
            ..Wrapped::around(fake.clone())
        });
        let queue = one_attempt_queue().await;
        let cache = dir.path().join(format!("lost-{lost}"));
        let id = review_until_settled(&queue, api.clone(), &git, &cache, head).await;
        let job = queue.get(id).await.expect("read").expect("job");
        assert_eq!(job.state, kubeward::queue::JobState::Done, "{job:?}");
        assert_eq!(api.lost_annotation_answers.load(Ordering::SeqCst), 0);
        let check = only_check_run(&fake);
        assert_eq!(check["conclusion"], "failure", "{check:#}");
        let to_run = |method: Method| {
            fake.requests()
                .into_iter()
                .filter(|r| r.method == method && r.path.contains("/check-runs/"))
                .count()
        };
        runs.push((
            check["output"]["annotations_count"]
                .as_u64()
                .expect("count"),
            to_run(Method::Patch),
            to_run(Method::Get),
        ));
    }
    let [
        (annotations, updates, reads),
        (lossy_annotations, lossy_updates, lossy_reads),
    ] = runs[..]
    else {
        unreachable!("two runs")
    };
    assert!(annotations > 100, "{runs:?}");
    assert_eq!(annotations, lossy_annotations, "each annotation once");
    assert_eq!(updates, annotations.div_ceil(50) as usize, "{runs:?}");
    // Each lost answer cost one fresh read of the run, not a second update.
    assert_eq!(updates, lossy_updates, "{runs:?}");
    assert_eq!(reads + 2, lossy_reads, "{runs:?}");
}

/// When GitHub refuses the review, the comments its own diff (`GET /pulls/{n}/files`) can
/// anchor are posted again at once; the others are said in the summary and become annotations,
/// and a rescan posts nothing twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_review_is_retried_with_what_githubs_diff_can_anchor() {
    let (dir, git, base, head) = setup();
    let fake = github_with_pull(base, head);
    // GitHub's diff lacks line 10 (the container), where findings about what the container
    // lacks are anchored; line 13 (`privileged: true`) is there.
    fake.set_diff_lines("d.yaml", (1..=9).chain(11..=20));
    let queue = one_attempt_queue().await;
    for _ in 0..2 {
        review_until_settled(&queue, fake.clone(), &git, dir.path(), head).await;
    }
    let reviews: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/pulls/7/reviews"))
        .collect();
    let lines = |r: &kubeward::forge::github::fake::Recorded| -> Vec<u64> {
        r.body.as_ref().expect("body")["comments"]
            .as_array()
            .expect("comments")
            .iter()
            .filter_map(|c| c["line"].as_u64())
            .collect()
    };
    let sent: Vec<Vec<u64>> = reviews.iter().map(lines).collect();
    // Refused with line 10; retried at once without it; the rescan tries line 10 alone (it is
    // not on the PR) and, refused again, does not retry.
    assert_eq!(sent.len(), 3, "{sent:?}");
    assert!(sent[0].contains(&10) && sent[0].contains(&13), "{sent:?}");
    assert_eq!(
        sent[1],
        sent[0]
            .iter()
            .copied()
            .filter(|l| *l != 10)
            .collect::<Vec<_>>()
    );
    assert_eq!(sent[2], vec![10]);
    let posted: Vec<u64> = fake
        .review_comments()
        .iter()
        .filter_map(|c| c["line"].as_u64())
        .collect();
    assert_eq!(posted, sent[1], "posted once each");
    assert!(
        fake.request_log()
            .iter()
            .any(|r| r.starts_with("GET /repos/o/r/pulls/7/files")),
        "GitHub's diff was read"
    );
    let summary = summary_comment(&fake);
    assert!(
        summary.contains("GitHub refused to place some inline comments")
            && summary.contains("- `d.yaml` line 10")
            && !summary.contains("- `d.yaml` line 13")
            && !summary.contains("- `d.yaml` line 3"),
        "{summary}"
    );
    let check = only_check_run(&fake);
    assert_eq!(check["conclusion"], "failure", "{check:#}");
    assert!(
        check["output"]["annotations_count"].as_u64() >= Some(1),
        "the refused comments are annotations: {check:#}"
    );
}
