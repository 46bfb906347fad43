//! End to end on GitLab: the real server on 127.0.0.1, real workers, a real git server with
//! real repositories (serving `refs/merge-requests/N/head`), and a mock GitLab (wiremock, backed
//! by the in-memory fake) that records every request. Payloads follow GitLab's documented
//! shapes (tests/data/gitlab, see tests/data/README.md).

use crate::support::git_http;
use crate::support::unix_now;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::gitlab_fake::{DiffLine, FakeGitLab, Recorded};
use base64::Engine;
use kubeward::bot::gitlab::{GitLabBotSettings, GitLabWorker};
use kubeward::bot::runner::JobRunner;
use kubeward::forge::Secret;
use kubeward::forge::gitlab::client::{GitLabClient, GitLabClientConfig, RetryPolicy};
use kubeward::forge::gitlab::{GitLabApi, Method};
use kubeward::git::build;
use kubeward::git::cache::GitCache;
use kubeward::queue::{JobState, Queue, QueueConfig};
use kubeward::server::gitlab::{
    DEFAULT_TIMESTAMP_TOLERANCE, GitLabHooks, HookBinding, HookScope, SigningKey,
};
use kubeward::server::{AppState, router_with_gitlab};
use serde_json::{Value, json};
use tokio::sync::watch;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const TOKEN: &str = "glpat-kubeward-tests-0123456789abcdef";
const SECRET: &str = "shop-webhook-secret";
const GROUP_SECRET: &str = "platform-group-webhook-secret";
const SIGNING: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const BOT: &str = "kubeward-bot";
const BOT_ID: u64 = 9000;
const PROJECT: u64 = 4242;
const SIGNED_PROJECT: u64 = 5151;
const GROUP_PROJECT: u64 = 6161;
const IID: u64 = 7;
const DEVELOPER: (u64, &str) = (31, "dana");
const MAINTAINER: (u64, &str) = (44, "mo");
const REPORTER: (u64, &str) = (55, "rita");

/// The mock GitLab: the fake's answers, every request checked.
struct Forwarder {
    fake: Arc<FakeGitLab>,
    violations: Arc<Mutex<Vec<String>>>,
    /// `(suffix, n)`: the successful POST after the next `n` whose path ends with `suffix` is
    /// answered 502 (the answer is lost, the effect is not); once per entry.
    lose_answers: Arc<Mutex<Vec<(String, usize)>>>,
}

impl Respond for Forwarder {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let method = match request.method.as_str() {
            "GET" => Method::Get,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            _ => Method::Delete,
        };
        let path = match request.url.query() {
            Some(q) => format!("{}?{q}", request.url.path()),
            None => request.url.path().to_owned(),
        };
        let body: Option<Value> = if request.body.is_empty() {
            None
        } else {
            serde_json::from_slice(&request.body).ok()
        };
        let header = |name: &str| {
            request
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let mut problems = Vec::new();
        let line = format!("{} {path}", method.as_str());
        if header("private-token").as_deref() != Some(TOKEN) {
            problems.push(format!("{line}: not authenticated with PRIVATE-TOKEN"));
        }
        if header("authorization").is_some() {
            problems.push(format!("{line}: an Authorization header as well"));
        }
        // Every URL is the API root + a project addressed by numeric id.
        let route = request.url.path();
        let by_id = route
            .strip_prefix("/api/v4/projects/")
            .and_then(|rest| rest.split('/').next())
            .is_some_and(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()));
        if !by_id {
            problems.push(format!("{line}: not below /api/v4/projects/<id>"));
        }
        self.violations.lock().expect("lock").extend(problems);
        let (status, reply) = self.fake.handle(method, &path, body.as_ref());
        // What the fake answers, GitLab could: its documented reply fields and types.
        if let Err(e) =
            crate::support::gitlab_replies::validate_reply(method.as_str(), route, status, &reply)
        {
            self.violations.lock().expect("lock").push(e);
        }
        let mut lose = self.lose_answers.lock().expect("lock");
        if method == Method::Post
            && (200..300).contains(&status)
            && let Some(i) = lose
                .iter()
                .position(|(suffix, _)| route.ends_with(suffix.as_str()))
        {
            if lose[i].1 > 0 {
                lose[i].1 -= 1;
            } else {
                lose.remove(i);
                return ResponseTemplate::new(502).set_body_string("Bad Gateway");
            }
        }
        ResponseTemplate::new(status).set_body_json(reply)
    }
}

struct Upstream {
    repo: git2::Repository,
    _dir: tempfile::TempDir,
    served: std::path::PathBuf,
}

impl Upstream {
    fn new(path_with_namespace: &str) -> Upstream {
        let dir = tempfile::tempdir().expect("temp");
        let repo =
            git2::Repository::init_bare(dir.path().join(format!("{path_with_namespace}.git")))
                .expect("init");
        Upstream {
            served: dir.path().to_path_buf(),
            repo,
            _dir: dir,
        }
    }

    fn commit(&self, reference: &str, parents: &[git2::Oid], files: &[(&str, &str)]) -> git2::Oid {
        let files: Vec<(&str, &[u8])> = files.iter().map(|(p, c)| (*p, c.as_bytes())).collect();
        build::commit(&self.repo, Some(reference), parents, &files, "commit").expect("commit")
    }

    /// The lines GitLab's diff of `base..head` shows, per file, computed by libgit2 directly
    /// (3 lines of context, renames detected, as GitLab does).
    fn diff(&self, base: git2::Oid, head: git2::Oid) -> Vec<(String, String, Vec<DiffLine>)> {
        let tree = |oid| {
            self.repo
                .find_commit(oid)
                .expect("commit")
                .tree()
                .expect("tree")
        };
        let mut options = git2::DiffOptions::new();
        options.context_lines(3);
        let mut diff = self
            .repo
            .diff_tree_to_tree(Some(&tree(base)), Some(&tree(head)), Some(&mut options))
            .expect("diff");
        diff.find_similar(Some(git2::DiffFindOptions::new().renames(true)))
            .expect("renames");
        let mut files = Vec::new();
        for i in 0..diff.deltas().len() {
            let Some(patch) = git2::Patch::from_diff(&diff, i).expect("patch") else {
                continue;
            };
            let delta = patch.delta();
            let path = |f: git2::DiffFile<'_>| f.path().map(|p| p.display().to_string());
            let new_path = path(delta.new_file()).expect("new path");
            let old_path = path(delta.old_file()).unwrap_or_else(|| new_path.clone());
            let mut lines = Vec::new();
            for h in 0..patch.num_hunks() {
                for l in 0..patch.num_lines_in_hunk(h).expect("lines") {
                    let line = patch.line_in_hunk(h, l).expect("line");
                    lines.push((line.old_lineno(), line.new_lineno()));
                }
            }
            files.push((old_path, new_path, lines));
        }
        files
    }
}

struct Bot {
    url: String,
    fake: Arc<FakeGitLab>,
    violations: Arc<Mutex<Vec<String>>>,
    lose_answers: Arc<Mutex<Vec<(String, usize)>>>,
    queue: Queue,
    /// For workers started later (`spawn_workers`).
    runners: kubeward::bot::worker::Runners,
    stop: watch::Sender<bool>,
    git: git_http::GitHttpServer,
    _mock: MockServer,
    _dirs: Vec<tempfile::TempDir>,
}

fn bot_settings(git_base_url: &str) -> GitLabBotSettings {
    GitLabBotSettings {
        bot_username: BOT.into(),
        review_drafts: false,
        host: "gitlab.test".into(),
        review: crate::support::review_limits(100, std::time::Duration::from_secs(60)),
        git_base_url: git_base_url.to_owned(),
        git_username: "oauth2".into(),
    }
}

async fn start(upstream: &Upstream, workers: usize) -> Bot {
    start_with(upstream, workers, QueueConfig::default()).await
}

async fn start_with(upstream: &Upstream, workers: usize, config: QueueConfig) -> Bot {
    kubeward::bot::serve::install_crypto();
    let fake = Arc::new(FakeGitLab::new(BOT_ID, BOT));
    let violations = Arc::new(Mutex::new(Vec::new()));
    let lose_answers = Arc::new(Mutex::new(Vec::new()));
    let mock = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(Forwarder {
            fake: fake.clone(),
            violations: violations.clone(),
            lose_answers: lose_answers.clone(),
        })
        .mount(&mock)
        .await;
    let git = git_http::serve(upstream.served.clone(), Some(TOKEN)).await;
    let data = tempfile::tempdir().expect("temp");
    let queue = Queue::connect_with(
        &format!("sqlite://{}", data.path().join("queue.db").display()),
        config,
    )
    .await
    .expect("queue");
    let client = Arc::new(
        GitLabClient::new(GitLabClientConfig {
            instance_url: mock.uri(),
            token: Secret::new(TOKEN),
            user_agent: "kubeward-tests".into(),
            retry: RetryPolicy {
                base_delay: Duration::from_millis(5),
                post_spacing: Duration::from_millis(1),
                ..RetryPolicy::default()
            },
        })
        .expect("client"),
    );
    let worker = Arc::new(GitLabWorker {
        api: client as Arc<dyn GitLabApi>,
        cache: Arc::new(GitCache::new(data.path().join("cache"), 1 << 30)),
        git_token: Some(Secret::new(TOKEN)),
        settings: bot_settings(&git.base_url),
    });
    let runners: kubeward::bot::worker::Runners = Arc::new(HashMap::from([(
        "gitlab".to_owned(),
        worker as Arc<dyn JobRunner>,
    )]));
    let (stop, stop_rx) = watch::channel(false);
    crate::support::spawn_workers(&queue, &runners, workers, &stop_rx);
    let hooks = GitLabHooks {
        bindings: vec![
            HookBinding {
                scope: HookScope::Project(PROJECT),
                token: Some(Secret::new(SECRET)),
                signing_key: None,
            },
            HookBinding {
                scope: HookScope::Project(SIGNED_PROJECT),
                token: None,
                signing_key: Some(SigningKey::parse(&Secret::new(SIGNING)).expect("key")),
            },
            HookBinding {
                scope: HookScope::Group("platform".into()),
                token: Some(Secret::new(GROUP_SECRET)),
                signing_key: None,
            },
        ],
        bot_username: BOT.into(),
        timestamp_tolerance: DEFAULT_TIMESTAMP_TOLERANCE,
    };
    let state = AppState {
        queue: queue.clone(),
        github: None,
        metrics: None,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    let mut server_stop = stop_rx.clone();
    tokio::spawn(async move {
        let app = router_with_gitlab(state, Some(hooks), 256 * 1024, Duration::from_secs(5));
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = server_stop.changed().await;
            })
            .await;
    });
    Bot {
        url,
        fake,
        violations,
        lose_answers,
        queue,
        runners,
        stop,
        git,
        _mock: mock,
        _dirs: vec![data],
    }
}

impl Bot {
    /// Posts a delivery with the given headers (the event header is added).
    async fn post(&self, event: &str, headers: &[(&str, String)], body: Vec<u8>) -> (u16, Value) {
        let mut request = reqwest::Client::new()
            .post(format!("{}/webhooks/gitlab", self.url))
            .header("content-type", "application/json")
            .header("x-gitlab-event", event);
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let response = request.body(body).send().await.expect("delivered");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// A delivery authenticated with the shop project's secret token.
    async fn deliver(&self, event: &str, key: &str, payload: &Value) -> (u16, Value) {
        let headers = [
            ("x-gitlab-token", SECRET.to_owned()),
            ("idempotency-key", key.to_owned()),
            ("x-gitlab-event-uuid", format!("uuid-{key}")),
        ];
        self.post(event, &headers, serde_json::to_vec(payload).expect("json"))
            .await
    }

    /// Waits until every queued job is finished.
    async fn settle(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let stats = self
                .queue
                .stats(kubeward::queue::now_ms())
                .await
                .expect("stats");
            if stats.queued == 0 && stats.running == 0 {
                return;
            }
            assert!(Instant::now() < deadline, "jobs did not finish: {stats:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn writes_since(&self, from: usize) -> Vec<Recorded> {
        self.fake
            .requests()
            .into_iter()
            .skip(from)
            .filter(|r| r.method != Method::Get)
            .collect()
    }

    /// The states our status went through on `sha`, in the order they were posted.
    fn posted_states(&self, from: usize, sha: git2::Oid) -> Vec<String> {
        self.writes_since(from)
            .iter()
            .filter(|r| r.method == Method::Post && r.path.ends_with(&format!("/statuses/{sha}")))
            .map(|r| {
                let body = r.body.as_ref().expect("status body");
                assert_eq!(body["name"], "kubeward");
                let description = body["description"].as_str().expect("description");
                assert!(description.chars().count() <= 255, "{description}");
                body["state"].as_str().expect("state").to_owned()
            })
            .collect()
    }

    fn assert_requests_valid(&self) {
        let violations = self.violations.lock().expect("lock");
        assert!(
            violations.is_empty(),
            "requests GitLab would refuse or that leave the rules:\n{}",
            violations.join("\n")
        );
    }

    /// Declares merge request !IID of `project` at `head` (diff refs included) and its diff.
    fn open_merge_request(
        &self,
        upstream: &Upstream,
        project: u64,
        base: git2::Oid,
        start: git2::Oid,
        head: git2::Oid,
    ) {
        self.fake.set_merge_request(
            project,
            IID,
            json!({
                "id": 880001, "iid": IID, "project_id": project, "state": "opened",
                "draft": false, "sha": head.to_string(),
                "source_project_id": project, "target_project_id": project,
                "source_branch": "privileged-web", "target_branch": "main",
                "web_url": format!("https://gitlab.example.com/platform/shop/-/merge_requests/{IID}"),
                "diff_refs": {"base_sha": base.to_string(), "start_sha": start.to_string(), "head_sha": head.to_string()},
            }),
        );
        self.fake.clear_diffs(project, IID);
        for (old_path, new_path, lines) in upstream.diff(base, head) {
            self.fake
                .set_diff(project, IID, &old_path, &new_path, lines);
        }
    }
}

fn payload(name: &str) -> Value {
    let path = format!("{}/tests/data/gitlab/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).expect("payload file")).expect("json")
}

/// A Merge Request Hook payload from tests/data/gitlab, pointed at our project and head.
fn mr_event(name: &str, project: u64, path: &str, head: git2::Oid) -> Value {
    let mut p = payload(name);
    p["project"]["id"] = json!(project);
    p["project"]["path_with_namespace"] = json!(path);
    let a = &mut p["object_attributes"];
    a["iid"] = json!(IID);
    a["source_project_id"] = json!(project);
    a["target_project_id"] = json!(project);
    a["last_commit"]["id"] = json!(head.to_string());
    p
}

/// A Note Hook payload for a comment on our merge request.
fn note_event(note_id: u64, user: (u64, &str), body: &str) -> Value {
    let mut p = payload("note_merge_request.json");
    p["user"]["id"] = json!(user.0);
    p["user"]["username"] = json!(user.1);
    p["project"]["id"] = json!(PROJECT);
    p["project_id"] = json!(PROJECT);
    let a = &mut p["object_attributes"];
    a["id"] = json!(note_id);
    a["note"] = json!(body);
    a["author_id"] = json!(user.0);
    p["merge_request"]["iid"] = json!(IID);
    p
}

const OWNERS: &str = "\
# GitLab sections: every section applies, so a file can have owners from several.
[Platform]
*.yaml @platform/sre

[Shop][2] @shop-team
/apps/
";

const POLICY: &str = "rules:\n  priorityClassNotSet: ignore\n  topologySpreadConstraint: ignore\n  missingNetworkPolicy: ignore\n  missingPodDisruptionBudget: ignore\n  automountServiceAccountToken: ignore\n  linuxHardening: ignore\n  pullPolicyNotAlways: ignore\n  insecureCapabilities: ignore\n  notReadOnlyRootFilesystem: ignore\n";

fn deployment(pod_lines: &str, container_lines: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: shop
  namespace: shop
  labels: {{app.kubernetes.io/instance: shop}}
spec:
  replicas: 2
  selector:
    matchLabels: {{app: shop}}
  template:
    metadata:
      labels: {{app: shop}}
    spec:
{pod_lines}      securityContext:
        runAsNonRoot: true
      containers:
        - name: web
          image: shop:1.0
          resources:
            limits: {{cpu: 100m, memory: 128Mi}}
          readinessProbe:
            httpGet: {{path: /, port: 8080}}
          securityContext:
            allowPrivilegeEscalation: false
{container_lines}"
    )
}

fn line_of(text: &str, needle: &str) -> u64 {
    text.lines()
        .position(|l| l.contains(needle))
        .map(|i| i as u64 + 1)
        .expect("line")
}

fn files(manifest: &str) -> Vec<(&'static str, &str)> {
    vec![
        (".kubeward.yaml", POLICY),
        (".gitlab/CODEOWNERS", OWNERS),
        ("apps/shop.yaml", manifest),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_merge_request_is_reviewed_once_and_rescans_and_redeliveries_add_nothing() {
    let upstream = Upstream::new("platform/shop");
    let base_text = deployment("", "");
    let base = upstream.commit("refs/heads/main", &[], &files(&base_text));
    let head_text = deployment("", "            privileged: true\n");
    let head = upstream.commit("refs/merge-requests/7/head", &[base], &files(&head_text));
    let bot = start(&upstream, 2).await;
    bot.fake.add_project(PROJECT, "platform/shop");
    bot.open_merge_request(&upstream, PROJECT, base, base, head);
    for (user, level) in [(DEVELOPER, 30), (MAINTAINER, 40), (REPORTER, 20)] {
        bot.fake.set_member(PROJECT, user.0, level);
    }
    let opened = mr_event("merge_request_open.json", PROJECT, "platform/shop", head);
    let body = serde_json::to_vec(&opened).expect("json");

    // Wrong, missing or misbound secrets: 401, nothing recorded, queued or asked of GitLab.
    let key = |k: &str| ("idempotency-key", k.to_owned());
    let refused = [
        vec![key("r-1")],
        vec![key("r-2"), ("x-gitlab-token", "wrong".to_owned())],
        vec![
            key("r-3"),
            ("x-gitlab-token", SECRET[..SECRET.len() - 1].to_owned()),
        ],
    ];
    for headers in refused {
        let (status, _) = bot.post("Merge Request Hook", &headers, body.clone()).await;
        assert_eq!(status, 401, "{headers:?}");
    }
    let mut elsewhere = opened.clone();
    elsewhere["project"]["id"] = json!(9999);
    let (status, _) = bot.deliver("Merge Request Hook", "r-5", &elsewhere).await;
    assert_eq!(
        status, 401,
        "the shop's secret is not valid for another project"
    );
    // The signed project's webhook accepts only signed deliveries.
    let mut signed_project = opened.clone();
    signed_project["project"]["id"] = json!(SIGNED_PROJECT);
    let (status, _) = bot
        .post(
            "Merge Request Hook",
            &[key("r-6"), ("x-gitlab-token", SECRET.to_owned())],
            serde_json::to_vec(&signed_project).expect("json"),
        )
        .await;
    assert_eq!(status, 401);
    // A refused delivery's key was not recorded: the same key goes through once authentic.
    let (status, answer) = bot.deliver("Merge Request Hook", "r-1", &opened).await;
    assert_eq!(status, 202, "{answer}");
    bot.settle().await;
    let after_first = bot.fake.requests().len();

    // What the bot did: status pending → running, one discussion, the summary note, final status.
    assert_eq!(bot.posted_states(0, head), ["pending", "running", "failed"]);
    let writes: Vec<String> = bot
        .writes_since(0)
        .iter()
        .map(|r| format!("{} {}", r.method.as_str(), r.path))
        .collect();
    let statuses = format!("POST /projects/{PROJECT}/statuses/{head}");
    assert_eq!(
        writes,
        [
            statuses.clone(),
            statuses.clone(),
            format!("POST /projects/{PROJECT}/merge_requests/{IID}/discussions"),
            format!("POST /projects/{PROJECT}/merge_requests/{IID}/notes"),
            statuses,
        ]
    );
    let discussion = bot.writes_since(0)[2].body.clone().expect("body");
    let position = &discussion["position"];
    assert_eq!(position["position_type"], "text");
    assert_eq!(position["base_sha"], base.to_string());
    assert_eq!(position["start_sha"], base.to_string());
    assert_eq!(position["head_sha"], head.to_string());
    assert_eq!(position["old_path"], "apps/shop.yaml");
    assert_eq!(position["new_path"], "apps/shop.yaml");
    assert_eq!(
        position["new_line"],
        line_of(&head_text, "privileged: true")
    );
    assert!(
        position.get("old_line").is_none(),
        "an added line: new_line only"
    );
    let text = discussion["body"].as_str().expect("body");
    assert!(text.contains("runAsPrivileged"), "{text}");
    assert!(
        text.contains("```suggestion:-0+0\n"),
        "GitLab's suggestion syntax: {text}"
    );
    assert!(
        text.trim_end().ends_with("-->"),
        "the fingerprint marker ends it"
    );
    let summary = &bot.fake.snapshot(PROJECT, IID).notes;
    assert_eq!(summary.len(), 1, "{summary:#?}");
    // GitLab's CODEOWNERS: found in .gitlab/, both sections apply to apps/shop.yaml.
    let heading = summary[0]
        .lines()
        .find(|l| l.starts_with("#### Owned by"))
        .expect("an owner heading");
    assert!(
        heading.contains("platform/sre") && heading.contains("shop-team"),
        "{heading}"
    );
    let status = bot.fake.statuses().last().cloned().expect("a status");
    assert_eq!(status["ref"], "privileged-web", "on the source branch");
    assert!(
        status["description"]
            .as_str()
            .is_some_and(|d| d.contains("1 new problem")),
        "{status}"
    );
    let once = bot.fake.snapshot(PROJECT, IID);

    // Git was fetched over HTTP with the token as password, never in the URL.
    let expected_auth = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("oauth2:{TOKEN}"))
    );
    assert!(
        bot.git
            .seen_auth
            .lock()
            .expect("lock")
            .contains(&expected_auth)
    );

    // The same delivery again (GitLab's retry, or "Resend Request"): nothing queued.
    let (status, answer) = bot.deliver("Merge Request Hook", "r-1", &opened).await;
    assert_eq!(
        (status, answer["status"].as_str()),
        (200, Some("duplicate"))
    );
    // A title edit is not a code change: acknowledged, not reviewed.
    let retitled = mr_event(
        "merge_request_update_title.json",
        PROJECT,
        "platform/shop",
        head,
    );
    let (status, answer) = bot.deliver("Merge Request Hook", "t-1", &retitled).await;
    assert_eq!((status, answer["status"].as_str()), (200, Some("ignored")));

    // A rescan by a developer: a new status run, no new discussion, the summary unchanged.
    let note = bot.fake.add_note_by(
        PROJECT,
        IID,
        DEVELOPER.0,
        DEVELOPER.1,
        "/kubeward rescan",
        false,
    );
    let before = bot.fake.requests().len();
    let (status, _) = bot
        .deliver(
            "Note Hook",
            "n-1",
            &note_event(note, DEVELOPER, "/kubeward rescan"),
        )
        .await;
    assert_eq!(status, 202);
    bot.settle().await;
    assert_eq!(
        bot.posted_states(before, head),
        ["pending", "running", "failed"]
    );
    assert!(
        bot.writes_since(before)
            .iter()
            .all(|r| r.path.contains("/statuses/")),
        "a rescan of the same head only runs the status again: {:#?}",
        bot.writes_since(before)
    );
    let mut expected = once.clone();
    expected.notes.push("/kubeward rescan".into());
    assert_eq!(bot.fake.snapshot(PROJECT, IID), expected);
    let log = bot.fake.request_log();
    assert!(
        log.contains(&format!(
            "GET /projects/{PROJECT}/merge_requests/{IID}/notes/{note}"
        )) && log.contains(&format!(
            "GET /projects/{PROJECT}/members/all/{}",
            DEVELOPER.0
        )),
        "the author is re-read and checked through the API"
    );

    // `help` is answered once, even when the comment is delivered again under another key.
    let help = bot.fake.add_note_by(
        PROJECT,
        IID,
        MAINTAINER.0,
        MAINTAINER.1,
        "/kubeward help",
        false,
    );
    for key in ["h-1", "h-2"] {
        let (status, _) = bot
            .deliver(
                "Note Hook",
                key,
                &note_event(help, MAINTAINER, "/kubeward help"),
            )
            .await;
        assert_eq!(status, 202);
        bot.settle().await;
    }
    let helps = bot
        .fake
        .snapshot(PROJECT, IID)
        .notes
        .iter()
        .filter(|n| n.contains(&format!("kubeward:help reply-to={help}")))
        .count();
    assert_eq!(helps, 1);

    // Not allowed: a reporter; a payload that claims a maintainer wrote a reporter's note;
    // the bot itself; system notes; edits. Nothing is published.
    let quiet = bot.fake.requests().len();
    let by_reporter = bot.fake.add_note_by(
        PROJECT,
        IID,
        REPORTER.0,
        REPORTER.1,
        "/kubeward rescan",
        false,
    );
    bot.deliver(
        "Note Hook",
        "x-1",
        &note_event(by_reporter, REPORTER, "/kubeward rescan"),
    )
    .await;
    let (status, _) = bot
        .deliver(
            "Note Hook",
            "x-2",
            &note_event(by_reporter, MAINTAINER, "/kubeward rescan"),
        )
        .await;
    assert_eq!(
        status, 202,
        "queued: only the API can tell the payload lies"
    );
    bot.settle().await;
    let log = bot.fake.request_log();
    assert!(
        !log[quiet..]
            .iter()
            .any(|l| l.ends_with(&format!("/members/all/{}", MAINTAINER.0))),
        "access is checked for the note's real author: {:#?}",
        &log[quiet..]
    );
    let mut own = note_event(4, (BOT_ID, BOT), "/kubeward rescan");
    let (status, answer) = bot.deliver("Note Hook", "x-3", &own).await;
    assert_eq!((status, answer["status"].as_str()), (200, Some("ignored")));
    own["user"] = json!({"id": DEVELOPER.0, "username": DEVELOPER.1});
    own["object_attributes"]["system"] = json!(true);
    let (status, answer) = bot.deliver("Note Hook", "x-4", &own).await;
    assert_eq!((status, answer["status"].as_str()), (200, Some("ignored")));
    own["object_attributes"]["system"] = json!(false);
    own["object_attributes"]["action"] = json!("update");
    let (status, answer) = bot.deliver("Note Hook", "x-5", &own).await;
    assert_eq!((status, answer["status"].as_str()), (200, Some("ignored")));
    // Other events are acknowledged too: GitLab disables hooks whose deliveries fail.
    let (status, answer) = bot
        .deliver(
            "Pipeline Hook",
            "x-6",
            &json!({"object_kind": "pipeline", "project": {"id": PROJECT}}),
        )
        .await;
    assert_eq!((status, answer["status"].as_str()), (200, Some("ignored")));
    bot.settle().await;
    assert!(
        bot.writes_since(quiet).is_empty(),
        "{:#?}",
        bot.writes_since(quiet)
    );
    assert!(after_first > 0);

    bot.assert_requests_valid();
    let _ = bot.stop.send(true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_push_resolves_fixed_discussions_unless_a_person_replied() {
    let upstream = Upstream::new("platform/shop");
    let base_text = deployment("", "");
    let base = upstream.commit("refs/heads/main", &[], &files(&base_text));
    // Two new problems, far enough apart to be two discussions.
    let head_text = deployment(
        "      hostNetwork: true\n",
        "            privileged: true\n",
    );
    let head = upstream.commit("refs/merge-requests/7/head", &[base], &files(&head_text));
    let bot = start(&upstream, 2).await;
    bot.fake.add_project(PROJECT, "platform/shop");
    bot.open_merge_request(&upstream, PROJECT, base, base, head);
    let (status, _) = bot
        .deliver(
            "Merge Request Hook",
            "p-1",
            &mr_event("merge_request_open.json", PROJECT, "platform/shop", head),
        )
        .await;
    assert_eq!(status, 202);
    bot.settle().await;
    let discussions = bot.fake.discussions(PROJECT, IID);
    let positioned: Vec<&Value> = discussions
        .iter()
        .filter(|d| d["notes"][0]["position"].is_object())
        .collect();
    assert_eq!(positioned.len(), 2, "{discussions:#?}");
    let id_at = |needle: &str| {
        let line = line_of(&head_text, needle);
        positioned
            .iter()
            .find(|d| d["notes"][0]["position"]["new_line"] == line)
            .and_then(|d| d["id"].as_str())
            .map(str::to_owned)
            .expect("a discussion on that line")
    };
    let privileged = id_at("privileged: true");
    let host_network = id_at("hostNetwork: true");
    // A person answers in the hostNetwork thread.
    bot.fake.reply_by(
        PROJECT,
        IID,
        &host_network,
        MAINTAINER.0,
        MAINTAINER.1,
        "The node exporter needs the host network.",
    );

    // A push fixes both; the payload's `oldrev` marks a code change.
    let fixed = upstream.commit(
        "refs/merge-requests/7/head",
        &[head],
        &files(&base_text.replace("replicas: 2", "replicas: 3")),
    );
    bot.open_merge_request(&upstream, PROJECT, base, base, fixed);
    let before = bot.fake.requests().len();
    let mut pushed = mr_event(
        "merge_request_update_push.json",
        PROJECT,
        "platform/shop",
        fixed,
    );
    pushed["object_attributes"]["oldrev"] = json!(head.to_string());
    let (status, _) = bot.deliver("Merge Request Hook", "p-2", &pushed).await;
    assert_eq!(status, 202);
    bot.settle().await;
    let puts: Vec<String> = bot
        .writes_since(before)
        .iter()
        .filter(|r| r.method == Method::Put)
        .map(|r| r.path.clone())
        .collect();
    let summary_edit = puts.iter().filter(|p| p.contains("/notes/")).count();
    assert_eq!(
        summary_edit, 1,
        "the summary note is edited in place: {puts:#?}"
    );
    let resolves: Vec<&String> = puts
        .iter()
        .filter(|p| p.contains("/discussions/"))
        .collect();
    assert_eq!(
        resolves,
        [&format!(
            "/projects/{PROJECT}/merge_requests/{IID}/discussions/{privileged}?resolved=true"
        )],
        "only the thread nobody answered is resolved"
    );
    assert_eq!(
        bot.posted_states(before, fixed),
        ["pending", "running", "success"]
    );
    assert!(
        !bot.writes_since(before)
            .iter()
            .any(|r| r.method == Method::Post && r.path.ends_with("/discussions")),
        "nothing new to say"
    );
    let snapshot = bot.fake.snapshot(PROJECT, IID);
    assert_eq!(snapshot.notes.len(), 1, "one summary note");
    assert!(
        snapshot.notes[0].contains("No new problems"),
        "{}",
        snapshot.notes[0]
    );

    // The problem comes back: the thread we resolved is reopened, not duplicated.
    let again = upstream.commit(
        "refs/merge-requests/7/head",
        &[fixed],
        &files(
            &deployment("", "            privileged: true\n").replace("replicas: 2", "replicas: 3"),
        ),
    );
    bot.open_merge_request(&upstream, PROJECT, base, base, again);
    let before = bot.fake.requests().len();
    let mut pushed = mr_event(
        "merge_request_update_push.json",
        PROJECT,
        "platform/shop",
        again,
    );
    pushed["object_attributes"]["oldrev"] = json!(fixed.to_string());
    bot.deliver("Merge Request Hook", "p-3", &pushed).await;
    bot.settle().await;
    let reopened: Vec<String> = bot
        .writes_since(before)
        .iter()
        .filter(|r| r.method == Method::Put && r.path.contains("/discussions/"))
        .map(|r| r.path.clone())
        .collect();
    assert_eq!(
        reopened,
        [format!(
            "/projects/{PROJECT}/merge_requests/{IID}/discussions/{privileged}?resolved=false"
        )]
    );
    assert_eq!(
        bot.fake
            .discussions(PROJECT, IID)
            .iter()
            .filter(|d| d["notes"][0]["position"].is_object())
            .count(),
        2
    );

    // Merged: queued work for it is dropped, and the delivery is acknowledged.
    let (status, _) = bot
        .deliver(
            "Merge Request Hook",
            "p-4",
            &mr_event("merge_request_close.json", PROJECT, "platform/shop", again),
        )
        .await;
    assert_eq!(status, 200);
    bot.assert_requests_valid();
    let _ = bot.stop.send(true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn renamed_files_and_unchanged_lines_get_both_paths_and_both_lines() {
    // The container's securityContext sits next to its name; renaming the container makes
    // its findings new, and their suggestions land on the unchanged securityContext lines.
    let layout = |name: &str| {
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
        - name: {name}
          securityContext:
            allowPrivilegeEscalation: false
          image: shop:1.0
          resources:
            limits: {{cpu: 100m, memory: 128Mi}}
          readinessProbe:
            httpGet: {{path: /, port: 8080}}
"
        )
    };
    let upstream = Upstream::new("platform/shop");
    let base_text = layout("web");
    let base = upstream.commit(
        "refs/heads/main",
        &[],
        &[
            (".gitlab/CODEOWNERS", OWNERS),
            ("apps/shop.yaml", &base_text),
        ],
    );
    // Renamed to apps/web.yaml, one line added on top (shifting every line by one).
    let head_text = format!("# The web tier.\n{}", layout("api"));
    let head = upstream.commit(
        "refs/merge-requests/7/head",
        &[base],
        &[
            (".gitlab/CODEOWNERS", OWNERS),
            ("apps/web.yaml", &head_text),
        ],
    );
    let bot = start(&upstream, 1).await;
    bot.fake.add_project(PROJECT, "platform/shop");
    bot.open_merge_request(&upstream, PROJECT, base, base, head);
    // From a fork the token cannot see: the status goes on the target's merge request ref.
    let mut from_fork = bot.fake.merge_request(PROJECT, IID).expect("declared");
    from_fork["source_project_id"] = json!(777);
    bot.fake.set_merge_request(PROJECT, IID, from_fork);
    let (status, _) = bot
        .deliver(
            "Merge Request Hook",
            "m-1",
            &mr_event("merge_request_open.json", PROJECT, "platform/shop", head),
        )
        .await;
    assert_eq!(status, 202);
    bot.settle().await;
    let positions: Vec<Value> = bot
        .writes_since(0)
        .iter()
        .filter(|r| r.path.ends_with("/discussions"))
        .map(|r| r.body.as_ref().expect("body")["position"].clone())
        .collect();
    assert!(!positions.is_empty());
    for p in &positions {
        assert_eq!(
            (p["old_path"].as_str(), p["new_path"].as_str()),
            (Some("apps/shop.yaml"), Some("apps/web.yaml")),
            "{p}"
        );
    }
    let context = positions
        .iter()
        .find(|p| p.get("old_line").is_some())
        .expect("a comment on an unchanged line");
    let old_line = line_of(&base_text, "allowPrivilegeEscalation");
    assert_eq!(
        (context["old_line"].as_u64(), context["new_line"].as_u64()),
        (Some(old_line), Some(old_line + 1)),
        "an unchanged line names its line on both sides"
    );
    let status = bot.fake.statuses().last().cloned().expect("a status");
    assert_eq!(
        (status["project_id"].as_u64(), status["ref"].as_str()),
        (Some(PROJECT), Some("refs/merge-requests/7/head"))
    );
    // Only warnings: they do not fail the status.
    assert_eq!(
        bot.posted_states(0, head),
        ["pending", "running", "success"]
    );
    // Every position was accepted (the fake refuses what GitLab would), none moved to the summary.
    let snapshot = bot.fake.snapshot(PROJECT, IID);
    assert_eq!(snapshot.discussions.len(), positions.len());
    assert!(!snapshot.notes[0].contains("GitLab refused"));
    bot.assert_requests_valid();
    let _ = bot.stop.send(true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lost_answers_and_refused_positions_never_duplicate_or_lose_a_finding() {
    let upstream = Upstream::new("platform/shop");
    let base_text = deployment("", "");
    let base = upstream.commit("refs/heads/main", &[], &files(&base_text));
    let head_text = deployment(
        "      hostNetwork: true\n",
        "            privileged: true\n",
    );
    let head = upstream.commit("refs/merge-requests/7/head", &[base], &files(&head_text));
    let bot = start(&upstream, 1).await;
    bot.fake.add_project(PROJECT, "platform/shop");
    bot.open_merge_request(&upstream, PROJECT, base, base, head);
    // GitLab will not place a comment on the hostNetwork line (as if its diff differed).
    let host_network = line_of(&head_text, "hostNetwork: true") as u32;
    let (old_path, new_path, lines) = upstream
        .diff(base, head)
        .into_iter()
        .find(|(_, new, _)| new == "apps/shop.yaml")
        .expect("the manifest's diff");
    let lines = lines
        .into_iter()
        .filter(|(_, new)| *new != Some(host_network))
        .collect();
    bot.fake.set_diff(PROJECT, IID, &old_path, &new_path, lines);
    // Every kind of POST lands, but its answer is lost once.
    // (The final status is the third status POST: the second entry lets two through.)
    bot.lose_answers.lock().expect("lock").extend([
        (format!("/statuses/{head}"), 0),
        ("/discussions".to_owned(), 0),
        ("/notes".to_owned(), 0),
        (format!("/statuses/{head}"), 1),
    ]);
    let (status, _) = bot
        .deliver(
            "Merge Request Hook",
            "l-1",
            &mr_event("merge_request_open.json", PROJECT, "platform/shop", head),
        )
        .await;
    assert_eq!(status, 202);
    bot.settle().await;
    assert!(
        bot.lose_answers.lock().expect("lock").is_empty(),
        "every answer was lost once"
    );
    // The pending status landed: it is not posted again, the run goes on from there.
    assert_eq!(bot.posted_states(0, head), ["pending", "running", "failed"]);
    let states: Vec<Value> = bot
        .fake
        .statuses()
        .iter()
        .map(|s| s["status"].clone())
        .collect();
    assert_eq!(
        states,
        [json!("failed")],
        "one status, finished, not a second one"
    );
    let snapshot = bot.fake.snapshot(PROJECT, IID);
    assert_eq!(
        snapshot
            .discussions
            .iter()
            .map(|d| d.new_line)
            .collect::<Vec<_>>(),
        [Some(line_of(&head_text, "privileged: true"))],
        "one discussion, not two: the lost answer was checked before posting again"
    );
    assert_eq!(
        snapshot.notes.len(),
        1,
        "one summary note: {:#?}",
        snapshot.notes
    );
    let summary = &snapshot.notes[0];
    assert!(
        summary.contains("GitLab refused to place some inline comments")
            && summary.contains(&format!("line {host_network}")),
        "the refused comment is listed in the summary: {summary}"
    );
    let posts = bot
        .writes_since(0)
        .iter()
        .filter(|r| r.path.ends_with("/discussions"))
        .count();
    assert_eq!(
        posts, 2,
        "the refused position is not retried; the landed one not re-sent"
    );
    bot.assert_requests_valid();
    let _ = bot.stop.send(true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_review_that_fails_for_good_leaves_a_failed_status_not_a_running_one() {
    let upstream = Upstream::new("platform/shop");
    let base = upstream.commit("refs/heads/main", &[], &files(&deployment("", "")));
    let head = upstream.commit(
        "refs/merge-requests/7/head",
        &[base],
        &files(&deployment("", "            privileged: true\n")),
    );
    let bot = start_with(&upstream, 1, QueueConfig::default().with_max_attempts(1)).await;
    // GitLab says the project lives at a path the git server does not serve: the fetch fails.
    bot.fake.add_project(PROJECT, "platform/moved-away");
    bot.open_merge_request(&upstream, PROJECT, base, base, head);
    let (status, answer) = bot
        .deliver(
            "Merge Request Hook",
            "f-1",
            &mr_event("merge_request_open.json", PROJECT, "platform/shop", head),
        )
        .await;
    assert_eq!(status, 202);
    let job = answer["jobs"][0].as_i64().expect("job id");
    bot.settle().await;
    let job = bot.queue.get(job).await.expect("get").expect("job");
    assert_eq!(job.state, JobState::Dead);
    let error = job.last_error.unwrap_or_default();
    assert!(error.contains("platform/moved-away.git"), "{error}");
    assert!(!error.contains(TOKEN), "{error}");
    assert_eq!(bot.posted_states(0, head), ["pending", "running", "failed"]);
    assert!(bot.fake.snapshot(PROJECT, IID).discussions.is_empty());
    bot.assert_requests_valid();
    let _ = bot.stop.send(true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_deliveries_are_verified_deduplicated_and_closing_drops_queued_work() {
    let upstream = Upstream::new("platform/shop");
    let bot = start(&upstream, 0).await;
    let key = SigningKey::parse(&Secret::new(SIGNING)).expect("key");
    let head = git2::Oid::from_str("4f2c1e0a9b8d7c6e5f4a3b2c1d0e9f8a7b6c5d4e").expect("sha");
    let event = mr_event(
        "merge_request_open.json",
        SIGNED_PROJECT,
        "platform/signed",
        head,
    );
    let body = serde_json::to_vec(&event).expect("json");
    let signed = |id: &str, timestamp: u64, body: &[u8]| {
        let ts = timestamp.to_string();
        vec![
            ("webhook-id", id.to_owned()),
            ("webhook-timestamp", ts.clone()),
            ("webhook-signature", key.sign(id, &ts, body)),
        ]
    };
    let now = unix_now();
    // Forged, stale, or token-only deliveries: refused.
    let mut forged = signed("msg_1", now, &body);
    forged[2].1 = key.sign("msg_1", &now.to_string(), b"{}");
    let (status, _) = bot.post("Merge Request Hook", &forged, body.clone()).await;
    assert_eq!(status, 401);
    let (status, _) = bot
        .post(
            "Merge Request Hook",
            &signed("msg_1", now - 600, &body),
            body.clone(),
        )
        .await;
    assert_eq!(status, 401, "outside the 5-minute window");
    let (status, _) = bot
        .post(
            "Merge Request Hook",
            &[
                ("x-gitlab-token", SECRET.to_owned()),
                ("webhook-id", "msg_1".to_owned()),
            ],
            body.clone(),
        )
        .await;
    assert_eq!(status, 401);
    // Authentic: queued once; `webhook-id` de-duplicates when there is no Idempotency-Key.
    let (status, answer) = bot
        .post(
            "Merge Request Hook",
            &signed("msg_1", now, &body),
            body.clone(),
        )
        .await;
    assert_eq!(status, 202, "{answer}");
    let job = answer["jobs"][0].as_i64().expect("job id");
    let (status, answer) = bot
        .post(
            "Merge Request Hook",
            &signed("msg_1", now + 1, &body),
            body.clone(),
        )
        .await;
    assert_eq!(
        (status, answer["status"].as_str()),
        (200, Some("duplicate"))
    );
    let queued = bot.queue.get(job).await.expect("get").expect("job");
    assert_eq!(
        (queued.forge.as_str(), queued.kind.as_str()),
        ("gitlab", "gitlab-review")
    );
    assert_eq!(
        (queued.repo_id, queued.pr_number),
        (SIGNED_PROJECT as i64, Some(IID as i64))
    );
    assert_eq!(queued.head_sha.as_deref(), Some(head.to_string().as_str()));
    assert_eq!(queued.payload["delivery"], "msg_1");
    // A push supersedes it; closing drops what is queued.
    let newer = git2::Oid::from_str("9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b").expect("sha");
    let mut push = mr_event(
        "merge_request_update_push.json",
        SIGNED_PROJECT,
        "platform/signed",
        newer,
    );
    push["object_attributes"]["oldrev"] = json!(head.to_string());
    let push = serde_json::to_vec(&push).expect("json");
    let (status, answer) = bot
        .post(
            "Merge Request Hook",
            &signed("msg_2", now, &push),
            push.clone(),
        )
        .await;
    assert_eq!(status, 202);
    let newer_job = answer["jobs"][0].as_i64().expect("job id");
    assert_eq!(
        bot.queue.get(job).await.expect("get").expect("job").state,
        JobState::Superseded
    );
    let close = serde_json::to_vec(&mr_event(
        "merge_request_close.json",
        SIGNED_PROJECT,
        "platform/signed",
        newer,
    ))
    .expect("json");
    let (status, answer) = bot
        .post(
            "Merge Request Hook",
            &signed("msg_3", now, &close),
            close.clone(),
        )
        .await;
    assert_eq!((status, answer["status"].as_str()), (200, Some("ignored")));
    assert_eq!(
        bot.queue
            .get(newer_job)
            .await
            .expect("get")
            .expect("job")
            .state,
        JobState::Dropped
    );
    assert!(
        bot.fake.requests().is_empty(),
        "no worker ran, nothing asked of GitLab"
    );
    let _ = bot.stop.send(true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn group_secrets_cover_only_projects_the_api_places_in_the_group() {
    let upstream = Upstream::new("platform/payments");
    let bot = start(&upstream, 1).await;
    let head = git2::Oid::from_str("4f2c1e0a9b8d7c6e5f4a3b2c1d0e9f8a7b6c5d4e").expect("sha");
    let headers = |key: &str| {
        vec![
            ("x-gitlab-token", GROUP_SECRET.to_owned()),
            ("idempotency-key", key.to_owned()),
        ]
    };
    let event = |path: &str| {
        serde_json::to_vec(&mr_event(
            "merge_request_open.json",
            GROUP_PROJECT,
            path,
            head,
        ))
        .expect("json")
    };
    // The payload's path is outside the group: refused at the door.
    let (status, _) = bot
        .post(
            "Merge Request Hook",
            &headers("g-1"),
            event("elsewhere/payments"),
        )
        .await;
    assert_eq!(status, 401);
    // The payload claims the group, but GitLab says the project lives elsewhere: the worker
    // finds out from the API and does nothing.
    bot.fake.add_project(GROUP_PROJECT, "elsewhere/payments");
    let (status, answer) = bot
        .post(
            "Merge Request Hook",
            &headers("g-2"),
            event("platform/payments"),
        )
        .await;
    assert_eq!(status, 202, "{answer}");
    let job = answer["jobs"][0].as_i64().expect("job id");
    assert_eq!(
        bot.queue.get(job).await.expect("get").expect("job").payload["allowedGroups"],
        json!(["platform"])
    );
    bot.settle().await;
    assert_eq!(
        bot.fake.request_log(),
        [format!("GET /projects/{GROUP_PROJECT}")],
        "only the project was read"
    );
    bot.assert_requests_valid();
    let _ = bot.stop.send(true);
}

/// A job the worker cut off at its time limit on its last attempt concluded nothing itself:
/// the status it left running is failed, saying why; a final status is left alone.
#[tokio::test]
async fn a_given_up_job_fails_the_status_it_left_running() {
    let fake = Arc::new(FakeGitLab::new(BOT_ID, BOT));
    fake.add_project(PROJECT, "platform/shop");
    let head = "4f2c1e0a9b8d7c6e5f4a3b2c1d0e9f8a7b6c5d4e";
    fake.set_merge_request(
        PROJECT,
        IID,
        json!({
            "id": 880001, "iid": IID, "project_id": PROJECT, "state": "opened", "draft": false,
            "sha": head, "source_project_id": PROJECT, "target_project_id": PROJECT,
            // GitLab has not computed the diff yet: the status is failed all the same.
            "source_branch": "privileged-web", "target_branch": "main", "diff_refs": null,
        }),
    );
    let dir = tempfile::tempdir().expect("temp");
    let worker = GitLabWorker {
        api: fake.clone() as Arc<dyn GitLabApi>,
        cache: Arc::new(GitCache::new(dir.path().join("cache"), 1 << 30)),
        git_token: None,
        settings: bot_settings("https://gitlab.test"),
    };
    let running = json!({"state": "running", "name": "kubeward", "ref": "privileged-web"});
    fake.call(kubeward::forge::gitlab::Request::post(
        format!("/projects/{PROJECT}/statuses/{head}"),
        running,
    ))
    .await
    .expect("a running status");
    let job = serde_json::to_value(kubeward::forge::job::GitLabJob::Review {
        project_id: PROJECT,
        iid: IID,
        head_sha: Some(head.into()),
        trigger: "push".into(),
        allowed_groups: Vec::new(),
    })
    .expect("payload");
    let reason = "the job hit its 600s time limit";
    for _ in 0..2 {
        worker
            .conclude_abandoned(&job, reason)
            .await
            .expect("concluded");
    }
    let statuses = fake.statuses();
    let last = statuses.last().expect("a status");
    assert_eq!(last["status"], "failed", "{statuses:#?}");
    assert!(
        last["description"]
            .as_str()
            .is_some_and(|d| d.contains(reason)),
        "{last}"
    );
    let posts = fake
        .requests()
        .into_iter()
        .filter(|r| r.method == Method::Post && r.path.contains("/statuses/"))
        .count();
    assert_eq!(posts, 2, "running, then failed once");
}

/// A change the review could not judge in full fails its status by default; with the target
/// branch's `incomplete: neutral` it passes (a commit status has no neutral), saying why.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_incomplete_review_fails_unless_the_policy_opts_into_neutral() {
    let padded = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: big, namespace: shop}}\ndata: {{a: b}}\n{}",
        "# padding\n".repeat(40)
    );
    for (policy, state) in [
        ("limits: {maxFileSize: 300}\n", "failed"),
        (
            "incomplete: neutral\nlimits: {maxFileSize: 300}\n",
            "success",
        ),
    ] {
        let upstream = Upstream::new("platform/shop");
        let base = upstream.commit("refs/heads/main", &[], &[(".kubeward.yaml", policy)]);
        let head = upstream.commit(
            "refs/merge-requests/7/head",
            &[base],
            &[(".kubeward.yaml", policy), ("apps/big.yaml", &padded)],
        );
        let bot = start(&upstream, 1).await;
        bot.fake.add_project(PROJECT, "platform/shop");
        bot.open_merge_request(&upstream, PROJECT, base, base, head);
        let (status, _) = bot
            .deliver(
                "Merge Request Hook",
                &format!("i-{state}"),
                &mr_event("merge_request_open.json", PROJECT, "platform/shop", head),
            )
            .await;
        assert_eq!(status, 202);
        bot.settle().await;
        assert_eq!(bot.posted_states(0, head), ["pending", "running", state]);
        let last = bot
            .writes_since(0)
            .into_iter()
            .rev()
            .find(|r| r.path.ends_with(&format!("/statuses/{head}")))
            .and_then(|r| r.body)
            .expect("a final status");
        assert_eq!(
            last["description"], "Incomplete: 1 changed file not reviewed",
            "{last}"
        );
        let summary = bot
            .fake
            .snapshot(PROJECT, IID)
            .notes
            .into_iter()
            .find(|b| b.contains("kubeward:summary"))
            .expect("summary note");
        assert!(
            summary.contains("`apps/big.yaml`: larger than the size limit"),
            "{summary}"
        );
        bot.assert_requests_valid();
        let _ = bot.stop.send(true);
    }
}

/// A job whose attempts keep crashing (each attempt's lease runs out: its worker died) is not
/// reviewed again after the last one: its running status is failed, saying so, and the job
/// dead-lettered. Without that, the required status would stay running for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_job_whose_attempts_keep_crashing_fails_the_status_it_left_running() {
    let upstream = Upstream::new("platform/shop");
    let base = upstream.commit("refs/heads/main", &[], &files(&deployment("", "")));
    let head = upstream.commit(
        "refs/merge-requests/7/head",
        &[base],
        &files(&deployment("", "            privileged: true\n")),
    );
    let bot = start_with(&upstream, 0, QueueConfig::default().with_max_attempts(2)).await;
    bot.fake.add_project(PROJECT, "platform/shop");
    bot.open_merge_request(&upstream, PROJECT, base, base, head);
    let (status, answer) = bot
        .deliver(
            "Merge Request Hook",
            "crash-1",
            &mr_event("merge_request_open.json", PROJECT, "platform/shop", head),
        )
        .await;
    assert_eq!(status, 202);
    let id = answer["jobs"][0].as_i64().expect("job id");
    // What the crashed attempts left: the status, running.
    bot.fake
        .call(kubeward::forge::gitlab::Request::post(
            format!("/projects/{PROJECT}/statuses/{head}"),
            json!({"state": "running", "name": "kubeward", "ref": "privileged-web"}),
        ))
        .await
        .expect("a running status");
    let seen = bot.fake.requests().len();
    for worker in ["crashes-1", "crashes-2"] {
        let claimed = bot
            .queue
            .claim(worker, Duration::from_millis(1), kubeward::queue::now_ms())
            .await
            .expect("claim")
            .expect("the job");
        assert_eq!(claimed.id, id);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (_stop, stop_rx) = watch::channel(false);
    crate::support::spawn_workers(&bot.queue, &bot.runners, 1, &stop_rx);
    bot.settle().await;
    let job = bot.queue.get(id).await.expect("get").expect("job");
    assert_eq!(
        (job.state, job.lease_expiries),
        (JobState::Dead, 2),
        "{job:?}"
    );
    assert!(
        job.last_error
            .unwrap_or_default()
            .contains("crashed or its worker died 2 times"),
    );
    // Only the status was written: failed, saying why; nothing reviewed.
    let writes = bot.writes_since(seen);
    assert_eq!(writes.len(), 1, "{writes:#?}");
    let body = writes[0].body.as_ref().expect("status body");
    assert_eq!(body["state"], "failed", "{body}");
    assert!(
        body["description"]
            .as_str()
            .is_some_and(|d| d.contains("the review crashed or its worker died 2 times")),
        "{body}"
    );
    let statuses = bot.fake.statuses();
    assert_eq!(statuses.last().expect("a status")["status"], "failed");
    bot.assert_requests_valid();
    let _ = bot.stop.send(true);
}

/// What both forges share: a draft is not reviewed and says so (GitLab: a `skipped` status,
/// GitHub: a neutral check), and a job older than the merge request's head reviews the head
/// as it is now (a lost delivery must not leave it unreviewed).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_draft_says_it_was_not_reviewed_and_a_stale_job_reviews_the_current_head() {
    let upstream = Upstream::new("platform/shop");
    let base = upstream.commit("refs/heads/main", &[], &files(&deployment("", "")));
    let old = upstream.commit(
        "refs/merge-requests/7/head",
        &[base],
        &files(&deployment("", "            privileged: false\n")),
    );
    let head = upstream.commit(
        "refs/merge-requests/7/head",
        &[old],
        &files(&deployment("", "            privileged: true\n")),
    );
    let bot = start(&upstream, 1).await;
    bot.fake.add_project(PROJECT, "platform/shop");
    bot.open_merge_request(&upstream, PROJECT, base, base, head);
    let as_draft = |draft: bool| {
        json!({
            "id": 880001, "iid": IID, "project_id": PROJECT, "state": "opened",
            "draft": draft, "sha": head.to_string(),
            "source_project_id": PROJECT, "target_project_id": PROJECT,
            "source_branch": "privileged-web", "target_branch": "main",
            "web_url": format!("https://gitlab.example.com/platform/shop/-/merge_requests/{IID}"),
            "diff_refs": {"base_sha": base.to_string(), "start_sha": base.to_string(), "head_sha": head.to_string()},
        })
    };
    bot.fake.set_merge_request(PROJECT, IID, as_draft(true));
    let (status, _) = bot
        .deliver(
            "Merge Request Hook",
            "dr-1",
            &mr_event("merge_request_open.json", PROJECT, "platform/shop", head),
        )
        .await;
    assert_eq!(status, 202);
    bot.settle().await;
    assert_eq!(bot.posted_states(0, head), ["skipped"]);
    let skipped = bot
        .writes_since(0)
        .into_iter()
        .find(|r| r.path.ends_with(&format!("/statuses/{head}")))
        .and_then(|r| r.body)
        .expect("a status");
    assert!(
        skipped["description"]
            .as_str()
            .is_some_and(|d| d.starts_with("Draft: not reviewed")),
        "{skipped}"
    );
    assert!(bot.fake.snapshot(PROJECT, IID).discussions.is_empty());

    // Marked ready; the only delivery that arrives names the older head.
    bot.fake.set_merge_request(PROJECT, IID, as_draft(false));
    let written = bot.fake.requests().len();
    let (status, _) = bot
        .deliver(
            "Merge Request Hook",
            "dr-2",
            &mr_event("merge_request_open.json", PROJECT, "platform/shop", old),
        )
        .await;
    assert_eq!(status, 202);
    bot.settle().await;
    assert_eq!(
        bot.posted_states(written, head),
        ["pending", "running", "failed"],
        "the current head is reviewed"
    );
    assert!(bot.posted_states(0, old).is_empty());
    assert_eq!(bot.fake.snapshot(PROJECT, IID).discussions.len(), 1);
    bot.assert_requests_valid();
    let _ = bot.stop.send(true);
}

/// What both forges share (GitHub: `a_retried_review_superseded_while_waiting_leaves_no_check_in_progress`):
/// a review that fails says so on the status before it is retried, never leaving it running,
/// and the retry starts the status again; the last attempt says it will not retry.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_attempt_fails_the_status_and_the_retry_runs_it_again() {
    let upstream = Upstream::new("platform/shop");
    let base = upstream.commit("refs/heads/main", &[], &files(&deployment("", "")));
    let head = upstream.commit(
        "refs/merge-requests/7/head",
        &[base],
        &files(&deployment("", "            privileged: true\n")),
    );
    let config = QueueConfig::default()
        .with_max_attempts(2)
        .with_backoff(10, 10);
    let bot = start_with(&upstream, 1, config).await;
    // The project's repository is not served: every fetch fails, and is retried.
    bot.fake.add_project(PROJECT, "platform/gone");
    bot.open_merge_request(&upstream, PROJECT, base, base, head);
    let (status, _) = bot
        .deliver(
            "Merge Request Hook",
            "rf-1",
            &mr_event("merge_request_open.json", PROJECT, "platform/shop", head),
        )
        .await;
    assert_eq!(status, 202);
    bot.settle().await;
    assert_eq!(
        bot.posted_states(0, head),
        [
            "pending", "running", "failed", "pending", "running", "failed"
        ]
    );
    let descriptions: Vec<String> = bot
        .writes_since(0)
        .iter()
        .filter(|r| r.path.ends_with(&format!("/statuses/{head}")))
        .filter(|r| r.body.as_ref().is_some_and(|b| b["state"] == "failed"))
        .filter_map(|r| r.body.as_ref()?["description"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(
        descriptions,
        [
            "kubeward hit an error; retrying",
            "kubeward could not review this change"
        ]
    );
    bot.assert_requests_valid();
    let _ = bot.stop.send(true);
}

/// A 429 longer than a request may wait reaches the queue typed, with its wait: the job is
/// deferred until then, not failed (the worker's rule for every forge).
#[tokio::test]
async fn a_long_gitlab_rate_limit_defers_the_job_with_its_wait() {
    kubeward::bot::serve::install_crypto();
    let mock = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "90"))
        .mount(&mock)
        .await;
    let client =
        GitLabClient::new(GitLabClientConfig::new(mock.uri(), Secret::new(TOKEN))).expect("client");
    let dir = tempfile::tempdir().expect("temp");
    let worker = GitLabWorker {
        api: Arc::new(client) as Arc<dyn GitLabApi>,
        cache: Arc::new(GitCache::new(dir.path().join("cache"), 1 << 30)),
        git_token: None,
        settings: bot_settings("https://gitlab.test"),
    };
    let job = serde_json::to_value(kubeward::forge::job::GitLabJob::Review {
        project_id: PROJECT,
        iid: IID,
        head_sha: Some("4f2c1e0a9b8d7c6e5f4a3b2c1d0e9f8a7b6c5d4e".into()),
        trigger: "push".into(),
        allowed_groups: Vec::new(),
    })
    .expect("payload");
    let started = Instant::now();
    let error = worker
        .run_job(&job, &kubeward::bot::runner::Cancel::default(), false)
        .await
        .expect_err("rate limited");
    assert_eq!(
        error.retry_after(),
        Some(Duration::from_secs(90)),
        "{error:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(10), "did not wait");
}

/// `kubeward ci` in a merged-results merge-request pipeline, with GitLab's documented CI
/// variables and a project access token: the same discussions, summary note and commit status
/// as the bot, on the merge request's head (not GitLab's merge commit), and a second run of
/// the job posts nothing new.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kubeward_ci_in_a_merge_request_pipeline_publishes_as_the_bot_does() {
    let upstream = Upstream::new("platform/shop");
    let base = upstream.commit("refs/heads/main", &[], &files(&deployment("", "")));
    let head = upstream.commit(
        "refs/merge-requests/7/head",
        &[base],
        &files(&deployment("", "            privileged: true\n")),
    );
    let bot = start(&upstream, 0).await;
    bot.fake.add_project(PROJECT, "platform/shop");
    bot.open_merge_request(&upstream, PROJECT, base, base, head);
    // The runner's clone: the target branch and the merge request's head.
    let dir = tempfile::tempdir().expect("temp");
    let checkout = dir.path().join("checkout");
    let repo = git2::Repository::init(&checkout).expect("init");
    let mut callbacks = git2::RemoteCallbacks::new();
    callbacks.credentials(|_, _, _| git2::Cred::userpass_plaintext("gitlab-ci-token", TOKEN));
    let mut options = git2::FetchOptions::new();
    options.remote_callbacks(callbacks);
    repo.remote_anonymous(&format!("{}/platform/shop.git", bot.git.base_url))
        .expect("remote")
        .fetch(
            &[
                "+refs/heads/main:refs/remotes/origin/main",
                "+refs/merge-requests/7/head:refs/mr",
            ],
            Some(&mut options),
            None,
        )
        .expect("clone");
    let env: kubeward::ci::Env = [
        ("GITLAB_CI", "true".to_owned()),
        ("CI_PIPELINE_SOURCE", "merge_request_event".to_owned()),
        ("CI_MERGE_REQUEST_IID", IID.to_string()),
        ("CI_PROJECT_ID", PROJECT.to_string()),
        ("CI_PROJECT_PATH", "platform/shop".to_owned()),
        ("CI_SERVER_URL", bot._mock.uri()),
        ("CI_API_V4_URL", format!("{}/api/v4", bot._mock.uri())),
        ("CI_MERGE_REQUEST_DIFF_BASE_SHA", base.to_string()),
        ("CI_MERGE_REQUEST_SOURCE_BRANCH_SHA", head.to_string()),
        ("CI_COMMIT_SHA", "e".repeat(40)),
        ("CI_PROJECT_DIR", checkout.display().to_string()),
        ("KUBEWARD_GITLAB_TOKEN", TOKEN.to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let args = kubeward::ci::CiArgs {
        bot_login: Some(BOT.into()),
        ..Default::default()
    };
    let mut out = Vec::new();
    let code = kubeward::ci::run(&args, &env, &mut out)
        .await
        .expect("kubeward ci");
    let out = String::from_utf8_lossy(&out).into_owned();
    assert_eq!(code, 3, "{out}");
    assert!(
        out.contains("kubeward: conclusion=failure new=1 fixed=0"),
        "{out}"
    );
    assert_eq!(bot.posted_states(0, head), ["pending", "running", "failed"]);
    let snapshot = bot.fake.snapshot(PROJECT, IID);
    assert_eq!(snapshot.discussions.len(), 1);
    assert!(checkout.join("gl-code-quality-report.json").exists());

    let written = bot.fake.requests().len();
    let code = kubeward::ci::run(&args, &env, &mut Vec::new())
        .await
        .expect("again");
    assert_eq!(code, 3);
    assert_eq!(bot.fake.snapshot(PROJECT, IID).discussions.len(), 1);
    let again: Vec<String> = bot
        .writes_since(written)
        .iter()
        .filter(|r| !r.path.contains("/statuses/"))
        .map(|r| format!("{:?} {}", r.method, r.path))
        .collect();
    assert!(again.is_empty(), "only the status is set again: {again:#?}");
    bot.assert_requests_valid();
    let _ = bot.stop.send(true);
}

/// A Push Hook to the project's default branch queues a snapshot on the branch's lane: the
/// commit is fetched with the bot's token and audited with the GitLab CODEOWNERS of that
/// commit; a push to another branch queues nothing; a merged merge request is recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_push_to_the_default_branch_is_snapshotted_with_gitlab_owners() {
    let upstream = Upstream::new("platform/shop");
    let base = upstream.commit("refs/heads/main", &[], &files(&deployment("", "")));
    let pushed = upstream.commit(
        "refs/heads/main",
        &[base],
        &files(&deployment("", "            privileged: true\n")),
    );
    let bot = start(&upstream, 2).await;
    bot.fake.add_project(PROJECT, "platform/shop");

    let mut merged = mr_event("merge_request_close.json", PROJECT, "platform/shop", pushed);
    merged["object_attributes"]["action"] = json!("merge");
    merged["object_attributes"]["state"] = json!("merged");
    merged["object_attributes"]["merge_commit_sha"] = json!(pushed.to_string());
    assert_eq!(
        bot.deliver("Merge Request Hook", "merged", &merged).await.0,
        200
    );

    let mut push = payload("push.json");
    push["after"] = json!(pushed.to_string());
    let (status, answer) = bot.deliver("Push Hook", "push-main", &push).await;
    assert_eq!(status, 202, "{answer}");
    let mut other = push.clone();
    other["ref"] = json!("refs/heads/feature");
    let (_, answer) = bot.deliver("Push Hook", "push-feature", &other).await;
    assert!(
        answer
            .to_string()
            .contains("not a push to the default branch"),
        "{answer}"
    );
    bot.settle().await;

    let snapshots = bot
        .queue
        .snapshots("gitlab", PROJECT as i64)
        .await
        .expect("snapshots");
    assert_eq!(snapshots.len(), 1, "{snapshots:?}");
    assert_eq!(snapshots[0].commit, pushed.to_string());
    assert!(snapshots[0].open_danger > 0, "{snapshots:?}");
    // The merge request was never reviewed, so its merge does not count as covered.
    assert!(!snapshots[0].reviewed);
    let open = bot
        .queue
        .open_findings("gitlab", PROJECT as i64)
        .await
        .expect("open");
    assert!(open.iter().any(|f| f.rule == "runAsPrivileged"), "{open:?}");
    let expected = kubeward::owners::CodeOwners::parse(
        kubeward::owners::Flavor::GitLab,
        ".gitlab/CODEOWNERS",
        OWNERS,
    )
    .owners_of("apps/shop.yaml")
    .owners;
    assert!(!expected.is_empty());
    assert!(open.iter().all(|f| f.owners == expected), "{open:?}");
    let team = bot.queue.team_findings(&expected[0]).await.expect("team");
    assert_eq!(team.len(), open.len());
    assert!(team.iter().all(|f| f.repository == "platform/shop"
        && f.web_url.as_deref() == Some("https://gitlab.example.com/platform/shop")));
    let _ = bot.stop.send(true);
}
