//! `.pre-commit-hooks.yaml`, run the way users run it: `pre-commit try-repo` on this
//! repository, in a project with a staged manifest, with the built `kubeward` on PATH (the
//! `system` hook, so the crate is not built a second time).

use std::path::Path;
use std::process::Command;

const BAD: &str = "apiVersion: v1
kind: Pod
metadata:
  name: web
spec:
  containers:
    - name: web
      image: web:1.0
      securityContext:
        privileged: true
";

/// pre-commit needs a git repository with the files staged.
fn project(dir: &Path, files: &[(&str, &str)]) {
    let repo = git2::Repository::init(dir).expect("init");
    let mut index = repo.index().expect("index");
    for (name, text) in files {
        std::fs::write(dir.join(name), text).expect("write");
        index.add_path(Path::new(name)).expect("stage");
    }
    index.write().expect("index");
}

fn try_repo(dir: &Path, home: &Path, file: &str) -> Option<std::process::Output> {
    let binary = Path::new(env!("CARGO_BIN_EXE_kubeward"));
    let path = format!(
        "{}:{}",
        binary.parent().expect("bin dir").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("pre-commit")
        .args([
            "try-repo",
            env!("CARGO_MANIFEST_DIR"),
            "kubeward-audit-system",
        ])
        .args(["--files", file])
        .current_dir(dir)
        .env("PATH", path)
        .env("PRE_COMMIT_HOME", home)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .output();
    match out {
        Ok(out) => Some(out),
        Err(_) => {
            assert!(
                std::env::var_os("KUBEWARD_TEST_PRECOMMIT_REQUIRED").is_none(),
                "pre-commit is required (KUBEWARD_TEST_PRECOMMIT_REQUIRED) but not installed"
            );
            eprintln!("pre-commit is not installed: skipped");
            None
        }
    }
}

#[test]
fn the_pre_commit_hook_fails_a_staged_privileged_pod_and_passes_a_clean_file() {
    let work = tempfile::tempdir().expect("temp");
    let dir = work.path().join("project");
    std::fs::create_dir_all(&dir).expect("dir");
    project(
        &dir,
        &[
            ("bad.yaml", BAD),
            (
                "good.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata: {a: b}\n",
            ),
        ],
    );
    let home = work.path().join("pre-commit-home");
    let Some(bad) = try_repo(&dir, &home, "bad.yaml") else {
        return;
    };
    let said = String::from_utf8_lossy(&bad.stdout).into_owned();
    assert!(!bad.status.success(), "{said}");
    assert!(
        said.contains("bad.yaml") && said.contains("privileged"),
        "{said}"
    );
    let good = try_repo(&dir, &home, "good.yaml").expect("pre-commit ran before");
    let said = String::from_utf8_lossy(&good.stdout).into_owned();
    assert!(good.status.success(), "{said}");
}
