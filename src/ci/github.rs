//! `kubeward ci` in GitHub Actions: `pull_request` and `pull_request_target` events.

use std::io::Write;

use anyhow::Context;
use serde::Deserialize;

use super::actions::{annotations, inert, step_summary, stop_token};
use super::{CiArgs, Env, Remote, exit_status, failed, result_line, review_checkout, write_sarif};
use crate::bot::review::{Flow, Reviewer, Work, run as review_flow};
use crate::bot::runner::{BotError, Cancel};
use crate::forge::Secret;
use crate::forge::github::adapter::{CredentialsFuture, GitAccess, GitHubPull};
use crate::forge::github::api::{ApiError, ApiFuture, ApiRequest, GitHubApi, WriteKind};
use crate::forge::github::client::{GitHubAuth, GitHubClient, GitHubClientConfig};
use crate::forge::github::publish::DEFAULT_MAX_ANNOTATIONS;
use crate::forge::job::RepoRef;
use crate::owners::Flavor;
use crate::review::ReviewPlan;

/// What we read of the event payload (`$GITHUB_EVENT_PATH`).
#[derive(Debug, Deserialize)]
struct Event {
    pull_request: Option<EventPull>,
    repository: EventRepo,
}

#[derive(Debug, Deserialize)]
struct EventPull {
    number: u64,
    head: EventSide,
    base: EventSide,
}

#[derive(Debug, Deserialize)]
struct EventSide {
    sha: String,
    /// `null` when a fork was deleted.
    repo: Option<EventRepo>,
}

#[derive(Debug, Deserialize)]
struct EventRepo {
    id: i64,
    full_name: String,
    name: String,
    owner: EventOwner,
}

#[derive(Debug, Deserialize)]
struct EventOwner {
    login: String,
}

/// The review fetches nothing through the adapter: the checkout is reviewed in the job.
struct CheckoutOnly;

impl GitAccess for CheckoutOnly {
    fn url(&self, _repo: &RepoRef) -> String {
        String::new()
    }

    fn credentials(&self, _installation: u64) -> CredentialsFuture<'_> {
        Box::pin(async { Ok(None) })
    }
}

/// Stops writing after the first 403 to a write: the token is read-only (a fork, or the
/// repository's default workflow permissions), and each further write would be refused too.
struct StopWritesAfterRefusal<'a> {
    api: &'a dyn GitHubApi,
    refused: std::sync::Mutex<Option<String>>,
}

impl GitHubApi for StopWritesAfterRefusal<'_> {
    fn call(&self, installation: u64, request: ApiRequest) -> ApiFuture<'_> {
        Box::pin(async move {
            let writes = request.kind != WriteKind::Read;
            let refused = self.refused.lock().ok().and_then(|r| r.clone());
            if writes && let Some(message) = refused {
                return Err(ApiError::Status {
                    method: request.method.as_str(),
                    path: request.path.split('?').next().unwrap_or("").to_owned(),
                    status: 403,
                    message: format!("not sent: an earlier write was refused ({message})"),
                });
            }
            let reply = self.api.call(installation, request).await;
            if writes
                && let Err(e) = &reply
                && e.status() == Some(403)
                && let Ok(mut refused) = self.refused.lock()
            {
                *refused = Some(e.to_string());
            }
            reply
        })
    }
}

pub(super) async fn run(
    args: &CiArgs,
    env: &Env,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<u8> {
    let var = |name: &str| env.get(name).filter(|v| !v.is_empty());
    let event_path = var("GITHUB_EVENT_PATH").context("GITHUB_EVENT_PATH is not set")?;
    let event_name = var("GITHUB_EVENT_NAME").map_or("", String::as_str);
    if !matches!(event_name, "pull_request" | "pull_request_target") {
        eprintln!(
            "kubeward ci: this run's event is {event_name:?}; kubeward ci reviews pull requests (`pull_request`, `pull_request_target`). Use `kubeward audit` on pushes."
        );
        return Ok(crate::cli::EXIT_USAGE);
    }
    let bytes = std::fs::read(event_path).with_context(|| format!("reading {event_path}"))?;
    let event: Event = serde_json::from_slice(&bytes).context("reading the event payload")?;
    let pull = event
        .pull_request
        .context("the event payload names no pull request")?;
    let token_env = args.token_env.as_deref().unwrap_or("GITHUB_TOKEN");
    let token = var(token_env).map(|t| Secret::new(t.as_str()));
    let server = var("GITHUB_SERVER_URL").map_or("https://github.com", String::as_str);
    let workspace = var("GITHUB_WORKSPACE").map_or(".", String::as_str);
    let checkout = super::Checkout {
        path: std::path::Path::new(workspace),
        base: &pull.base.sha,
        head: &pull.head.sha,
        flavor: Flavor::GitHub,
        remote: Some(Remote {
            url: format!(
                "{}/{}.git",
                server.trim_end_matches('/'),
                event.repository.full_name
            ),
            credentials: token.clone().map(|t| ("x-access-token".to_owned(), t)),
            head_refspec: format!(
                "+refs/pull/{n}/head:refs/kubeward/ci/pull/{n}",
                n = pull.number
            ),
        }),
    };
    let reviewed = {
        let args = args.clone();
        // git and parsing are blocking work.
        tokio::task::block_in_place(|| review_checkout(&checkout, &args))
    };
    // A fork's pull request gets a read-only token (GitHub never gives it more on
    // `pull_request`): say everything in the job, write nothing.
    let from_fork = pull
        .head
        .repo
        .as_ref()
        .is_none_or(|r| r.full_name != event.repository.full_name);
    let writable = token.is_some() && (!from_fork || event_name == "pull_request_target");
    let mut published = false;
    if writable && let Some(token) = token {
        let api_url = var("GITHUB_API_URL").map_or("https://api.github.com", String::as_str);
        let client = GitHubClient::new(GitHubClientConfig::new(
            api_url,
            GitHubAuth::Token(token),
            "kubeward-ci",
        ))
        .context("building the GitHub client")?;
        let repo = RepoRef {
            id: event.repository.id,
            owner: event.repository.owner.login.clone(),
            name: event.repository.name.clone(),
        };
        let bot_login = args.bot_login.as_deref().unwrap_or("github-actions[bot]");
        let api = StopWritesAfterRefusal {
            api: &client,
            refused: std::sync::Mutex::new(None),
        };
        let adapter = GitHubPull {
            api: &api,
            git: &CheckoutOnly,
            installation: 0,
            repo: &repo,
            number: pull.number,
            bot_login,
            host: "github",
            max_annotations: DEFAULT_MAX_ANNOTATIONS,
        };
        let flow = Flow {
            // The workflow runs on drafts if its author wants it to.
            review_drafts: true,
            reviewer: Reviewer::Done(Box::new(reviewed.clone())),
        };
        let work = Work::Review {
            expected_head: Some(pull.head.sha.clone()),
            new_status: false,
            previous_head: None,
        };
        match review_flow(&adapter, &work, &flow, &Cancel::default(), true).await {
            Ok(outcome) => {
                published = true;
                tracing::info!(?outcome, "published on the pull request");
            }
            Err(BotError::Forge(e)) if e.status() == Some(403) => {
                writeln!(
                    out,
                    "::warning::{}",
                    super::actions::escape_data(&format!(
                        "kubeward may not write to this pull request ({e}); the findings are in this job's annotations and summary instead. Give the job `checks: write` and `pull-requests: write`."
                    ))
                )?;
            }
            Err(e) => {
                writeln!(
                    out,
                    "::warning::{}",
                    super::actions::escape_data(&format!(
                        "kubeward could not publish on the pull request: {e}"
                    ))
                )?;
            }
        }
    }
    let plan = match reviewed {
        Ok(plan) => plan,
        Err(failure) => return Ok(failed(&failure)),
    };
    if !published {
        say_in_the_job(&plan, env, out, from_fork)?;
    }
    if let Some(path) = &args.sarif {
        write_sarif(path, &plan)?;
    }
    writeln!(out, "{}", result_line(&plan))?;
    Ok(exit_status(&plan))
}

/// Annotations, the plan's text between stop-commands, and the job summary.
fn say_in_the_job(
    plan: &ReviewPlan,
    env: &Env,
    out: &mut (dyn Write + Send),
    from_fork: bool,
) -> anyhow::Result<()> {
    let (commands, left_out) = annotations(plan);
    out.write_all(commands.as_bytes())?;
    let token = stop_token();
    out.write_all(inert(&plan.summary, &token).as_bytes())?;
    let why = match from_fork {
        true => {
            "This pull request comes from a fork, so the job's token is read-only: kubeward's review is here instead of on the pull request."
        }
        false => "kubeward could not write to the pull request: its review is here instead.",
    };
    if let Some(path) = env.get("GITHUB_STEP_SUMMARY").filter(|p| !p.is_empty()) {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("opening {path}"))?;
        file.write_all(step_summary(plan, left_out, why).as_bytes())
            .with_context(|| format!("writing {path}"))?;
    }
    Ok(())
}
