//! The parts of GitHub's replies the bot reads, typed. A reply missing what we need is an
//! [`ApiError::Reply`] naming the endpoint, never a default: an id read as 0 would send the
//! next request to `/check-runs/0`.

use std::collections::HashMap;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::api::{ApiError, GitHubApi, list_all};

/// A check run (`POST /check-runs`, `GET /check-runs/{id}`, the lists of a commit's runs).
#[derive(Debug, Clone, Deserialize)]
pub struct CheckRun {
    pub id: u64,
    #[serde(default)]
    pub external_id: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub conclusion: Option<String>,
    #[serde(default)]
    pub output: Option<CheckOutput>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct CheckOutput {
    #[serde(default)]
    pub summary: Option<String>,
    #[serde(default)]
    pub annotations_count: Option<u64>,
}

/// A review comment or an issue comment: the fields both kinds share that we read.
#[derive(Debug, Clone, Deserialize)]
pub struct Comment {
    pub id: u64,
    /// `null` for a deleted account.
    #[serde(default)]
    pub user: Option<User>,
    #[serde(default)]
    pub body: Option<String>,
    /// Review comments only: the thread's first comment, for a reply.
    #[serde(default)]
    pub in_reply_to_id: Option<u64>,
}

impl Comment {
    pub fn by(&self, login: &str) -> bool {
        self.user.as_ref().is_some_and(|u| u.login == login)
    }

    pub fn body(&self) -> &str {
        self.body.as_deref().unwrap_or("")
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct User {
    pub login: String,
}

/// One file of `GET /pulls/{n}/files`; `patch` is absent for binary or too large files.
#[derive(Debug, Clone, Deserialize)]
pub struct ChangedFile {
    pub filename: String,
    #[serde(default)]
    pub patch: Option<String>,
}

/// `GET /collaborators/{login}/permission`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CollaboratorPermission {
    #[serde(default)]
    pub permission: Option<String>,
    #[serde(default)]
    pub role_name: Option<String>,
    #[serde(default)]
    pub user: Option<PermissionUser>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct PermissionUser {
    #[serde(default)]
    pub permissions: HashMap<String, bool>,
}

/// `POST /app/installations/{id}/access_tokens`.
#[derive(Debug, Clone, Deserialize)]
pub struct InstallationToken {
    pub token: String,
    #[serde(default)]
    pub expires_at: Option<String>,
}

/// `GET /pulls/{n}` (and each item of `GET /pulls`): what a review reads of a pull request.
#[derive(Debug, Clone, Deserialize)]
pub struct PullRequest {
    pub number: u64,
    pub state: String,
    #[serde(default)]
    pub draft: Option<bool>,
    pub head: CommitRef,
    pub base: CommitRef,
}

/// A pull request's head or base.
#[derive(Debug, Clone, Deserialize)]
pub struct CommitRef {
    pub sha: String,
}

/// `GET /compare/{base}...{head}`: GitHub's merge-base of the two.
#[derive(Debug, Clone, Deserialize)]
pub struct Comparison {
    #[serde(default)]
    pub merge_base_commit: Option<CommitRef>,
}

/// `body` read as `T`; `endpoint` names the request in the error (method and path, no query).
pub fn parse<T: DeserializeOwned>(endpoint: &str, body: &Value) -> Result<T, ApiError> {
    Ok(crate::forge::reply::read(endpoint, body)?)
}

/// [`list_all`], each item read as `T`: one unreadable item fails the listing.
pub async fn list_all_as<T: DeserializeOwned>(
    api: &dyn GitHubApi,
    installation: u64,
    path: &str,
    key: Option<&str>,
) -> Result<Vec<T>, ApiError> {
    let endpoint = format!("GET {path}");
    list_all(api, installation, path, key)
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
        let error = parse::<CheckRun>("POST /repos/o/r/check-runs", &json!({"name": "x"}))
            .expect_err("no id");
        let text = error.to_string();
        assert!(text.contains("POST /repos/o/r/check-runs"), "{text}");
        assert!(text.contains("`id`"), "{text}");
    }

    #[test]
    fn the_query_stays_out_of_the_error() {
        let error =
            parse::<Comment>("GET /repos/o/r/issues/1/comments?page=2", &json!({})).expect_err("");
        assert!(!error.to_string().contains("page=2"), "{error}");
    }
}
