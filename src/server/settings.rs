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
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServeSettings {
    #[serde(default = "default_listen")]
    pub listen: String,
    /// `sqlite://path` (default, one process) or `postgres://...` (several replicas).
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
    #[serde(default)]
    pub review_drafts: bool,
    #[serde(default)]
    pub log_format: LogFormat,
    #[serde(default)]
    pub github: Option<GitHubSettings>,
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
            read_timeout_seconds: default_read_timeout(),
            job_timeout_seconds: default_job_timeout(),
            lease_seconds: default_lease_seconds(),
            max_fetch_bytes: default_max_fetch_bytes(),
            max_changed_files: default_max_changed_files(),
            fetch_depth: default_fetch_depth(),
            review_drafts: false,
            log_format: LogFormat::Text,
            github: None,
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
        from_node(&node).map_err(|e| SettingsError(format!("{name}: {e}")))
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
}
