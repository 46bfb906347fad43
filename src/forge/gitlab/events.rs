//! GitLab webhook deliveries, reduced to the few facts the bot acts on.
//!
//! A delivery is the `X-Gitlab-Event` header (`Merge Request Hook`, `Note Hook`...) plus a JSON
//! body whose `object_kind` must agree with it. [`parse_delivery`] turns the pair into a
//! [`Delivery`]: the project the payload claims (checked against the webhook secret's binding
//! before anything is queued) and a [`GitLabEvent`]. Only merge request and merge request
//! comment events are modelled; everything else is [`GitLabEvent::Other`], which the server
//! acknowledges with a 2xx (GitLab disables hooks whose deliveries keep failing).
//!
//! Payload fields are hints, never authority: the worker re-reads the merge request, the note
//! and its author through the API by id. Only what routing needs is required here.

use serde::Deserialize;
use serde_json::Value;

pub use crate::forge::command::{COMMAND_WORD, Command, parse_command};

/// `X-Gitlab-Event` of merge request events.
pub const MERGE_REQUEST_HOOK: &str = "Merge Request Hook";
/// `X-Gitlab-Event` of comment events.
pub const NOTE_HOOK: &str = "Note Hook";

/// `X-Gitlab-Event` of a push to a branch.
pub const PUSH_HOOK: &str = "Push Hook";

/// Why a delivery body could not be read (after authentication: a malformed delivery).
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
    #[error("the `{event}` delivery lacks a field we need or has one of the wrong type: {source}")]
    Invalid {
        event: String,
        #[source]
        source: serde_json::Error,
    },
}

/// The project a payload names. Its id is checked against the webhook secret's binding; the
/// path is only a pre-check for group bindings (the worker confirms it through the API).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectRef {
    pub id: u64,
    pub path_with_namespace: Option<String>,
}

/// A parsed delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// `project` (or `project_id`) of the payload; absent for group-level events.
    pub project: Option<ProjectRef>,
    pub event: GitLabEvent,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GitLabEvent {
    MergeRequest(MergeRequestEvent),
    Note(NoteEvent),
    Push(PushEvent),
    /// Anything else (pipeline, tag pushes, comments on issues...): acknowledged and ignored.
    Other {
        event: String,
    },
}

/// `object_attributes.action` of a merge request event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MergeRequestAction {
    Open,
    Reopen,
    Update(UpdateKind),
    Close,
    Merge,
    /// `approved`, `approval`, ...: nothing to review.
    Other(String),
}

/// What an `update` changed, as far as a review cares.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UpdateKind {
    /// `object_attributes.oldrev` is present: new commits (or an applied suggestion).
    pub code_changed: bool,
    /// `changes.target_branch`: the diff and the base branch's policy and owners changed.
    pub target_branch_changed: bool,
    /// `changes.draft` went from true to false: the merge request is ready for review.
    pub marked_ready: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergeRequestEvent {
    pub project: ProjectRef,
    /// The merge request's number in its project (`iid`, not the global `id`).
    pub iid: u64,
    pub action: MergeRequestAction,
    /// `object_attributes.last_commit.id`: the head the event is about. The worker reviews
    /// the head the API reports and skips the job if it moved on.
    pub head_sha: Option<String>,
    /// Who did it (`user.username`).
    pub username: Option<String>,
    /// `object_attributes.merge_commit_sha` of a merged merge request.
    pub merge_commit_sha: Option<String>,
}

/// A `Push Hook` delivery (`object_kind: push`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushEvent {
    pub project: ProjectRef,
    /// `refs/heads/main`.
    pub git_ref: String,
    /// The commit the branch points at now (all zeros: deleted).
    pub after: String,
    pub default_branch: Option<String>,
    /// `project.web_url`, for links to files at a commit.
    pub web_url: Option<String>,
}

impl PushEvent {
    /// The push moved the default branch to a commit.
    pub fn moves_default_branch(&self) -> bool {
        crate::forge::moves_default_branch(
            &self.git_ref,
            &self.after,
            self.default_branch.as_deref(),
        )
    }
}

impl MergeRequestEvent {
    /// Why this event asks for a review, if it does: opened, reopened, or updated in a way that
    /// changes the diff (new commits, another target branch) or readiness.
    pub fn review_trigger(&self) -> Option<&'static str> {
        match &self.action {
            MergeRequestAction::Open => Some("open"),
            MergeRequestAction::Reopen => Some("reopen"),
            MergeRequestAction::Update(u) if u.code_changed => Some("push"),
            MergeRequestAction::Update(u) if u.target_branch_changed => Some("target branch"),
            MergeRequestAction::Update(u) if u.marked_ready => Some("ready"),
            _ => None,
        }
    }

    /// Closed or merged: queued work for it is pointless.
    pub fn is_finished(&self) -> bool {
        matches!(
            self.action,
            MergeRequestAction::Close | MergeRequestAction::Merge
        )
    }
}

/// `object_attributes.action` of a comment event (16.11+; older instances send none and only
/// fire on creation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoteAction {
    Create,
    Update,
    Other(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteEvent {
    pub project: ProjectRef,
    pub note_id: u64,
    pub action: NoteAction,
    /// System notes ("added 1 commit", "changed the description") are never commands.
    pub system: bool,
    /// `MergeRequest`, `Issue`, `Commit`, `Snippet`.
    pub noteable_type: String,
    /// `merge_request.iid`, for comments on merge requests.
    pub merge_request_iid: Option<u64>,
    pub body: String,
    /// The author as the payload tells it; the worker re-reads the note to be sure.
    pub author_id: Option<u64>,
    pub author_username: Option<String>,
}

impl NoteEvent {
    /// The slash command of a new, human comment on a merge request (see [`parse_command`]).
    /// The caller still has to rule out the bot itself and check the author's access.
    pub fn command(&self) -> Option<Command> {
        if self.action != NoteAction::Create
            || self.system
            || self.noteable_type != "MergeRequest"
            || self.merge_request_iid.is_none()
        {
            return None;
        }
        parse_command(&self.body)
    }
}

/// The project a payload names: `project.id` (with `path_with_namespace`), else `project_id`.
pub fn project_of(value: &Value) -> Option<ProjectRef> {
    let project = value.get("project");
    let id = project
        .and_then(|p| p.get("id"))
        .and_then(Value::as_u64)
        .or_else(|| value.get("project_id").and_then(Value::as_u64))?;
    Some(ProjectRef {
        id,
        path_with_namespace: project
            .and_then(|p| p.get("path_with_namespace"))
            .and_then(Value::as_str)
            .map(str::to_owned),
    })
}

/// Reads a delivery. Call it only once the delivery is authenticated.
pub fn parse_delivery(event: &str, body: &[u8]) -> Result<Delivery, EventError> {
    let value: Value = serde_json::from_slice(body).map_err(|source| EventError::NotJson {
        event: event.to_owned(),
        source,
    })?;
    if !value.is_object() {
        return Err(EventError::NotAnObject {
            event: event.to_owned(),
        });
    }
    let invalid = |source| EventError::Invalid {
        event: event.to_owned(),
        source,
    };
    let project = project_of(&value);
    // Refused here like the ids the payload models read: before anything is stored.
    if let Some(Err(e)) = project.as_ref().map(|p| crate::forge::ids::check(p.id)) {
        return Err(invalid(<serde_json::Error as serde::de::Error>::custom(
            format!("project: {e}"),
        )));
    }
    let kind = value.get("object_kind").and_then(Value::as_str);
    let other = || GitLabEvent::Other {
        event: event.to_owned(),
    };
    let parsed = match (event, kind, &project) {
        (MERGE_REQUEST_HOOK, Some("merge_request"), Some(project)) => {
            let raw: raw::MergeRequestPayload = serde_json::from_value(value).map_err(invalid)?;
            GitLabEvent::MergeRequest(raw.into_event(project.clone()))
        }
        (NOTE_HOOK, Some("note"), Some(project)) => {
            let raw: raw::NotePayload = serde_json::from_value(value).map_err(invalid)?;
            GitLabEvent::Note(raw.into_event(project.clone()))
        }
        (PUSH_HOOK, Some("push"), Some(project)) => {
            let raw: raw::PushPayload = serde_json::from_value(value).map_err(invalid)?;
            GitLabEvent::Push(PushEvent {
                project: project.clone(),
                git_ref: raw.git_ref,
                after: raw.after,
                default_branch: raw.project.default_branch,
                web_url: raw.project.web_url,
            })
        }
        _ => other(),
    };
    Ok(Delivery {
        project,
        event: parsed,
    })
}

/// The payload shapes, each requiring only what the bot reads.
mod raw {
    use super::*;

    #[derive(Deserialize)]
    pub(super) struct User {
        #[serde(default, deserialize_with = "crate::forge::ids::stored_opt")]
        pub id: Option<u64>,
        pub username: Option<String>,
    }

    #[derive(Deserialize)]
    pub(super) struct Commit {
        pub id: Option<String>,
    }

    #[derive(Deserialize)]
    pub(super) struct MergeRequestAttributes {
        #[serde(deserialize_with = "crate::forge::ids::stored")]
        pub iid: u64,
        pub action: Option<String>,
        pub oldrev: Option<String>,
        pub last_commit: Option<Commit>,
        pub merge_commit_sha: Option<String>,
    }

    #[derive(Deserialize)]
    pub(super) struct PushProject {
        pub default_branch: Option<String>,
        pub web_url: Option<String>,
    }

    #[derive(Deserialize)]
    pub(super) struct PushPayload {
        #[serde(rename = "ref")]
        pub git_ref: String,
        pub after: String,
        pub project: PushProject,
    }

    #[derive(Deserialize)]
    pub(super) struct MergeRequestPayload {
        pub user: Option<User>,
        pub object_attributes: MergeRequestAttributes,
        #[serde(default)]
        pub changes: Option<Value>,
    }

    impl MergeRequestPayload {
        pub(super) fn into_event(self, project: ProjectRef) -> MergeRequestEvent {
            let attributes = self.object_attributes;
            let changes = self.changes.unwrap_or(Value::Null);
            let changed = |field: &str| changes.get(field).is_some_and(|c| !c.is_null());
            let became_ready = |field: &str| {
                changes.get(field).is_some_and(|c| {
                    c.get("previous") == Some(&Value::Bool(true))
                        && c.get("current") == Some(&Value::Bool(false))
                })
            };
            let action = match attributes.action.as_deref().unwrap_or("") {
                "open" => MergeRequestAction::Open,
                "reopen" => MergeRequestAction::Reopen,
                "close" => MergeRequestAction::Close,
                "merge" => MergeRequestAction::Merge,
                "update" => MergeRequestAction::Update(UpdateKind {
                    code_changed: attributes.oldrev.as_deref().is_some_and(|r| !r.is_empty()),
                    target_branch_changed: changed("target_branch"),
                    marked_ready: became_ready("draft") || became_ready("work_in_progress"),
                }),
                other => MergeRequestAction::Other(other.to_owned()),
            };
            MergeRequestEvent {
                project,
                iid: attributes.iid,
                action,
                head_sha: attributes.last_commit.and_then(|c| c.id),
                username: self.user.and_then(|u| u.username),
                merge_commit_sha: attributes.merge_commit_sha,
            }
        }
    }

    #[derive(Deserialize)]
    pub(super) struct NoteAttributes {
        #[serde(deserialize_with = "crate::forge::ids::stored")]
        pub id: u64,
        #[serde(default)]
        pub note: Option<String>,
        #[serde(default)]
        pub noteable_type: Option<String>,
        #[serde(default)]
        pub system: Option<bool>,
        #[serde(default)]
        pub action: Option<String>,
        #[serde(default, deserialize_with = "crate::forge::ids::stored_opt")]
        pub author_id: Option<u64>,
    }

    #[derive(Deserialize)]
    pub(super) struct MergeRequestRef {
        #[serde(deserialize_with = "crate::forge::ids::stored")]
        pub iid: u64,
    }

    #[derive(Deserialize)]
    pub(super) struct NotePayload {
        pub user: Option<User>,
        pub object_attributes: NoteAttributes,
        #[serde(default)]
        pub merge_request: Option<MergeRequestRef>,
    }

    impl NotePayload {
        pub(super) fn into_event(self, project: ProjectRef) -> NoteEvent {
            let attributes = self.object_attributes;
            let action = match attributes.action.as_deref() {
                None | Some("create") => NoteAction::Create,
                Some("update") => NoteAction::Update,
                Some(other) => NoteAction::Other(other.to_owned()),
            };
            let (user_id, username) = match self.user {
                Some(u) => (u.id, u.username),
                None => (None, None),
            };
            NoteEvent {
                project,
                note_id: attributes.id,
                action,
                system: attributes.system.unwrap_or(false),
                noteable_type: attributes.noteable_type.unwrap_or_default(),
                merge_request_iid: self.merge_request.map(|m| m.iid),
                body: attributes.note.unwrap_or_default(),
                author_id: attributes.author_id.or(user_id),
                author_username: username,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn mr(action: &str, extra: Value, changes: Value) -> Vec<u8> {
        let mut attributes = json!({"iid": 7, "action": action, "last_commit": {"id": "abc"}});
        if let (Some(a), Some(e)) = (attributes.as_object_mut(), extra.as_object()) {
            a.extend(e.clone());
        }
        serde_json::to_vec(&json!({
            "object_kind": "merge_request",
            "user": {"id": 1, "username": "dev"},
            "project": {"id": 42, "path_with_namespace": "platform/shop"},
            "object_attributes": attributes,
            "changes": changes,
        }))
        .expect("json")
    }

    fn trigger(body: &[u8]) -> Option<&'static str> {
        match parse_delivery(MERGE_REQUEST_HOOK, body)
            .expect("valid")
            .event
        {
            GitLabEvent::MergeRequest(e) => e.review_trigger(),
            other => panic!("not a merge request event: {other:?}"),
        }
    }

    #[test]
    fn only_code_changing_updates_are_reviewed() {
        assert_eq!(trigger(&mr("open", json!({}), json!({}))), Some("open"));
        assert_eq!(trigger(&mr("reopen", json!({}), json!({}))), Some("reopen"));
        assert_eq!(
            trigger(&mr("update", json!({"oldrev": "0123"}), json!({}))),
            Some("push")
        );
        assert_eq!(
            trigger(&mr(
                "update",
                json!({}),
                json!({"target_branch": {"previous": "main", "current": "release"}})
            )),
            Some("target branch")
        );
        assert_eq!(
            trigger(&mr(
                "update",
                json!({}),
                json!({"draft": {"previous": true, "current": false}})
            )),
            Some("ready")
        );
        assert_eq!(
            trigger(&mr(
                "update",
                json!({}),
                json!({"title": {"previous": "a", "current": "b"}})
            )),
            None
        );
        assert_eq!(trigger(&mr("approved", json!({}), json!({}))), None);
    }

    #[test]
    fn the_header_and_object_kind_must_agree() {
        let body = mr("open", json!({}), json!({}));
        let delivery = parse_delivery(NOTE_HOOK, &body).expect("valid json");
        assert!(matches!(delivery.event, GitLabEvent::Other { .. }));
        assert_eq!(delivery.project.map(|p| p.id), Some(42));
        assert!(parse_delivery(MERGE_REQUEST_HOOK, b"[1]").is_err());
        assert!(parse_delivery(MERGE_REQUEST_HOOK, b"{").is_err());
        // A merge request event without an iid is malformed.
        let broken =
            br#"{"object_kind":"merge_request","project":{"id":1},"object_attributes":{}}"#;
        assert!(parse_delivery(MERGE_REQUEST_HOOK, broken).is_err());
    }

    #[test]
    fn commands_come_only_from_new_human_merge_request_comments() {
        let note = |attributes: Value, mr: Value| {
            let body = serde_json::to_vec(&json!({
                "object_kind": "note",
                "user": {"id": 5, "username": "dev"},
                "project_id": 42,
                "project": {"id": 42},
                "object_attributes": attributes,
                "merge_request": mr,
            }))
            .expect("json");
            match parse_delivery(NOTE_HOOK, &body).expect("valid").event {
                GitLabEvent::Note(n) => n,
                other => panic!("not a note: {other:?}"),
            }
        };
        let base = json!({"id": 9, "note": "/kubeward rescan", "noteable_type": "MergeRequest", "system": false, "action": "create"});
        let n = note(base.clone(), json!({"iid": 7}));
        assert_eq!(n.command(), Some(Command::Rescan));
        assert_eq!((n.merge_request_iid, n.author_id), (Some(7), Some(5)));
        let mut edited = base.clone();
        edited["action"] = json!("update");
        assert_eq!(note(edited, json!({"iid": 7})).command(), None);
        let mut system = base.clone();
        system["system"] = json!(true);
        assert_eq!(note(system, json!({"iid": 7})).command(), None);
        let mut issue = base.clone();
        issue["noteable_type"] = json!("Issue");
        assert_eq!(note(issue, Value::Null).command(), None);
        let mut old = base.clone();
        old.as_object_mut().map(|o| o.remove("action"));
        assert_eq!(
            note(old, json!({"iid": 7})).command(),
            Some(Command::Rescan),
            "instances before 16.11 send no action and only fire on creation"
        );
        let mut chatter = base;
        chatter["note"] = json!("/kubeward rescan please");
        assert_eq!(note(chatter, json!({"iid": 7})).command(), None);
    }
}
