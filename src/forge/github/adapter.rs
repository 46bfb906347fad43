//! GitHub as a [`Forge`]: one pull request of one installation. The operations themselves
//! (check runs, reviews, threads, the summary comment) are in `publish.rs`.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use serde_json::json;

use super::api::{ApiError, ApiRequest, GitHubApi, repo_path, segment};
use super::publish::{
    self, Ours, Target, complete_check, conclude_unfinished_checks, finish_check, start_check,
};
use super::reply::{CollaboratorPermission, Comment, Comparison, PullRequest, list_all_as, parse};
use crate::forge::command::{Command, github_may_command};
use crate::forge::job::RepoRef;
use crate::forge::{
    Change, CommandRequest, FetchPlan, Forge, ForgeError, ForgeResult, Marked, Outcome,
    PostedComment, StatusText,
};
use crate::git::cache::CacheKey;
use crate::owners::Flavor;
use crate::review::{FileComment, InlineComment, ReviewPlan};

pub type CredentialsFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Option<(String, String)>, ApiError>> + Send + 'a>>;

/// Where to fetch a repository from, and with which credentials.
pub trait GitAccess: Send + Sync {
    /// The clone URL, from the configured git base URL and the repository's names only.
    fn url(&self, repo: &RepoRef) -> String;
    /// `(user, password)` for git over HTTPS, if the server needs any.
    fn credentials(&self, installation: u64) -> CredentialsFuture<'_>;
}

const HELP: &str = "kubeward reviews the Kubernetes manifests this pull request changes.\n\n\
- `/kubeward rescan`: review again (people with write access).\n\
- `/kubeward help`: this message.\n\n\
Findings are reported only for what the change introduced; the check run summarises them by \
CODEOWNERS owner. Policy comes from `.kubeward.yaml` on the base branch.";

/// One pull request, as the flow's [`Forge`].
pub struct GitHubPull<'a> {
    pub api: &'a dyn GitHubApi,
    pub git: &'a dyn GitAccess,
    pub installation: u64,
    pub repo: &'a RepoRef,
    pub number: u64,
    /// Our own login (`kubeward[bot]`): comments by anyone else are never treated as ours.
    pub bot_login: &'a str,
    /// The forge host, part of the cache key.
    pub host: &'a str,
    /// Check-run annotations per run; the check's summary counts the rest.
    pub max_annotations: usize,
}

impl GitHubPull<'_> {
    fn path(&self, rest: &str) -> String {
        repo_path(&self.repo.owner, &self.repo.name, rest)
    }

    /// Where a head's results go.
    pub fn target(&self, head_sha: &str) -> Target {
        Target {
            installation: self.installation,
            owner: self.repo.owner.clone(),
            repo: self.repo.name.clone(),
            number: self.number,
            head_sha: head_sha.to_owned(),
            bot_login: self.bot_login.to_owned(),
        }
    }

    async fn get<T: serde::de::DeserializeOwned>(&self, path: String) -> Result<T, ApiError> {
        let endpoint = format!("GET {path}");
        let reply = self
            .api
            .call(self.installation, ApiRequest::get(path))
            .await?;
        parse(&endpoint, &reply.body)
    }

    /// The pull request as GitHub has it now.
    pub async fn pull(&self) -> Result<PullRequest, ApiError> {
        self.get(self.path(&format!("/pulls/{}", self.number)))
            .await
    }
}

impl Forge for GitHubPull<'_> {
    type Extra = ();
    type Status = u64;
    type Comment = Ours;

    fn name(&self) -> &'static str {
        "GitHub"
    }

    fn says(&self, outcome: Outcome) -> &'static str {
        publish::conclusion(outcome)
    }

    fn flavor(&self) -> Flavor {
        Flavor::GitHub
    }

    fn number(&self) -> u64 {
        self.number
    }

    fn cache_key(&self) -> ForgeResult<CacheKey> {
        Ok(CacheKey {
            forge: crate::forge::job::FORGE_GITHUB.into(),
            host: self.host.to_owned(),
            repo_id: self.repo.id,
        })
    }

    async fn change(&self) -> ForgeResult<Change<()>> {
        let pull = self.pull().await?;
        let (head, base) = (pull.head.sha, pull.base.sha);
        // The merge-base from GitHub: exact even when our history is shallow.
        let comparison: Comparison = self
            .get(self.path(&format!("/compare/{base}...{head}")))
            .await?;
        Ok(Change {
            open: pull.state == "open",
            draft: pull.draft == Some(true),
            merge_base: comparison
                .merge_base_commit
                .map(|c| c.sha)
                .filter(|sha| !sha.is_empty()),
            head,
            base_tip: base,
            adapter: (),
        })
    }

    async fn current_head(&self) -> ForgeResult<String> {
        Ok(self.pull().await?.head.sha)
    }

    async fn authorize_command(
        &self,
        request: &CommandRequest,
    ) -> ForgeResult<Result<Command, String>> {
        let login = request.login.as_deref().unwrap_or("");
        let permission: CollaboratorPermission = self
            .get(self.path(&format!("/collaborators/{}/permission", segment(login))))
            .await?;
        if !github_may_command(&permission) {
            return Ok(Err(format!("{login} may not run commands here")));
        }
        Ok(Ok(match request.command.as_deref() {
            Some("help") => Command::Help,
            _ => Command::Rescan,
        }))
    }

    async fn answer_help(&self, comment_id: u64) -> ForgeResult<()> {
        let marker = format!("<!-- kubeward:help reply-to={comment_id} -->");
        let path = self.path(&format!("/issues/{}/comments", self.number));
        let existing: Vec<Comment> = list_all_as(self.api, self.installation, &path, None).await?;
        let answered = existing
            .iter()
            .any(|c| c.by(self.bot_login) && c.body().contains(&marker));
        if !answered {
            let body = json!({"body": format!("{HELP}\n\n{marker}\n")});
            self.api
                .call(self.installation, ApiRequest::post(path, body))
                .await?;
        }
        Ok(())
    }

    /// A check run concluded at once: the check says why it did not judge.
    async fn skip(
        &self,
        change: &Change<()>,
        scan: &str,
        text: StatusText<'_>,
    ) -> ForgeResult<u64> {
        let check = self.open_status(change, scan, false).await?;
        self.finish_status(change, &check, Outcome::Skipped, text)
            .await?;
        Ok(check)
    }

    async fn open_status(
        &self,
        change: &Change<()>,
        scan: &str,
        new_run: bool,
    ) -> ForgeResult<u64> {
        Ok(start_check(self.api, &self.target(&change.head), scan, new_run).await?)
    }

    async fn finish_status(
        &self,
        change: &Change<()>,
        status: &u64,
        outcome: Outcome,
        text: StatusText<'_>,
    ) -> ForgeResult<()> {
        let target = self.target(&change.head);
        Ok(finish_check(
            self.api,
            &target,
            *status,
            outcome,
            text.title,
            text.summary,
        )
        .await?)
    }

    /// The check run's output carries the whole explanation.
    async fn conclude_verdict(
        &self,
        change: &Change<()>,
        status: &u64,
        outcome: Outcome,
        text: StatusText<'_>,
    ) -> ForgeResult<u64> {
        self.finish_status(change, status, outcome, text).await?;
        Ok(*status)
    }

    /// The check run with annotations for what is not an inline comment.
    async fn conclude_plan(
        &self,
        change: &Change<()>,
        status: &u64,
        plan: &ReviewPlan,
        refused: &[&InlineComment],
        _summary_id: u64,
    ) -> ForgeResult<u64> {
        let target = self.target(&change.head);
        complete_check(
            self.api,
            &target,
            plan,
            *status,
            refused,
            self.max_annotations,
        )
        .await?;
        Ok(*status)
    }

    async fn conclude_before_waiting(
        &self,
        change: &Change<()>,
        status: &u64,
        plan: &ReviewPlan,
        retry_after: Duration,
    ) {
        let target = self.target(&change.head);
        publish::conclude_before_waiting(
            self.api,
            &target,
            plan,
            *status,
            self.max_annotations,
            retry_after,
        )
        .await;
    }

    async fn conclude_unfinished(
        &self,
        head: &str,
        outcome: Outcome,
        text: StatusText<'_>,
    ) -> ForgeResult<usize> {
        let target = self.target(head);
        Ok(
            conclude_unfinished_checks(self.api, &target, outcome, text.title, text.summary)
                .await?,
        )
    }

    async fn fetch_plan(&self, change: &Change<()>) -> ForgeResult<FetchPlan> {
        // The base by its commit, not its branch name: any name git allows works, and the tip
        // is the one GitHub named for this pull request.
        let base = git2::Oid::from_str(&change.base_tip)
            .map_err(|e| ForgeError::Other(format!("base commit {:?}: {e}", change.base_tip)))?;
        let credentials = self.git.credentials(self.installation).await?;
        let number = self.number;
        Ok(FetchPlan {
            url: self.git.url(self.repo),
            credentials: credentials.map(|(user, password)| (user, password.into())),
            refspecs: vec![
                format!("+refs/pull/{number}/head:refs/kubeward/pull/{number}/head"),
                format!("+{base}:refs/kubeward/pull/{number}/base"),
            ],
        })
    }

    async fn our_comments(&self, change: &Change<()>) -> ForgeResult<Vec<PostedComment<Ours>>> {
        let ours = publish::our_review_comments(self.api, &self.target(&change.head)).await?;
        Ok(ours
            .into_iter()
            .map(|c| PostedComment {
                state: publish::posted_state(&c),
                handle: c,
            })
            .collect())
    }

    async fn post_inline(
        &self,
        change: &Change<()>,
        comments: &[&InlineComment],
    ) -> ForgeResult<Vec<usize>> {
        Ok(publish::post_inline(self.api, &self.target(&change.head), comments).await?)
    }

    async fn post_file(&self, change: &Change<()>, comment: &FileComment) -> ForgeResult<()> {
        Ok(publish::post_file(self.api, &self.target(&change.head), comment).await?)
    }

    async fn mark(
        &self,
        change: &Change<()>,
        fixed: &[&Ours],
        reopen: &[&Ours],
    ) -> ForgeResult<Marked> {
        Ok(publish::mark(self.api, &self.target(&change.head), fixed, reopen).await?)
    }

    async fn upsert_summary(&self, change: &Change<()>, body: &str) -> ForgeResult<u64> {
        Ok(publish::upsert_summary(self.api, &self.target(&change.head), body).await?)
    }
}

/// The open pull requests whose head is `head_sha`. GitHub's commit-to-PR lookup
/// (`/commits/{sha}/pulls`) finds nothing for a fork's head, whose commit the base repository
/// only holds under `refs/pull/N/head`, so the open pull requests are listed.
pub async fn pulls_with_head(
    api: &dyn GitHubApi,
    installation: u64,
    repo: &RepoRef,
    head_sha: &str,
) -> Result<Vec<u64>, ApiError> {
    let path = repo_path(&repo.owner, &repo.name, "/pulls?state=open");
    let pulls: Vec<PullRequest> = list_all_as(api, installation, &path, None).await?;
    Ok(pulls
        .iter()
        .filter(|p| p.head.sha == head_sha)
        .map(|p| p.number)
        .collect())
}
