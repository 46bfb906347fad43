//! What a worker does with a GitLab job: re-read the merge request, fetch it, review it,
//! publish, and always leave the commit status in a final state.
//!
//! The job payload says which project and merge request (numeric ids) and, for commands, which
//! note. Nothing else from the webhook is trusted: the project's path (for the git URL), the
//! merge request's head and `diff_refs`, the note's text and author, and the author's access
//! level are all read from the API by id.

use std::sync::Arc;

use serde_json::Value;

use super::review::{Commits, FetchPlan, ReviewLimits, fetch_and_review, stage};
use super::runner::{BotError, BoxFuture, Cancel, JobOutcome, JobRunner, ReviewFailure};
use crate::forge::Secret;
use crate::forge::command::{Command, gitlab_may_command, never_commands_us, parse_command};
use crate::forge::gitlab::publish::{
    DiffRefs, NoteTarget, StatusState, Target, fail_if_unfinished, publish, set_status, upsert_note,
};
use crate::forge::gitlab::reply::{MergeRequest, parse};
use crate::forge::gitlab::{
    ApiError, GitLabApi, Request, in_group, merge_request_path, project_path, str_at, u64_at,
};
use crate::forge::job::{FORGE_GITLAB, GitLabJob};
use crate::git::cache::{CacheKey, GitCache};
use crate::owners::Flavor;
use crate::review::ReviewPlan;
use crate::review::render::SUMMARY_MARKER;

#[derive(Debug, Clone)]
pub struct GitLabBotSettings {
    /// Our own username (the token's user): our notes are ours, our comments never commands.
    pub bot_username: String,
    pub review_drafts: bool,
    /// The instance's host, part of the cache key.
    pub host: String,
    /// Fetch cap, time limit, budgets and the review process.
    pub review: ReviewLimits,
    /// Where repositories are cloned from: the configured instance URL. The clone URL is this
    /// plus the project's `path_with_namespace` read from the API by id, never a URL from a
    /// payload.
    pub git_base_url: String,
    /// The user name for git over HTTPS with a token (`oauth2`, or the bot's username).
    pub git_username: String,
}

pub struct GitLabWorker {
    pub api: Arc<dyn GitLabApi>,
    pub cache: Arc<GitCache>,
    /// Given to git as the password, through the credentials callback only. `None` for
    /// repositories that need none (local tests).
    pub git_token: Option<Secret>,
    pub settings: GitLabBotSettings,
}

/// Why a GitLab job failed (and will be retried by the queue).
#[derive(Debug, thiserror::Error)]
pub enum GitLabJobError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error("{0}")]
    Review(String),
}

impl From<GitLabJobError> for BotError {
    fn from(error: GitLabJobError) -> BotError {
        match error {
            // Kept typed: a rate limit defers the job instead of failing it.
            GitLabJobError::Api(error) => BotError::Api(error),
            GitLabJobError::Review(why) => BotError::Review(why),
        }
    }
}

fn gitlab_job(payload: &Value) -> Result<GitLabJob, BotError> {
    serde_json::from_value(payload.clone())
        .map_err(|e| BotError::Review(format!("unreadable GitLab job payload: {e}")))
}

impl JobRunner for GitLabWorker {
    fn run_job<'a>(
        &'a self,
        payload: &'a Value,
        cancel: &'a Cancel,
        last_attempt: bool,
    ) -> BoxFuture<'a, Result<JobOutcome, BotError>> {
        Box::pin(async move {
            let job = gitlab_job(payload)?;
            Ok(self.run(&job, cancel, last_attempt).await?)
        })
    }

    fn conclude_abandoned<'a>(
        &'a self,
        payload: &'a Value,
        reason: &'a str,
    ) -> BoxFuture<'a, Result<(), BotError>> {
        Box::pin(async move {
            let job = gitlab_job(payload)?;
            Ok(self.fail_unfinished_status(&job, reason).await?)
        })
    }
}

const HELP: &str = "kubeward reviews the Kubernetes manifests this merge request changes.\n\n\
- `/kubeward rescan`: review again (project members with the Developer role or more).\n\
- `/kubeward help`: this message.\n\n\
Findings are reported only for what the change introduced, on the changed lines; the summary \
note groups them by CODEOWNERS owner (with GitLab's sections). Policy comes from \
`.kubeward.yaml` on the target branch.";

/// A project as the API describes it.
struct Project {
    path_with_namespace: String,
}

/// `{base}/{path_with_namespace}.git`, refusing any path outside GitLab's path alphabet (a
/// path is letters, digits, `_`, `-` and `.`, per segment).
pub fn clone_url(base: &str, path_with_namespace: &str) -> Result<String, String> {
    let segments: Vec<&str> = path_with_namespace.split('/').collect();
    let valid = |s: &&str| {
        !s.is_empty()
            && *s != "."
            && *s != ".."
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
    };
    if segments.len() < 2 || !segments.iter().all(valid) {
        return Err(format!(
            "the project path {path_with_namespace:?} is not a GitLab path"
        ));
    }
    Ok(format!(
        "{}/{}.git",
        base.trim_end_matches('/'),
        segments.join("/")
    ))
}

impl GitLabWorker {
    pub async fn run(
        &self,
        job: &GitLabJob,
        cancel: &Cancel,
        last_attempt: bool,
    ) -> Result<JobOutcome, GitLabJobError> {
        match job {
            GitLabJob::Review {
                project_id,
                iid,
                head_sha,
                allowed_groups,
                ..
            } => {
                let Some(project) = self.project(*project_id, allowed_groups).await? else {
                    return Ok(outside_groups(*project_id));
                };
                self.review(
                    *project_id,
                    &project,
                    *iid,
                    head_sha.as_deref(),
                    cancel,
                    last_attempt,
                )
                .await
            }
            GitLabJob::Command {
                project_id,
                iid,
                note_id,
                allowed_groups,
            } => {
                let Some(project) = self.project(*project_id, allowed_groups).await? else {
                    return Ok(outside_groups(*project_id));
                };
                self.command(*project_id, &project, *iid, *note_id, cancel, last_attempt)
                    .await
            }
        }
    }

    /// The project, read by id; `None` if it lies outside the groups the delivery's secret
    /// is bound to.
    async fn project(
        &self,
        project_id: u64,
        allowed_groups: &[String],
    ) -> Result<Option<Project>, GitLabJobError> {
        let reply = self
            .api
            .call(Request::get(project_path(project_id, "")))
            .await?;
        let path = str_at(&reply.body, &["path_with_namespace"])
            .ok_or_else(|| {
                GitLabJobError::Review(format!("project {project_id} has no path_with_namespace"))
            })?
            .to_owned();
        if !allowed_groups.is_empty() && !allowed_groups.iter().any(|g| in_group(&path, g)) {
            tracing::warn!(project = project_id, path = %path, "the project is outside the groups its webhook secret is bound to");
            return Ok(None);
        }
        Ok(Some(Project {
            path_with_namespace: path,
        }))
    }

    async fn command(
        &self,
        project_id: u64,
        project: &Project,
        iid: u64,
        note_id: u64,
        cancel: &Cancel,
        last_attempt: bool,
    ) -> Result<JobOutcome, GitLabJobError> {
        // The note as GitLab has it now: its author and text decide, not the delivery's.
        let note = match self
            .api
            .call(Request::get(merge_request_path(
                project_id,
                iid,
                &format!("/notes/{note_id}"),
            )))
            .await
        {
            Ok(reply) => reply.body,
            Err(e) if e.status() == Some(404) => {
                return Ok(JobOutcome::Skipped("the comment is gone".into()));
            }
            Err(e) => return Err(e.into()),
        };
        let author = str_at(&note, &["author", "username"]).unwrap_or("");
        let author_id = u64_at(&note, &["author", "id"]);
        let system = note.get("system").and_then(Value::as_bool) == Some(true);
        if never_commands_us(author, system, &self.settings.bot_username) {
            return Ok(JobOutcome::Skipped("not a person's comment".into()));
        }
        let Some(command) = parse_command(str_at(&note, &["body"]).unwrap_or("")) else {
            return Ok(JobOutcome::Skipped(
                "the comment is no longer a command".into(),
            ));
        };
        let Some(author_id) = author_id else {
            return Ok(JobOutcome::Skipped("the comment has no author".into()));
        };
        let member = match self
            .api
            .call(Request::get(project_path(
                project_id,
                &format!("/members/all/{author_id}"),
            )))
            .await
        {
            Ok(reply) => reply.body,
            Err(e) if e.status() == Some(404) => {
                return Ok(JobOutcome::Skipped(format!(
                    "{author} is not a member of the project"
                )));
            }
            Err(e) => return Err(e.into()),
        };
        let level = u64_at(&member, &["access_level"]).unwrap_or(0);
        let active = str_at(&member, &["state"]).is_none_or(|s| s == "active");
        if !gitlab_may_command(level, active) {
            return Ok(JobOutcome::Skipped(format!(
                "{author} (access level {level}) may not run commands here"
            )));
        }
        match command {
            Command::Help => {
                let marker = format!("<!-- kubeward:help reply-to={note_id} -->");
                let notes = NoteTarget {
                    project_id,
                    iid,
                    bot_username: &self.settings.bot_username,
                };
                upsert_note(
                    self.api.as_ref(),
                    &notes,
                    &marker,
                    &format!("{HELP}\n\n{marker}\n"),
                )
                .await?;
                Ok(JobOutcome::Skipped("help answered".into()))
            }
            Command::Rescan => {
                self.review(project_id, project, iid, None, cancel, last_attempt)
                    .await
            }
        }
    }

    /// Where a merge request's results go, for its current head.
    async fn target(
        &self,
        project_id: u64,
        iid: u64,
        merge_request: &Value,
    ) -> Result<Target, GitLabJobError> {
        let head_sha = str_at(merge_request, &["sha"]).unwrap_or("");
        // The diff GitLab shows, hence the one positions must refer to. Right after a push
        // GitLab may not have computed it yet: fail, and the queue retries shortly.
        let diff_refs = DiffRefs::from_merge_request(merge_request)
            .filter(|refs| refs.head_sha == head_sha)
            .ok_or_else(|| {
                GitLabJobError::Review(format!(
                    "merge request !{iid}: GitLab has no diff refs for head {head_sha} yet"
                ))
            })?;
        Ok(self
            .target_with(project_id, iid, merge_request, diff_refs)
            .await)
    }

    /// [`Self::target`] with the diff refs given.
    async fn target_with(
        &self,
        project_id: u64,
        iid: u64,
        merge_request: &Value,
        diff_refs: DiffRefs,
    ) -> Target {
        let head_sha = diff_refs.head_sha.clone();
        let (status_project_id, status_ref) = self
            .status_location(project_id, iid, merge_request, &head_sha)
            .await;
        Target {
            project_id,
            iid,
            diff_refs,
            bot_username: self.settings.bot_username.clone(),
            status_project_id,
            status_ref,
            web_url: str_at(merge_request, &["web_url"]).map(str::to_owned),
        }
    }

    /// Fails the commit status a given-up job left pending or running on its merge request's
    /// current head.
    async fn fail_unfinished_status(
        &self,
        job: &GitLabJob,
        reason: &str,
    ) -> Result<(), GitLabJobError> {
        let (GitLabJob::Review {
            project_id, iid, ..
        }
        | GitLabJob::Command {
            project_id, iid, ..
        }) = job;
        let path = merge_request_path(*project_id, *iid, "");
        let merge_request = self.api.call(Request::get(path.clone())).await?.body;
        let head: MergeRequest = parse(&format!("GET {path}"), &merge_request)?;
        // Only the status is written: the head is all it needs, diff refs or not.
        let head_only = DiffRefs {
            base_sha: String::new(),
            start_sha: String::new(),
            head_sha: head.sha,
        };
        let target = self
            .target_with(*project_id, *iid, &merge_request, head_only)
            .await;
        let description = format!("kubeward gave this review up: {reason}");
        let failed = fail_if_unfinished(self.api.as_ref(), &target, &description).await?;
        tracing::info!(failed, "the status a given-up job left unfinished");
        Ok(())
    }

    /// Where the commit status goes. GitLab wants it on the merge request's source project; a
    /// fork may not let us in, then it goes on the target project's merge request ref.
    async fn status_location(
        &self,
        project_id: u64,
        iid: u64,
        merge_request: &Value,
        head_sha: &str,
    ) -> (u64, Option<String>) {
        let source = u64_at(merge_request, &["source_project_id"]).unwrap_or(project_id);
        let branch = str_at(merge_request, &["source_branch"]).map(str::to_owned);
        let fallback = (project_id, Some(format!("refs/merge-requests/{iid}/head")));
        if source == project_id {
            return match branch {
                Some(branch) => (project_id, Some(branch)),
                None => fallback,
            };
        }
        let probe = project_path(
            source,
            &format!("/repository/commits/{head_sha}/statuses?per_page=1"),
        );
        match self.api.call(Request::get(probe)).await {
            Ok(_) => (source, branch),
            Err(e) => {
                tracing::info!(source, error = %e, "cannot reach the fork: the status goes on the target project");
                fallback
            }
        }
    }

    async fn review(
        &self,
        project_id: u64,
        project: &Project,
        iid: u64,
        expected_head: Option<&str>,
        cancel: &Cancel,
        last_attempt: bool,
    ) -> Result<JobOutcome, GitLabJobError> {
        let path = merge_request_path(project_id, iid, "");
        let merge_request = self.api.call(Request::get(path.clone())).await?.body;
        let read: MergeRequest = parse(&format!("GET {path}"), &merge_request)?;
        if read.state.as_deref() != Some("opened") {
            return Ok(JobOutcome::Skipped("the merge request is not open".into()));
        }
        // Deliveries can arrive out of order, and one may be lost, so a job may be older or
        // newer than the merge request it names: review what it is now (as on GitHub).
        let head_sha = read.sha;
        if let Some(expected) = expected_head.filter(|h| *h != head_sha) {
            tracing::info!(job_head = %expected, current_head = %head_sha, "reviewing the current head");
        }
        let target = self.target(project_id, iid, &merge_request).await?;
        let api = self.api.as_ref();
        // A draft is not reviewed, and says so (GitHub: a neutral check); marking it ready
        // reviews it.
        if read.draft == Some(true) && !self.settings.review_drafts {
            set_status(
                api,
                &target,
                StatusState::Skipped,
                "Draft: not reviewed; kubeward reviews it when it is marked ready",
            )
            .await?;
            return Ok(JobOutcome::Skipped(
                "a draft: reviewed when marked ready".into(),
            ));
        }
        set_status(api, &target, StatusState::Pending, "Waiting to be reviewed").await?;
        set_status(
            api,
            &target,
            StatusState::Running,
            "Reviewing the Kubernetes manifests this change touches",
        )
        .await?;
        let outcome = self
            .fetch_and_review(project_id, project, iid, &target.diff_refs)
            .await;
        let result = self.conclude(&target, outcome, cancel).await;
        if result.is_err() && last_attempt {
            // Never leave the status running: this job will not be retried. Best effort: the
            // job's own error is what gets recorded.
            let _ = set_status(
                api,
                &target,
                StatusState::Failed,
                "kubeward could not review this change and will not retry",
            )
            .await;
        }
        result
    }

    async fn conclude(
        &self,
        target: &Target,
        outcome: Result<ReviewPlan, ReviewFailure>,
        cancel: &Cancel,
    ) -> Result<JobOutcome, GitLabJobError> {
        let api = self.api.as_ref();
        let summary_note = |title: &str, text: &str| {
            format!("### kubeward: {title}\n\n{text}\n\n{SUMMARY_MARKER}\n")
        };
        match outcome {
            Ok(plan) => {
                if cancel.is_cancelled() {
                    set_status(
                        api,
                        target,
                        StatusState::Canceled,
                        "Superseded by a newer push, or the merge request closed",
                    )
                    .await?;
                    return Ok(JobOutcome::Skipped("cancelled".into()));
                }
                let started = std::time::Instant::now();
                let report = publish(api, target, &plan).await?;
                let state = StatusState::of(plan.conclusion);
                set_status(api, target, state, &plan.title).await?;
                stage("publish", started.elapsed());
                tracing::info!(
                    posted = report.discussions_posted,
                    skipped = report.discussions_skipped,
                    resolved = report.discussions_resolved,
                    reopened = report.discussions_reopened,
                    moved = report.moved_to_summary,
                    "published to GitLab"
                );
                Ok(JobOutcome::Published {
                    conclusion: state.as_str().into(),
                    published_id: report.summary_note_id,
                })
            }
            Err(failure) => {
                let Some(verdict) = failure.verdict() else {
                    // The queue retries; on the last attempt the caller fails the status.
                    return Err(GitLabJobError::Review(match failure {
                        ReviewFailure::Other(message) => message,
                        other => format!("{other:?}"),
                    }));
                };
                let note = upsert_note(
                    api,
                    &target.notes(),
                    SUMMARY_MARKER,
                    &summary_note(&verdict.title, &verdict.summary),
                )
                .await?;
                let state = StatusState::of(verdict.conclusion);
                // A commit status has no neutral: it passes as `success`, saying so.
                let description = match verdict.conclusion {
                    crate::review::Conclusion::Neutral => format!("Neutral: {}", verdict.title),
                    _ => verdict.title.clone(),
                };
                set_status(api, target, state, &description).await?;
                Ok(JobOutcome::Published {
                    conclusion: state.as_str().into(),
                    published_id: note,
                })
            }
        }
    }

    async fn fetch_and_review(
        &self,
        project_id: u64,
        project: &Project,
        iid: u64,
        refs: &DiffRefs,
    ) -> Result<ReviewPlan, ReviewFailure> {
        let url = clone_url(&self.settings.git_base_url, &project.path_with_namespace)
            .map_err(ReviewFailure::Other)?;
        let mut refspecs = vec![format!(
            "+refs/merge-requests/{iid}/head:refs/kubeward/mr/{iid}/head"
        )];
        // The target branch as of this version, by its commit: any branch name works.
        if let Ok(start) = git2::Oid::from_str(&refs.start_sha) {
            refspecs.push(format!("+{start}:refs/kubeward/mr/{iid}/start"));
        }
        let fetch = std::future::ready(Ok(FetchPlan {
            url,
            credentials: self
                .git_token
                .as_ref()
                .map(|token| (self.settings.git_username.clone(), token.clone())),
            refspecs,
        }));
        let key = CacheKey {
            forge: FORGE_GITLAB.into(),
            host: self.settings.host.clone(),
            repo_id: i64::try_from(project_id).map_err(|_| {
                ReviewFailure::Other(format!("project id {project_id} is out of range"))
            })?,
        };
        // The merge-base is GitLab's: the diff we review is the diff it shows. Policy and
        // CODEOWNERS come from the target branch as of this version.
        let commits = Commits {
            head: refs.head_sha.clone(),
            merge_base: refs.base_sha.clone(),
            base_tip: refs.start_sha.clone(),
        };
        fetch_and_review(
            self.cache.clone(),
            key,
            fetch,
            commits,
            Flavor::GitLab,
            &self.settings.review,
        )
        .await
    }
}

fn outside_groups(project_id: u64) -> JobOutcome {
    JobOutcome::Skipped(format!(
        "project {project_id} is outside the groups its webhook secret is bound to"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_membership_is_by_whole_path_segments() {
        assert!(in_group("platform/shop", "platform"));
        assert!(in_group("platform/infra/shop", "platform/infra"));
        assert!(in_group("Platform/shop", "platform/"));
        assert!(!in_group("platform-evil/shop", "platform"));
        assert!(!in_group("platform", "platform"));
        assert!(!in_group("other/platform/shop", "platform"));
        assert!(!in_group("platform/shop", ""));
    }

    #[test]
    fn clone_urls_come_from_the_configured_base_and_a_checked_path() {
        assert_eq!(
            clone_url("https://gitlab.example.com/", "platform/infra/shop").as_deref(),
            Ok("https://gitlab.example.com/platform/infra/shop.git")
        );
        for bad in [
            "shop",
            "../x",
            "a/../b",
            "a//b",
            "a/b c",
            "a/b?x",
            "a/b@evil.com",
        ] {
            assert!(
                clone_url("https://gitlab.example.com", bad).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn jobs_are_keyed_by_project_and_merge_request() {
        let job = GitLabJob::Review {
            project_id: 42,
            iid: 7,
            head_sha: Some("abc".into()),
            trigger: "open".into(),
            allowed_groups: vec![],
        };
        let row = job.to_new_job();
        assert_eq!(
            (
                row.kind.as_str(),
                row.forge.as_str(),
                row.repo_id,
                row.pr_number
            ),
            ("gitlab-review", "gitlab", 42, Some(7))
        );
        assert!(row.supersedes);
        assert_eq!(row.payload["type"], "gitlabReview");
        let back: GitLabJob = serde_json::from_value(row.payload).expect("round trip");
        assert_eq!(back, job);
        let command = GitLabJob::Command {
            project_id: 42,
            iid: 7,
            note_id: 9,
            allowed_groups: vec!["platform".into()],
        };
        assert!(!command.to_new_job().supersedes);
    }
}
