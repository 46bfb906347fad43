//! Locating the GitHub fixtures installed from npm (see `tests/npm/package.json`).
//!
//! `scripts/test.sh` installs them with `npm ci --prefix tests/npm`. The directory holding the
//! `@octokit/...` packages is `$KUBEWARD_NPM_DIR` when set (either a `node_modules` directory or
//! one that contains `node_modules`), otherwise `tests/npm/node_modules` in this repository.
//! Every lookup fails loudly, naming the fix, when the fixtures are missing or stale.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde_json::Value;

/// The message every missing-fixture failure carries.
pub const INSTALL_HINT: &str = "run scripts/test.sh to install the GitHub fixtures \
     (npm ci --prefix tests/npm), or point KUBEWARD_NPM_DIR at a node_modules directory holding them";

/// The npm package with GitHub's example webhook payloads.
pub const WEBHOOK_EXAMPLES: &str = "@octokit/webhooks-examples";
/// The npm package with GitHub's REST OpenAPI description.
pub const OPENAPI: &str = "@octokit/openapi";

/// The directory holding the `@octokit/...` packages.
pub fn node_modules() -> PathBuf {
    if let Some(dir) = std::env::var_os("KUBEWARD_NPM_DIR") {
        let dir = PathBuf::from(dir);
        if dir.join("@octokit").is_dir() {
            return dir;
        }
        if dir.join("node_modules/@octokit").is_dir() {
            return dir.join("node_modules");
        }
        panic!(
            "KUBEWARD_NPM_DIR={} holds no @octokit packages: {INSTALL_HINT}",
            dir.display()
        );
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/npm/node_modules")
}

/// The installed directory of `package` (e.g. `@octokit/openapi`), checked against the version
/// pinned in `tests/npm/package.json`.
pub fn package_dir(package: &str) -> PathBuf {
    let dir = node_modules().join(package);
    let manifest = dir.join("package.json");
    let Ok(text) = std::fs::read_to_string(&manifest) else {
        panic!(
            "the npm package {package} is not installed at {}: {INSTALL_HINT}",
            dir.display()
        );
    };
    let installed: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not JSON ({e}): {INSTALL_HINT}", manifest.display()));
    let installed = installed["version"].as_str().unwrap_or_default();
    let pinned = pinned_version(package);
    assert_eq!(
        installed, pinned,
        "{package} {installed} is installed but tests/npm/package.json pins {pinned}: {INSTALL_HINT}"
    );
    dir
}

/// The exact version `tests/npm/package.json` pins for `package`.
pub fn pinned_version(package: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/npm/package.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let manifest: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()));
    manifest["dependencies"][package]
        .as_str()
        .unwrap_or_else(|| panic!("{} does not pin {package}", path.display()))
        .to_owned()
}

/// A file of an installed package, which must exist.
pub fn package_file(package: &str, relative: &str) -> PathBuf {
    let path = package_dir(package).join(relative);
    assert!(
        path.is_file(),
        "{} is missing from {package}: {INSTALL_HINT}",
        path.display()
    );
    path
}

/// Reads and parses a JSON file.
pub fn read_json(path: &Path) -> Value {
    let bytes =
        std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("{} is not valid JSON: {e}", path.display()))
}

/// One example delivery from `@octokit/webhooks-examples`.
#[derive(Debug, Clone)]
pub struct WebhookExample {
    /// The `X-GitHub-Event` name, e.g. `pull_request`.
    pub event: String,
    /// The body's top-level `action`, if any.
    pub action: Option<String>,
    /// The payload, as GitHub would send it in the body.
    pub payload: Value,
}

impl WebhookExample {
    /// The payload serialized as a delivery body.
    pub fn body(&self) -> Vec<u8> {
        serde_json::to_vec(&self.payload).expect("serialize example")
    }
}

/// Every example payload for github.com.
///
/// Layout of the package: `<target>/index.json` (target `api.github.com`, `ghes-3.x`) is an
/// array of `{ "name": <event>, "actions": [...], "examples": [<payload>...] }`.
pub fn webhook_examples() -> &'static [WebhookExample] {
    static EXAMPLES: OnceLock<Vec<WebhookExample>> = OnceLock::new();
    EXAMPLES.get_or_init(|| load_webhook_examples("api.github.com"))
}

/// The examples of one index (`api.github.com`, `ghes-3.15`...).
pub fn load_webhook_examples(target: &str) -> Vec<WebhookExample> {
    let index = read_json(&package_file(
        WEBHOOK_EXAMPLES,
        &format!("{target}/index.json"),
    ));
    let definitions = index
        .as_array()
        .unwrap_or_else(|| panic!("{WEBHOOK_EXAMPLES} {target}/index.json is not an array"));
    let mut examples = Vec::new();
    for definition in definitions {
        let event = definition["name"]
            .as_str()
            .unwrap_or_else(|| panic!("a {target} webhook definition has no name"));
        for payload in definition["examples"].as_array().into_iter().flatten() {
            examples.push(WebhookExample {
                event: event.to_owned(),
                action: payload["action"].as_str().map(str::to_owned),
                payload: payload.clone(),
            });
        }
    }
    assert!(
        !examples.is_empty(),
        "{WEBHOOK_EXAMPLES} {target}/index.json has no examples"
    );
    examples
}

/// The example indexes shipped in the package (`api.github.com`, `ghes-3.x`...), sorted.
pub fn webhook_example_targets() -> Vec<String> {
    let dir = package_dir(WEBHOOK_EXAMPLES);
    let mut targets: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.path().join("index.json").is_file())
        .filter_map(|entry| entry.file_name().into_string().ok())
        .collect();
    targets.sort();
    targets
}

/// The first github.com example of `event` with `action` (`None`: an event without actions).
pub fn webhook_example(event: &str, action: Option<&str>) -> &'static WebhookExample {
    webhook_examples()
        .iter()
        .find(|e| e.event == event && e.action.as_deref() == action)
        .unwrap_or_else(|| panic!("{WEBHOOK_EXAMPLES} has no {event}.{action:?} example"))
}
