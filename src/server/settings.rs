//! `kubeward serve` settings: a YAML file for everything that is not secret, environment
//! variables or files for what is. Secrets never come from the command line (they would show in
//! `ps`) and never reach logs.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::forge::Secret;
use crate::yaml::{Limits, from_node, parse_stream};

fn default_listen() -> String {
    "0.0.0.0:8080".into()
}
fn default_database() -> String {
    "sqlite://kubeward.db".into()
}
fn default_cache_dir() -> PathBuf {
    PathBuf::from("kubeward-cache")
}
fn default_cache_max_bytes() -> u64 {
    10 << 30
}
fn default_workers() -> usize {
    4
}
fn default_max_body() -> usize {
    5 << 20
}
fn default_body_budget() -> usize {
    crate::server::intake::DEFAULT_BUDGET
}
fn default_small_body_share() -> usize {
    crate::server::intake::DEFAULT_SMALL_SHARE
}
fn default_bodies_per_peer() -> usize {
    crate::server::intake::DEFAULT_PER_PEER
}
fn default_read_timeout() -> u64 {
    10
}
fn default_job_timeout() -> u64 {
    600
}
fn default_max_fetch_bytes() -> u64 {
    512 << 20
}
fn default_max_changed_files() -> usize {
    3000
}
fn default_fetch_depth() -> i32 {
    50
}
fn default_api_url() -> String {
    "https://api.github.com".into()
}
fn default_git_url() -> String {
    "https://github.com".into()
}
fn default_lease_seconds() -> u64 {
    60
}
fn default_redeliver_minutes() -> u64 {
    10
}
fn default_content_writes_per_minute() -> u32 {
    80
}
fn default_content_writes_per_hour() -> u32 {
    500
}
fn default_max_annotations() -> usize {
    crate::forge::github::publish::DEFAULT_MAX_ANNOTATIONS
}
fn default_review_write_share_percent() -> u32 {
    25
}
fn default_check_write_reserve_percent() -> u32 {
    10
}
fn default_max_deferrals() -> u32 {
    50
}
fn default_max_deferred_minutes() -> u64 {
    6 * 60
}
fn default_gitlab_git_username() -> String {
    "oauth2".into()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GitHubSettings {
    /// REST API base: `https://api.github.com`, or `https://HOST/api/v3` for GHES.
    #[serde(default = "default_api_url")]
    pub api_url: String,
    /// Git base: `https://github.com`, or `https://HOST` for GHES.
    #[serde(default = "default_git_url")]
    pub git_url: String,
    /// The App's id or client id (`iss` of its JWTs). Absent: token mode.
    #[serde(default)]
    pub app_id: Option<String>,
    /// Our bot's login (`<app-slug>[bot]`); only its comments are ours.
    pub bot_login: String,
    #[serde(default)]
    pub private_key_file: Option<PathBuf>,
    #[serde(default)]
    pub webhook_secret_file: Option<PathBuf>,
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Ask GitHub to redeliver failed deliveries at start-up and this often (App mode).
    #[serde(default = "default_redeliver_minutes")]
    pub redeliver_every_minutes: u64,
    /// Content-creating requests one replica sends per installation in any minute. GitHub
    /// allows about 80 an installation: with several replicas, give each its share.
    #[serde(default = "default_content_writes_per_minute")]
    pub content_writes_per_minute: u32,
    /// Likewise per hour (GitHub: 500).
    #[serde(default = "default_content_writes_per_hour")]
    pub content_writes_per_hour: u32,
    /// Most of those content writes, in percent, one pull request's reviews may use; the job
    /// of a review that has used its share waits in the queue for the window.
    #[serde(default = "default_review_write_share_percent")]
    pub review_write_share_percent: u32,
    /// Part of those content writes, in percent (at most 50), kept for opening and concluding
    /// checks, so every pull request gets its check however much the others wrote.
    #[serde(default = "default_check_write_reserve_percent")]
    pub check_write_reserve_percent: u32,
    /// Check-run annotations per check run; the summary counts the rest.
    #[serde(default = "default_max_annotations")]
    pub max_annotations: usize,
}

/// Where one GitLab project webhook's secrets come from. Only the *names* of environment
/// variables or files appear here, never a secret itself.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GitLabProjectHook {
    /// The numeric project id the webhook was created on: deliveries for any other project
    /// are refused with this secret.
    pub id: u64,
    /// Environment variable holding the webhook's secret token (`X-Gitlab-Token`).
    #[serde(default)]
    pub secret_env: Option<String>,
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    /// Environment variable holding the webhook's signing token (`whsec_...`); when set, only
    /// signed deliveries are accepted for this webhook.
    #[serde(default)]
    pub signing_token_env: Option<String>,
    #[serde(default)]
    pub signing_token_file: Option<PathBuf>,
}

/// Where one GitLab group webhook's secrets come from (see [`GitLabProjectHook`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GitLabGroupHook {
    /// The group's full path (`platform` or `platform/infra`): deliveries must be about a
    /// project below it, which the worker confirms through the API.
    pub path: String,
    #[serde(default)]
    pub secret_env: Option<String>,
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    #[serde(default)]
    pub signing_token_env: Option<String>,
    #[serde(default)]
    pub signing_token_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GitLabSettings {
    /// `https://gitlab.com`, or the self-managed instance (possibly below a path). Every API
    /// and git URL is built from it and numeric ids, never from a payload.
    pub instance_url: String,
    /// Git base URL, when it differs from the instance URL (rare; tests).
    #[serde(default)]
    pub git_url: Option<String>,
    /// The username of the token's user (a project or group access token's bot user, or a bot
    /// account): its notes are ours, its comments never commands.
    pub bot_username: String,
    /// The user name for git over HTTPS with the token: `oauth2` works for every token type.
    #[serde(default = "default_gitlab_git_username")]
    pub git_username: String,
    /// File holding the API token, when `KUBEWARD_GITLAB_TOKEN` is not set.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    #[serde(default)]
    pub projects: Vec<GitLabProjectHook>,
    #[serde(default)]
    pub groups: Vec<GitLabGroupHook>,
}

/// How each review runs: in a child process with its own memory limit and budgets.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ReviewProcessSettings {
    /// Address space of one review process. Default: this process's cgroup `memory.max` (else
    /// the machine's memory) divided by the workers, between 256 MiB and 4 GiB.
    #[serde(default)]
    pub memory_limit_bytes: Option<u64>,
    /// The kubeward binary that runs reviews. Default: this one.
    #[serde(default)]
    pub program: Option<PathBuf>,
    /// Bytes of YAML one review reads (both sides, each distinct blob once). Default 256 MiB.
    #[serde(default)]
    pub max_review_bytes: Option<u64>,
    /// YAML nodes one review builds (both sides, aliases counted at every use). Default: the
    /// review process's memory ÷ 100 bytes.
    #[serde(default)]
    pub max_review_nodes: Option<u64>,
    /// Bytes of scalar text one review builds, likewise. Default: its memory ÷ 4.
    #[serde(default)]
    pub max_review_scalar_bytes: Option<u64>,
    /// YAML documents one review parses. Default 200,000.
    #[serde(default)]
    pub max_review_documents: Option<u64>,
    /// Bytes of inventory views kept in `<cacheDir>/views` for later reviews (a review parses
    /// only the blobs no earlier review of the repository parsed); 0 turns the store off.
    /// Default 512 MiB.
    #[serde(default)]
    pub view_store_max_bytes: Option<u64>,
    /// The kubectl that renders kustomize overlays. Default: on this process's PATH; without
    /// one, a change to an overlay is named as not rendered (the review is incomplete).
    #[serde(default)]
    pub kubectl: Option<PathBuf>,
    /// The helm that renders charts, likewise.
    #[serde(default)]
    pub helm: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServeSettings {
    #[serde(default = "default_listen")]
    pub listen: String,
    /// `sqlite://path` (default, one process) or `postgres://...` (several replicas).
    /// `KUBEWARD_DATABASE_URL` overrides it, for a URL holding a password.
    #[serde(default = "default_database")]
    pub database: String,
    #[serde(default = "default_cache_dir")]
    pub cache_dir: PathBuf,
    #[serde(default = "default_cache_max_bytes")]
    pub cache_max_bytes: u64,
    #[serde(default = "default_workers")]
    pub workers: usize,
    /// Webhook bodies above this are refused with 413 while being read.
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// Bytes of webhook bodies held at once, reserved at their declared length (no length:
    /// `max_body_bytes`) before they are read; past it, `503` with `Retry-After`.
    #[serde(default = "default_body_budget")]
    pub body_budget_bytes: usize,
    /// The part of `body_budget_bytes` that only bodies under 256 KiB may use.
    #[serde(default = "default_small_body_share")]
    pub small_body_share_bytes: usize,
    /// Webhook bodies one client address may be sending at once, once half of
    /// `body_budget_bytes` is held (0: no cap).
    #[serde(default = "default_bodies_per_peer")]
    pub bodies_per_peer: usize,
    #[serde(default = "default_read_timeout")]
    pub read_timeout_seconds: u64,
    #[serde(default = "default_job_timeout")]
    pub job_timeout_seconds: u64,
    /// How long a claimed job stays a worker's without a heartbeat: after a crash, another
    /// worker (or replica) takes it over once this runs out.
    #[serde(default = "default_lease_seconds")]
    pub lease_seconds: u64,
    #[serde(default = "default_max_fetch_bytes")]
    pub max_fetch_bytes: u64,
    #[serde(default = "default_max_changed_files")]
    pub max_changed_files: usize,
    #[serde(default = "default_fetch_depth")]
    pub fetch_depth: i32,
    /// Times a job may go back to the queue to wait for a forge's write budget, and for how
    /// long after the first time, before its check concludes as a failure saying so.
    #[serde(default = "default_max_deferrals")]
    pub max_deferrals: u32,
    #[serde(default = "default_max_deferred_minutes")]
    pub max_deferred_minutes: u64,
    #[serde(default)]
    pub review_drafts: bool,
    /// The review processes: memory, program, budgets.
    #[serde(default)]
    pub review: ReviewProcessSettings,
    #[serde(default)]
    pub log_format: LogFormat,
    #[serde(default)]
    pub github: Option<GitHubSettings>,
    #[serde(default)]
    pub gitlab: Option<GitLabSettings>,
    /// Default-branch snapshots for the ownership view.
    #[serde(default)]
    pub snapshots: SnapshotSettings,
    /// The ownership view's API, on its own listener; off unless set.
    #[serde(default)]
    pub dashboard: Option<crate::dashboard::DashboardSettings>,
}

/// How often every known repository's default branch is snapshotted, besides on each push,
/// and how long deltas are kept before they fold into a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SnapshotSettings {
    /// Hours between scheduled snapshots of a repository (0: only on pushes).
    #[serde(default = "default_snapshot_interval")]
    pub interval_hours: u64,
    /// Days of snapshot deltas kept; older ones fold into a checkpoint (their counts stay).
    #[serde(default = "default_snapshot_retention")]
    pub retention_days: u64,
}

fn default_snapshot_interval() -> u64 {
    24
}

fn default_snapshot_retention() -> u64 {
    90
}

impl Default for SnapshotSettings {
    fn default() -> Self {
        SnapshotSettings {
            interval_hours: default_snapshot_interval(),
            retention_days: default_snapshot_retention(),
        }
    }
}

impl Default for ServeSettings {
    fn default() -> Self {
        ServeSettings {
            listen: default_listen(),
            database: default_database(),
            cache_dir: default_cache_dir(),
            cache_max_bytes: default_cache_max_bytes(),
            workers: default_workers(),
            max_body_bytes: default_max_body(),
            body_budget_bytes: default_body_budget(),
            small_body_share_bytes: default_small_body_share(),
            bodies_per_peer: default_bodies_per_peer(),
            read_timeout_seconds: default_read_timeout(),
            job_timeout_seconds: default_job_timeout(),
            lease_seconds: default_lease_seconds(),
            max_fetch_bytes: default_max_fetch_bytes(),
            max_changed_files: default_max_changed_files(),
            fetch_depth: default_fetch_depth(),
            max_deferrals: default_max_deferrals(),
            max_deferred_minutes: default_max_deferred_minutes(),
            review_drafts: false,
            review: ReviewProcessSettings::default(),
            log_format: LogFormat::Text,
            github: None,
            gitlab: None,
            snapshots: SnapshotSettings::default(),
            dashboard: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SettingsError(pub String);

impl ServeSettings {
    pub fn parse(name: &str, text: &str) -> Result<ServeSettings, SettingsError> {
        let docs = parse_stream(text, Limits::default());
        let Some(doc) = docs.into_iter().next() else {
            return Ok(ServeSettings::default());
        };
        let node = doc
            .root
            .map_err(|e| SettingsError(format!("{name}:{}: {}", e.mark, e.message)))?;
        let settings: ServeSettings =
            from_node(&node).map_err(|e| SettingsError(format!("{name}: {e}")))?;
        // Otherwise a body of `maxBodyBytes` could never be taken in, and would get 503 forever.
        let needed = settings
            .max_body_bytes
            .saturating_add(settings.small_body_share_bytes);
        if settings.body_budget_bytes < needed {
            return Err(SettingsError(format!(
                "{name}: bodyBudgetBytes ({}) must be at least maxBodyBytes + smallBodyShareBytes ({needed})",
                settings.body_budget_bytes
            )));
        }
        Ok(settings)
    }

    /// What the webhook intake enforces (see [`crate::server::intake`]).
    pub fn intake_limits(&self) -> crate::server::intake::IntakeLimits {
        crate::server::intake::IntakeLimits {
            max_body: self.max_body_bytes,
            budget: self.body_budget_bytes,
            small_share: self.small_body_share_bytes,
            per_peer: self.bodies_per_peer,
            // Every body in flight is answered, or timed out, within the read timeout.
            retry_after: std::time::Duration::from_secs(self.read_timeout_seconds),
        }
    }

    pub fn load(path: &Path) -> Result<ServeSettings, SettingsError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| SettingsError(format!("cannot read {}: {e}", path.display())))?;
        ServeSettings::parse(&path.display().to_string(), &text)
    }
}

/// Secrets, from the environment or from files named in the settings.
#[derive(Debug, Clone, Default)]
pub struct Secrets {
    pub webhook_secrets: Vec<Secret>,
    pub private_key: Option<Secret>,
    pub token: Option<Secret>,
}

fn read_secret(path: &Path) -> Result<Secret, SettingsError> {
    std::fs::read_to_string(path)
        .map(|s| Secret::new(s.trim_end_matches(['\n', '\r'])))
        .map_err(|e| {
            SettingsError(format!(
                "cannot read the secret file {}: {e}",
                path.display()
            ))
        })
}

impl Secrets {
    /// `KUBEWARD_GITHUB_WEBHOOK_SECRET` (comma-separated during a rotation),
    /// `KUBEWARD_GITHUB_PRIVATE_KEY`, `KUBEWARD_GITHUB_TOKEN`, or the files the settings name.
    pub fn load(
        settings: &GitHubSettings,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Secrets, SettingsError> {
        let mut secrets = Secrets::default();
        if let Some(value) = env("KUBEWARD_GITHUB_WEBHOOK_SECRET") {
            secrets.webhook_secrets = value
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(Secret::new)
                .collect();
        } else if let Some(path) = &settings.webhook_secret_file {
            secrets.webhook_secrets = read_secret(path)?
                .expose()
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(Secret::new)
                .collect();
        }
        if secrets.webhook_secrets.is_empty() {
            return Err(SettingsError(
                "no webhook secret: set KUBEWARD_GITHUB_WEBHOOK_SECRET or github.webhookSecretFile"
                    .into(),
            ));
        }
        secrets.private_key = match (
            env("KUBEWARD_GITHUB_PRIVATE_KEY"),
            &settings.private_key_file,
        ) {
            (Some(pem), _) => Some(Secret::new(pem)),
            (None, Some(path)) => Some(read_secret(path)?),
            (None, None) => None,
        };
        secrets.token = match (env("KUBEWARD_GITHUB_TOKEN"), &settings.token_file) {
            (Some(token), _) => Some(Secret::new(token)),
            (None, Some(path)) => Some(read_secret(path)?),
            (None, None) => None,
        };
        match (&settings.app_id, &secrets.private_key, &secrets.token) {
            (Some(_), Some(_), _) | (None, _, Some(_)) => Ok(secrets),
            (Some(_), None, _) => Err(SettingsError(
                "github.appId is set but there is no private key: set KUBEWARD_GITHUB_PRIVATE_KEY or github.privateKeyFile".into(),
            )),
            (None, _, None) => Err(SettingsError(
                "no GitHub credentials: set github.appId with a private key, or KUBEWARD_GITHUB_TOKEN".into(),
            )),
        }
    }
}

/// GitLab's secrets, from the environment or files named in the settings.
#[derive(Debug, Clone)]
pub struct GitLabSecrets {
    pub token: Secret,
    pub hooks: Vec<crate::server::gitlab::HookBinding>,
}

/// A secret named by an environment variable or a file; `what` names it in errors.
fn named_secret(
    env_name: Option<&str>,
    file: Option<&Path>,
    env: &dyn Fn(&str) -> Option<String>,
    what: &str,
) -> Result<Option<Secret>, SettingsError> {
    match (env_name, file) {
        (Some(_), Some(_)) => Err(SettingsError(format!(
            "{what}: name an environment variable or a file, not both"
        ))),
        (Some(name), None) => match env(name).filter(|v| !v.trim().is_empty()) {
            Some(value) => Ok(Some(Secret::new(value.trim_end_matches(['\n', '\r'])))),
            None => Err(SettingsError(format!(
                "{what}: the environment variable {name} is not set"
            ))),
        },
        (None, Some(path)) => read_secret(path).map(Some),
        (None, None) => Ok(None),
    }
}

impl GitLabSecrets {
    /// The API token from `KUBEWARD_GITLAB_TOKEN` or `gitlab.tokenFile`, and each webhook's
    /// secret token and/or signing token. Every webhook needs at least one of them, and there
    /// must be at least one webhook.
    pub fn load(
        settings: &GitLabSettings,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<GitLabSecrets, SettingsError> {
        use crate::server::gitlab::{HookBinding, HookScope, SigningKey};
        let token = match (env("KUBEWARD_GITLAB_TOKEN"), &settings.token_file) {
            (Some(token), _) if !token.trim().is_empty() => Secret::new(token.trim()),
            (_, Some(path)) => read_secret(path)?,
            _ => {
                return Err(SettingsError(
                    "no GitLab token: set KUBEWARD_GITLAB_TOKEN or gitlab.tokenFile".into(),
                ));
            }
        };
        let mut hooks = Vec::new();
        let entries = settings
            .projects
            .iter()
            .map(|p| {
                (
                    HookScope::Project(p.id),
                    format!("gitlab.projects[id={}]", p.id),
                    (&p.secret_env, &p.secret_file),
                    (&p.signing_token_env, &p.signing_token_file),
                )
            })
            .chain(settings.groups.iter().map(|g| {
                (
                    HookScope::Group(g.path.trim_matches('/').to_owned()),
                    format!("gitlab.groups[path={}]", g.path),
                    (&g.secret_env, &g.secret_file),
                    (&g.signing_token_env, &g.signing_token_file),
                )
            }));
        for (scope, what, (secret_env, secret_file), (signing_env, signing_file)) in entries {
            if scope == HookScope::Group(String::new()) {
                return Err(SettingsError(format!("{what}: the group path is empty")));
            }
            let token = named_secret(
                secret_env.as_deref(),
                secret_file.as_deref(),
                env,
                &format!("{what} secret token"),
            )?;
            let signing = named_secret(
                signing_env.as_deref(),
                signing_file.as_deref(),
                env,
                &format!("{what} signing token"),
            )?;
            let signing_key = signing
                .map(|s| SigningKey::parse(&s).map_err(|e| SettingsError(format!("{what}: {e}"))))
                .transpose()?;
            if token.is_none() && signing_key.is_none() {
                return Err(SettingsError(format!(
                    "{what}: set secretEnv or secretFile, or signingTokenEnv or signingTokenFile"
                )));
            }
            hooks.push(HookBinding {
                scope,
                token,
                signing_key,
            });
        }
        if hooks.is_empty() {
            return Err(SettingsError(
                "no GitLab webhook: list gitlab.projects or gitlab.groups with their secrets"
                    .into(),
            ));
        }
        Ok(GitLabSecrets { token, hooks })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_parse_strictly_and_secrets_come_from_the_environment() {
        let settings = ServeSettings::parse(
            "serve.yaml",
            "listen: 127.0.0.1:9000\ngithub:\n  botLogin: kubeward[bot]\n  appId: '123'\n",
        )
        .expect("valid");
        assert_eq!(settings.listen, "127.0.0.1:9000");
        let err = ServeSettings::parse("serve.yaml", "lisen: x\n").expect_err("typo");
        assert!(err.0.contains("did you mean `listen`"), "{err}");
        let github = settings.github.expect("github section");
        assert_eq!(
            (
                github.content_writes_per_minute,
                github.content_writes_per_hour
            ),
            (80, 500),
            "GitHub's limits unless told otherwise"
        );
        assert_eq!(
            (
                github.review_write_share_percent,
                github.check_write_reserve_percent,
                github.max_annotations
            ),
            (25, 10, 200)
        );
        assert_eq!(
            (settings.max_deferrals, settings.max_deferred_minutes),
            (50, 360)
        );
        let shared = ServeSettings::parse(
            "serve.yaml",
            "maxDeferrals: 5\ngithub:\n  botLogin: b\n  contentWritesPerMinute: 40\n  contentWritesPerHour: 250\n  reviewWriteSharePercent: 50\n  checkWriteReservePercent: 20\n  maxAnnotations: 30\n",
        )
        .expect("valid");
        assert_eq!(shared.max_deferrals, 5);
        let shared = shared.github.expect("github section");
        assert_eq!(
            (
                shared.review_write_share_percent,
                shared.check_write_reserve_percent,
                shared.max_annotations
            ),
            (50, 20, 30)
        );
        assert_eq!(
            (
                shared.content_writes_per_minute,
                shared.content_writes_per_hour
            ),
            (40, 250)
        );
        let intake = ServeSettings::default().intake_limits();
        assert_eq!(
            (
                intake.max_body,
                intake.budget,
                intake.small_share,
                intake.per_peer
            ),
            (5 << 20, 64 << 20, 16 << 20, 32)
        );
        let tight = ServeSettings::parse(
            "serve.yaml",
            "maxBodyBytes: 1048576\nbodyBudgetBytes: 4194304\nsmallBodyShareBytes: 1048576\nbodiesPerPeer: 0\n",
        )
        .expect("valid")
        .intake_limits();
        assert_eq!(
            (tight.budget, tight.small_share, tight.per_peer),
            (4 << 20, 1 << 20, 0)
        );
        let err = ServeSettings::parse(
            "serve.yaml",
            "maxBodyBytes: 1048576\nbodyBudgetBytes: 1048576\n",
        )
        .expect_err("a full-size body could never fit");
        assert!(err.0.contains("bodyBudgetBytes"), "{err}");
        let env = |k: &str| match k {
            "KUBEWARD_GITHUB_WEBHOOK_SECRET" => Some("new, old".to_owned()),
            "KUBEWARD_GITHUB_PRIVATE_KEY" => Some("-----BEGIN KEY-----".to_owned()),
            _ => None,
        };
        let secrets = Secrets::load(&github, &env).expect("complete");
        assert_eq!(secrets.webhook_secrets.len(), 2);
        assert_eq!(format!("{secrets:?}").matches("[redacted]").count(), 3);
        let none = |_: &str| None;
        assert!(Secrets::load(&github, &none).is_err());
    }

    #[test]
    fn gitlab_secrets_are_bound_to_projects_and_groups_and_come_from_the_environment() {
        let settings = ServeSettings::parse(
            "serve.yaml",
            "gitlab:\n  instanceUrl: https://gitlab.example.com\n  botUsername: kubeward-bot\n  projects:\n    - id: 42\n      secretEnv: SHOP_HOOK\n  groups:\n    - path: platform/infra/\n      signingTokenEnv: INFRA_SIGNING\n",
        )
        .expect("valid");
        let gitlab = settings.gitlab.expect("gitlab section");
        assert_eq!(gitlab.git_username, "oauth2");
        let env = |k: &str| match k {
            "KUBEWARD_GITLAB_TOKEN" => Some("glpat-secret".to_owned()),
            "SHOP_HOOK" => Some("shop-secret\n".to_owned()),
            "INFRA_SIGNING" => Some("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_owned()),
            _ => None,
        };
        let secrets = GitLabSecrets::load(&gitlab, &env).expect("complete");
        assert_eq!(secrets.hooks.len(), 2);
        assert_eq!(
            secrets.hooks[0].scope,
            crate::server::gitlab::HookScope::Project(42)
        );
        assert_eq!(
            secrets.hooks[0].token.as_ref().map(|t| t.expose()),
            Some("shop-secret")
        );
        assert_eq!(
            secrets.hooks[1].scope,
            crate::server::gitlab::HookScope::Group("platform/infra".into())
        );
        assert!(secrets.hooks[1].signing_key.is_some() && secrets.hooks[1].token.is_none());
        let debug = format!("{secrets:?}");
        assert!(
            !debug.contains("glpat") && !debug.contains("shop-secret") && !debug.contains("MfKQ")
        );
        // A named variable that is not set, or no token at all, is an error naming no secret.
        let no_hook = |k: &str| (k == "KUBEWARD_GITLAB_TOKEN").then(|| "glpat".to_owned());
        let err = GitLabSecrets::load(&gitlab, &no_hook).expect_err("SHOP_HOOK missing");
        assert!(err.0.contains("SHOP_HOOK"), "{err}");
        assert!(GitLabSecrets::load(&gitlab, &|_: &str| None).is_err());
        // Secret values cannot be written into the settings file.
        assert!(
            ServeSettings::parse(
                "serve.yaml",
                "gitlab:\n  instanceUrl: https://x\n  botUsername: b\n  projects:\n    - id: 1\n      secret: inline\n",
            )
            .is_err()
        );
    }
}
