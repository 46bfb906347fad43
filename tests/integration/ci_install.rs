//! The GitHub Action's install script against a loopback release server (a good archive, a
//! tampered one, a sums file without its line, an unknown runner), and the action's own
//! definition: its inputs and outputs, and every shell step clean under `shellcheck`.

use std::path::{Path, PathBuf};
use std::process::Command;

use kubeward::yaml::{Limits, from_node, parse_stream};
use serde_json::Value;
use sha2::{Digest, Sha256};
use wiremock::matchers::path;
use wiremock::{Mock, MockServer, ResponseTemplate};

const VERSION: &str = "0.1.0";
const TARGET: &str = "x86_64-unknown-linux-gnu";

fn repo_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(name)
}

/// A release archive holding a stand-in `kubeward` that prints its version.
fn archive(dir: &Path) -> Vec<u8> {
    let stage = dir.join("stage");
    std::fs::create_dir_all(&stage).expect("stage");
    let binary = stage.join("kubeward");
    std::fs::write(&binary, "#!/bin/sh\necho \"kubeward 0.1.0 (stand-in)\"\n").expect("binary");
    let status = Command::new("chmod")
        .arg("+x")
        .arg(&binary)
        .status()
        .expect("chmod");
    assert!(status.success());
    let tarball = dir.join("release.tar.gz");
    let status = Command::new("tar")
        .arg("-czf")
        .arg(&tarball)
        .arg("-C")
        .arg(&stage)
        .arg("kubeward")
        .status()
        .expect("tar");
    assert!(status.success());
    std::fs::read(&tarball).expect("archive")
}

async fn release(archive: Vec<u8>, sums: String) -> MockServer {
    let server = MockServer::start().await;
    let name = format!("kubeward-{VERSION}-{TARGET}.tar.gz");
    Mock::given(path(format!("/v{VERSION}/{name}")))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(archive))
        .mount(&server)
        .await;
    Mock::given(path(format!("/v{VERSION}/kubeward-{VERSION}-SHA256SUMS")))
        .respond_with(ResponseTemplate::new(200).set_body_string(sums))
        .mount(&server)
        .await;
    server
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

struct Installed {
    status: std::process::ExitStatus,
    stderr: String,
    dir: PathBuf,
    github_path: String,
}

fn install(server: &MockServer, work: &Path, arch: &str) -> Installed {
    let dir = work.join("bin");
    let github_path = work.join("github_path");
    let out = Command::new("bash")
        .arg(repo_file("ci/install.sh"))
        .arg(VERSION)
        .arg(&dir)
        .env(
            "KUBEWARD_RELEASE_URL",
            format!("{}/v{VERSION}", server.uri()),
        )
        .env("RUNNER_OS", "Linux")
        .env("RUNNER_ARCH", arch)
        .env("GITHUB_PATH", &github_path)
        .output()
        .expect("bash");
    Installed {
        status: out.status,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        dir,
        github_path: std::fs::read_to_string(&github_path).unwrap_or_default(),
    }
}

#[tokio::test]
async fn a_release_is_installed_only_when_its_checksum_matches() {
    let work = tempfile::tempdir().expect("temp");
    let good = archive(work.path());
    let name = format!("kubeward-{VERSION}-{TARGET}.tar.gz");
    let sums = format!(
        "{}  kubeward-{VERSION}-aarch64-unknown-linux-gnu.tar.gz\n{}  {name}\n",
        "0".repeat(64),
        sha256(&good)
    );

    // The archive its sums name: installed, runnable, on the job's PATH.
    let server = release(good.clone(), sums.clone()).await;
    let ok = install(&server, &work.path().join("ok"), "X64");
    assert!(ok.status.success(), "{}", ok.stderr);
    let version = Command::new(ok.dir.join("kubeward"))
        .output()
        .expect("run the installed binary");
    assert!(String::from_utf8_lossy(&version.stdout).contains("kubeward 0.1.0"));
    assert_eq!(ok.github_path.trim(), ok.dir.display().to_string());

    // A tampered archive: refused before unpacking; nothing installed, nothing on PATH.
    let mut tampered = good.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 0xff;
    let server = release(tampered, sums.clone()).await;
    let bad = install(&server, &work.path().join("tampered"), "X64");
    assert!(!bad.status.success());
    assert!(bad.stderr.contains("checksum mismatch"), "{}", bad.stderr);
    assert!(!bad.dir.join("kubeward").exists());
    assert!(bad.github_path.is_empty());

    // A sums file that does not name the archive: refused too.
    let server = release(good.clone(), format!("{}  other.tar.gz\n", sha256(&good))).await;
    let unnamed = install(&server, &work.path().join("unnamed"), "X64");
    assert!(!unnamed.status.success());
    assert!(
        unnamed.stderr.contains("has no line for"),
        "{}",
        unnamed.stderr
    );
    assert!(!unnamed.dir.join("kubeward").exists());

    // A runner with no release.
    let server = release(good, sums).await;
    let odd = install(&server, &work.path().join("odd"), "S390X");
    assert_eq!(odd.status.code(), Some(2), "{}", odd.stderr);
    assert!(
        odd.stderr.contains("no release for Linux/S390X"),
        "{}",
        odd.stderr
    );
}

fn action() -> Value {
    let text = std::fs::read_to_string(repo_file("action.yml")).expect("action.yml");
    let docs = parse_stream(&text, Limits::default());
    let node = docs
        .into_iter()
        .next()
        .and_then(|d| d.root.ok())
        .expect("one YAML document");
    from_node::<Value>(&node).expect("action.yml as JSON")
}

#[test]
fn the_action_has_its_inputs_and_outputs_and_passes_the_token_by_environment() {
    let action = action();
    assert_eq!(action["runs"]["using"], "composite");
    for input in ["config", "fail-on", "token", "sarif", "version", "mode"] {
        assert!(action["inputs"][input].is_object(), "input {input}");
    }
    for output in ["conclusion", "new", "fixed"] {
        assert!(
            action["outputs"][output]["value"].is_string(),
            "output {output}"
        );
    }
    let steps = action["runs"]["steps"].as_array().expect("steps");
    for step in steps {
        let script = step["run"].as_str().unwrap_or("");
        // Expressions in a script are spliced in before the shell sees it: a way in for
        // whatever an input holds. Inputs go through `env:` instead.
        assert!(
            !script.contains("${{"),
            "an expression in a run script: {script}"
        );
    }
    assert_eq!(
        steps[1]["env"]["KUBEWARD_TOKEN"], "${{ inputs.token }}",
        "the token reaches kubeward through the environment"
    );
}

/// Every `run:` of the action and the install script pass shellcheck. `.ci/run` installs it
/// and sets KUBEWARD_TEST_SHELLCHECK_REQUIRED=1, so CI cannot skip this.
#[test]
fn the_actions_shell_is_clean_under_shellcheck() {
    let available = Command::new("shellcheck").arg("--version").output().is_ok();
    if !available {
        assert!(
            std::env::var_os("KUBEWARD_TEST_SHELLCHECK_REQUIRED").is_none(),
            "shellcheck is required (KUBEWARD_TEST_SHELLCHECK_REQUIRED) but not installed"
        );
        eprintln!("shellcheck is not installed: skipped");
        return;
    }
    let work = tempfile::tempdir().expect("temp");
    let mut scripts = vec![repo_file("ci/install.sh")];
    for (i, step) in action()["runs"]["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .enumerate()
    {
        if let Some(script) = step["run"].as_str() {
            let file = work.path().join(format!("step-{i}.sh"));
            std::fs::write(
                &file,
                format!("#!/usr/bin/env bash\nset -euo pipefail\n{script}\n"),
            )
            .expect("script");
            scripts.push(file);
        }
    }
    let out = Command::new("shellcheck")
        .args(["--shell=bash", "--severity=style"])
        .args(&scripts)
        .output()
        .expect("shellcheck");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
