//! `POST /webhooks/gitlab`: authenticate, check the secret's binding, record, enqueue, answer.
//!
//! GitLab authenticates a delivery either with a plain secret token (`X-Gitlab-Token`) or,
//! where the instance has signing tokens, with a Standard Webhooks signature (`webhook-id`,
//! `webhook-timestamp`, `webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">`).
//! Both are checked in constant time against every configured webhook, never chosen by the
//! payload. A plain token does not cover the body, so whoever knows one webhook's token could
//! send any body with it: each secret is therefore **bound** to the project (or group) it was
//! issued for, and a delivery naming another project is refused with 401 before anything is
//! recorded or queued. Group bindings are pre-checked on the payload's path and confirmed by the
//! worker through the API.
//!
//! Events the bot ignores still get a 2xx: GitLab disables a webhook after a few failed
//! deliveries, and any 4xx counts as one.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::post;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tracing::{Instrument, warn};

use super::{Route, enqueue, reply};
use crate::forge::Secret;
use crate::forge::command::never_commands_us;
use crate::forge::gitlab::events::{
    Delivery, GitLabEvent, MergeRequestAction, ProjectRef, parse_delivery,
};
use crate::forge::gitlab::in_group;
use crate::forge::job::{FORGE_GITLAB, GitLabJob};
use crate::queue::Queue;

type HmacSha256 = Hmac<Sha256>;

/// How far `webhook-timestamp` may be from our clock, either way.
pub const DEFAULT_TIMESTAMP_TOLERANCE: Duration = Duration::from_secs(5 * 60);

/// What a secret was issued for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookScope {
    /// A project webhook: deliveries must name this project id.
    Project(u64),
    /// A group webhook: deliveries must name a project in this group or its subgroups
    /// (`platform` or `platform/infra`).
    Group(String),
}

/// A Standard Webhooks signing key: the decoded bytes of `whsec_<base64>`.
#[derive(Clone)]
pub struct SigningKey(Vec<u8>);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey([redacted])")
    }
}

impl SigningKey {
    /// Reads a signing token as GitLab shows it (`whsec_` + base64; the prefix is optional).
    /// The error never contains the token.
    pub fn parse(token: &Secret) -> Result<SigningKey, String> {
        let text = token.expose().trim();
        let encoded = text.strip_prefix("whsec_").unwrap_or(text);
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|_| "the signing token is not `whsec_` followed by base64".to_owned())?;
        if bytes.len() < 16 {
            return Err("the signing token is shorter than 16 bytes".into());
        }
        Ok(SigningKey(bytes))
    }

    fn mac(&self, id: &str, timestamp: &str, body: &[u8]) -> HmacSha256 {
        // HMAC takes keys of any length.
        let mut mac = HmacSha256::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.as_bytes());
        mac.update(b".");
        mac.update(body);
        mac
    }

    /// `v1,<base64>`: what GitLab sends in `webhook-signature` (for tests and tools).
    pub fn sign(&self, id: &str, timestamp: &str, body: &[u8]) -> String {
        let digest = self.mac(id, timestamp, body).finalize().into_bytes();
        format!(
            "v1,{}",
            base64::engine::general_purpose::STANDARD.encode(digest)
        )
    }
}

/// One configured webhook: its scope and how its deliveries prove themselves.
#[derive(Debug, Clone)]
pub struct HookBinding {
    pub scope: HookScope,
    /// The secret token (`X-Gitlab-Token`).
    pub token: Option<Secret>,
    /// The signing token. When set, only signed deliveries are accepted for this webhook (and
    /// the secret token too, when that is also set).
    pub signing_key: Option<SigningKey>,
}

/// GitLab webhook settings.
#[derive(Debug, Clone)]
pub struct GitLabHooks {
    pub bindings: Vec<HookBinding>,
    /// Our own username: our comments never trigger commands.
    pub bot_username: String,
    pub timestamp_tolerance: Duration,
}

#[derive(Clone)]
struct GitLabState {
    queue: Queue,
    hooks: Arc<GitLabHooks>,
}

/// The GitLab webhook route, with its own state; merged into the server's router.
pub fn routes(queue: Queue, hooks: GitLabHooks) -> Router {
    Router::new()
        .route("/webhooks/gitlab", post(gitlab_webhook))
        .with_state(GitLabState {
            queue,
            hooks: Arc::new(hooks),
        })
}

/// Constant-time comparison of a presented token with the configured one. Both are hashed
/// first, so neither the content nor the length of the secret leaks through timing.
pub fn token_matches(expected: &Secret, presented: Option<&str>) -> bool {
    let Some(presented) = presented else {
        return false;
    };
    if expected.is_empty() {
        return false;
    }
    let a = Sha256::digest(expected.expose().as_bytes());
    let b = Sha256::digest(presented.as_bytes());
    bool::from(a.ct_eq(&b))
}

/// Checks a Standard Webhooks signature: the timestamp within `tolerance` of `now_unix`, and
/// any of the space-separated `v1,` signatures (several during a key rotation) matching, in
/// constant time.
pub fn signature_valid(
    key: &SigningKey,
    id: Option<&str>,
    timestamp: Option<&str>,
    body: &[u8],
    signatures: Option<&str>,
    now_unix: u64,
    tolerance: Duration,
) -> bool {
    let (Some(id), Some(timestamp), Some(signatures)) = (id, timestamp, signatures) else {
        return false;
    };
    // Digits only: `parse` would also take a sign.
    if timestamp.is_empty() || !timestamp.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let Ok(sent_at) = timestamp.parse::<u64>() else {
        return false;
    };
    if sent_at.abs_diff(now_unix) > tolerance.as_secs() {
        return false;
    }
    signatures.split(' ').any(|candidate| {
        let Some(encoded) = candidate.strip_prefix("v1,") else {
            return false;
        };
        let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(encoded) else {
            return false;
        };
        key.mac(id, timestamp, body).verify_slice(&bytes).is_ok()
    })
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The bindings whose secret this delivery proves. Every binding is checked (no early exit),
/// so timing does not tell which one matched.
fn authenticated<'h>(
    hooks: &'h GitLabHooks,
    headers: &HeaderMap,
    body: &[u8],
) -> Vec<&'h HookBinding> {
    let now = unix_now();
    let token = header(headers, "x-gitlab-token");
    let results: Vec<bool> = hooks
        .bindings
        .iter()
        .map(|binding| {
            let signed = binding.signing_key.as_ref().map(|key| {
                signature_valid(
                    key,
                    header(headers, "webhook-id"),
                    header(headers, "webhook-timestamp"),
                    body,
                    header(headers, "webhook-signature"),
                    now,
                    hooks.timestamp_tolerance,
                )
            });
            let tokened = binding.token.as_ref().map(|t| token_matches(t, token));
            match (signed, tokened) {
                (Some(s), Some(t)) => s & t,
                (Some(s), None) => s,
                (None, Some(t)) => t,
                (None, None) => false,
            }
        })
        .collect();
    hooks
        .bindings
        .iter()
        .zip(results)
        .filter_map(|(b, ok)| ok.then_some(b))
        .collect()
}

/// Which groups the worker must confirm the project belongs to: empty when a matched secret
/// is bound to the project itself; `None` when no matched secret covers the project.
fn allowed_scope(matched: &[&HookBinding], project: &ProjectRef) -> Option<Vec<String>> {
    if matched
        .iter()
        .any(|b| b.scope == HookScope::Project(project.id))
    {
        return Some(Vec::new());
    }
    let groups: Vec<String> = matched
        .iter()
        .filter_map(|b| match &b.scope {
            HookScope::Group(group) => Some(group.clone()),
            HookScope::Project(_) => None,
        })
        // A pre-check on the payload's path; the worker confirms it with the API.
        .filter(|group| {
            project
                .path_with_namespace
                .as_deref()
                .is_none_or(|path| in_group(path, group))
        })
        .collect();
    (!groups.is_empty()).then_some(groups)
}

/// The delivery's identity for de-duplication: `Idempotency-Key` (kept across GitLab's
/// retries and "Resend Request"), else `webhook-id` (the same value on signed deliveries),
/// else `X-Gitlab-Event-UUID`, else a hash of the body (older instances). A signed delivery
/// is known by its `webhook-id`, which the signature covers: an unsigned header would let a
/// captured delivery be replayed, within the timestamp window, under fresh keys.
///
/// The header the id came from and its whole value, `None` when no header names it; the
/// queue's key is [`super::delivery::delivery_key`] of it, so ids that differ anywhere stay
/// two deliveries.
fn delivery_id(headers: &HeaderMap) -> Option<(&'static str, &str)> {
    let order: [&'static str; 3] = if header(headers, "webhook-signature").is_some() {
        ["webhook-id", "idempotency-key", "x-gitlab-event-uuid"]
    } else {
        ["idempotency-key", "webhook-id", "x-gitlab-event-uuid"]
    };
    order.into_iter().find_map(|name| {
        header(headers, name)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(|v| (name, v))
    })
}

/// The key the delivery is recorded and logged under (see [`delivery_id`]).
fn delivery_key(headers: &HeaderMap, body: &[u8]) -> String {
    match delivery_id(headers) {
        Some((_, id)) => super::delivery::delivery_key(id),
        None => format!("body-sha256:{}", hex::encode(Sha256::digest(body))),
    }
}

async fn gitlab_webhook(
    State(state): State<GitLabState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let key = delivery_key(&headers, &body);
    let too_long = delivery_id(&headers).and_then(|(name, id)| super::delivery::too_long(name, id));
    let event = header(&headers, "x-gitlab-event").unwrap_or("").to_owned();
    // Every line logged for this delivery carries its id.
    let span = tracing::info_span!(
        "webhook",
        forge = "gitlab",
        delivery = %key,
        event = %event,
        repo = tracing::field::Empty,
        pr = tracing::field::Empty,
    );
    handle(state, &headers, body, key, too_long, event)
        .instrument(span)
        .await
}

async fn handle(
    state: GitLabState,
    headers: &HeaderMap,
    body: Bytes,
    key: String,
    id_too_long: Option<String>,
    event: String,
) -> Response {
    let hooks = &state.hooks;
    // Nothing is parsed, recorded or queued before the delivery proves a configured secret.
    let matched = authenticated(hooks, headers, &body);
    if matched.is_empty() {
        metrics::counter!("kubeward_signature_failures_total", "forge" => "gitlab").increment(1);
        return reply(
            StatusCode::UNAUTHORIZED,
            json!({"error": "missing or invalid token or signature"}),
        );
    }
    if let Some(error) = id_too_long {
        return reply(StatusCode::BAD_REQUEST, json!({ "error": error }));
    }
    let delivery = match parse_delivery(&event, &body) {
        Ok(delivery) => delivery,
        Err(e) => {
            super::outcome(FORGE_GITLAB, &event, "invalid");
            return reply(StatusCode::BAD_REQUEST, json!({"error": e.to_string()}));
        }
    };
    let allowed_groups = match &delivery.project {
        Some(project) => match allowed_scope(&matched, project) {
            Some(groups) => groups,
            None => {
                warn!(
                    project = project.id,
                    "a valid secret for another project or group"
                );
                metrics::counter!("kubeward_signature_failures_total", "forge" => "gitlab")
                    .increment(1);
                return reply(
                    StatusCode::UNAUTHORIZED,
                    json!({"error": "this secret is not valid for this project"}),
                );
            }
        },
        None => Vec::new(),
    };
    let route = match route(&state.queue, hooks, &delivery, allowed_groups).await {
        Ok(route) => route,
        Err(e) => {
            warn!(error = %e, "cannot route the delivery");
            return reply(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"error": "try again"}),
            );
        }
    };
    enqueue(&state.queue, FORGE_GITLAB, &key, &event, route).await
}

async fn route(
    queue: &Queue,
    hooks: &GitLabHooks,
    delivery: &Delivery,
    allowed_groups: Vec<String>,
) -> Result<Route, crate::queue::QueueError> {
    Ok(match &delivery.event {
        GitLabEvent::MergeRequest(mr) => {
            if mr.is_finished() {
                queue
                    .drop_pr(FORGE_GITLAB, mr.project.id as i64, mr.iid as i64)
                    .await?;
                let merged = mr.action == MergeRequestAction::Merge;
                queue
                    .record_pr_closed(
                        FORGE_GITLAB,
                        mr.project.id as i64,
                        mr.iid as i64,
                        merged,
                        mr.merge_commit_sha.as_deref(),
                        crate::queue::now_ms(),
                    )
                    .await?;
                return Ok(Route::Ignore("closed or merged: queued work dropped"));
            }
            let Some(trigger) = mr.review_trigger() else {
                return Ok(Route::Ignore("no code change to review"));
            };
            let job = GitLabJob::Review {
                project_id: mr.project.id,
                iid: mr.iid,
                head_sha: mr.head_sha.clone(),
                trigger: trigger.to_owned(),
                allowed_groups,
            };
            Route::Jobs(vec![job.to_new_job()])
        }
        GitLabEvent::Note(note) => {
            if note.command().is_none() {
                return Ok(Route::Ignore("not a command"));
            }
            // The worker re-reads the author to be sure.
            if note
                .author_username
                .as_deref()
                .is_some_and(|author| never_commands_us(author, false, &hooks.bot_username))
            {
                return Ok(Route::Ignore("our own comment"));
            }
            let Some(iid) = note.merge_request_iid else {
                return Ok(Route::Ignore("not on a merge request"));
            };
            let job = GitLabJob::Command {
                project_id: note.project.id,
                iid,
                note_id: note.note_id,
                allowed_groups,
            };
            Route::Jobs(vec![job.to_new_job()])
        }
        GitLabEvent::Push(push) if push.moves_default_branch() => {
            let job = GitLabJob::Snapshot {
                project_id: push.project.id,
                commit: Some(push.after.clone()),
                cause: crate::queue::ownership::SnapshotCause::Push,
                web_url: push.web_url.clone(),
                allowed_groups,
            };
            Route::Jobs(vec![job.to_new_job()])
        }
        GitLabEvent::Push(_) => Route::Ignore("not a push to the default branch"),
        GitLabEvent::Other { .. } => Route::Ignore("event not handled"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Standard Webhooks specification's test vector.
    #[test]
    fn standard_webhooks_test_vector() {
        let key = SigningKey::parse(&Secret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"))
            .expect("valid key");
        let (id, ts, body) = (
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            "1614265330",
            br#"{"test": 2432232314}"#.as_slice(),
        );
        let expected = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
        assert_eq!(key.sign(id, ts, body), expected);
        let window = DEFAULT_TIMESTAMP_TOLERANCE;
        let check = |header: &str, now: u64, body: &[u8]| {
            signature_valid(&key, Some(id), Some(ts), body, Some(header), now, window)
        };
        assert!(check(expected, 1614265330, body));
        assert!(
            check(
                &format!("v1,bm90IHRoaXM= {expected}"),
                1614265330 + 299,
                body
            ),
            "rotation: any signature may match"
        );
        assert!(!check(expected, 1614265330 + 301, body), "too old");
        assert!(
            !signature_valid(
                &key,
                Some(id),
                Some(&format!("+{ts}")),
                body,
                Some(&key.sign(id, &format!("+{ts}"), body)),
                1614265330,
                window
            ),
            "a signed timestamp is still only digits"
        );
        assert!(!check(expected, 1614265330 - 301, body), "from the future");
        assert!(
            !check(expected, 1614265330, br#"{"test": 2432232315}"#),
            "another body"
        );
        assert!(!check(
            "v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
            1614265330,
            body
        ));
        assert!(!signature_valid(
            &key,
            None,
            Some(ts),
            body,
            Some(expected),
            1614265330,
            window
        ));
        assert!(SigningKey::parse(&Secret::new("whsec_***")).is_err());
        assert!(!format!("{key:?}").contains("MfKQ"));
    }

    #[test]
    fn tokens_compare_whole() {
        let secret = Secret::new("s3cret-token");
        assert!(token_matches(&secret, Some("s3cret-token")));
        assert!(!token_matches(&secret, Some("s3cret-token ")));
        assert!(!token_matches(&secret, Some("s3cret")));
        assert!(!token_matches(&secret, None));
        assert!(!token_matches(&Secret::new(""), Some("")));
    }

    #[test]
    fn secrets_cover_only_their_project_or_group() {
        let project = HookBinding {
            scope: HookScope::Project(42),
            token: None,
            signing_key: None,
        };
        let group = HookBinding {
            scope: HookScope::Group("platform".into()),
            token: None,
            signing_key: None,
        };
        let named = |id, path: Option<&str>| ProjectRef {
            id,
            path_with_namespace: path.map(str::to_owned),
        };
        assert_eq!(allowed_scope(&[&project], &named(42, None)), Some(vec![]));
        assert_eq!(allowed_scope(&[&project], &named(43, None)), None);
        assert_eq!(
            allowed_scope(&[&group], &named(43, Some("platform/shop"))),
            Some(vec!["platform".to_owned()])
        );
        assert_eq!(
            allowed_scope(&[&group], &named(43, Some("platformer/shop"))),
            None
        );
        assert_eq!(
            allowed_scope(&[&group], &named(43, None)),
            Some(vec!["platform".to_owned()]),
            "no path in the payload: the worker decides"
        );
    }

    #[test]
    fn delivery_keys_prefer_the_idempotency_key() {
        let mut headers = HeaderMap::new();
        assert!(delivery_key(&headers, b"{}").starts_with("body-sha256:"));
        headers.insert("x-gitlab-event-uuid", "uuid".parse().expect("header"));
        assert_eq!(delivery_key(&headers, b"{}"), "uuid");
        headers.insert("webhook-id", "msg".parse().expect("header"));
        assert_eq!(delivery_key(&headers, b"{}"), "msg");
        headers.insert("idempotency-key", "idem".parse().expect("header"));
        assert_eq!(delivery_key(&headers, b"{}"), "idem");
        // Signed: the id the signature covers, whatever the unsigned headers say.
        headers.insert("webhook-signature", "v1,c2ln".parse().expect("header"));
        assert_eq!(delivery_key(&headers, b"{}"), "msg");
    }
}
