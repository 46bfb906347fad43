//! `kubeward testdrive`: the whole bot on this machine, nothing sent anywhere. A throwaway
//! repository with a pull request, the real server on loopback with the embedded SQLite queue,
//! a signed `pull_request` webhook, a real worker, and a dry-run GitHub that records what the
//! bot would post, printed as GitHub would show it.
//!
//! Two example pull requests: a manifest change, and a Helm chart's values change reviewed by
//! rendering the chart. The second needs `helm`; without one it is left out and the report says
//! how to get it.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{Value, json};
use tokio::sync::watch;

use super::fetch::ReviewLimits;
use super::github::{BotSettings, GitAccess, GitHubWorker};
use super::runner::BoxFuture;
use super::sandbox::{SandboxSettings, default_memory_bytes};
use super::worker::{WorkerSettings, run as run_worker};
use crate::forge::Secret;
use crate::forge::github::api::{ApiError, GitHubApi};
use crate::forge::github::fake::FakeGitHub;
use crate::forge::job::RepoRef;
use crate::git::build;
use crate::git::cache::GitCache;
use crate::pipeline::ReviewBudgets;
use crate::queue::Queue;
use crate::server::github::github_signature;
use crate::server::{AppState, GitHubHooks, router};

const BASE: &str = include_str!("../../examples/testdrive/base.yaml");
const HEAD: &str = include_str!("../../examples/testdrive/head.yaml");
const CODEOWNERS: &str = include_str!("../../examples/testdrive/CODEOWNERS");
const POLICY: &str = include_str!("../../examples/testdrive/kubeward.yaml");
const MANIFEST: &str = "apps/shop/deployment.yaml";
const CHART: &str = include_str!("../../examples/testdrive/web/Chart.yaml");
const CHART_VALUES: &str = include_str!("../../examples/testdrive/web/values.yaml");
const CHART_VALUES_HEAD: &str =
    include_str!("../../examples/testdrive/web/values-pull-request.yaml");
const CHART_TEMPLATE: &str = include_str!("../../examples/testdrive/web/templates/deployment.yaml");
const CHART_ROOT: &str = "charts/web";

/// What `kubeward testdrive` is given.
#[derive(Debug, Clone, Default)]
pub struct TestdriveOptions {
    /// The helm that renders the chart example [default: on PATH; none: the example is left out].
    pub helm: Option<PathBuf>,
    /// Where the ownership report of the example repository is written (HTML).
    pub report: PathBuf,
}

/// One example pull request: its branch, title and the files its head changes.
struct Example {
    number: u64,
    branch: &'static str,
    title: &'static str,
    changes: Vec<(String, &'static str)>,
}

/// Writes the ownership report of `commit` as HTML to `path`; says what it holds.
fn write_report(
    repo_path: &std::path::Path,
    commit: git2::Oid,
    tools: &crate::render::Tools,
    path: &std::path::Path,
) -> anyhow::Result<String> {
    let repo = crate::git::Repository::open(repo_path)?;
    let revision = crate::pipeline::audit_revision(
        &repo,
        commit,
        crate::owners::Flavor::GitHub,
        Some(tools),
        64 << 20,
    )?;
    let now = time::OffsetDateTime::now_utc();
    let generated_at = now
        .replace_nanosecond(0)
        .unwrap_or(now)
        .format(&time::format_description::well_known::Rfc3339)
        .context("formatting the date")?;
    let report = crate::report::ownership::OwnershipReport::of(
        &revision,
        "example/shop",
        &commit.to_string(),
        &generated_at,
    );
    let html = crate::report::ownership::ownership_html(&report)
        .context("rendering the ownership report")?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(path, html).with_context(|| format!("writing {}", path.display()))?;
    let teams: Vec<String> = report
        .overview
        .teams
        .iter()
        .map(|t| {
            format!(
                "{} {} danger, {} warning",
                t.team, t.open.danger, t.open.warning
            )
        })
        .collect();
    Ok(format!(
        "example/shop at main: {} open findings by owning team ({}).\nWritten to {} \
         (one HTML file; `kubeward report PATH` makes it for any repository).",
        report.overview.open.total(),
        teams.join("; "),
        path.display()
    ))
}

/// A repository on the local disk: no credentials.
struct LocalGit(String);

impl GitAccess for LocalGit {
    fn url(&self, _repo: &RepoRef) -> String {
        self.0.clone()
    }
    fn credentials(
        &self,
        _installation: u64,
    ) -> BoxFuture<'_, Result<Option<(String, String)>, ApiError>> {
        Box::pin(async { Ok(None) })
    }
}

fn rule(title: &str) -> String {
    format!(
        "\n── {title} {}\n",
        "─".repeat(70usize.saturating_sub(title.chars().count()))
    )
}

pub async fn run(options: TestdriveOptions) -> anyhow::Result<String> {
    super::serve::install_crypto();
    // The review process has no PATH: it is given the tool's path, which must not depend on
    // the folder it runs in.
    let helm = match options.helm {
        Some(path) => Some(std::path::absolute(&path).unwrap_or(path)),
        None => crate::render::Tools::from_path().helm,
    };
    let dir = tempfile::tempdir().context("creating a temporary folder")?;
    let chart_file = |name: &str| format!("{CHART_ROOT}/{name}");
    let mut main_files: Vec<(String, &str)> = vec![
        (MANIFEST.to_owned(), BASE),
        (".github/CODEOWNERS".to_owned(), CODEOWNERS),
        (".kubeward.yaml".to_owned(), POLICY),
    ];
    let mut examples = vec![Example {
        number: 1,
        branch: "shop-1.5",
        title: "shop: 1.5.0 with a debug sidecar",
        changes: vec![(MANIFEST.to_owned(), HEAD)],
    }];
    if helm.is_some() {
        main_files.extend([
            (chart_file("Chart.yaml"), CHART),
            (chart_file("values.yaml"), CHART_VALUES),
            (chart_file("templates/deployment.yaml"), CHART_TEMPLATE),
        ]);
        examples.push(Example {
            number: 2,
            branch: "web-2.1",
            title: "web chart: 2.1.0, privileged to attach a debugger",
            changes: vec![(chart_file("values.yaml"), CHART_VALUES_HEAD)],
        });
    }

    // The repository: main, and each pull request on top of it.
    let repo_path = dir.path().join("example-shop.git");
    let repo = git2::Repository::init_bare(&repo_path).context("creating the repository")?;
    let commit = |refname: &str, parents: &[git2::Oid], files: &[(String, &str)], message| {
        let files: Vec<(&str, &[u8])> = files
            .iter()
            .map(|(path, text)| (path.as_str(), text.as_bytes()))
            .collect();
        build::commit(&repo, Some(refname), parents, &files, message)
    };
    let base = commit("refs/heads/main", &[], &main_files, "shop: first version")?;
    // The dry-run GitHub.
    let github = Arc::new(FakeGitHub::new("kubeward[bot]"));
    let mut pulls = Vec::new();
    for example in &examples {
        let mut files = main_files.clone();
        for (path, text) in &example.changes {
            match files.iter_mut().find(|(p, _)| p == path) {
                Some(file) => file.1 = text,
                None => files.push((path.clone(), text)),
            }
        }
        let head = commit(
            &format!("refs/pull/{}/head", example.number),
            &[base],
            &files,
            example.title,
        )?
        .to_string();
        let pull = json!({
            "number": example.number, "state": "open", "draft": false, "title": example.title,
            "head": {"sha": head, "ref": example.branch, "repo": {"id": 1}},
            "base": {"sha": base.to_string(), "ref": "main", "repo": {"id": 1}},
        });
        github.add_pull(example.number, pull.clone());
        github.set_merge_base(&base.to_string(), &head, &base.to_string());
        pulls.push((example, head, pull));
    }

    // The real server and a real worker, on the embedded queue.
    let queue = Queue::connect(&format!(
        "sqlite://{}",
        dir.path().join("queue.db").display()
    ))
    .await
    .context("opening the queue")?;
    let secret = format!("testdrive-{}", std::process::id());
    let state = AppState {
        queue: queue.clone(),
        github: Some(GitHubHooks {
            secrets: vec![Secret::new(secret.clone())],
            app_id: None,
            bot_login: "kubeward[bot]".into(),
        }),
        metrics: None,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("binding loopback")?;
    let address = listener.local_addr()?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let server = {
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let read_timeout = Duration::from_secs(10);
            let app = router(state, 5 << 20, read_timeout);
            let stopped = async move {
                let _ = stop.changed().await;
            };
            crate::server::listen::serve(listener, app, read_timeout, read_timeout, stopped).await;
        })
    };
    let worker = Arc::new(GitHubWorker {
        api: github.clone() as Arc<dyn GitHubApi>,
        git: Arc::new(LocalGit(repo_path.display().to_string())),
        cache: Arc::new(GitCache::new(dir.path().join("cache"), 1 << 30)),
        settings: BotSettings {
            bot_login: "kubeward[bot]".into(),
            review_drafts: false,
            host: "testdrive".into(),
            details_url: None,
            review: ReviewLimits {
                max_fetch_bytes: 64 << 20,
                fetch_depth: 50,
                time_limit: Duration::from_secs(120),
                budgets: ReviewBudgets::within_memory(default_memory_bytes(1)),
                render: {
                    let found = crate::render::Tools::from_path();
                    crate::render::review::RenderOptions {
                        kubectl: found.kubectl,
                        helm: helm.clone(),
                        ..Default::default()
                    }
                },
                sandbox: SandboxSettings::current_exe(default_memory_bytes(1))
                    .context("finding this program, to run the review in a child process")?,
                views: Some(crate::views::StoreSettings {
                    dir: dir.path().join("cache").join("views"),
                    max_bytes: crate::views::DEFAULT_MAX_BYTES,
                }),
            },
            max_annotations: crate::forge::github::publish::DEFAULT_MAX_ANNOTATIONS,
        },
    });
    let runners: crate::bot::worker::Runners =
        std::sync::Arc::new(std::collections::HashMap::from([(
            "github".to_owned(),
            worker.clone() as std::sync::Arc<dyn crate::bot::runner::JobRunner>,
        )]));
    let worker_task = tokio::spawn(run_worker(
        "testdrive".into(),
        queue.clone(),
        runners,
        WorkerSettings {
            poll_interval: Duration::from_millis(50),
            ..WorkerSettings::default()
        },
        stop_rx,
    ));

    let mut out = String::new();
    let numbers: Vec<String> = examples.iter().map(|e| format!("#{}", e.number)).collect();
    let _ = writeln!(
        out,
        "kubeward testdrive: pull request{} {} of example/shop, reviewed on this machine.",
        if numbers.len() > 1 { "s" } else { "" },
        numbers.join(" and ")
    );
    let _ = writeln!(
        out,
        "Nothing was sent anywhere: the GitHub below is a dry run that records what the bot posts."
    );
    if helm.is_none() {
        let _ = writeln!(
            out,
            "Left out: the Helm chart example (no helm found). Put helm on PATH or pass \
             `--helm PATH` to see a chart's values change reviewed (https://helm.sh/docs/intro/install/)."
        );
    }

    // One pull request at a time, so that each one's timings are its own.
    for (example, head, pull) in &pulls {
        let number = example.number;
        let delivery = json!({
            "action": "opened",
            "number": number,
            "pull_request": pull,
            "repository": {"id": 1, "name": "shop", "full_name": "example/shop", "private": false, "owner": {"login": "example", "id": 3, "type": "Organization"}},
            "installation": {"id": 1},
            "sender": {"login": "developer", "id": 2, "type": "User"},
        });
        let body = serde_json::to_vec(&delivery)?;
        let started = Instant::now();
        let response = reqwest::Client::new()
            .post(format!("http://{address}/webhooks/github"))
            .header("content-type", "application/json")
            .header("x-github-event", "pull_request")
            .header("x-github-delivery", format!("testdrive-delivery-{number}"))
            .header("x-hub-signature-256", github_signature(&secret, &body))
            .body(body)
            .send()
            .await
            .context("sending the webhook")?;
        let accepted_in = started.elapsed();
        let status = response.status();
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        anyhow::ensure!(
            status.as_u16() == 202,
            "the server answered {status}: {answer}"
        );

        // Wait for the worker to conclude this pull request's check run.
        let deadline = Instant::now() + Duration::from_secs(120);
        let of_head = |run: &Value| run["head_sha"].as_str() == Some(head.as_str());
        loop {
            let done = github
                .check_runs()
                .iter()
                .any(|r| of_head(r) && r["status"] == "completed");
            if done {
                break;
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "the review of pull request #{number} did not finish in time"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let reviewed_in = started.elapsed();

        let _ = write!(
            out,
            "\n{} Pull request #{number}: {} {}\n\n",
            "═".repeat(2),
            example.title,
            "═".repeat(66usize.saturating_sub(example.title.chars().count()))
        );
        let _ = writeln!(
            out,
            "webhook   POST /webhooks/github (pull_request opened, signed) -> {status} {answer} in {} ms",
            accepted_in.as_millis()
        );
        let _ = writeln!(
            out,
            "review    fetched, audited and published in {} ms",
            reviewed_in.as_millis()
        );
        for run in github.check_runs().iter().filter(|r| of_head(r)) {
            let _ = write!(
                out,
                "{}",
                rule(&format!(
                    "Check run \"{}\" on {}: {}",
                    run["name"].as_str().unwrap_or(""),
                    &head[..7],
                    run["conclusion"].as_str().unwrap_or("")
                ))
            );
            let _ = writeln!(out, "{}\n", run["output"]["title"].as_str().unwrap_or(""));
            let _ = writeln!(out, "{}", run["output"]["summary"].as_str().unwrap_or(""));
        }
        let comments: Vec<Value> = github
            .review_comments()
            .into_iter()
            .filter(|c| c["pull"].as_u64() == Some(number))
            .collect();
        let _ = write!(
            out,
            "{}",
            rule(&format!("Review comments ({})", comments.len()))
        );
        for c in &comments {
            let lines = match c["start_line"].as_u64() {
                Some(start) => format!("lines {start}-{}", c["line"]),
                None => format!("line {}", c["line"]),
            };
            let _ = writeln!(out, "{} {lines}:\n", c["path"].as_str().unwrap_or(""));
            let _ = writeln!(out, "{}", c["body"].as_str().unwrap_or(""));
        }
        for c in github
            .issue_comments()
            .iter()
            .filter(|c| c["issue"].as_u64() == Some(number))
        {
            let _ = write!(out, "{}", rule("Summary comment"));
            let _ = writeln!(out, "{}", c["body"].as_str().unwrap_or(""));
        }
    }
    let _ = stop_tx.send(true);
    let _ = worker_task.await;
    let _ = server.await;

    let _ = write!(out, "{}", rule("Requests the bot made"));
    for line in github.request_log() {
        let _ = writeln!(out, "{line}");
    }

    // What the platform team sees: the repository's open findings by owning team.
    let report_path = options.report.clone();
    let tools = crate::render::Tools {
        kubectl: crate::render::Tools::from_path().kubectl,
        helm: helm.clone(),
    };
    let repo_dir = repo_path.clone();
    let summary =
        tokio::task::spawn_blocking(move || write_report(&repo_dir, base, &tools, &report_path))
            .await
            .context("writing the ownership report")??;
    let _ = write!(out, "{}", rule("Ownership report"));
    let _ = writeln!(out, "{summary}");
    drop(dir);
    Ok(out)
}
