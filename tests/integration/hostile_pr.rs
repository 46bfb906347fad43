//! What a hostile pull request cannot do to a required check: crash the bot or keep it busy
//! forever (reviews run in a child process under a memory limit and a deadline), or force a
//! `neutral` (a review that could not judge the whole change fails by default).

use std::sync::Arc;
use std::time::Duration;

use kubeward::bot::fetch::ReviewLimits;
use kubeward::bot::github::GitAccess;
use kubeward::bot::runner::BoxFuture;
use kubeward::forge::github::api::{ApiError, GitHubApi};
use kubeward::forge::github::fake::FakeGitHub;
use kubeward::forge::job::RepoRef;
use kubeward::queue::{JobState, Queue};

use crate::github_check_lifecycle::{
    DEPLOY, LocalGit, github_with_pull, only_check_run, review_job, setup_files, start_worker_with,
    summary_comment, wait_until_settled,
};

/// The upstream on disk, with a token that must never reach the review process.
struct TokenGit(String);

const TOKEN: &str = "ghs_hostile.pr.token.value";

impl GitAccess for TokenGit {
    fn url(&self, _repo: &RepoRef) -> String {
        self.0.clone()
    }
    fn credentials(&self, _i: u64) -> BoxFuture<'_, Result<Option<(String, String)>, ApiError>> {
        Box::pin(async { Ok(Some(("x-access-token".to_owned(), TOKEN.to_owned()))) })
    }
}

/// Reviews pull request 7 with these limits until the queue is empty; the job as it ended.
pub(crate) async fn review(
    fake: &Arc<FakeGitHub>,
    git: &str,
    dir: &std::path::Path,
    head: git2::Oid,
    limits: ReviewLimits,
) -> kubeward::queue::Job {
    let queue = Queue::connect("sqlite::memory:").await.expect("queue");
    let id = queue
        .enqueue(review_job(&head.to_string()))
        .await
        .expect("enqueue")
        .id;
    let api = fake.clone() as Arc<dyn GitHubApi>;
    let (stop, task) = start_worker_with(
        &queue,
        api,
        Arc::new(LocalGit::from(git.to_owned())),
        dir,
        Duration::from_secs(60),
        limits,
    );
    wait_until_settled(&queue).await;
    let _ = stop.send(true);
    let _ = task.await;
    queue.get(id).await.expect("read").expect("job")
}

fn limits(max_changed: usize) -> ReviewLimits {
    crate::support::review_limits(max_changed, Duration::from_secs(30))
}

fn check_text(check: &serde_json::Value) -> String {
    format!(
        "{} {}",
        check["output"]["title"], check["output"]["summary"]
    )
}

/// 150 empty files are no work: the privileged Deployment beside them is reviewed and fails,
/// as it does alone (it used to conclude `neutral` "Too large to review").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_privileged_workload_among_many_empty_files_still_fails() {
    let empties: Vec<String> = (0..150).map(|i| format!("empty/{i:03}.yaml")).collect();
    let mut added: Vec<(&str, &[u8])> = empties.iter().map(|p| (p.as_str(), &b""[..])).collect();
    added.push(("d.yaml", DEPLOY.as_bytes()));
    let (dir, git, base, head) = setup_files(&[("README", b"x\n")], &added);
    let fake = github_with_pull(base, head);
    let job = review(&fake, &git, dir.path(), head, limits(100)).await;
    assert_eq!(job.state, JobState::Done, "{job:?}");
    let check = only_check_run(&fake);
    assert_eq!(check["conclusion"], "failure", "{check:#}");
    let text = check_text(&check);
    assert!(!text.contains("Incomplete"), "{text}");
    assert!(
        text.contains("privilegeEscalationAllowed") || text.contains("privileged"),
        "{text}"
    );
    assert!(
        !fake.review_comments().is_empty(),
        "the finding is said inline"
    );
}

/// A change over the file budget is reviewed as far as it fits, in path order; the rest are
/// named, and the check fails even though what was reviewed is clean.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_over_its_file_budget_reviews_what_fits_and_fails_incomplete() {
    let clean = |i: usize| {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c{i}, namespace: s}}\ndata: {{a: b}}\n"
        )
    };
    let files: Vec<(String, String)> = (0..12)
        .map(|i| (format!("config/{i:02}.yaml"), clean(i)))
        .collect();
    let mut added: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(p, t)| (p.as_str(), t.as_bytes()))
        .collect();
    // Sorts first, so it is among the reviewed ones.
    added.push(("a/d.yaml", DEPLOY.as_bytes()));
    let (dir, git, base, head) = setup_files(&[("README", b"x\n")], &added);
    let fake = github_with_pull(base, head);
    let job = review(&fake, &git, dir.path(), head, limits(10)).await;
    assert_eq!(job.state, JobState::Done, "{job:?}");
    let check = only_check_run(&fake);
    assert_eq!(check["conclusion"], "failure", "{check:#}");
    let title = check["output"]["title"].as_str().unwrap_or("");
    assert!(
        title.starts_with("Incomplete: 3 changed files not reviewed"),
        "{title}"
    );
    // The workload's finding is still reported, inline.
    assert!(!fake.review_comments().is_empty());
    let summary = summary_comment(&fake);
    for path in ["config/09.yaml", "config/10.yaml", "config/11.yaml"] {
        assert!(
            summary.contains(&format!("`{path}`")),
            "{path} named: {summary}"
        );
    }
    assert!(!summary.contains("`config/08.yaml`"), "{summary}");
    assert!(
        summary.contains("maxChangedFiles"),
        "how to proceed: {summary}"
    );
}

/// `incomplete: neutral` on the base branch is an explicit opt-in: then, and only then, an
/// incomplete but clean review is neutral.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incomplete_neutral_is_an_opt_in_of_the_base_branch() {
    let files: Vec<(String, String)> = (0..4)
        .map(|i| {
            (
                format!("c{i}.yaml"),
                format!(
                    "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c{i}, namespace: s}}\n"
                ),
            )
        })
        .collect();
    let added: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(p, t)| (p.as_str(), t.as_bytes()))
        .collect();
    for (policy, conclusion) in [
        (&b"incomplete: neutral\n"[..], "neutral"),
        (&b"failOn: danger\n"[..], "failure"),
    ] {
        let base_files: &[(&str, &[u8])] = &[("README", b"x\n"), (".kubeward.yaml", policy)];
        let (dir, git, base, head) = setup_files(base_files, &added);
        let fake = github_with_pull(base, head);
        review(&fake, &git, dir.path(), head, limits(2)).await;
        let check = only_check_run(&fake);
        assert_eq!(check["conclusion"], conclusion, "{check:#}");
    }
}

/// A file that expands past the review process's memory: the process dies, the worker and
/// everything else go on, and the check fails at once saying why (no retry loop).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_review_that_runs_out_of_memory_fails_its_check_and_is_not_retried() {
    // The policy lets aliases expand (a base-branch writer's choice), so only the memory
    // limit stands in the way.
    let policy: &[u8] = b"limits:\n  maxAliasNodes: 2000000000\n  maxFileNodes: 2000000000\n  maxFileScalarBytes: 100000000000\n";
    let mut bomb = String::from(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\ndata:\n  l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n",
    );
    for level in 1..9 {
        let prev = level - 1;
        bomb.push_str(&format!(
            "  l{level}: &l{level} [*l{prev}, *l{prev}, *l{prev}, *l{prev}, *l{prev}, *l{prev}, *l{prev}, *l{prev}, *l{prev}, *l{prev}]\n"
        ));
    }
    let (dir, git, base, head) = setup_files(
        &[("README", b"x\n"), (".kubeward.yaml", policy)],
        &[("bomb.yaml", bomb.as_bytes())],
    );
    let fake = github_with_pull(base, head);
    let mut limits = limits(100);
    limits.sandbox.memory_bytes = 256 << 20;
    let job = review(&fake, &git, dir.path(), head, limits).await;
    assert_eq!(job.state, JobState::Done, "{job:?}");
    assert_eq!(job.attempts, 1, "not retried: {job:?}");
    let check = only_check_run(&fake);
    assert_eq!(check["conclusion"], "failure", "{check:#}");
    assert!(
        check_text(&check).contains("ran out of memory"),
        "{check:#}"
    );
}

/// Past the review's node budget nothing is parsed further: every changed manifest is named,
/// and the check fails. A file over its own budget is its `parseError` and named too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn budgets_per_review_and_per_file_leave_nothing_unnamed() {
    let files: Vec<(String, String)> = (0..6)
        .map(|i| {
            (
                format!("c{i}.yaml"),
                format!(
                    "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c{i}, namespace: s}}\ndata:\n{}",
                    (0..40).map(|k| format!("  k{k}: v\n")).collect::<String>()
                ),
            )
        })
        .collect();
    let added: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(p, t)| (p.as_str(), t.as_bytes()))
        .collect();
    let (dir, git, base, head) = setup_files(&[("README", b"x\n")], &added);
    let fake = github_with_pull(base, head);
    let mut over_review = limits(100);
    over_review.budgets.max_nodes = 200;
    review(&fake, &git, dir.path(), head, over_review).await;
    let check = only_check_run(&fake);
    assert_eq!(check["conclusion"], "failure", "{check:#}");
    let summary = summary_comment(&fake);
    assert!(
        summary.contains("over the review's parse budget"),
        "{summary}"
    );
    assert!(summary.contains("YAML nodes"), "{summary}");
    for (path, _) in &files {
        assert!(summary.contains(&format!("`{path}`")), "{path}: {summary}");
    }
    // Documents and scalar text have their own budgets.
    for (budget, says) in [
        ("documents", "YAML documents"),
        ("scalar", "bytes of scalar text"),
    ] {
        let fake = github_with_pull(base, head);
        let mut over = limits(100);
        match budget {
            "documents" => over.budgets.max_documents = 3,
            _ => over.budgets.max_scalar_bytes = 500,
        }
        review(&fake, &git, dir.path(), head, over).await;
        let check = only_check_run(&fake);
        assert_eq!(check["conclusion"], "failure", "{budget}: {check:#}");
        assert!(summary_comment(&fake).contains(says), "{budget}");
    }

    // One file over its own budget: its parse error, and named as not reviewed.
    let policy: &[u8] = b"limits:\n  maxFileNodes: 60\n";
    let (dir, git, base, head) = setup_files(
        &[("README", b"x\n"), (".kubeward.yaml", policy)],
        &added[..1],
    );
    let fake = github_with_pull(base, head);
    review(&fake, &git, dir.path(), head, limits(100)).await;
    let check = only_check_run(&fake);
    assert_eq!(check["conclusion"], "failure", "{check:#}");
    let summary = summary_comment(&fake);
    assert!(
        summary.contains("`c0.yaml`: over its own parse budget"),
        "{summary}"
    );
    assert!(summary.contains("maxFileNodes"), "{summary}");
}

/// A script standing in for the review program.
fn script(dir: &std::path::Path, body: &str) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("review-program.sh");
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("script");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}

/// A review process that crashes is not retried (the same change would crash it again): the
/// check fails at once, naming the signal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashing_review_process_fails_the_check_at_once() {
    let (dir, git, base, head) =
        setup_files(&[("README", b"x\n")], &[("d.yaml", DEPLOY.as_bytes())]);
    let fake = github_with_pull(base, head);
    let mut limits = limits(100);
    limits.sandbox.program = script(dir.path(), "kill -SEGV $$");
    let job = review(&fake, &git, dir.path(), head, limits).await;
    assert_eq!(job.state, JobState::Done, "{job:?}");
    assert_eq!(job.attempts, 1, "{job:?}");
    let check = only_check_run(&fake);
    assert_eq!(check["conclusion"], "failure", "{check:#}");
    assert!(check_text(&check).contains("signal 11"), "{check:#}");
}

/// The review process sees no credential (not in its environment, arguments or request),
/// runs with the highest OOM score and the configured address-space limit, and its answer is
/// the review.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_review_process_gets_no_credentials_and_runs_under_its_limits() {
    let (dir, git, base, head) =
        setup_files(&[("README", b"x\n")], &[("d.yaml", DEPLOY.as_bytes())]);
    let fake = github_with_pull(base, head);
    let seen = dir.path().join("seen");
    std::fs::create_dir(&seen).expect("mkdir");
    let mut limits = limits(100);
    limits.sandbox.memory_bytes = 300 << 20;
    limits.sandbox.program = script(
        dir.path(),
        &format!(
            "cd {seen}\nenv > env\necho \"$@\" > args\ncat /proc/self/oom_score_adj > oom\nulimit -v > vmem\ncat > stdin\nexec {kubeward} \"$@\" < stdin",
            seen = seen.display(),
            kubeward = env!("CARGO_BIN_EXE_kubeward"),
        ),
    );
    let queue = Queue::connect("sqlite::memory:").await.expect("queue");
    queue
        .enqueue(review_job(&head.to_string()))
        .await
        .expect("enqueue");
    let (stop, task) = start_worker_with(
        &queue,
        fake.clone() as Arc<dyn GitHubApi>,
        Arc::new(TokenGit(git)),
        dir.path(),
        Duration::from_secs(60),
        limits,
    );
    wait_until_settled(&queue).await;
    let _ = stop.send(true);
    let _ = task.await;
    let check = only_check_run(&fake);
    assert_eq!(check["conclusion"], "failure", "the review ran: {check:#}");
    let read = |name: &str| std::fs::read_to_string(seen.join(name)).expect(name);
    for name in ["env", "args", "stdin"] {
        assert!(!read(name).contains(TOKEN), "{name}: {}", read(name));
    }
    let env_keys: Vec<String> = read("env")
        .lines()
        .filter_map(|l| l.split_once('=').map(|(k, _)| k.to_owned()))
        .collect();
    for key in &env_keys {
        assert!(
            [
                "MIMALLOC_ARENA_RESERVE",
                "MALLOC_ARENA_MAX",
                "PWD",
                "SHLVL",
                "_",
                "OLDPWD"
            ]
            .contains(&key.as_str()),
            "only what the review needs: {env_keys:?}"
        );
    }
    assert_eq!(read("args").trim(), "review-process");
    assert!(read("stdin").contains("\"gitDir\""), "{}", read("stdin"));
    assert_eq!(read("oom").trim(), "1000");
    assert_eq!(read("vmem").trim(), (300u64 << 10).to_string());
}

/// At the deadline the review's whole process group is killed: nothing it started goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_review_past_its_deadline_has_its_process_group_killed() {
    let (dir, git, base, head) =
        setup_files(&[("README", b"x\n")], &[("d.yaml", DEPLOY.as_bytes())]);
    let fake = github_with_pull(base, head);
    let pid_file = dir.path().join("grandchild.pid");
    let mut limits = crate::support::review_limits(100, Duration::from_secs(2));
    limits.sandbox.program = script(
        dir.path(),
        &format!("sleep 1000 &\necho $! > {}\nsleep 1000", pid_file.display()),
    );
    let job = review(&fake, &git, dir.path(), head, limits).await;
    assert_eq!(job.state, JobState::Done, "{job:?}");
    let check = only_check_run(&fake);
    assert_eq!(check["conclusion"], "failure", "{check:#}");
    assert!(check_text(&check).contains("time limit"), "{check:#}");
    let pid = std::fs::read_to_string(&pid_file).expect("pid");
    let state = std::fs::read_to_string(format!("/proc/{}/stat", pid.trim()));
    // Gone, or a zombie waiting for a reaper: either way it runs no more.
    assert!(
        state
            .as_deref()
            .map_or(true, |s| s.split_whitespace().nth(2) == Some("Z")),
        "the grandchild still runs: {state:?}"
    );
}
