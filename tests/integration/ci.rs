//! `kubeward ci` in GitHub Actions and GitLab CI: a real upstream repository served over git's
//! smart HTTP, a shallow checkout of the head only (as actions/checkout makes), GitHub's own
//! example payload as `GITHUB_EVENT_PATH`, and the mock GitHub checking every request and
//! reply against the OpenAPI description.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use kubeward::ci::{CiArgs, Env};
use kubeward::git::build;
use serde_json::{Value, json};

use crate::support;
use crate::support::git_http;
use crate::support::mock_github::{MockGitHub, Refusal};

const TOKEN: &str = "ghs_ci_token";
const BOT: &str = "github-actions[bot]";
const NUMBER: u64 = 7;

const POLICY: &str = "rules:\n  priorityClassNotSet: ignore\n  topologySpreadConstraint: ignore\n  missingNetworkPolicy: ignore\n  missingPodDisruptionBudget: ignore\n  automountServiceAccountToken: ignore\n  linuxHardening: ignore\n  pullPolicyNotAlways: ignore\n  insecureCapabilities: ignore\n  notReadOnlyRootFilesystem: ignore\n";

fn deployment(extra_container_lines: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: shop
  namespace: shop
spec:
  replicas: 2
  selector:
    matchLabels: {{app: shop}}
  template:
    metadata:
      labels: {{app: shop}}
    spec:
      securityContext:
        runAsNonRoot: true
      containers:
        - name: web
          image: shop:1.0
          resources:
            limits: {{cpu: 100m, memory: 128Mi}}
            requests: {{cpu: 50m, memory: 64Mi}}
          livenessProbe:
            httpGet: {{path: /, port: 8080}}
          readinessProbe:
            httpGet: {{path: /, port: 8080}}
          securityContext:
            allowPrivilegeEscalation: false
{extra_container_lines}"
    )
}

/// The upstream (bare, served over HTTP) with `main` and pull request 7's head.
struct Upstream {
    repo: git2::Repository,
    served: std::path::PathBuf,
    _dir: tempfile::TempDir,
    base: git2::Oid,
    head: git2::Oid,
}

/// `manifest` is where the pull request's deployment sits; `head_policy` a policy file the
/// head adds (it must not count).
fn upstream(manifest: &str, head_policy: Option<&str>) -> Upstream {
    let dir = tempfile::tempdir().expect("temp");
    let repo = git2::Repository::init_bare(dir.path().join("octo/shop.git")).expect("init");
    let clean = deployment("");
    let base = build::commit(
        &repo,
        Some("refs/heads/main"),
        &[],
        &[
            (".kubeward.yaml", POLICY.as_bytes()),
            (manifest, clean.as_bytes()),
        ],
        "base",
    )
    .expect("base");
    let privileged = deployment("            privileged: true\n");
    let mut files: Vec<(&str, &[u8])> = vec![(manifest, privileged.as_bytes())];
    let policy = head_policy.unwrap_or(POLICY);
    files.push((".kubeward.yaml", policy.as_bytes()));
    let head = build::commit(
        &repo,
        Some(&format!("refs/pull/{NUMBER}/head")),
        &[base],
        &files,
        "head",
    )
    .expect("head");
    Upstream {
        served: dir.path().to_path_buf(),
        repo,
        _dir: dir,
        base,
        head,
    }
}

/// A checkout as actions/checkout leaves it: one commit deep, the head only.
fn shallow_checkout(git_url: &str, dir: &Path) {
    let repo = git2::Repository::init(dir).expect("init checkout");
    let mut callbacks = git2::RemoteCallbacks::new();
    callbacks.credentials(|_, _, _| git2::Cred::userpass_plaintext("x-access-token", TOKEN));
    let mut options = git2::FetchOptions::new();
    options.remote_callbacks(callbacks);
    options.depth(1);
    let mut remote = repo
        .remote_anonymous(&format!("{git_url}/octo/shop.git"))
        .expect("remote");
    remote
        .fetch(
            &[&format!(
                "+refs/pull/{NUMBER}/head:refs/remotes/pull/{NUMBER}"
            )],
            Some(&mut options),
            None,
        )
        .expect("shallow fetch");
}

/// GitHub's example `pull_request` payload, pointed at our repository, pull request and commits.
fn event(upstream: &Upstream, head_repo: &str) -> Value {
    let example = support::npm::webhook_example("pull_request", Some("opened"));
    let mut payload = example.payload.clone();
    payload["number"] = json!(NUMBER);
    payload["repository"]["id"] = json!(4242);
    payload["repository"]["name"] = json!("shop");
    payload["repository"]["full_name"] = json!("octo/shop");
    payload["repository"]["owner"]["login"] = json!("octo");
    let pr = &mut payload["pull_request"];
    pr["number"] = json!(NUMBER);
    pr["head"]["sha"] = json!(upstream.head.to_string());
    pr["head"]["repo"]["full_name"] = json!(head_repo);
    pr["base"]["sha"] = json!(upstream.base.to_string());
    pr["base"]["repo"]["full_name"] = json!("octo/shop");
    payload
}

struct Job {
    env: Env,
    dir: tempfile::TempDir,
}

impl Job {
    fn new(upstream: &Upstream, git_url: &str, api_url: &str, head_repo: &str) -> Job {
        let dir = tempfile::tempdir().expect("temp");
        shallow_checkout(git_url, &dir.path().join("checkout"));
        let event_path = dir.path().join("event.json");
        std::fs::write(
            &event_path,
            serde_json::to_vec(&event(upstream, head_repo)).expect("json"),
        )
        .expect("event");
        let path = |p: &str| dir.path().join(p).display().to_string();
        let env: Env = [
            ("GITHUB_ACTIONS", "true".to_owned()),
            ("GITHUB_EVENT_NAME", "pull_request".to_owned()),
            ("GITHUB_EVENT_PATH", event_path.display().to_string()),
            ("GITHUB_REPOSITORY", "octo/shop".to_owned()),
            ("GITHUB_API_URL", api_url.to_owned()),
            ("GITHUB_SERVER_URL", git_url.to_owned()),
            ("GITHUB_TOKEN", TOKEN.to_owned()),
            ("GITHUB_WORKSPACE", path("checkout")),
            ("GITHUB_STEP_SUMMARY", path("summary.md")),
            // What Actions sets for a pull request: a merge commit the PR controls.
            ("GITHUB_SHA", "f".repeat(40)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        Job { env, dir }
    }

    async fn run(&self, args: &CiArgs) -> (u8, String) {
        let mut out = Vec::new();
        let code = kubeward::ci::run(args, &self.env, &mut out)
            .await
            .expect("kubeward ci");
        (code, String::from_utf8(out).expect("utf-8"))
    }
}

fn pull(upstream: &Upstream) -> Value {
    json!({
        "number": NUMBER, "state": "open", "draft": false,
        "head": {"sha": upstream.head.to_string(), "ref": "feature", "repo": {"id": 4242}},
        "base": {"sha": upstream.base.to_string(), "ref": "main", "repo": {"id": 4242}},
    })
}

fn args() -> CiArgs {
    CiArgs {
        bot_login: Some(BOT.into()),
        ..CiArgs::default()
    }
}

fn writes(mock: &MockGitHub) -> Vec<String> {
    mock.fake
        .request_log()
        .into_iter()
        .filter(|r| !r.starts_with("GET ") && r != "POST /graphql")
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pull_request_job_publishes_the_review_once_on_the_prs_head() {
    let upstream = upstream("apps/shop.yaml", None);
    let git = git_http::serve(upstream.served.clone(), Some(TOKEN)).await;
    let mock = MockGitHub::start(BOT, TOKEN).await;
    mock.fake.add_pull(NUMBER, pull(&upstream));
    let (base, head) = (upstream.base.to_string(), upstream.head.to_string());
    mock.fake.set_merge_base(&base, &head, &base);
    mock.fake.set_diff_lines("apps/shop.yaml", 1..=40);
    let job = Job::new(&upstream, &git.base_url, &mock.uri(), "octo/shop");
    let asked_by_checkout = git.seen_auth.lock().expect("lock").len();

    let (code, out) = job.run(&args()).await;
    assert_eq!(code, 3, "{out}");
    assert!(
        out.trim_end()
            .ends_with("kubeward: conclusion=failure new=1 fixed=0"),
        "{out}"
    );
    let runs = mock.fake.check_runs();
    assert_eq!(runs.len(), 1, "{runs:#?}");
    // On the pull request's head, not the merge commit Actions checked out.
    assert_eq!(runs[0]["head_sha"], json!(head));
    assert_eq!(
        (runs[0]["status"].as_str(), runs[0]["conclusion"].as_str()),
        (Some("completed"), Some("failure"))
    );
    assert_eq!(mock.fake.review_comments().len(), 1);
    assert_eq!(mock.fake.issue_comments().len(), 1, "one summary");
    // git got the token through the credential callback, as HTTP Basic.
    let seen = git.seen_auth.lock().expect("lock").clone();
    assert!(
        seen.len() > asked_by_checkout
            && seen[asked_by_checkout..].iter().all(|a| *a
                == format!(
                    "Basic {}",
                    STANDARD.encode(format!("x-access-token:{TOKEN}"))
                )),
        "the missing base was fetched with the token: {seen:?}"
    );

    // A re-run of the job posts nothing new.
    let written = writes(&mock).len();
    let (code, _) = job.run(&args()).await;
    assert_eq!(code, 3);
    assert_eq!(mock.fake.check_runs().len(), 1);
    assert_eq!(mock.fake.review_comments().len(), 1);
    assert_eq!(mock.fake.issue_comments().len(), 1);
    let again: Vec<String> = writes(&mock).into_iter().skip(written).collect();
    assert!(
        again.iter().all(|w| w.starts_with("PATCH ")),
        "a re-run only re-concludes: {again:#?}"
    );
    mock.assert_requests_valid();
    let _ = job.dir;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fork_gets_annotations_a_summary_and_sarif_and_nothing_is_written() {
    // The head also ships a policy turning everything off, and the job asks `--fail-on never`:
    // neither relaxes the base's policy.
    let relaxed = "failOn: never\nrules:\n  privilegedContainer: ignore\n";
    let upstream = upstream("apps/we,ird:name.yaml", Some(relaxed));
    let git = git_http::serve(upstream.served.clone(), Some(TOKEN)).await;
    let mock = MockGitHub::start(BOT, TOKEN).await;
    mock.fake.add_pull(NUMBER, pull(&upstream));
    let job = Job::new(&upstream, &git.base_url, &mock.uri(), "someone/shop");
    let sarif = job.dir.path().join("kubeward.sarif");
    let ci = CiArgs {
        fail_on: Some(kubeward::config::FailOn::Never),
        sarif: Some(sarif.clone()),
        ..args()
    };
    let (code, out) = job.run(&ci).await;
    assert_eq!(code, 3, "{out}");
    assert!(
        mock.fake.request_log().is_empty(),
        "{:?}",
        mock.fake.request_log()
    );
    let error = out
        .lines()
        .find(|l| l.starts_with("::error "))
        .expect("an error annotation");
    assert!(
        error.starts_with("::error file=apps/we%2Cird%3Aname.yaml,line="),
        "{error}"
    );
    // The plan's text (which quotes the pull request) is fenced off from the runner.
    let fence = out
        .lines()
        .find_map(|l| l.strip_prefix("::stop-commands::"))
        .expect("stop-commands");
    assert!(out.contains(&format!("\n::{fence}::\n")), "{out}");
    let summary = std::fs::read_to_string(job.dir.path().join("summary.md")).expect("job summary");
    assert!(summary.contains("fork"), "{summary}");
    let sarif: Value =
        serde_json::from_slice(&std::fs::read(&sarif).expect("sarif")).expect("sarif json");
    assert_eq!(
        sarif["runs"][0]["results"].as_array().map(Vec::len),
        Some(1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_read_only_token_stops_at_its_first_refused_write() {
    let upstream = upstream("apps/shop.yaml", None);
    let git = git_http::serve(upstream.served.clone(), Some(TOKEN)).await;
    let mock = MockGitHub::start(BOT, TOKEN).await;
    mock.fake.add_pull(NUMBER, pull(&upstream));
    let (base, head) = (upstream.base.to_string(), upstream.head.to_string());
    mock.fake.set_merge_base(&base, &head, &base);
    mock.refuse_once(Refusal {
        method: "POST",
        needle: "/check-runs".into(),
        status: 403,
        headers: Vec::new(),
        body: json!({"message": "Resource not accessible by integration"}),
    });
    let job = Job::new(&upstream, &git.base_url, &mock.uri(), "octo/shop");
    let (code, out) = job.run(&args()).await;
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("::warning::kubeward may not write"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("::error file=apps/shop.yaml")),
        "{out}"
    );
    // The refused POST never reached the fake, and nothing was written after it.
    assert!(writes(&mock).is_empty(), "{:?}", writes(&mock));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outside_a_pull_request_event_ci_says_what_to_run_instead() {
    let mut env = Env::new();
    env.insert("GITHUB_ACTIONS".into(), "true".into());
    env.insert("GITHUB_EVENT_NAME".into(), "push".into());
    env.insert("GITHUB_EVENT_PATH".into(), "/nonexistent".into());
    let mut out = Vec::new();
    let code = kubeward::ci::run(&args(), &env, &mut out)
        .await
        .expect("ran");
    assert_eq!(code, 2);
    let code = kubeward::ci::run(&args(), &Env::new(), &mut out)
        .await
        .expect("ran");
    assert_eq!(code, 2);
}

/// GitLab without a token: the Code Quality report, checked against GitLab's documented format
/// (`tests/data/gitlab/code-quality-report.schema.json`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gitlab_merge_request_pipeline_without_a_token_writes_a_code_quality_report() {
    let upstream = upstream("apps/shop.yaml", None);
    let dir = tempfile::tempdir().expect("temp");
    let checkout = dir.path().join("checkout");
    // GitLab's runner clones with history enough for the merge base.
    git2::build::RepoBuilder::new()
        .bare(false)
        .clone(&upstream.repo.path().display().to_string(), &checkout)
        .expect("clone");
    {
        let repo = git2::Repository::open(&checkout).expect("open");
        let mut remote = repo.find_remote("origin").expect("origin");
        remote
            .fetch(&[&format!("+refs/pull/{NUMBER}/head:refs/mr")], None, None)
            .expect("fetch head");
    }
    let env: Env = [
        ("GITLAB_CI", "true".to_owned()),
        ("CI_MERGE_REQUEST_IID", NUMBER.to_string()),
        ("CI_PROJECT_ID", "42".to_owned()),
        ("CI_PROJECT_PATH", "platform/shop".to_owned()),
        ("CI_SERVER_URL", "https://gitlab.example.com".to_owned()),
        (
            "CI_API_V4_URL",
            "https://gitlab.example.com/api/v4".to_owned(),
        ),
        ("CI_MERGE_REQUEST_DIFF_BASE_SHA", upstream.base.to_string()),
        // A merged-results pipeline: CI_COMMIT_SHA is GitLab's merge commit.
        ("CI_COMMIT_SHA", "e".repeat(40)),
        (
            "CI_MERGE_REQUEST_SOURCE_BRANCH_SHA",
            upstream.head.to_string(),
        ),
        ("CI_PROJECT_DIR", checkout.display().to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let mut out = Vec::new();
    let code = kubeward::ci::run(&CiArgs::default(), &env, &mut out)
        .await
        .expect("kubeward ci");
    assert_eq!(code, 3, "{}", String::from_utf8_lossy(&out));
    let report: Value = serde_json::from_slice(
        &std::fs::read(checkout.join("gl-code-quality-report.json")).expect("report"),
    )
    .expect("json");
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(format!(
            "{}/tests/data/gitlab/code-quality-report.schema.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .expect("schema"),
    )
    .expect("schema json");
    let validator = jsonschema::validator_for(&schema).expect("schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(&report)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:#?}\n{report:#}");
    let issues = report.as_array().expect("array");
    assert_eq!(issues.len(), 1, "{report:#}");
    assert_eq!(issues[0]["location"]["path"], "apps/shop.yaml");
    assert_eq!(issues[0]["severity"], "critical");
}
