//! `POST /webhooks/github`: verify the signature, route the event to jobs, hand them to the
//! shared accept step (`enqueue` in [`super`]).
//!
//! Authenticity is HMAC-SHA256 over the raw body (`X-Hub-Signature-256`), compared in constant
//! time against every configured secret, never chosen by the payload.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::post;
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;
use tracing::{Instrument, warn};

use super::{AppState, Route, delivery, enqueue, reply};
use crate::forge::Secret;
use crate::forge::command::never_commands_us;
use crate::forge::github::events::{
    CheckRunAction, CheckSuiteAction, CommentAction, InstallationAction,
    InstallationRepositoriesAction, PullRequestAction, WebhookEvent, parse_event,
};
use crate::forge::job::{FORGE_GITHUB, GitHubJob, RepoRef};
use crate::queue::Queue;
use crate::queue::ownership::SnapshotCause;

/// GitHub webhook settings.
#[derive(Clone)]
pub struct GitHubHooks {
    /// Accepted secrets (several during a rotation). Chosen by configuration, never by the payload.
    pub secrets: Vec<Secret>,
    /// Our App's id: check-run events of other Apps are not ours to re-run.
    pub app_id: Option<u64>,
    /// Our own login: our comments never trigger commands.
    pub bot_login: String,
}

/// The GitHub webhook route. It shares the server's state: without GitHub settings it answers
/// 404.
pub fn routes(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/webhooks/github", post(github_webhook))
        .with_state(state)
}

type HmacSha256 = Hmac<Sha256>;

/// Checks GitHub's `X-Hub-Signature-256: sha256=<hex>` against any of the configured secrets
/// (several during a rotation). The comparison is constant-time (`verify_slice`).
pub fn github_signature_valid(secrets: &[Secret], body: &[u8], header: Option<&str>) -> bool {
    let Some(hex) = header.and_then(|h| h.strip_prefix("sha256=")) else {
        return false;
    };
    // Exactly 64 hex digits, either case: `hex` takes no sign, space or prefix.
    let mut expected = [0u8; 32];
    if hex::decode_to_slice(hex, &mut expected).is_err() {
        return false;
    }
    secrets.iter().any(|secret| {
        let Ok(mut mac) = HmacSha256::new_from_slice(secret.expose().as_bytes()) else {
            return false;
        };
        mac.update(body);
        mac.verify_slice(&expected).is_ok()
    })
}

/// The hex HMAC-SHA256 of `body` (for tests and `testdrive`, which sign their own deliveries).
pub fn github_signature(secret: &str, body: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).unwrap_or_else(|_| {
        // HMAC accepts keys of any length; this branch cannot happen.
        HmacSha256::new_from_slice(b"").unwrap_or_else(|_| unreachable!())
    });
    mac.update(body);
    let bytes = mac.finalize().into_bytes();
    format!("sha256={}", hex::encode(bytes))
}

async fn github_webhook(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let value = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    // Every line logged for this delivery carries its id (bounded: see `delivery_key`).
    let span = tracing::info_span!(
        "webhook",
        forge = "github",
        delivery = %delivery::delivery_key(value("x-github-delivery")),
        event = %value("x-github-event"),
        repo = tracing::field::Empty,
        pr = tracing::field::Empty,
    );
    handle_github(state, &headers, body).instrument(span).await
}

async fn handle_github(state: Arc<AppState>, headers: &HeaderMap, body: Bytes) -> Response {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let Some(hooks) = &state.github else {
        return reply(
            StatusCode::NOT_FOUND,
            json!({"error": "GitHub is not configured"}),
        );
    };
    // Nothing is recorded or parsed before the signature checks out.
    if !github_signature_valid(&hooks.secrets, &body, header("x-hub-signature-256")) {
        metrics::counter!("kubeward_signature_failures_total", "forge" => "github").increment(1);
        return reply(
            StatusCode::UNAUTHORIZED,
            json!({"error": "missing or invalid signature"}),
        );
    }
    let (Some(event), Some(delivery)) = (header("x-github-event"), header("x-github-delivery"))
    else {
        return reply(
            StatusCode::BAD_REQUEST,
            json!({"error": "missing X-GitHub-Event or X-GitHub-Delivery"}),
        );
    };
    if let Some(error) = delivery::too_long("X-GitHub-Delivery", delivery) {
        return reply(StatusCode::BAD_REQUEST, json!({ "error": error }));
    }
    let delivery = &delivery::delivery_key(delivery);
    let event = event.to_owned();
    let parsed = match parse_event(&event, &body) {
        Ok(parsed) => parsed,
        Err(e) => {
            super::outcome(FORGE_GITHUB, &event, "invalid");
            return reply(StatusCode::BAD_REQUEST, json!({"error": e.to_string()}));
        }
    };
    let route = match route(&state.queue, hooks, &parsed).await {
        Ok(route) => route,
        Err(e) => {
            warn!(delivery, error = %e, "cannot route the delivery");
            return reply(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"error": "try again"}),
            );
        }
    };
    enqueue(&state.queue, FORGE_GITHUB, delivery, &event, route).await
}

fn repo_ref(repository: &crate::forge::github::events::Repository) -> RepoRef {
    RepoRef {
        id: repository.id as i64,
        owner: repository.owner.clone(),
        name: repository.name.clone(),
    }
}

async fn route(
    queue: &Queue,
    hooks: &GitHubHooks,
    event: &WebhookEvent,
) -> Result<Route, crate::queue::QueueError> {
    let job = |spec: GitHubJob| Route::Jobs(vec![spec.to_new_job(FORGE_GITHUB)]);
    Ok(match event {
        WebhookEvent::PullRequest(pr) => {
            let Some(installation) = pr.installation_id else {
                return Ok(Route::Ignore("no installation"));
            };
            // Queued review jobs also remember which PR their head belongs to (fork PRs'
            // check re-runs do not say), in the same transaction.
            let repo = repo_ref(&pr.repository);
            let review = |trigger: &str, previous_head: Option<String>| {
                job(GitHubJob::Review {
                    installation,
                    repo: repo.clone(),
                    number: pr.number,
                    head_sha: pr.head_sha.clone(),
                    trigger: trigger.to_owned(),
                    new_check_run: false,
                    previous_head,
                })
            };
            match pr.action {
                PullRequestAction::Opened => review("opened", None),
                PullRequestAction::Synchronize => review("synchronize", pr.before.clone()),
                PullRequestAction::Reopened => review("reopened", None),
                PullRequestAction::ReadyForReview => review("ready_for_review", None),
                PullRequestAction::Edited { base_changed: true } => review("base changed", None),
                PullRequestAction::Closed { merged } => {
                    queue
                        .drop_pr(FORGE_GITHUB, repo.id, pr.number as i64)
                        .await?;
                    let escaped = queue
                        .record_pr_closed(
                            FORGE_GITHUB,
                            repo.id,
                            pr.number as i64,
                            merged,
                            pr.merge_commit_sha.as_deref(),
                            crate::queue::now_ms(),
                        )
                        .await?;
                    if escaped > 0 {
                        tracing::info!(escaped, "merged with new failing findings");
                    }
                    Route::Ignore("closed: queued work dropped")
                }
                _ => Route::Ignore("action not reviewed"),
            }
        }
        WebhookEvent::IssueComment(comment) => {
            let Some(installation) = comment.installation_id else {
                return Ok(Route::Ignore("no installation"));
            };
            let Some(command) = comment.command() else {
                return Ok(Route::Ignore("not a command"));
            };
            let Some(author) = &comment.author else {
                return Ok(Route::Ignore("no author"));
            };
            if comment.action != CommentAction::Created
                || !comment.is_pull_request
                || never_commands_us(
                    &author.login,
                    author.is_bot() || comment.via_github_app,
                    &hooks.bot_login,
                )
            {
                return Ok(Route::Ignore("not a command we act on"));
            }
            job(GitHubJob::Command {
                installation,
                repo: repo_ref(&comment.repository),
                number: comment.issue_number,
                comment_id: comment.comment_id,
                login: author.login.clone(),
                command: command.name().to_owned(),
            })
        }
        WebhookEvent::CheckRun(run) => {
            let ours = run.name == crate::forge::github::publish::CHECK_NAME
                && hooks
                    .app_id
                    .is_none_or(|id| run.app_id.is_none_or(|a| a == id));
            match (&run.action, run.installation_id) {
                (CheckRunAction::Rerequested, Some(installation)) if ours => {
                    rerequest(
                        queue,
                        installation,
                        &run.repository,
                        &run.head_sha,
                        &run.pull_requests,
                    )
                    .await?
                }
                _ => Route::Ignore("not a re-run of our check"),
            }
        }
        WebhookEvent::CheckSuite(suite) => {
            let ours = hooks
                .app_id
                .is_none_or(|id| suite.app_id.is_none_or(|a| a == id));
            match (suite.action, suite.installation_id) {
                (CheckSuiteAction::Rerequested, Some(installation)) if ours => {
                    rerequest(
                        queue,
                        installation,
                        &suite.repository,
                        &suite.head_sha,
                        &suite.pull_requests,
                    )
                    .await?
                }
                _ => Route::Ignore("not a re-run of our suite"),
            }
        }
        WebhookEvent::Installation(installation) => {
            if installation.action == InstallationAction::Deleted {
                queue
                    .drop_installation(FORGE_GITHUB, installation.installation_id as i64)
                    .await?;
                queue
                    .delete_installation_data(FORGE_GITHUB, installation.installation_id as i64)
                    .await?;
                Route::Ignore("uninstalled: queued work dropped, its repositories' data deleted")
            } else {
                Route::Ignore("installation event")
            }
        }
        WebhookEvent::InstallationRepositories(change) => match change.action {
            InstallationRepositoriesAction::Removed => {
                for repo in &change.removed {
                    queue.drop_repository(FORGE_GITHUB, repo.id as i64).await?;
                    queue
                        .delete_repository_data(FORGE_GITHUB, repo.id as i64)
                        .await?;
                }
                Route::Ignore("repositories removed: queued work dropped, their data deleted")
            }
            // Each new repository's default branch is snapshotted once, at its tip.
            InstallationRepositoriesAction::Added => Route::Jobs(
                change
                    .added
                    .iter()
                    .filter_map(|added| {
                        let (owner, name) = added.full_name.split_once('/')?;
                        Some(
                            GitHubJob::Snapshot {
                                installation: change.installation_id,
                                repo: RepoRef {
                                    id: added.id as i64,
                                    owner: owner.to_owned(),
                                    name: name.to_owned(),
                                },
                                commit: None,
                                cause: SnapshotCause::Installed,
                                web_url: None,
                            }
                            .to_new_job(FORGE_GITHUB),
                        )
                    })
                    .collect(),
            ),
        },
        WebhookEvent::Push(push) => match push.installation_id {
            Some(installation) if push.moves_default_branch() => job(GitHubJob::Snapshot {
                installation,
                repo: repo_ref(&push.repository),
                commit: Some(push.after.clone()),
                cause: SnapshotCause::Push,
                web_url: push.html_url.clone(),
            }),
            Some(_) => Route::Ignore("not a push to the default branch"),
            None => Route::Ignore("no installation"),
        },
        WebhookEvent::Other { .. } => Route::Ignore("event not handled"),
    })
}

async fn rerequest(
    queue: &Queue,
    installation: u64,
    repository: &crate::forge::github::events::Repository,
    head_sha: &str,
    pull_requests: &[u64],
) -> Result<Route, crate::queue::QueueError> {
    let mut numbers = pull_requests.to_vec();
    // Fork PRs arrive without pull requests: use the heads we have seen.
    if numbers.is_empty() {
        numbers = queue
            .prs_for_head(FORGE_GITHUB, repository.id as i64, head_sha)
            .await?
            .into_iter()
            .map(|n| n as u64)
            .collect();
    }
    let spec = |pull_numbers: Vec<u64>| {
        GitHubJob::Rerequest {
            installation,
            repo: repo_ref(repository),
            head_sha: head_sha.to_owned(),
            pull_numbers,
        }
        .to_new_job(FORGE_GITHUB)
    };
    // One job per pull request, each queued as that PR's work; with none known yet, the worker
    // maps the head to its pull requests and hands off the same way.
    Ok(Route::Jobs(if numbers.is_empty() {
        vec![spec(Vec::new())]
    } else {
        numbers.into_iter().map(|n| spec(vec![n])).collect()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// GitHub's published test vector (validating-webhook-deliveries).
    #[test]
    fn githubs_published_test_vector() {
        let secret = Secret::new("It's a Secret to Everybody");
        let header = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert!(github_signature_valid(
            std::slice::from_ref(&secret),
            b"Hello, World!",
            Some(header)
        ));
        assert_eq!(
            github_signature("It's a Secret to Everybody", b"Hello, World!"),
            header
        );
        assert!(!github_signature_valid(
            std::slice::from_ref(&secret),
            b"Hello, World?",
            Some(header)
        ));
        assert!(!github_signature_valid(
            std::slice::from_ref(&secret),
            b"Hello, World!",
            None
        ));
        assert!(!github_signature_valid(
            std::slice::from_ref(&secret),
            b"Hello, World!",
            Some("sha1=01dc10d0c83e72ed246219cdd91669667fe2ca59")
        ));
        assert!(!github_signature_valid(
            std::slice::from_ref(&secret),
            b"Hello, World!",
            Some("sha256=zz")
        ));
        // The third byte is 0x07: "+7" is the same number to `from_str_radix`, but a sign
        // is not a hex digit. Either case of the digits is.
        let digest = header.trim_start_matches("sha256=");
        assert_eq!(&digest[4..6], "07");
        let signed = format!("sha256={}+{}", &digest[..4], &digest[5..]);
        assert!(!github_signature_valid(
            std::slice::from_ref(&secret),
            b"Hello, World!",
            Some(&signed)
        ));
        assert!(github_signature_valid(
            std::slice::from_ref(&secret),
            b"Hello, World!",
            Some(&format!("sha256={}", digest.to_uppercase()))
        ));
        assert!(!github_signature_valid(
            std::slice::from_ref(&secret),
            b"Hello, World!",
            Some(&format!("{header}0"))
        ));
        let rotated = [
            Secret::new("old"),
            Secret::new("It's a Secret to Everybody"),
        ];
        assert!(github_signature_valid(
            &rotated,
            b"Hello, World!",
            Some(header)
        ));
    }
}
