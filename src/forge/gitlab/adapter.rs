//! GitLab as a [`Forge`]: one merge request of one project. The operations themselves
//! (commit statuses, discussions, notes) are in `publish.rs`.
//!
//! Nothing from the webhook is trusted: the project's path (for the git URL), the merge
//! request's head and `diff_refs`, the note's text and author, and the author's access level
//! are all read from the API by id.

use std::time::Duration;

use serde_json::Value;

use super::publish::{
    self, DiffRefs, NoteTarget, Ours, StatusState, Target, fail_if_unfinished, set_status,
    upsert_note,
};
use super::reply::{Member, MergeRequest, Note, parse};
use super::{ApiError, GitLabApi, Request, merge_request_path, project_path, str_at, u64_at};
use crate::forge::command::{Command, gitlab_may_command, never_commands_us, parse_command};
use crate::forge::{
    Change, CommandRequest, FetchPlan, Forge, ForgeError, ForgeResult, Marked, Outcome,
    PostedComment, Secret, StatusText,
};
use crate::git::cache::CacheKey;
use crate::owners::Flavor;
use crate::review::render::SUMMARY_MARKER;
use crate::review::{FileComment, InlineComment, ReviewPlan};

const HELP: &str = "kubeward reviews the Kubernetes manifests this merge request changes.\n\n\
- `/kubeward rescan`: review again (project members with the Developer role or more).\n\
- `/kubeward help`: this message.\n\n\
Findings are reported only for what the change introduced, on the changed lines; the summary \
note groups them by CODEOWNERS owner (with GitLab's sections). Policy comes from \
`.kubeward.yaml` on the target branch.";

/// One merge request, as the flow's [`Forge`].
pub struct GitLabMergeRequest<'a> {
    pub api: &'a dyn GitLabApi,
    pub project_id: u64,
    /// The project's path, read from the API by id: the clone URL is built from it.
    pub path_with_namespace: &'a str,
    pub iid: u64,
    /// Our own username (the token's user): our notes are ours, our comments never commands.
    pub bot_username: &'a str,
    /// The instance's host, part of the cache key.
    pub host: &'a str,
    /// Where repositories are cloned from: the configured instance URL.
    pub git_base_url: &'a str,
    /// The user name for git over HTTPS with a token (`oauth2`, or the bot's username).
    pub git_username: &'a str,
    /// Given to git as the password, through the credentials callback only.
    pub git_token: Option<&'a Secret>,
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

impl GitLabMergeRequest<'_> {
    fn notes(&self) -> NoteTarget<'_> {
        NoteTarget {
            project_id: self.project_id,
            iid: self.iid,
            bot_username: self.bot_username,
        }
    }

    /// Where results for `diff_refs.head_sha` go.
    async fn target(&self, merge_request: &Value, diff_refs: DiffRefs) -> Target {
        let (status_project_id, status_ref) = self
            .status_location(merge_request, &diff_refs.head_sha)
            .await;
        Target {
            project_id: self.project_id,
            iid: self.iid,
            diff_refs,
            bot_username: self.bot_username.to_owned(),
            status_project_id,
            status_ref,
            web_url: str_at(merge_request, &["web_url"]).map(str::to_owned),
        }
    }

    /// Where the commit status goes. GitLab wants it on the merge request's source project; a
    /// fork may not let us in, then it goes on the target project's merge request ref.
    async fn status_location(
        &self,
        merge_request: &Value,
        head_sha: &str,
    ) -> (u64, Option<String>) {
        let (project_id, iid) = (self.project_id, self.iid);
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

    /// The merge request as GitLab has it now, raw and read.
    async fn merge_request(&self) -> Result<(Value, MergeRequest), ApiError> {
        let path = merge_request_path(self.project_id, self.iid, "");
        let raw = self.api.call(Request::get(path.clone())).await?.body;
        let read = parse(&format!("GET {path}"), &raw)?;
        Ok((raw, read))
    }

    /// A target for writing the status of `head` only (no positions: no diff refs needed).
    async fn status_target(&self, merge_request: &Value, head: &str) -> Target {
        let head_only = DiffRefs {
            base_sha: String::new(),
            start_sha: String::new(),
            head_sha: head.to_owned(),
        };
        self.target(merge_request, head_only).await
    }
}

/// A final state with its description: a commit status has no neutral, so it passes as
/// `success`, saying so.
fn final_state(outcome: Outcome, title: &str) -> (StatusState, String) {
    match outcome {
        Outcome::Success => (StatusState::Success, title.to_owned()),
        Outcome::Failure => (StatusState::Failed, title.to_owned()),
        Outcome::Neutral => (StatusState::Success, format!("Neutral: {title}")),
        Outcome::Cancelled => (StatusState::Canceled, title.to_owned()),
        Outcome::Skipped => (StatusState::Skipped, title.to_owned()),
    }
}

impl Forge for GitLabMergeRequest<'_> {
    type Extra = Target;
    type Status = ();
    type Comment = Ours;

    fn name(&self) -> &'static str {
        "GitLab"
    }

    fn says(&self, outcome: Outcome) -> &'static str {
        final_state(outcome, "").0.as_str()
    }

    fn flavor(&self) -> Flavor {
        Flavor::GitLab
    }

    fn number(&self) -> u64 {
        self.iid
    }

    fn cache_key(&self) -> ForgeResult<CacheKey> {
        Ok(CacheKey {
            forge: crate::forge::job::FORGE_GITLAB.into(),
            host: self.host.to_owned(),
            repo_id: i64::try_from(self.project_id).map_err(|_| {
                ForgeError::Other(format!("project id {} is out of range", self.project_id))
            })?,
        })
    }

    async fn change(&self) -> ForgeResult<Change<Target>> {
        let (raw, read) = self.merge_request().await?;
        let open = read.state.as_deref() == Some("opened");
        let draft = read.draft == Some(true);
        if !open {
            let target = self.status_target(&raw, &read.sha).await;
            return Ok(Change {
                open,
                draft,
                head: read.sha,
                base_tip: String::new(),
                merge_base: None,
                adapter: target,
            });
        }
        // The diff GitLab shows, hence the one positions must refer to. Right after a push
        // GitLab may not have computed it yet: fail, and the queue retries shortly.
        let diff_refs = DiffRefs::from_merge_request(&raw)
            .filter(|refs| refs.head_sha == read.sha)
            .ok_or_else(|| {
                ForgeError::Other(format!(
                    "merge request !{}: GitLab has no diff refs for head {} yet",
                    self.iid, read.sha
                ))
            })?;
        let target = self.target(&raw, diff_refs).await;
        let refs = &target.diff_refs;
        Ok(Change {
            open,
            draft,
            head: refs.head_sha.clone(),
            // Policy and CODEOWNERS come from the target branch as of this version.
            base_tip: refs.start_sha.clone(),
            merge_base: Some(refs.base_sha.clone()),
            adapter: target,
        })
    }

    async fn current_head(&self) -> ForgeResult<String> {
        Ok(self.merge_request().await?.1.sha)
    }

    async fn authorize_command(
        &self,
        request: &CommandRequest,
    ) -> ForgeResult<Result<Command, String>> {
        // The note as GitLab has it now: its author and text decide, not the delivery's.
        let path = merge_request_path(
            self.project_id,
            self.iid,
            &format!("/notes/{}", request.comment_id),
        );
        let note: Note = match self.api.call(Request::get(path.clone())).await {
            Ok(reply) => parse(&format!("GET {path}"), &reply.body)?,
            Err(e) if e.status() == Some(404) => return Ok(Err("the comment is gone".into())),
            Err(e) => return Err(e.into()),
        };
        let author = note.author.as_ref().map_or("", |a| a.username.as_str());
        if never_commands_us(author, note.system, self.bot_username) {
            return Ok(Err("not a person's comment".into()));
        }
        let Some(command) = parse_command(note.body()) else {
            return Ok(Err("the comment is no longer a command".into()));
        };
        let Some(author_id) = note.author.as_ref().and_then(|a| a.id) else {
            return Ok(Err("the comment has no author".into()));
        };
        let path = project_path(self.project_id, &format!("/members/all/{author_id}"));
        let member: Member = match self.api.call(Request::get(path.clone())).await {
            Ok(reply) => parse(&format!("GET {path}"), &reply.body)?,
            Err(e) if e.status() == Some(404) => {
                return Ok(Err(format!("{author} is not a member of the project")));
            }
            Err(e) => return Err(e.into()),
        };
        let active = member.state.as_deref().is_none_or(|s| s == "active");
        if !gitlab_may_command(member.access_level, active) {
            return Ok(Err(format!(
                "{author} (access level {}) may not run commands here",
                member.access_level
            )));
        }
        Ok(Ok(command))
    }

    async fn answer_help(&self, comment_id: u64) -> ForgeResult<()> {
        let marker = format!("<!-- kubeward:help reply-to={comment_id} -->");
        upsert_note(
            self.api,
            &self.notes(),
            &marker,
            &format!("{HELP}\n\n{marker}\n"),
        )
        .await?;
        Ok(())
    }

    async fn skip(
        &self,
        change: &Change<Target>,
        _scan: &str,
        text: StatusText<'_>,
    ) -> ForgeResult<u64> {
        set_status(self.api, &change.adapter, StatusState::Skipped, text.title).await?;
        Ok(0)
    }

    /// `pending`, then `running`: GitLab's state machine moves one way, and a retried job
    /// finds its status at or past where it was.
    async fn open_status(
        &self,
        change: &Change<Target>,
        _scan: &str,
        _new_run: bool,
    ) -> ForgeResult<()> {
        let target = &change.adapter;
        set_status(
            self.api,
            target,
            StatusState::Pending,
            "Waiting to be reviewed",
        )
        .await?;
        set_status(
            self.api,
            target,
            StatusState::Running,
            "Reviewing the Kubernetes manifests this change touches",
        )
        .await?;
        Ok(())
    }

    async fn finish_status(
        &self,
        change: &Change<Target>,
        _status: &(),
        outcome: Outcome,
        text: StatusText<'_>,
    ) -> ForgeResult<()> {
        let (state, description) = final_state(outcome, text.title);
        Ok(set_status(self.api, &change.adapter, state, &description).await?)
    }

    /// A status says at most 255 characters: the summary note carries the explanation.
    async fn conclude_verdict(
        &self,
        change: &Change<Target>,
        status: &(),
        outcome: Outcome,
        text: StatusText<'_>,
    ) -> ForgeResult<u64> {
        let body = format!(
            "### kubeward: {}\n\n{}\n\n{SUMMARY_MARKER}\n",
            text.title, text.summary
        );
        let note = upsert_note(self.api, &self.notes(), SUMMARY_MARKER, &body).await?;
        self.finish_status(change, status, outcome, text).await?;
        Ok(note)
    }

    /// The status, set last; the summary note is what the job records.
    async fn conclude_plan(
        &self,
        change: &Change<Target>,
        _status: &(),
        plan: &ReviewPlan,
        _refused: &[&InlineComment],
        summary_id: u64,
    ) -> ForgeResult<u64> {
        let state = StatusState::of(plan.conclusion);
        set_status(self.api, &change.adapter, state, &plan.title).await?;
        Ok(summary_id)
    }

    /// The plan's state at once; publishing the rest later sets it again (a final state may
    /// follow a final state).
    async fn conclude_before_waiting(
        &self,
        change: &Change<Target>,
        _status: &(),
        plan: &ReviewPlan,
        retry_after: Duration,
    ) {
        let minutes = retry_after.as_secs().div_ceil(60).max(1);
        let description = format!(
            "{} (more comments follow in about {minutes} min)",
            plan.title
        );
        let state = StatusState::of(plan.conclusion);
        if let Err(e) = set_status(self.api, &change.adapter, state, &description).await {
            tracing::warn!(error = %e, "cannot set the status before waiting for the rate limit");
        }
    }

    /// GitLab keeps one status per name and ref: the latest is failed if it is still live.
    /// `Cancelled` cancels it instead.
    async fn conclude_unfinished(
        &self,
        head: &str,
        outcome: Outcome,
        text: StatusText<'_>,
    ) -> ForgeResult<usize> {
        let (raw, _) = self.merge_request().await?;
        let target = self.status_target(&raw, head).await;
        // The status is all there is to read: it says why, not only what.
        let (state, description) = final_state(outcome, text.summary);
        let live = match state {
            StatusState::Failed => fail_if_unfinished(self.api, &target, &description).await?,
            _ => {
                set_status(self.api, &target, state, &description).await?;
                true
            }
        };
        Ok(usize::from(live))
    }

    async fn fetch_plan(&self, change: &Change<Target>) -> ForgeResult<FetchPlan> {
        let url =
            clone_url(self.git_base_url, self.path_with_namespace).map_err(ForgeError::Other)?;
        let iid = self.iid;
        let mut refspecs = vec![format!(
            "+refs/merge-requests/{iid}/head:refs/kubeward/mr/{iid}/head"
        )];
        // The target branch as of this version, by its commit: any branch name works.
        if let Ok(start) = git2::Oid::from_str(&change.adapter.diff_refs.start_sha) {
            refspecs.push(format!("+{start}:refs/kubeward/mr/{iid}/start"));
        }
        Ok(FetchPlan {
            url,
            credentials: self
                .git_token
                .map(|token| (self.git_username.to_owned(), token.clone())),
            refspecs,
        })
    }

    async fn our_comments(&self, change: &Change<Target>) -> ForgeResult<Vec<PostedComment<Ours>>> {
        let ours = publish::our_discussions(self.api, &change.adapter).await?;
        Ok(ours
            .into_iter()
            .map(|d| PostedComment {
                state: publish::posted_state(&d),
                handle: d,
            })
            .collect())
    }

    async fn post_inline(
        &self,
        change: &Change<Target>,
        comments: &[&InlineComment],
    ) -> ForgeResult<Vec<usize>> {
        Ok(publish::post_inline(self.api, &change.adapter, comments).await?)
    }

    async fn post_file(&self, change: &Change<Target>, comment: &FileComment) -> ForgeResult<()> {
        Ok(publish::post_file(self.api, &change.adapter, comment).await?)
    }

    async fn mark(
        &self,
        change: &Change<Target>,
        fixed: &[&Ours],
        reopen: &[&Ours],
    ) -> ForgeResult<Marked> {
        Ok(publish::mark(self.api, &change.adapter, fixed, reopen).await?)
    }

    async fn upsert_summary(&self, _change: &Change<Target>, body: &str) -> ForgeResult<u64> {
        Ok(upsert_note(self.api, &self.notes(), SUMMARY_MARKER, body).await?)
    }
}
