//! What a worker does with a GitHub job: fetch, review, publish, and always conclude the check.

use std::sync::Arc;

use serde_json::{Value, json};

use super::review::{Commits, FetchPlan, ReviewLimits, Verdict, fetch_and_review, stage};
use super::runner::{BotError, BoxFuture, Cancel, JobOutcome, JobRunner, ReviewFailure};
use crate::forge::command::github_may_command;
use crate::forge::github::api::{ApiError, ApiRequest, GitHubApi, repo_path};
use crate::forge::github::publish::{
    Outcome, Target, conclude_unfinished_checks, finish_check, publish, scan_key, start_check,
};
use crate::forge::github::reply::{CollaboratorPermission, Comment, list_all_as, parse};
use crate::forge::job::{GitHubJob, RepoRef};
use crate::git::cache::{CacheKey, GitCache};
use crate::owners::Flavor;
use crate::review::Conclusion;

/// Where to fetch a repository from, and with which credentials.
pub trait GitAccess: Send + Sync {
    /// The clone URL, from the configured git base URL and the repository's names only.
    fn url(&self, repo: &RepoRef) -> String;
    /// `(user, password)` for git over HTTPS, if the server needs any.
    fn credentials(
        &self,
        installation: u64,
    ) -> BoxFuture<'_, Result<Option<(String, String)>, ApiError>>;
}

#[derive(Debug, Clone)]
pub struct BotSettings {
    /// Our own login: comments by anyone else are never treated as ours.
    pub bot_login: String,
    pub review_drafts: bool,
    /// The forge host, part of the cache key.
    pub host: String,
    /// Link from the check run to the service.
    pub details_url: Option<String>,
    /// Fetch cap, time limit, budgets and the review process.
    pub review: ReviewLimits,
    /// Check-run annotations per run; the check's summary counts the rest.
    pub max_annotations: usize,
}

pub struct GitHubWorker {
    pub api: Arc<dyn GitHubApi>,
    pub git: Arc<dyn GitAccess>,
    pub cache: Arc<GitCache>,
    pub settings: BotSettings,
}

fn job_spec(payload: &Value) -> Result<GitHubJob, BotError> {
    serde_json::from_value(payload.clone())
        .map_err(|e| BotError::Review(format!("unreadable job payload: {e}")))
}

impl JobRunner for GitHubWorker {
    fn run_job<'a>(
        &'a self,
        payload: &'a Value,
        cancel: &'a Cancel,
        last_attempt: bool,
    ) -> BoxFuture<'a, Result<JobOutcome, BotError>> {
        Box::pin(async move {
            let spec = job_spec(payload)?;
            self.run(&spec, cancel, last_attempt).await
        })
    }

    fn conclude_abandoned<'a>(
        &'a self,
        payload: &'a Value,
        reason: &'a str,
    ) -> BoxFuture<'a, Result<(), BotError>> {
        Box::pin(async move {
            let spec = job_spec(payload)?;
            self.fail_unfinished_checks(&spec, reason).await
        })
    }
}

const HELP: &str = "kubeward reviews the Kubernetes manifests this pull request changes.\n\n\
- `/kubeward rescan`: review again (people with write access).\n\
- `/kubeward help`: this message.\n\n\
Findings are reported only for what the change introduced; the check run summarises them by \
CODEOWNERS owner. Policy comes from `.kubeward.yaml` on the base branch.";

fn str_at<'v>(v: &'v Value, path: &[&str]) -> Option<&'v str> {
    path.iter().try_fold(v, |v, k| v.get(k))?.as_str()
}

impl GitHubWorker {
    /// Fails the unfinished check runs of the heads a job was about: a review or command
    /// reviews its pull request's current head; a re-request names its head.
    async fn fail_unfinished_checks(&self, spec: &GitHubJob, reason: &str) -> Result<(), BotError> {
        // The heads whose checks the job may have opened: the one it was queued for and, as it
        // reviews the pull request as it is, the current one.
        let (installation, repo, number, mut heads) = match spec {
            GitHubJob::Review {
                installation,
                repo,
                number,
                head_sha,
                ..
            } => (*installation, repo, *number, vec![head_sha.clone()]),
            GitHubJob::Command {
                installation,
                repo,
                number,
                ..
            } => (*installation, repo, *number, Vec::new()),
            GitHubJob::Rerequest {
                installation,
                repo,
                head_sha,
                pull_numbers,
            } => {
                let number = pull_numbers.first().copied().unwrap_or(0);
                (*installation, repo, number, vec![head_sha.clone()])
            }
        };
        if !matches!(spec, GitHubJob::Rerequest { .. }) {
            let path = repo_path(&repo.owner, &repo.name, &format!("/pulls/{number}"));
            let pull = self
                .api
                .call(installation, ApiRequest::get(path))
                .await?
                .body;
            heads.extend(str_at(&pull, &["head", "sha"]).map(str::to_owned));
        }
        heads.retain(|head| !head.is_empty());
        heads.dedup();
        let summary = format!(
            "kubeward gave this review up: {reason}. Push again or comment `/kubeward rescan` to retry."
        );
        let title = "kubeward could not finish this review";
        for head_sha in heads {
            let target = self.target(installation, repo, number, head_sha);
            let concluded = conclude_unfinished_checks(
                self.api.as_ref(),
                &target,
                Outcome::Failure,
                title,
                &summary,
            )
            .await?;
            tracing::info!(concluded, head = %target.head_sha, "the check runs a given-up job left unfinished");
        }
        Ok(())
    }

    fn target(&self, installation: u64, repo: &RepoRef, number: u64, head_sha: String) -> Target {
        Target {
            installation,
            owner: repo.owner.clone(),
            repo: repo.name.clone(),
            number,
            head_sha,
            bot_login: self.settings.bot_login.clone(),
        }
    }

    /// Concludes `cancelled` what is still open on the head a push replaced: a review of it
    /// may have been superseded after it started (released at a shutdown, say) and never
    /// resumed. Best effort: the new head's review goes on regardless.
    async fn cancel_replaced_head(
        &self,
        installation: u64,
        repo: &RepoRef,
        number: u64,
        previous_head: &str,
    ) {
        let target = self.target(installation, repo, number, previous_head.to_owned());
        let cancelled = conclude_unfinished_checks(
            self.api.as_ref(),
            &target,
            Outcome::Cancelled,
            "Superseded",
            "A newer push superseded this review.",
        )
        .await;
        match cancelled {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(cancelled = n, head = %previous_head, "concluded the replaced head's open check runs")
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot conclude the replaced head's open check runs")
            }
        }
    }

    pub async fn run(
        &self,
        spec: &GitHubJob,
        cancel: &Cancel,
        last_attempt: bool,
    ) -> Result<JobOutcome, BotError> {
        match spec {
            GitHubJob::Review {
                installation,
                repo,
                number,
                head_sha,
                new_check_run,
                previous_head,
                ..
            } => {
                if let Some(previous) = previous_head.as_ref().filter(|p| *p != head_sha) {
                    self.cancel_replaced_head(*installation, repo, *number, previous)
                        .await;
                }
                self.review(
                    *installation,
                    repo,
                    *number,
                    Some(head_sha),
                    *new_check_run,
                    cancel,
                    last_attempt,
                )
                .await
            }
            GitHubJob::Command {
                installation,
                repo,
                number,
                comment_id,
                login,
                command,
            } => {
                self.command(
                    *installation,
                    repo,
                    *number,
                    *comment_id,
                    login,
                    command,
                    cancel,
                    last_attempt,
                )
                .await
            }
            GitHubJob::Rerequest {
                installation,
                repo,
                head_sha,
                pull_numbers,
            } => {
                // Queued as one pull request's work: run it.
                if let [number] = pull_numbers.as_slice() {
                    return self
                        .review(
                            *installation,
                            repo,
                            *number,
                            Some(head_sha),
                            true,
                            cancel,
                            last_attempt,
                        )
                        .await;
                }
                let numbers = if pull_numbers.is_empty() {
                    self.pulls_with_head(*installation, repo, head_sha).await?
                } else {
                    pull_numbers.clone()
                };
                if numbers.is_empty() {
                    return Ok(JobOutcome::Skipped(format!(
                        "no open pull request has head {head_sha}"
                    )));
                }
                // One job per pull request, serialised with (and superseded by) its work.
                let jobs = numbers
                    .iter()
                    .map(|n| {
                        GitHubJob::Rerequest {
                            installation: *installation,
                            repo: repo.clone(),
                            head_sha: head_sha.clone(),
                            pull_numbers: vec![*n],
                        }
                        .to_new_job(crate::forge::job::FORGE_GITHUB)
                    })
                    .collect();
                Ok(JobOutcome::HandOff {
                    jobs,
                    why: format!("head {head_sha} is the head of pull request(s) {numbers:?}"),
                })
            }
        }
    }

    /// The open pull requests whose head is `head_sha`. GitHub's commit-to-PR lookup
    /// (`/commits/{sha}/pulls`) finds nothing for a fork's head, whose commit the base
    /// repository only holds under `refs/pull/N/head`, so the open pull requests are listed.
    async fn pulls_with_head(
        &self,
        installation: u64,
        repo: &RepoRef,
        head_sha: &str,
    ) -> Result<Vec<u64>, BotError> {
        let pulls = crate::forge::github::api::list_all(
            self.api.as_ref(),
            installation,
            &repo_path(&repo.owner, &repo.name, "/pulls?state=open"),
            None,
        )
        .await?;
        Ok(pulls
            .iter()
            .filter(|p| str_at(p, &["head", "sha"]) == Some(head_sha))
            .filter_map(|p| p.get("number").and_then(Value::as_u64))
            .collect())
    }

    #[allow(clippy::too_many_arguments)]
    async fn command(
        &self,
        installation: u64,
        repo: &RepoRef,
        number: u64,
        comment_id: u64,
        login: &str,
        command: &str,
        cancel: &Cancel,
        last_attempt: bool,
    ) -> Result<JobOutcome, BotError> {
        let path = repo_path(
            &repo.owner,
            &repo.name,
            &format!(
                "/collaborators/{}/permission",
                crate::forge::github::api::segment(login)
            ),
        );
        let endpoint = format!("GET {path}");
        let reply = self.api.call(installation, ApiRequest::get(path)).await?;
        let permission: CollaboratorPermission = parse(&endpoint, &reply.body)?;
        if !github_may_command(&permission) {
            return Ok(JobOutcome::Skipped(format!(
                "{login} may not run commands here"
            )));
        }
        match command {
            "help" => {
                let marker = format!("<!-- kubeward:help reply-to={comment_id} -->");
                let comments_path = repo_path(
                    &repo.owner,
                    &repo.name,
                    &format!("/issues/{number}/comments"),
                );
                let existing: Vec<Comment> =
                    list_all_as(self.api.as_ref(), installation, &comments_path, None).await?;
                let answered = existing
                    .iter()
                    .any(|c| c.by(&self.settings.bot_login) && c.body().contains(&marker));
                if !answered {
                    self.api
                        .call(
                            installation,
                            ApiRequest::post(
                                comments_path,
                                json!({"body": format!("{HELP}\n\n{marker}\n")}),
                            ),
                        )
                        .await?;
                }
                Ok(JobOutcome::Skipped("help answered".into()))
            }
            _ => {
                self.review(
                    installation,
                    repo,
                    number,
                    None,
                    false,
                    cancel,
                    last_attempt,
                )
                .await
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn review(
        &self,
        installation: u64,
        repo: &RepoRef,
        number: u64,
        expected_head: Option<&String>,
        new_check_run: bool,
        cancel: &Cancel,
        last_attempt: bool,
    ) -> Result<JobOutcome, BotError> {
        let pull = self
            .api
            .call(
                installation,
                ApiRequest::get(repo_path(
                    &repo.owner,
                    &repo.name,
                    &format!("/pulls/{number}"),
                )),
            )
            .await?
            .body;
        if pull.get("state").and_then(Value::as_str) != Some("open") {
            return Ok(JobOutcome::Skipped("the pull request is closed".into()));
        }
        // Deliveries can arrive out of order, so a job may be older or newer than the pull
        // request it names: review what the pull request is now.
        let head_sha = str_at(&pull, &["head", "sha"]).unwrap_or("").to_owned();
        if let Some(expected) = expected_head.filter(|h| **h != head_sha) {
            tracing::info!(job_head = %expected, current_head = %head_sha, "reviewing the current head");
        }
        let base_sha = str_at(&pull, &["base", "sha"]).unwrap_or("").to_owned();
        let target = self.target(installation, repo, number, head_sha.clone());
        // The merge-base from GitHub: exact even when our history is shallow.
        let compare = self
            .api
            .call(
                installation,
                ApiRequest::get(repo_path(
                    &repo.owner,
                    &repo.name,
                    &format!("/compare/{base_sha}...{head_sha}"),
                )),
            )
            .await?
            .body;
        // Never approximated by the base tip: later commits on the base branch would look
        // reverted by the pull request.
        let Some(merge_base) = str_at(&compare, &["merge_base_commit", "sha"])
            .filter(|sha| !sha.is_empty())
            .map(str::to_owned)
        else {
            let scan = scan_key(&head_sha, "no-merge-base");
            let check = start_check(self.api.as_ref(), &target, &scan, new_check_run).await?;
            finish_check(self.api.as_ref(), &target, check, Outcome::Failure, "No merge base", "GitHub's comparison of the base and head commits names no merge base (unrelated histories?), so kubeward cannot tell what this pull request changed.").await?;
            return Ok(JobOutcome::Published {
                conclusion: "failure".into(),
                published_id: check,
            });
        };
        let scan = scan_key(&head_sha, &merge_base);
        let check = start_check(self.api.as_ref(), &target, &scan, new_check_run).await?;
        // Whatever happens from here on, the check run is concluded: a review that fails for
        // good or outruns its time limit must not leave a required check pending forever.
        let work = async {
            if pull.get("draft").and_then(Value::as_bool) == Some(true)
                && !self.settings.review_drafts
            {
                finish_check(self.api.as_ref(), &target, check, Outcome::Neutral, "Draft: not reviewed", "This pull request is a draft; kubeward reviews it when it is marked ready for review.").await?;
                return Ok(JobOutcome::Published {
                    conclusion: "neutral".into(),
                    published_id: check,
                });
            }
            // The limit covers fetching and reviewing, not publishing: once there is a plan,
            // the check says its conclusion, never a neutral that required checks let pass.
            let reviewed = self
                .fetch_and_review(
                    installation,
                    repo,
                    number,
                    &base_sha,
                    &head_sha,
                    &merge_base,
                )
                .await;
            match reviewed {
                Ok(plan) => {
                    if cancel.is_cancelled() {
                        finish_check(
                            self.api.as_ref(),
                            &target,
                            check,
                            Outcome::Cancelled,
                            "Superseded",
                            "A newer push or a closed pull request superseded this review.",
                        )
                        .await?;
                        return Ok(JobOutcome::Skipped("cancelled".into()));
                    }
                    let publish_started = std::time::Instant::now();
                    let cap = self.settings.max_annotations;
                    publish(self.api.as_ref(), &target, &plan, check, cap).await?;
                    stage("publish", publish_started.elapsed());
                    Ok(JobOutcome::Published {
                        conclusion: outcome_of(plan.conclusion).as_str().into(),
                        published_id: check,
                    })
                }
                Err(failure) => match failure.verdict() {
                    Some(verdict) => self.conclude(&target, check, &verdict).await,
                    // Concluded below, on the last attempt.
                    None => Err(BotError::Review(match failure {
                        ReviewFailure::Other(message) => message,
                        other => format!("{other:?}"),
                    })),
                },
            }
        };
        match work.await {
            // Only waiting for the write budget: the job is deferred, not failed, and the
            // check stays as it is (publishing concluded it already if it got that far).
            Err(error) if error.retry_after().is_some() => Err(error),
            // Said as a failure: never neutral, which a required check counts as passing.
            // Before the last attempt the retry's result replaces it; should a newer push
            // supersede the retry, the old head's check is not left in progress.
            Err(error) => {
                let (title, will) = match last_attempt {
                    true => (
                        "kubeward could not review this change",
                        "will not be retried",
                    ),
                    false => ("kubeward hit an error; retrying", "will be retried"),
                };
                let summary = format!("The review failed and {will}:\n\n```\n{error}\n```");
                if let Err(e) = finish_check(
                    self.api.as_ref(),
                    &target,
                    check,
                    Outcome::Failure,
                    title,
                    &summary,
                )
                .await
                {
                    tracing::warn!(error = %e, "cannot conclude the check run of a failed review");
                }
                Err(error)
            }
            Ok(outcome) => Ok(outcome),
        }
    }

    /// Publishes a verdict on the check run.
    async fn conclude(
        &self,
        target: &Target,
        check: u64,
        verdict: &Verdict,
    ) -> Result<JobOutcome, BotError> {
        let outcome = outcome_of(verdict.conclusion);
        finish_check(
            self.api.as_ref(),
            target,
            check,
            outcome,
            &verdict.title,
            &verdict.summary,
        )
        .await?;
        Ok(JobOutcome::Published {
            conclusion: outcome.as_str().into(),
            published_id: check,
        })
    }

    #[allow(clippy::too_many_arguments)]
    async fn fetch_and_review(
        &self,
        installation: u64,
        repo: &RepoRef,
        number: u64,
        base_sha: &str,
        head_sha: &str,
        merge_base: &str,
    ) -> Result<crate::review::ReviewPlan, ReviewFailure> {
        // The base by its commit, not its branch name: any name git allows works, and the tip
        // is the one GitHub named for this pull request.
        let base_oid = git2::Oid::from_str(base_sha)
            .map_err(|e| ReviewFailure::Other(format!("base commit {base_sha:?}: {e}")))?;
        let fetch = async {
            let credentials = self
                .git
                .credentials(installation)
                .await
                .map_err(|e| ReviewFailure::Other(e.to_string()))?;
            Ok(FetchPlan {
                url: self.git.url(repo),
                credentials: credentials.map(|(user, password)| (user, password.into())),
                refspecs: vec![
                    format!("+refs/pull/{number}/head:refs/kubeward/pull/{number}/head"),
                    format!("+{base_oid}:refs/kubeward/pull/{number}/base"),
                ],
            })
        };
        let key = CacheKey {
            forge: "github".into(),
            host: self.settings.host.clone(),
            repo_id: repo.id,
        };
        let commits = Commits {
            head: head_sha.to_owned(),
            merge_base: merge_base.to_owned(),
            base_tip: base_sha.to_owned(),
        };
        fetch_and_review(
            self.cache.clone(),
            key,
            fetch,
            commits,
            Flavor::GitHub,
            &self.settings.review,
        )
        .await
    }
}

/// A plan's or verdict's conclusion as a check-run outcome.
fn outcome_of(conclusion: Conclusion) -> Outcome {
    match conclusion {
        Conclusion::Success => Outcome::Success,
        Conclusion::Failure => Outcome::Failure,
        Conclusion::Neutral => Outcome::Neutral,
    }
}
