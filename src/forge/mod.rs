//! Forges (GitHub, GitLab): adapters of one [`Forge`] interface, which is everything the review
//! flow (`bot/review.rs`) asks of the hosting service. What only one forge has (check-run
//! annotations, GitHub's all-or-nothing review and its 422 retry, GitLab's status state machine
//! and fork fallbacks) stays inside its adapter.

pub mod budget;
pub mod command;
pub mod github;
pub mod gitlab;
pub mod http;
pub mod ids;
pub mod job;
pub mod reply;
pub mod secret;

use std::future::Future;
use std::time::Duration;

pub use secret::Secret;

use crate::git::cache::CacheKey;
use crate::owners::Flavor;
use crate::review::reconcile::Posted;
use crate::review::{FileComment, InlineComment, ReviewPlan};

/// A pull or merge request as the forge describes it now, read from its API by id (never from
/// a webhook payload).
#[derive(Debug, Clone)]
pub struct Change<A> {
    pub open: bool,
    pub draft: bool,
    pub head: String,
    /// The target branch's tip as the forge names it: policy and CODEOWNERS are read there.
    pub base_tip: String,
    /// The forge's merge-base, so the diff we review is the diff it shows; `None` when it
    /// names none (unrelated histories).
    pub merge_base: Option<String>,
    /// What the adapter needs to write to this change (GitLab: diff refs, where the status goes).
    pub adapter: A,
}

/// How a status ends. Each adapter maps it to its forge's words; where the forge has no such
/// state, the adapter's documentation says what stands in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
    /// Judged, and the policy says not to block (`incomplete: neutral`). GitLab has no neutral:
    /// `success` with the description saying so.
    Neutral,
    /// Superseded by a newer push, or the change closed.
    Cancelled,
    /// Not reviewed on purpose (a draft). GitHub: a neutral check (a skipped check run is
    /// hidden in its UI); GitLab: a `skipped` status.
    Skipped,
}

impl Outcome {
    /// A plan's conclusion.
    pub fn of(conclusion: crate::review::Conclusion) -> Outcome {
        match conclusion {
            crate::review::Conclusion::Success => Outcome::Success,
            crate::review::Conclusion::Failure => Outcome::Failure,
            crate::review::Conclusion::Neutral => Outcome::Neutral,
        }
    }
}

/// The text a concluded status carries.
#[derive(Debug, Clone, Copy)]
pub struct StatusText<'a> {
    pub title: &'a str,
    pub summary: &'a str,
}

/// Where and what to fetch.
pub struct FetchPlan {
    /// From configured base URLs and ids read from the forge's API, never from a payload.
    pub url: String,
    /// `(user, password)`, given to git only through its credential callback.
    pub credentials: Option<(String, Secret)>,
    pub refspecs: Vec<String>,
}

/// A slash command as the job recorded it; adapters read the comment again before trusting it.
#[derive(Debug, Clone)]
pub struct CommandRequest {
    pub comment_id: u64,
    /// What the webhook said (GitHub's jobs carry it; GitLab's read the note by id).
    pub login: Option<String>,
    pub command: Option<String>,
}

/// One of our comments on the change: its state for [`crate::review::reconcile`] and what
/// the adapter needs to edit it.
#[derive(Debug, Clone)]
pub struct PostedComment<H> {
    pub state: Posted,
    pub handle: H,
}

/// What marking comments fixed or reopening them did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Marked {
    pub fixed: usize,
    pub reopened: usize,
}

/// The identity of one scan (head and merge-base): a GitHub check run's `external_id`.
pub fn scan_key(head_sha: &str, merge_base: &str) -> String {
    format!("kubeward:{head_sha}:{merge_base}")
}

/// Whether a push of `git_ref` to `after` moves the repository's default branch to a commit
/// (not a deletion, not another branch or a tag): what a default-branch snapshot follows.
pub fn moves_default_branch(git_ref: &str, after: &str, default_branch: Option<&str>) -> bool {
    after.chars().any(|c| c != '0')
        && default_branch.is_some_and(|b| git_ref.strip_prefix("refs/heads/") == Some(b))
}

/// Why a forge call failed.
#[derive(Debug, thiserror::Error)]
pub enum ForgeError {
    /// The forge's API (either forge: one transport, one error).
    #[error(transparent)]
    Api(#[from] http::ApiError),
    /// The forge said something we cannot go on from (no diff refs yet, a bad project path):
    /// retried by the queue.
    #[error("{0}")]
    Other(String),
}

impl ForgeError {
    /// How long to wait for a rate limit (the forge's, or our pacing of writes): the queue
    /// defers the job instead of failing it.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ForgeError::Api(e) => e.retry_after(),
            ForgeError::Other(_) => None,
        }
    }

    /// The HTTP status the forge answered with, if it answered with an error.
    pub fn status(&self) -> Option<u16> {
        match self {
            ForgeError::Api(e) => e.status(),
            ForgeError::Other(_) => None,
        }
    }
}

/// A result from a forge call.
pub type ForgeResult<T> = Result<T, ForgeError>;

/// One pull or merge request on one forge: what the review flow needs of it. An adapter value
/// is bound to one change (GitHub: installation, repository, number; GitLab: project, iid).
///
/// Every write is idempotent from the flow's point of view: running a job twice leaves the
/// change as running it once (adapters look before re-sending a write whose answer was lost).
pub trait Forge: Send + Sync {
    /// Adapter data kept with the [`Change`].
    type Extra: Send + Sync;
    /// An opened status (a check run id; GitLab's status has none of its own).
    type Status: Send + Sync;
    /// What identifies one of our comments for editing it.
    type Comment: Send + Sync;

    /// "GitHub", "GitLab": in summaries and logs.
    fn name(&self) -> &'static str;
    /// The forge's word for an outcome, as the job records it (`neutral`, `failed`…).
    fn says(&self, outcome: Outcome) -> &'static str;
    /// CODEOWNERS semantics.
    fn flavor(&self) -> Flavor;
    /// Where this repository is cached.
    fn cache_key(&self) -> ForgeResult<CacheKey>;
    /// The pull request's number or the merge request's iid.
    fn number(&self) -> u64;

    /// The change as it is now.
    fn change(&self) -> impl Future<Output = ForgeResult<Change<Self::Extra>>> + Send;
    /// Only its head commit, as it is now (for concluding what a given-up job left open).
    fn current_head(&self) -> impl Future<Output = ForgeResult<String>> + Send;

    /// The command read again from the forge, if it still stands and its author may command
    /// us (write access); otherwise why not, for the job's record.
    fn authorize_command(
        &self,
        request: &CommandRequest,
    ) -> impl Future<Output = ForgeResult<Result<command::Command, String>>> + Send;
    /// Answers `/kubeward help` once per command comment.
    fn answer_help(&self, comment_id: u64) -> impl Future<Output = ForgeResult<()>> + Send;

    /// Says on the change that it is not reviewed on purpose (a draft), without a review
    /// starting; the id the job records.
    fn skip(
        &self,
        change: &Change<Self::Extra>,
        scan: &str,
        text: StatusText<'_>,
    ) -> impl Future<Output = ForgeResult<u64>> + Send;
    /// Opens (or finds again) this scan's status as in progress. `new_run`: a re-requested
    /// check wants a new one.
    fn open_status(
        &self,
        change: &Change<Self::Extra>,
        scan: &str,
        new_run: bool,
    ) -> impl Future<Output = ForgeResult<Self::Status>> + Send;
    /// Concludes the status without a plan (a draft, superseded, a failed review).
    fn finish_status(
        &self,
        change: &Change<Self::Extra>,
        status: &Self::Status,
        outcome: Outcome,
        text: StatusText<'_>,
    ) -> impl Future<Output = ForgeResult<()>> + Send;
    /// Concludes the status with a judgement that has no plan (invalid policy, an incomplete
    /// review): where the status cannot carry the explanation, the summary comment does.
    /// Returns the id the job records.
    fn conclude_verdict(
        &self,
        change: &Change<Self::Extra>,
        status: &Self::Status,
        outcome: Outcome,
        text: StatusText<'_>,
    ) -> impl Future<Output = ForgeResult<u64>> + Send;
    /// Concludes the status with the plan, after its comments are posted (`refused`: inline
    /// comments the forge would not place). Returns the id the job records.
    fn conclude_plan(
        &self,
        change: &Change<Self::Extra>,
        status: &Self::Status,
        plan: &ReviewPlan,
        refused: &[&InlineComment],
        summary_id: u64,
    ) -> impl Future<Output = ForgeResult<u64>> + Send;
    /// The plan's conclusion said at once while the rest of its publication waits `retry_after`
    /// for the write budget. Best effort.
    fn conclude_before_waiting(
        &self,
        change: &Change<Self::Extra>,
        status: &Self::Status,
        plan: &ReviewPlan,
        retry_after: Duration,
    ) -> impl Future<Output = ()> + Send;
    /// Concludes every unfinished status of ours on `head` (a given-up job, a replaced head);
    /// how many there were.
    fn conclude_unfinished(
        &self,
        head: &str,
        outcome: Outcome,
        text: StatusText<'_>,
    ) -> impl Future<Output = ForgeResult<usize>> + Send;

    /// Where and how to fetch the change.
    fn fetch_plan(
        &self,
        change: &Change<Self::Extra>,
    ) -> impl Future<Output = ForgeResult<FetchPlan>> + Send;

    /// Our comments (threads we started) on the change.
    fn our_comments(
        &self,
        change: &Change<Self::Extra>,
    ) -> impl Future<Output = ForgeResult<Vec<PostedComment<Self::Comment>>>> + Send;
    /// Posts inline comments; returns the indices of those the forge refused to place (they
    /// are listed in the summary instead).
    fn post_inline(
        &self,
        change: &Change<Self::Extra>,
        comments: &[&InlineComment],
    ) -> impl Future<Output = ForgeResult<Vec<usize>>> + Send;
    /// Posts one comment on a whole file.
    fn post_file(
        &self,
        change: &Change<Self::Extra>,
        comment: &FileComment,
    ) -> impl Future<Output = ForgeResult<()>> + Send;
    /// Marks comments fixed and reopens others (a thread a person resolved stays theirs).
    fn mark(
        &self,
        change: &Change<Self::Extra>,
        fixed: &[&Self::Comment],
        reopen: &[&Self::Comment],
    ) -> impl Future<Output = ForgeResult<Marked>> + Send;
    /// Creates or edits the one summary comment; its id.
    fn upsert_summary(
        &self,
        change: &Change<Self::Extra>,
        body: &str,
    ) -> impl Future<Output = ForgeResult<u64>> + Send;
}
