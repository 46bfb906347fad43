//! GitHub webhook deliveries, reduced to the few facts the bot acts on.
//!
//! A delivery is the event name from the `X-GitHub-Event` header plus the raw JSON body; the
//! action is the body's top-level `action`. [`parse_event`] turns the pair into a
//! [`WebhookEvent`]. Only the (event, action) pairs the bot reacts to are modelled; everything
//! else, `ping` included, becomes [`WebhookEvent::Other`], which the server acknowledges with a
//! 2xx and otherwise ignores.
//!
//! The serde models require only the fields we read. GitHub payloads are large and vary between
//! github.com, GHES versions and over time, so anything we can do without is optional, and
//! unknown fields are ignored. Call [`parse_event`] only after the delivery's signature has been
//! verified over the raw bytes: an [`EventError`] then means a malformed delivery (HTTP 400).

use serde::Deserialize;
use serde_json::Value;

/// The header that names the event (`pull_request`, `issue_comment`, ...).
pub const EVENT_HEADER: &str = "X-GitHub-Event";

pub use crate::forge::command::{COMMAND_WORD, Command, parse_command};

/// A delivery the bot understands, or [`WebhookEvent::Other`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookEvent {
    PullRequest(PullRequestEvent),
    IssueComment(IssueCommentEvent),
    CheckRun(CheckRunEvent),
    CheckSuite(CheckSuiteEvent),
    Installation(InstallationEvent),
    InstallationRepositories(InstallationRepositoriesEvent),
    /// A push to a branch or tag.
    Push(PushEvent),
    /// Any other event or action (`ping`, `pull_request.labeled`, ...): acknowledge and
    /// ignore. `action` is the body's top-level `action` when it is a string.
    Other {
        event: String,
        action: Option<String>,
    },
}

impl WebhookEvent {
    /// The installation the delivery belongs to. GitHub App deliveries carry it; repository or
    /// organization webhooks (and GitHub's own example payloads) may not.
    pub fn installation_id(&self) -> Option<u64> {
        match self {
            WebhookEvent::PullRequest(e) => e.installation_id,
            WebhookEvent::IssueComment(e) => e.installation_id,
            WebhookEvent::CheckRun(e) => e.installation_id,
            WebhookEvent::CheckSuite(e) => e.installation_id,
            WebhookEvent::Installation(e) => Some(e.installation_id),
            WebhookEvent::InstallationRepositories(e) => Some(e.installation_id),
            WebhookEvent::Push(e) => e.installation_id,
            WebhookEvent::Other { .. } => None,
        }
    }

    /// The repository the event happened in, for the events that have one.
    pub fn repository(&self) -> Option<&Repository> {
        match self {
            WebhookEvent::PullRequest(e) => Some(&e.repository),
            WebhookEvent::IssueComment(e) => Some(&e.repository),
            WebhookEvent::CheckRun(e) => Some(&e.repository),
            WebhookEvent::CheckSuite(e) => Some(&e.repository),
            _ => None,
        }
    }
}

/// Why a delivery body could not be read. Only meaningful after signature verification.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("the `{event}` delivery body is not valid JSON: {source}")]
    NotJson {
        event: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("the `{event}` delivery body is not a JSON object")]
    NotAnObject { event: String },
    #[error(
        "the `{event}` delivery (action {}) lacks a field we need or has one of the wrong type: {source}",
        .action.as_deref().unwrap_or("none")
    )]
    Invalid {
        event: String,
        action: Option<String>,
        #[source]
        source: serde_json::Error,
    },
}

/// A repository as webhooks describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repository {
    pub id: u64,
    /// `owner.login` (taken from `full_name` if a payload has no `owner`).
    pub owner: String,
    pub name: String,
    /// `owner/name`.
    pub full_name: String,
    pub private: bool,
}

/// A user, bot or organization (`sender`, `comment.user`, `installation.account`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub login: String,
    pub id: u64,
    pub kind: AccountKind,
}

impl Account {
    /// Bots (GitHub Apps, including this one) must not trigger the bot: that way lie loops.
    pub fn is_bot(&self) -> bool {
        self.kind == AccountKind::Bot
    }
}

/// The `type` of an [`Account`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountKind {
    User,
    Bot,
    Organization,
    /// Any other value, or the empty string when the payload had no `type`.
    Other(String),
}

impl AccountKind {
    fn from_type(kind: Option<String>) -> AccountKind {
        match kind.as_deref() {
            Some("User") => AccountKind::User,
            Some("Bot") => AccountKind::Bot,
            Some("Organization") => AccountKind::Organization,
            _ => AccountKind::Other(kind.unwrap_or_default()),
        }
    }
}

/// The `pull_request` actions the bot reacts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullRequestAction {
    Opened,
    Synchronize,
    Reopened,
    ReadyForReview,
    /// Title, body or base edited. Only `base_changed` (`changes.base` present) matters: the
    /// diff and the base-branch CODEOWNERS changed.
    Edited {
        base_changed: bool,
    },
    Closed {
        merged: bool,
    },
    ConvertedToDraft,
}

/// `pull_request.state`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PullRequestState {
    Open,
    Closed,
    Other(String),
}

/// A `pull_request` delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequestEvent {
    pub action: PullRequestAction,
    pub installation_id: Option<u64>,
    /// The base repository: where the pull request lives and where checks are posted.
    pub repository: Repository,
    pub number: u64,
    pub head_sha: String,
    pub head_ref: String,
    /// `pull_request.head.repo.id`; `None` when the head repository was deleted (a fork gone).
    pub head_repo_id: Option<u64>,
    pub base_ref: String,
    pub base_sha: String,
    pub draft: bool,
    pub state: PullRequestState,
    pub sender: Account,
    /// The head before this push (`before`, on `synchronize` only).
    pub before: Option<String>,
    /// The commit a merge made (a closed, merged pull request), which the push to the base
    /// branch then carries.
    pub merge_commit_sha: Option<String>,
}

impl PullRequestEvent {
    /// The head branch lives in another repository (a fork), or its repository is gone.
    pub fn is_from_fork(&self) -> bool {
        self.head_repo_id != Some(self.repository.id)
    }
}

/// `issue_comment` actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommentAction {
    Created,
    Edited,
    Deleted,
}

/// An `issue_comment` delivery: a comment on an issue or on a pull request's conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssueCommentEvent {
    pub action: CommentAction,
    pub installation_id: Option<u64>,
    pub repository: Repository,
    /// The issue or pull request number.
    pub issue_number: u64,
    /// `issue.pull_request` is present: the comment is on a pull request.
    pub is_pull_request: bool,
    pub comment_id: u64,
    /// The comment text (empty if the payload had none).
    pub body: String,
    /// `comment.user`; `None` if GitHub sent `null`.
    pub author: Option<Account>,
    /// `comment.performed_via_github_app` is a non-null object: an App posted it.
    pub via_github_app: bool,
    pub sender: Option<Account>,
}

impl IssueCommentEvent {
    /// The slash command in the comment, if any (see [`parse_command`]). The caller still
    /// decides whether the action, the author and their permission allow running it.
    pub fn command(&self) -> Option<Command> {
        parse_command(&self.body)
    }
}

/// `check_run` actions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckRunAction {
    Created,
    Completed,
    /// "Re-run" was clicked: create a new check run for the same head SHA.
    Rerequested,
    /// A button from the check run's `actions[]` was clicked.
    RequestedAction {
        identifier: Option<String>,
    },
}

/// A `check_run` delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckRunEvent {
    pub action: CheckRunAction,
    pub installation_id: Option<u64>,
    pub repository: Repository,
    pub check_run_id: u64,
    pub name: String,
    pub head_sha: String,
    /// `check_run.app.id`: compare with our App ID to ignore other Apps' runs.
    pub app_id: Option<u64>,
    /// `check_run.pull_requests[].number`. **Empty for fork pull requests**: map the head SHA
    /// to a pull request yourself.
    pub pull_requests: Vec<u64>,
    /// Can be the `ghost` user; do not authorize on it.
    pub sender: Option<Account>,
}

/// `check_suite` actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckSuiteAction {
    Requested,
    Rerequested,
    Completed,
}

/// A `check_suite` delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckSuiteEvent {
    pub action: CheckSuiteAction,
    pub installation_id: Option<u64>,
    pub repository: Repository,
    pub check_suite_id: Option<u64>,
    pub head_sha: String,
    /// `None` when the head branch is in a fork.
    pub head_branch: Option<String>,
    pub app_id: Option<u64>,
    /// `check_suite.pull_requests[].number`; empty for fork pull requests.
    pub pull_requests: Vec<u64>,
    pub sender: Option<Account>,
}

/// `installation` actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstallationAction {
    Created,
    Deleted,
    Suspend,
    Unsuspend,
    NewPermissionsAccepted,
}

/// A repository entry of `installation.repositories` or `installation_repositories`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalledRepository {
    pub id: u64,
    pub full_name: String,
    pub private: bool,
}

/// An `installation` delivery (the App was installed, removed, suspended...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallationEvent {
    pub action: InstallationAction,
    pub installation_id: u64,
    /// `installation.account`: the user or organization the App is installed on.
    pub account: Option<Account>,
    pub app_id: Option<u64>,
    /// `repositories`, when the payload lists them (created, deleted, new_permissions_accepted).
    pub repositories: Vec<InstalledRepository>,
    pub sender: Option<Account>,
}

/// `installation_repositories` actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstallationRepositoriesAction {
    Added,
    Removed,
}

/// An `installation_repositories` delivery: repositories were added to or removed from an
/// installation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallationRepositoriesEvent {
    pub action: InstallationRepositoriesAction,
    pub installation_id: u64,
    /// `all` or `selected`, when present.
    pub repository_selection: Option<String>,
    pub added: Vec<InstalledRepository>,
    pub removed: Vec<InstalledRepository>,
    pub sender: Option<Account>,
}

/// A `push` delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushEvent {
    /// `refs/heads/main`, `refs/tags/v1`…
    pub git_ref: String,
    /// The commit the ref points at now (all zeros when it was deleted).
    pub after: String,
    pub deleted: bool,
    pub repository: Repository,
    /// The repository's default branch, by name.
    pub default_branch: Option<String>,
    /// The repository's web page (`html_url`), for links to files at a commit.
    pub html_url: Option<String>,
    pub installation_id: Option<u64>,
}

impl PushEvent {
    /// The push moved the default branch to a commit (not a deletion, not another branch).
    pub fn moves_default_branch(&self) -> bool {
        !self.deleted
            && crate::forge::moves_default_branch(
                &self.git_ref,
                &self.after,
                self.default_branch.as_deref(),
            )
    }
}

/// Parses a delivery: `event` is the `X-GitHub-Event` header, `body` the raw request body.
///
/// Unknown events and actions give [`WebhookEvent::Other`] (the body must still be a JSON
/// object). A known (event, action) pair whose body lacks a field we need is an
/// [`EventError::Invalid`].
pub fn parse_event(event: &str, body: &[u8]) -> Result<WebhookEvent, EventError> {
    let value: Value = serde_json::from_slice(body).map_err(|source| EventError::NotJson {
        event: event.to_owned(),
        source,
    })?;
    if !value.is_object() {
        return Err(EventError::NotAnObject {
            event: event.to_owned(),
        });
    }
    let action = value
        .get("action")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let invalid = |source: serde_json::Error| EventError::Invalid {
        event: event.to_owned(),
        action: action.clone(),
        source,
    };
    let other = || WebhookEvent::Other {
        event: event.to_owned(),
        action: action.clone(),
    };

    let parsed = match (event, action.as_deref()) {
        ("pull_request", Some(a)) => {
            let Some(kind) = pull_request_kind(a) else {
                return Ok(other());
            };
            let raw: raw::PullRequestPayload = serde_json::from_value(value).map_err(invalid)?;
            WebhookEvent::PullRequest(raw.into_event(kind).map_err(invalid)?)
        }
        ("issue_comment", Some(a)) => {
            let action = match a {
                "created" => CommentAction::Created,
                "edited" => CommentAction::Edited,
                "deleted" => CommentAction::Deleted,
                _ => return Ok(other()),
            };
            let raw: raw::IssueCommentPayload = serde_json::from_value(value).map_err(invalid)?;
            WebhookEvent::IssueComment(raw.into_event(action))
        }
        ("check_run", Some(a)) => {
            if !matches!(
                a,
                "created" | "completed" | "rerequested" | "requested_action"
            ) {
                return Ok(other());
            }
            let raw: raw::CheckRunPayload = serde_json::from_value(value).map_err(invalid)?;
            WebhookEvent::CheckRun(raw.into_event(a))
        }
        ("check_suite", Some(a)) => {
            let action = match a {
                "requested" => CheckSuiteAction::Requested,
                "rerequested" => CheckSuiteAction::Rerequested,
                "completed" => CheckSuiteAction::Completed,
                _ => return Ok(other()),
            };
            let raw: raw::CheckSuitePayload = serde_json::from_value(value).map_err(invalid)?;
            WebhookEvent::CheckSuite(raw.into_event(action))
        }
        ("installation", Some(a)) => {
            let action = match a {
                "created" => InstallationAction::Created,
                "deleted" => InstallationAction::Deleted,
                "suspend" => InstallationAction::Suspend,
                "unsuspend" => InstallationAction::Unsuspend,
                "new_permissions_accepted" => InstallationAction::NewPermissionsAccepted,
                _ => return Ok(other()),
            };
            let raw: raw::InstallationPayload = serde_json::from_value(value).map_err(invalid)?;
            WebhookEvent::Installation(raw.into_event(action))
        }
        ("installation_repositories", Some(a)) => {
            let action = match a {
                "added" => InstallationRepositoriesAction::Added,
                "removed" => InstallationRepositoriesAction::Removed,
                _ => return Ok(other()),
            };
            let raw: raw::InstallationRepositoriesPayload =
                serde_json::from_value(value).map_err(invalid)?;
            WebhookEvent::InstallationRepositories(raw.into_event(action))
        }
        ("push", _) => {
            let raw: raw::PushPayload = serde_json::from_value(value).map_err(invalid)?;
            WebhookEvent::Push(raw.into_event())
        }
        // A modelled event without a string `action` is malformed.
        (
            "pull_request"
            | "issue_comment"
            | "check_run"
            | "check_suite"
            | "installation"
            | "installation_repositories",
            None,
        ) => {
            return Err(invalid(serde::de::Error::missing_field("action")));
        }
        _ => other(),
    };
    Ok(parsed)
}

/// Which [`PullRequestAction`] an action string is, before the payload is read. `Edited` and
/// `Closed` get their flags from the payload.
fn pull_request_kind(action: &str) -> Option<PullRequestAction> {
    Some(match action {
        "opened" => PullRequestAction::Opened,
        "synchronize" => PullRequestAction::Synchronize,
        "reopened" => PullRequestAction::Reopened,
        "ready_for_review" => PullRequestAction::ReadyForReview,
        "edited" => PullRequestAction::Edited {
            base_changed: false,
        },
        "closed" => PullRequestAction::Closed { merged: false },
        "converted_to_draft" => PullRequestAction::ConvertedToDraft,
        _ => return None,
    })
}

/// The payload shapes, each requiring only what the bot reads.
mod raw {
    use super::*;

    #[derive(Deserialize)]
    pub(super) struct PushRepository {
        #[serde(flatten)]
        pub repository: Repository,
        pub default_branch: Option<String>,
        pub html_url: Option<String>,
    }

    #[derive(Deserialize)]
    pub(super) struct PushPayload {
        #[serde(rename = "ref")]
        pub git_ref: String,
        pub after: String,
        pub deleted: Option<bool>,
        pub repository: PushRepository,
        pub installation: Option<Installation>,
    }

    impl PushPayload {
        pub(super) fn into_event(self) -> PushEvent {
            PushEvent {
                git_ref: self.git_ref,
                after: self.after,
                deleted: flag(self.deleted),
                default_branch: self.repository.default_branch,
                html_url: self.repository.html_url,
                repository: self.repository.repository.into(),
                installation_id: self.installation.map(|i| i.id),
            }
        }
    }

    fn flag(value: Option<bool>) -> bool {
        value.unwrap_or(false)
    }

    #[derive(Deserialize)]
    pub(super) struct Installation {
        #[serde(deserialize_with = "crate::forge::ids::stored")]
        pub id: u64,
    }

    #[derive(Deserialize)]
    pub(super) struct Login {
        pub login: String,
    }

    #[derive(Deserialize)]
    pub(super) struct Repository {
        #[serde(deserialize_with = "crate::forge::ids::stored")]
        pub id: u64,
        pub name: String,
        pub full_name: String,
        pub owner: Option<Login>,
        pub private: Option<bool>,
    }

    impl From<Repository> for super::Repository {
        fn from(r: Repository) -> Self {
            let owner = match r.owner {
                Some(o) => o.login,
                None => r
                    .full_name
                    .split_once('/')
                    .map(|(owner, _)| owner.to_owned())
                    .unwrap_or_default(),
            };
            super::Repository {
                id: r.id,
                owner,
                name: r.name,
                full_name: r.full_name,
                private: flag(r.private),
            }
        }
    }

    #[derive(Deserialize)]
    pub(super) struct Account {
        pub login: String,
        #[serde(deserialize_with = "crate::forge::ids::stored")]
        pub id: u64,
        #[serde(rename = "type")]
        pub kind: Option<String>,
    }

    impl From<Account> for super::Account {
        fn from(a: Account) -> Self {
            super::Account {
                login: a.login,
                id: a.id,
                kind: AccountKind::from_type(a.kind),
            }
        }
    }

    #[derive(Deserialize)]
    pub(super) struct IdOnly {
        #[serde(deserialize_with = "crate::forge::ids::stored")]
        pub id: u64,
    }

    #[derive(Deserialize)]
    pub(super) struct NumberOnly {
        #[serde(deserialize_with = "crate::forge::ids::stored")]
        pub number: u64,
    }

    fn numbers(prs: Option<Vec<NumberOnly>>) -> Vec<u64> {
        prs.unwrap_or_default()
            .into_iter()
            .map(|p| p.number)
            .collect()
    }

    #[derive(Deserialize)]
    pub(super) struct PullRequestPayload {
        #[serde(default, deserialize_with = "crate::forge::ids::stored_opt")]
        pub number: Option<u64>,
        pub pull_request: PullRequest,
        pub repository: Repository,
        pub installation: Option<Installation>,
        pub sender: Account,
        pub changes: Option<Changes>,
        pub before: Option<String>,
    }

    #[derive(Deserialize)]
    pub(super) struct Changes {
        pub base: Option<Value>,
    }

    #[derive(Deserialize)]
    pub(super) struct PullRequest {
        #[serde(default, deserialize_with = "crate::forge::ids::stored_opt")]
        pub number: Option<u64>,
        pub head: Head,
        pub base: Base,
        pub draft: Option<bool>,
        pub state: String,
        pub merged: Option<bool>,
        pub merge_commit_sha: Option<String>,
    }

    #[derive(Deserialize)]
    pub(super) struct Head {
        pub sha: String,
        #[serde(rename = "ref")]
        pub git_ref: String,
        pub repo: Option<IdOnly>,
    }

    #[derive(Deserialize)]
    pub(super) struct Base {
        pub sha: String,
        #[serde(rename = "ref")]
        pub git_ref: String,
    }

    impl PullRequestPayload {
        pub(super) fn into_event(
            self,
            kind: PullRequestAction,
        ) -> Result<PullRequestEvent, serde_json::Error> {
            let pr = self.pull_request;
            let number = self
                .number
                .or(pr.number)
                .ok_or_else(|| serde::de::Error::missing_field("number"))?;
            let action = match kind {
                PullRequestAction::Edited { .. } => PullRequestAction::Edited {
                    base_changed: self
                        .changes
                        .and_then(|c| c.base)
                        .is_some_and(|b| !b.is_null()),
                },
                PullRequestAction::Closed { .. } => PullRequestAction::Closed {
                    merged: flag(pr.merged),
                },
                other => other,
            };
            let state = match pr.state.as_str() {
                "open" => PullRequestState::Open,
                "closed" => PullRequestState::Closed,
                _ => PullRequestState::Other(pr.state),
            };
            Ok(PullRequestEvent {
                action,
                installation_id: self.installation.map(|i| i.id),
                repository: self.repository.into(),
                number,
                head_sha: pr.head.sha,
                head_ref: pr.head.git_ref,
                head_repo_id: pr.head.repo.map(|r| r.id),
                base_ref: pr.base.git_ref,
                base_sha: pr.base.sha,
                draft: flag(pr.draft),
                state,
                sender: self.sender.into(),
                before: self.before,
                merge_commit_sha: pr.merge_commit_sha,
            })
        }
    }

    #[derive(Deserialize)]
    pub(super) struct IssueCommentPayload {
        pub issue: Issue,
        pub comment: Comment,
        pub repository: Repository,
        pub installation: Option<Installation>,
        pub sender: Option<Account>,
    }

    #[derive(Deserialize)]
    pub(super) struct Issue {
        #[serde(deserialize_with = "crate::forge::ids::stored")]
        pub number: u64,
        pub pull_request: Option<Value>,
    }

    #[derive(Deserialize)]
    pub(super) struct Comment {
        #[serde(deserialize_with = "crate::forge::ids::stored")]
        pub id: u64,
        pub body: Option<String>,
        pub user: Option<Account>,
        pub performed_via_github_app: Option<Value>,
    }

    impl IssueCommentPayload {
        pub(super) fn into_event(self, action: CommentAction) -> IssueCommentEvent {
            IssueCommentEvent {
                action,
                installation_id: self.installation.map(|i| i.id),
                repository: self.repository.into(),
                issue_number: self.issue.number,
                is_pull_request: self.issue.pull_request.is_some_and(|p| !p.is_null()),
                comment_id: self.comment.id,
                body: self.comment.body.unwrap_or_default(),
                author: self.comment.user.map(Into::into),
                via_github_app: self
                    .comment
                    .performed_via_github_app
                    .is_some_and(|a| !a.is_null()),
                sender: self.sender.map(Into::into),
            }
        }
    }

    #[derive(Deserialize)]
    pub(super) struct CheckRunPayload {
        pub check_run: CheckRun,
        pub requested_action: Option<RequestedAction>,
        pub repository: Repository,
        pub installation: Option<Installation>,
        pub sender: Option<Account>,
    }

    #[derive(Deserialize)]
    pub(super) struct CheckRun {
        #[serde(deserialize_with = "crate::forge::ids::stored")]
        pub id: u64,
        pub name: String,
        pub head_sha: String,
        pub app: Option<IdOnly>,
        pub pull_requests: Option<Vec<NumberOnly>>,
    }

    #[derive(Deserialize)]
    pub(super) struct RequestedAction {
        pub identifier: Option<String>,
    }

    impl CheckRunPayload {
        /// `action` is one of the four modelled `check_run` actions.
        pub(super) fn into_event(self, action: &str) -> CheckRunEvent {
            let action = match action {
                "created" => CheckRunAction::Created,
                "completed" => CheckRunAction::Completed,
                "rerequested" => CheckRunAction::Rerequested,
                _ => CheckRunAction::RequestedAction {
                    identifier: self.requested_action.and_then(|r| r.identifier),
                },
            };
            let run = self.check_run;
            CheckRunEvent {
                action,
                installation_id: self.installation.map(|i| i.id),
                repository: self.repository.into(),
                check_run_id: run.id,
                name: run.name,
                head_sha: run.head_sha,
                app_id: run.app.map(|a| a.id),
                pull_requests: numbers(run.pull_requests),
                sender: self.sender.map(Into::into),
            }
        }
    }

    #[derive(Deserialize)]
    pub(super) struct CheckSuitePayload {
        pub check_suite: CheckSuite,
        pub repository: Repository,
        pub installation: Option<Installation>,
        pub sender: Option<Account>,
    }

    #[derive(Deserialize)]
    pub(super) struct CheckSuite {
        #[serde(default, deserialize_with = "crate::forge::ids::stored_opt")]
        pub id: Option<u64>,
        pub head_sha: String,
        pub head_branch: Option<String>,
        pub app: Option<IdOnly>,
        pub pull_requests: Option<Vec<NumberOnly>>,
    }

    impl CheckSuitePayload {
        pub(super) fn into_event(self, action: CheckSuiteAction) -> CheckSuiteEvent {
            let suite = self.check_suite;
            CheckSuiteEvent {
                action,
                installation_id: self.installation.map(|i| i.id),
                repository: self.repository.into(),
                check_suite_id: suite.id,
                head_sha: suite.head_sha,
                head_branch: suite.head_branch,
                app_id: suite.app.map(|a| a.id),
                pull_requests: numbers(suite.pull_requests),
                sender: self.sender.map(Into::into),
            }
        }
    }

    #[derive(Deserialize)]
    pub(super) struct ListedRepository {
        #[serde(deserialize_with = "crate::forge::ids::stored")]
        pub id: u64,
        pub full_name: String,
        pub private: Option<bool>,
    }

    fn listed(repos: Option<Vec<ListedRepository>>) -> Vec<InstalledRepository> {
        repos
            .unwrap_or_default()
            .into_iter()
            .map(|r| InstalledRepository {
                id: r.id,
                full_name: r.full_name,
                private: flag(r.private),
            })
            .collect()
    }

    #[derive(Deserialize)]
    pub(super) struct FullInstallation {
        #[serde(deserialize_with = "crate::forge::ids::stored")]
        pub id: u64,
        pub account: Option<Account>,
        #[serde(default, deserialize_with = "crate::forge::ids::stored_opt")]
        pub app_id: Option<u64>,
    }

    #[derive(Deserialize)]
    pub(super) struct InstallationPayload {
        pub installation: FullInstallation,
        pub repositories: Option<Vec<ListedRepository>>,
        pub sender: Option<Account>,
    }

    impl InstallationPayload {
        pub(super) fn into_event(self, action: InstallationAction) -> InstallationEvent {
            InstallationEvent {
                action,
                installation_id: self.installation.id,
                account: self.installation.account.map(Into::into),
                app_id: self.installation.app_id,
                repositories: listed(self.repositories),
                sender: self.sender.map(Into::into),
            }
        }
    }

    #[derive(Deserialize)]
    pub(super) struct InstallationRepositoriesPayload {
        pub installation: Installation,
        pub repository_selection: Option<String>,
        pub repositories_added: Option<Vec<ListedRepository>>,
        pub repositories_removed: Option<Vec<ListedRepository>>,
        pub sender: Option<Account>,
    }

    impl InstallationRepositoriesPayload {
        pub(super) fn into_event(
            self,
            action: InstallationRepositoriesAction,
        ) -> InstallationRepositoriesEvent {
            InstallationRepositoriesEvent {
                action,
                installation_id: self.installation.id,
                repository_selection: self.repository_selection,
                added: listed(self.repositories_added),
                removed: listed(self.repositories_removed),
                sender: self.sender.map(Into::into),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_json_and_missing_fields_are_typed_errors() {
        assert!(matches!(
            parse_event("pull_request", b"{nope"),
            Err(EventError::NotJson { .. })
        ));
        assert!(matches!(
            parse_event("ping", b"[1]"),
            Err(EventError::NotAnObject { .. })
        ));
        assert!(matches!(
            parse_event("pull_request", br#"{"action":"opened"}"#),
            Err(EventError::Invalid { .. })
        ));
        assert_eq!(
            parse_event("pull_request", br#"{"action":"labeled"}"#).unwrap(),
            WebhookEvent::Other {
                event: "pull_request".into(),
                action: Some("labeled".into())
            }
        );
    }
}
