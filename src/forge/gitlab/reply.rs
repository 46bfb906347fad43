//! The parts of GitLab's replies the bot reads, typed. A reply missing what we need is an
//! [`ApiError::Reply`] naming the endpoint, never a default: an id read as 0 would send the
//! next request to `/notes/0`.

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{ApiError, GitLabApi, list_all};

/// A note (a comment) on a merge request, alone or inside a discussion.
#[derive(Debug, Clone, Deserialize)]
pub struct Note {
    pub id: u64,
    #[serde(default)]
    pub author: Option<Author>,
    #[serde(default)]
    pub body: Option<String>,
    /// GitLab's own notes ("added 1 commit").
    #[serde(default)]
    pub system: bool,
    #[serde(default)]
    pub resolved: Option<bool>,
    #[serde(default)]
    pub resolved_by: Option<Author>,
}

impl Note {
    pub fn by(&self, username: &str) -> bool {
        self.author.as_ref().is_some_and(|a| a.username == username)
    }

    pub fn body(&self) -> &str {
        self.body.as_deref().unwrap_or("")
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Author {
    pub username: String,
    #[serde(default)]
    pub id: Option<u64>,
}

/// A discussion (a thread); its id is a hex string.
#[derive(Debug, Clone, Deserialize)]
pub struct Discussion {
    pub id: String,
    #[serde(default)]
    pub notes: Vec<Note>,
}

/// A commit status.
#[derive(Debug, Clone, Deserialize)]
pub struct CommitStatus {
    pub id: u64,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
}

/// What the bot reads of a merge request itself (the rest stays JSON for the target).
#[derive(Debug, Clone, Deserialize)]
pub struct MergeRequest {
    /// The head commit: statuses go to `/statuses/{sha}`.
    pub sha: String,
    #[serde(default)]
    pub state: Option<String>,
    #[serde(default)]
    pub draft: Option<bool>,
}

/// `GET /projects/{id}`: where the repository is cloned from.
#[derive(Debug, Clone, Deserialize)]
pub struct Project {
    pub path_with_namespace: String,
}

/// `GET /projects/{id}/members/all/{user}`.
#[derive(Debug, Clone, Deserialize)]
pub struct Member {
    #[serde(default)]
    pub access_level: u64,
    /// `active`, `blocked`, `awaiting`…; absent on old instances (active).
    #[serde(default)]
    pub state: Option<String>,
}

/// `body` read as `T`; `endpoint` names the request in the error (method and path, no query).
pub fn parse<T: DeserializeOwned>(endpoint: &str, body: &Value) -> Result<T, ApiError> {
    Ok(crate::forge::reply::read(endpoint, body)?)
}

/// [`list_all`], each item read as `T`: one unreadable item fails the listing.
pub async fn list_all_as<T: DeserializeOwned>(
    api: &dyn GitLabApi,
    path: &str,
) -> Result<Vec<T>, ApiError> {
    let endpoint = format!("GET {path}");
    list_all(api, path)
        .await?
        .iter()
        .map(|item| parse(&endpoint, item))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_missing_id_names_the_endpoint() {
        let error = parse::<Note>(
            "POST /projects/1/merge_requests/2/notes",
            &json!({"body": "x"}),
        )
        .expect_err("no id");
        let text = error.to_string();
        assert!(
            text.contains("POST /projects/1/merge_requests/2/notes"),
            "{text}"
        );
        assert!(text.contains("`id`"), "{text}");
    }
}
