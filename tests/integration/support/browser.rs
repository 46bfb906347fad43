//! The dashboard's pages in a real browser and the W3C validator: Debian's `chromium` headless
//! and `vnu.jar` (npm `vnu-jar`, run with `java`). `.ci/run` installs both and sets
//! KUBEWARD_TEST_BROWSER_REQUIRED=1, so CI cannot skip them; elsewhere a missing browser or
//! Java skips the check, saying so.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;

/// Whether the browser checks must run (CI) rather than be skipped.
fn required() -> bool {
    std::env::var_os("KUBEWARD_TEST_BROWSER_REQUIRED").is_some()
}

fn found(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|p| p.is_file())
}

/// The browser, or `None` (skip) when it is not installed and not required.
pub fn chromium() -> Option<PathBuf> {
    let browser = std::env::var_os("KUBEWARD_TEST_CHROMIUM")
        .map(PathBuf::from)
        .or_else(|| found(&["chromium", "chromium-browser"]));
    if browser.is_none() {
        assert!(
            !required(),
            "chromium is required (KUBEWARD_TEST_BROWSER_REQUIRED) but not installed"
        );
        eprintln!("chromium is not installed: the browser checks are skipped");
    }
    browser
}

/// What the browser made of one page.
pub struct Loaded {
    /// The DOM after loading, serialized.
    pub dom: String,
    /// Console messages (CSP violations, failed loads, script errors): a page of ours has none.
    pub console: Vec<String>,
}

async fn run_chromium(browser: &Path, args: &[String]) -> (String, String) {
    let profile = tempfile::tempdir().expect("profile");
    let mut command = tokio::process::Command::new(browser);
    command
        .arg("--headless")
        .arg("--disable-gpu")
        .arg("--disable-dev-shm-usage")
        .arg("--no-first-run")
        .arg("--disable-extensions")
        .arg("--enable-logging=stderr")
        .arg("--v=0")
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    // Chromium's sandbox cannot start as root (a container's CI): only then without it.
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        command.arg("--no-sandbox");
    }
    let output = tokio::time::timeout(Duration::from_secs(90), command.output())
        .await
        .expect("chromium finished in time")
        .expect("chromium ran");
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn console_lines(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter(|l| l.contains(":CONSOLE"))
        .map(str::to_owned)
        .collect()
}

/// Loads `url` and returns its DOM and console.
pub async fn load(browser: &Path, url: &str) -> Loaded {
    let (dom, stderr) = run_chromium(
        browser,
        &[
            "--dump-dom".into(),
            "--virtual-time-budget=3000".into(),
            url.into(),
        ],
    )
    .await;
    assert!(dom.contains("</html>"), "no page from {url}: {stderr}");
    Loaded {
        dom,
        console: console_lines(&stderr),
    }
}

/// A screenshot of `url` at a laptop's size, into `file`; the console of that load.
pub async fn screenshot(browser: &Path, url: &str, file: &Path) -> Vec<String> {
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir).expect("screenshot folder");
    }
    let (_, stderr) = run_chromium(
        browser,
        &[
            format!("--screenshot={}", file.display()),
            "--window-size=1366,1400".into(),
            "--hide-scrollbars".into(),
            url.into(),
        ],
    )
    .await;
    assert!(file.is_file(), "no screenshot of {url}: {stderr}");
    console_lines(&stderr)
}

/// Where the tests leave what a person may want to look at (screenshots).
pub fn output_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/test-output")
        .join(name)
}

/// The W3C validator's errors for each HTML file, or `None` (skip) without Java or the jar.
pub fn validate_html(files: &[PathBuf]) -> Option<Vec<String>> {
    let jar = super::npm::node_modules().join("vnu-jar/build/dist/vnu.jar");
    let java = found(&["java"]);
    let (Some(java), true) = (java, jar.is_file()) else {
        assert!(
            !required(),
            "java and {} are required (KUBEWARD_TEST_BROWSER_REQUIRED): {}",
            jar.display(),
            super::npm::INSTALL_HINT
        );
        eprintln!("java or vnu.jar is missing: the HTML validation is skipped");
        return None;
    };
    let output = std::process::Command::new(java)
        .arg("-jar")
        .arg(&jar)
        .args(["--errors-only", "--format", "json", "--stdout"])
        .args(files)
        .output()
        .expect("vnu ran");
    let report: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "vnu's report is not JSON ({e}): {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    Some(
        report["messages"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|m| {
                format!(
                    "{}:{}: {}",
                    m["url"].as_str().unwrap_or(""),
                    m["lastLine"],
                    m["message"].as_str().unwrap_or("")
                )
            })
            .collect(),
    )
}

/// Every `href="…"` of a page, unescaped.
pub fn hrefs(html: &str) -> Vec<String> {
    html.split("href=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .map(|h| h.replace("&amp;", "&"))
        .collect()
}
