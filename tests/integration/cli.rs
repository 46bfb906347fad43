//! The `kubeward` binary as a user runs it: exit statuses, inputs (files, folders, stdin, odd
//! files), policy discovery, help texts and the `rules` command.
//!
//! Every test runs in its own temporary folder that holds a `.git` folder, so the search for a
//! `.kubeward.yaml` stops there and never picks up one from outside the test.

use crate::support::manifests::{CLEAN, RISKY_POD};
use crate::support::workspace;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\n{}",
                self.stdout, self.stderr
            )
        })
    }

    fn rules_at(&self) -> Vec<(String, String, u64)> {
        self.json()["findings"]
            .as_array()
            .expect("findings")
            .iter()
            .map(|f| {
                (
                    f["path"].as_str().unwrap_or_default().to_owned(),
                    f["rule"].as_str().unwrap_or_default().to_owned(),
                    f["line"].as_u64().unwrap_or_default(),
                )
            })
            .collect()
    }
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {:?}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

fn kubeward_with_stdin(dir: &Path, args: &[&str], stdin: Option<&[u8]>) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kubeward"))
        .args(args)
        .current_dir(dir)
        .env_remove("NO_COLOR")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubeward starts");
    if let Some(bytes) = stdin {
        let mut pipe = child.stdin.take().expect("stdin pipe");
        pipe.write_all(bytes).expect("write stdin");
    }
    let out = child.wait_with_output().expect("kubeward finishes");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8(out.stdout).expect("stdout is UTF-8"),
        stderr: String::from_utf8(out.stderr).expect("stderr is UTF-8"),
    }
}

fn kubeward(dir: &Path, args: &[&str]) -> Run {
    kubeward_with_stdin(dir, args, None)
}

// ---------------------------------------------------------------------------------------------
// Exit statuses

#[test]
fn exit_0_when_nothing_reaches_fail_on() {
    let dir = workspace(&[
        ("clean.yaml", CLEAN.as_bytes()),
        ("risky.yaml", RISKY_POD.as_bytes()),
    ]);
    let run = kubeward(dir.path(), &["audit", "clean.yaml"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stdout.contains("0 danger, 0 warning"), "{run:?}");

    // Warnings only: below the default fail-on level (danger).
    let run = kubeward(
        dir.path(),
        &["audit", "--only", "cpuLimitsMissing", "risky.yaml"],
    );
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stdout.contains("cpuLimitsMissing"), "{run:?}");

    let run = kubeward(dir.path(), &["audit", "--fail-on", "never", "risky.yaml"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stdout.contains("hostNetworkSet"), "{run:?}");
}

#[test]
fn exit_3_when_a_finding_reaches_fail_on() {
    let dir = workspace(&[("risky.yaml", RISKY_POD.as_bytes())]);
    let run = kubeward(dir.path(), &["audit", "risky.yaml"]);
    assert_eq!(run.code, Some(3), "{run:?}");
    assert!(
        run.stdout.contains("risky.yaml:7:16 danger hostNetworkSet"),
        "{run:?}"
    );

    let run = kubeward(
        dir.path(),
        &[
            "audit",
            "--only",
            "cpuLimitsMissing",
            "--fail-on",
            "warning",
            "risky.yaml",
        ],
    );
    assert_eq!(run.code, Some(3), "{run:?}");

    // The same for every format.
    for format in ["json", "sarif"] {
        let run = kubeward(dir.path(), &["audit", "--format", format, "risky.yaml"]);
        assert_eq!(run.code, Some(3), "{format}: {run:?}");
    }
}

#[test]
fn fail_on_comes_from_the_config_unless_the_flag_says_otherwise() {
    let dir = workspace(&[
        ("risky.yaml", RISKY_POD.as_bytes()),
        (".kubeward.yaml", b"failOn: warning\n"),
    ]);
    let run = kubeward(
        dir.path(),
        &["audit", "--only", "cpuLimitsMissing", "risky.yaml"],
    );
    assert_eq!(run.code, Some(3), "{run:?}");
    let run = kubeward(
        dir.path(),
        &[
            "audit",
            "--only",
            "cpuLimitsMissing",
            "--fail-on",
            "danger",
            "risky.yaml",
        ],
    );
    assert_eq!(run.code, Some(0), "{run:?}");
}

#[test]
fn unknown_rule_in_only_is_a_usage_error_with_a_suggestion() {
    let dir = workspace(&[("risky.yaml", RISKY_POD.as_bytes())]);
    let run = kubeward(
        dir.path(),
        &["audit", "--only", "hostNetworkSett", "risky.yaml"],
    );
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stderr.contains("--only"), "{run:?}");
    assert!(run.stderr.contains("`hostNetworkSett`"), "{run:?}");
    assert!(
        run.stderr.contains("did you mean `hostNetworkSet`"),
        "{run:?}"
    );
    assert!(run.stdout.is_empty(), "no report on a usage error: {run:?}");
}

#[test]
fn bad_config_key_is_a_usage_error_naming_file_line_and_the_right_key() {
    let dir = workspace(&[
        ("risky.yaml", RISKY_POD.as_bytes()),
        ("policy.yaml", b"failOn: danger\nexemptons: []\n"),
    ]);
    let run = kubeward(
        dir.path(),
        &["audit", "--config", "policy.yaml", "risky.yaml"],
    );
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stderr.contains("policy.yaml:2:"), "file:line: {run:?}");
    assert!(run.stderr.contains("`exemptons`"), "{run:?}");
    assert!(run.stderr.contains("did you mean `exemptions`"), "{run:?}");
    assert!(
        run.stdout.is_empty(),
        "no report on a configuration error: {run:?}"
    );
}

#[test]
fn unknown_rule_in_config_is_a_usage_error_naming_file_line_and_the_right_rule() {
    let dir = workspace(&[
        ("risky.yaml", RISKY_POD.as_bytes()),
        (
            ".kubeward.yaml",
            b"failOn: danger\nrules:\n  hostNetworkSet: warning\n  runAsRootAlowed: danger\n",
        ),
    ]);
    let run = kubeward(dir.path(), &["audit", "risky.yaml"]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(
        run.stderr.contains(".kubeward.yaml:4:"),
        "file:line: {run:?}"
    );
    assert!(
        run.stderr.contains("did you mean `runAsRootAllowed`"),
        "{run:?}"
    );
}

#[test]
fn a_missing_config_file_is_a_usage_error() {
    let dir = workspace(&[("risky.yaml", RISKY_POD.as_bytes())]);
    let run = kubeward(
        dir.path(),
        &["audit", "--config", "nope.yaml", "risky.yaml"],
    );
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stderr.contains("nope.yaml"), "{run:?}");
}

/// The CLI promises exit 2 for usage errors; a path that does not exist is one.
#[test]
fn a_missing_path_is_a_usage_error() {
    let dir = workspace(&[]);
    let run = kubeward(dir.path(), &["audit", "nope.yaml"]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stderr.contains("nope.yaml"), "{run:?}");
}

/// A file over `limits.maxFileSize` is skipped with a warning naming its real size, although
/// only one byte past the limit is read.
#[test]
fn a_file_over_the_size_limit_is_skipped_with_its_real_size() {
    let big = format!("{RISKY_POD}{}", "# padding\n".repeat(300));
    let dir = workspace(&[
        ("big.yaml", big.as_bytes()),
        ("pod.yaml", RISKY_POD.as_bytes()),
        (".kubeward.yaml", b"limits:\n  maxFileSize: 2000\n"),
    ]);
    let run = kubeward(dir.path(), &["audit", "--only", "hostNetworkSet", "."]);
    assert!(
        run.stdout.contains("pod.yaml:7:16 danger hostNetworkSet"),
        "{run:?}"
    );
    let expected = format!(
        "warning: big.yaml: skipped: {} bytes is over the 2000 byte limit",
        big.len()
    );
    assert!(run.stdout.contains(&expected), "{run:?}");
}

/// An endless device is read only to the limit, and the warning says so rather than quoting
/// the size the file system reports for it (0).
#[test]
fn an_endless_device_is_read_to_the_limit_and_said_to_be_over_it() {
    let dir = workspace(&[(".kubeward.yaml", b"limits:\n  maxFileSize: 1000\n")]);
    let run = kubeward(dir.path(), &["audit", "/dev/zero"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(
        run.stdout.contains(
            "warning: /dev/zero: skipped: over the 1000 byte limit \
             (read 1001 bytes of a character device and stopped)"
        ),
        "{run:?}"
    );
    assert!(!run.stdout.contains("0 bytes is over"), "{run:?}");
}

/// A symlink that points at itself is a usage error that says what it is, not "no such file".
#[test]
fn a_self_looping_symlink_is_a_usage_error_that_says_so() {
    let dir = workspace(&[("pod.yaml", RISKY_POD.as_bytes())]);
    std::os::unix::fs::symlink("loop.yaml", dir.path().join("loop.yaml")).expect("symlink");
    std::os::unix::fs::symlink("gone.yaml", dir.path().join("dangling.yaml")).expect("symlink");
    let run = kubeward(dir.path(), &["audit", "loop.yaml", "pod.yaml"]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(
        run.stderr.contains(
            "kubeward: loop.yaml: cannot follow the symbolic link: \
             Too many levels of symbolic links"
        ),
        "{run:?}"
    );
    assert!(!run.stderr.contains("no such file"), "{run:?}");
    let run = kubeward(dir.path(), &["audit", "dangling.yaml"]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(
        run.stderr
            .contains("dangling.yaml: symbolic link to `gone.yaml`, which does not exist"),
        "{run:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Inputs

#[test]
fn dash_reads_stdin() {
    let dir = workspace(&[]);
    let run = kubeward_with_stdin(
        dir.path(),
        &["audit", "--only", "hostNetworkSet", "--format", "json", "-"],
        Some(RISKY_POD.as_bytes()),
    );
    assert_eq!(run.code, Some(3), "{run:?}");
    assert_eq!(
        run.rules_at(),
        [("<stdin>".to_owned(), "hostNetworkSet".to_owned(), 7)]
    );
    assert_eq!(run.json()["stats"]["files"], 1);

    // Text output names it too, and stdin mixes with files.
    let dir = workspace(&[("clean.yaml", CLEAN.as_bytes())]);
    let run = kubeward_with_stdin(
        dir.path(),
        &["audit", "--only", "hostNetworkSet", "clean.yaml", "-"],
        Some(RISKY_POD.as_bytes()),
    );
    assert_eq!(run.code, Some(3), "{run:?}");
    assert!(
        run.stdout.contains("<stdin>:7:16 danger hostNetworkSet"),
        "{run:?}"
    );
    assert!(run.stdout.contains("from 2 files"), "{run:?}");
}

#[test]
fn folders_are_walked_recursively() {
    let dir = workspace(&[
        ("manifests/top.yaml", RISKY_POD.as_bytes()),
        ("manifests/a/b/c/deep.yml", RISKY_POD.as_bytes()),
        ("manifests/a/list.json", br#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "j", "namespace": "prod"}, "spec": {"hostNetwork": true, "containers": [{"name": "app", "image": "nginx:1.27"}]}}"#),
        ("manifests/a/notes.txt", RISKY_POD.as_bytes()),
        ("manifests/.hidden/secret.yaml", RISKY_POD.as_bytes()),
        ("manifests/node_modules/pkg/pod.yaml", RISKY_POD.as_bytes()),
        (".gitignore", b"node_modules/\n"),
    ]);
    let run = kubeward(
        dir.path(),
        &[
            "audit",
            "--only",
            "hostNetworkSet",
            "--format",
            "json",
            "manifests",
        ],
    );
    assert_eq!(run.code, Some(3), "{run:?}");
    let mut paths: Vec<String> = run.rules_at().into_iter().map(|(p, _, _)| p).collect();
    paths.sort();
    assert_eq!(
        paths,
        [
            "manifests/a/b/c/deep.yml",
            "manifests/a/list.json",
            "manifests/top.yaml"
        ],
        "YAML and JSON files at every depth; not .txt, hidden folders or gitignored node_modules"
    );

    // With no path at all, the current folder.
    let run = kubeward(
        &dir.path().join("manifests/a"),
        &["audit", "--only", "hostNetworkSet", "--format", "json"],
    );
    let mut paths: Vec<String> = run.rules_at().into_iter().map(|(p, _, _)| p).collect();
    paths.sort();
    assert_eq!(paths, ["b/c/deep.yml", "list.json"], "{run:?}");
}

/// The audited paths and `stats.filesExcluded` of a JSON run.
fn walked(run: &Run) -> (Vec<String>, Value) {
    let mut paths: Vec<String> = run.rules_at().into_iter().map(|(p, _, _)| p).collect();
    paths.sort();
    paths.dedup();
    (paths, run.json()["stats"]["filesExcluded"].clone())
}

#[test]
fn hidden_folders_and_files_are_left_out_and_counted_unless_hidden_is_given() {
    let dir = workspace(&[
        ("app/pod.yaml", RISKY_POD.as_bytes()),
        (".github/pod.yaml", RISKY_POD.as_bytes()),
        ("app/.hidden/deep/pod.yml", RISKY_POD.as_bytes()),
        ("app/.pod.yaml", RISKY_POD.as_bytes()),
        (".kubeward.yaml", b"rules: {}\n"),
    ]);
    let args = ["audit", "--only", "hostNetworkSet", "--format", "json"];
    let run = kubeward(dir.path(), &args);
    assert_eq!(run.code, Some(3), "{run:?}");
    let (paths, excluded) = walked(&run);
    assert_eq!(paths, ["app/pod.yaml"], "{run:?}");
    assert_eq!(
        excluded,
        serde_json::json!({"hidden": 3}),
        "the policy file is no candidate, .git is never walked: {run:?}"
    );

    let run = kubeward(dir.path(), &[&args[..], &["--hidden"]].concat());
    let (paths, excluded) = walked(&run);
    assert_eq!(
        paths,
        [
            ".github/pod.yaml",
            "app/.hidden/deep/pod.yml",
            "app/.pod.yaml",
            "app/pod.yaml"
        ],
        "{run:?}"
    );
    assert_eq!(excluded, serde_json::json!({}), "{run:?}");

    // The text summary says what was left out, and a folder named on the command line is
    // walked though it is hidden itself.
    let run = kubeward(dir.path(), &["audit", "--only", "hostNetworkSet"]);
    assert!(
        run.stdout.contains("1 file, 3 not walked (3 hidden)"),
        "{run:?}"
    );
    let run = kubeward(
        dir.path(),
        &["audit", "--only", "hostNetworkSet", ".github"],
    );
    assert!(run.stdout.contains(".github/pod.yaml:"), "{run:?}");
}

#[test]
fn gitignored_files_are_left_out_on_disk_and_counted_unless_no_ignore_is_given() {
    let dir = workspace(&[
        (".gitignore", b"generated/\n*.local.yaml\n"),
        ("app/pod.yaml", RISKY_POD.as_bytes()),
        ("app/dev.local.yaml", RISKY_POD.as_bytes()),
        ("generated/a/pod.yaml", RISKY_POD.as_bytes()),
        ("generated/.cache/pod.yaml", RISKY_POD.as_bytes()),
        (".kubeward.yaml", b"ignorePaths: [\"app/skip-*\"]\n"),
        ("app/skip-me.yaml", RISKY_POD.as_bytes()),
    ]);
    let args = ["audit", "--only", "hostNetworkSet", "--format", "json"];
    let run = kubeward(dir.path(), &args);
    let (paths, excluded) = walked(&run);
    assert_eq!(paths, ["app/pod.yaml"], "{run:?}");
    assert_eq!(
        excluded,
        serde_json::json!({"hidden": 1, "gitignored": 2, "ignorePaths": 1}),
        "a hidden file under a gitignored folder counts as hidden: {run:?}"
    );

    let run = kubeward(dir.path(), &[&args[..], &["--no-ignore"]].concat());
    let (paths, excluded) = walked(&run);
    assert_eq!(
        paths,
        ["app/dev.local.yaml", "app/pod.yaml", "generated/a/pod.yaml"],
        "{run:?}"
    );
    assert_eq!(
        excluded,
        serde_json::json!({"hidden": 1, "ignorePaths": 1}),
        "{run:?}"
    );

    let run = kubeward(
        dir.path(),
        &[&args[..], &["--no-ignore", "--hidden"]].concat(),
    );
    let (paths, _) = walked(&run);
    assert_eq!(paths.len(), 4, "{run:?}");
}

#[test]
fn binary_and_non_utf8_files_are_skipped_with_a_warning_and_the_rest_audited() {
    let dir = workspace(&[
        ("m/logo.yaml", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x10"),
        (
            "m/latin1.yaml",
            b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: caf\xe9\n",
        ),
        ("m/risky.yaml", RISKY_POD.as_bytes()),
    ]);
    let run = kubeward(dir.path(), &["audit", "--only", "hostNetworkSet", "m"]);
    assert_eq!(run.code, Some(3), "{run:?}");
    assert!(
        run.stdout
            .contains("warning: m/logo.yaml: skipped: binary file"),
        "{run:?}"
    );
    assert!(
        run.stdout
            .contains("warning: m/latin1.yaml: skipped: not UTF-8"),
        "{run:?}"
    );
    assert!(
        run.stdout
            .contains("m/risky.yaml:7:16 danger hostNetworkSet"),
        "{run:?}"
    );
    assert!(
        run.stdout
            .contains("2 skipped (1 binary file, 1 not UTF-8)"),
        "{run:?}"
    );

    let run = kubeward(
        dir.path(),
        &["audit", "--only", "hostNetworkSet", "--format", "json", "m"],
    );
    let json = run.json();
    assert_eq!(
        json["stats"]["filesSkipped"],
        serde_json::json!({"binary": 1, "notUtf8": 1})
    );
    assert_eq!(json["stats"]["filesAudited"], 1);
    assert_eq!(json["errors"].as_array().map(Vec::len), Some(2), "{run:?}");
}

#[test]
fn a_malformed_document_is_a_parse_error_at_its_line_and_the_others_are_audited() {
    let text = "\
apiVersion: v1
kind: Pod
metadata:
  name: first
  namespace: prod
spec:
  hostNetwork: true
  containers:
    - name: app
      image: nginx:1.27
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: broken
  namespace: prod
 data: misindented
---
apiVersion: v1
kind: Pod
metadata:
  name: third
  namespace: prod
spec:
  hostNetwork: true
  containers:
    - name: app
      image: nginx:1.27
";
    let dir = workspace(&[("multi.yaml", text.as_bytes())]);
    let run = kubeward(
        dir.path(),
        &[
            "audit",
            "--only",
            "hostNetworkSet",
            "--format",
            "json",
            "multi.yaml",
        ],
    );
    assert_eq!(run.code, Some(3), "{run:?}");
    assert_eq!(
        run.rules_at(),
        [
            ("multi.yaml".to_owned(), "hostNetworkSet".to_owned(), 7),
            ("multi.yaml".to_owned(), "parseError".to_owned(), 17),
            ("multi.yaml".to_owned(), "hostNetworkSet".to_owned(), 25),
        ]
    );
    let json = run.json();
    let parse_error = &json["findings"][1];
    assert_eq!(parse_error["severity"], "danger");
    assert!(
        parse_error["message"]
            .as_str()
            .unwrap_or("")
            .starts_with("not valid YAML")
    );
    assert_eq!(json["stats"]["documents"], 3);
    assert_eq!(json["stats"]["objects"], 2);

    let run = kubeward(
        dir.path(),
        &["audit", "--only", "hostNetworkSet", "multi.yaml"],
    );
    assert!(
        run.stdout
            .contains("multi.yaml:17:2 danger parseError not valid YAML"),
        "{run:?}"
    );
}

#[test]
fn helm_templates_and_values_files_are_skipped_and_counted() {
    let dir = workspace(&[
        (
            "chart/templates/pod.yaml",
            b"apiVersion: v1\nkind: Pod\nmetadata:\n  name: {{ .Release.Name }}\nspec:\n  hostNetwork: true\n  containers:\n    - name: app\n      image: \"{{ .Values.image }}\"\n",
        ),
        ("chart/values.yaml", b"image: nginx:1.27\nhostNetwork: true\n"),
        ("chart/pod.yaml", RISKY_POD.as_bytes()),
    ]);
    let run = kubeward(
        dir.path(),
        &[
            "audit",
            "--only",
            "hostNetworkSet",
            "--format",
            "json",
            "chart",
        ],
    );
    assert_eq!(
        run.rules_at(),
        [("chart/pod.yaml".to_owned(), "hostNetworkSet".to_owned(), 7)]
    );
    let json = run.json();
    assert_eq!(
        json["stats"]["filesSkipped"],
        serde_json::json!({"notKubernetes": 1, "helmTemplate": 1})
    );
    assert_eq!(json["stats"]["files"], 3);
    assert_eq!(json["stats"]["filesAudited"], 1);
    assert_eq!(
        json["errors"],
        serde_json::json!([]),
        "skipping these is not a warning"
    );

    let run = kubeward(dir.path(), &["audit", "--only", "hostNetworkSet", "chart"]);
    assert!(
        run.stdout
            .contains("2 skipped (1 no Kubernetes objects, 1 Helm template)"),
        "{run:?}"
    );
    assert!(!run.stdout.contains("warning:"), "{run:?}");
}

#[test]
fn a_kustomize_patch_named_in_kustomization_yaml_is_skipped() {
    let patch =
        b"apiVersion: v1\nkind: Pod\nmetadata:\n  name: risky\nspec:\n  hostNetwork: true\n";
    let dir = workspace(&[
        (
            "overlay/kustomization.yaml",
            b"apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- pod.yaml\npatches:\n- path: host-network.yaml\n  target: {kind: Pod}\npatchesStrategicMerge:\n- legacy.yaml\n",
        ),
        ("overlay/pod.yaml", RISKY_POD.as_bytes()),
        ("overlay/host-network.yaml", patch),
        ("overlay/legacy.yaml", patch),
        // Not named by the kustomization: audited.
        ("overlay/other.yaml", patch),
    ]);
    let run = kubeward(
        dir.path(),
        &[
            "audit",
            "--only",
            "hostNetworkSet",
            "--format",
            "json",
            "overlay",
        ],
    );
    let mut paths: Vec<String> = run.rules_at().into_iter().map(|(p, _, _)| p).collect();
    paths.sort();
    assert_eq!(paths, ["overlay/other.yaml", "overlay/pod.yaml"], "{run:?}");
    assert_eq!(
        run.json()["stats"]["filesSkipped"],
        serde_json::json!({"kustomizePatch": 2})
    );

    // Named on the command line, still a patch.
    let run = kubeward(
        dir.path(),
        &[
            "audit",
            "--only",
            "hostNetworkSet",
            "overlay/host-network.yaml",
        ],
    );
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(
        run.stdout.contains("1 skipped (1 kustomize patch)"),
        "{run:?}"
    );
}

/// Path globs are relative to the folder of the policy file, however the paths are typed and
/// wherever the command runs from.
#[test]
fn path_globs_mean_the_same_from_any_folder() {
    let dir = workspace(&[
        (
            ".kubeward.yaml",
            b"ignorePaths: [\"vendor/**\"]\nexemptions:\n- paths: [\"sub/*.yaml\"]\n  rules: [hostNetworkSet]\n  reason: the debug pod of the sub team\n",
        ),
        ("sub/risky.yaml", RISKY_POD.as_bytes()),
        ("vendor/risky.yaml", RISKY_POD.as_bytes()),
    ]);
    let root = dir.path().display().to_string();
    let sub = dir.path().join("sub");
    let absolute_sub = format!("{root}/sub");
    let absolute_vendor = format!("{root}/vendor");
    let runs: [(&Path, &str); 6] = [
        (dir.path(), "sub"),
        (dir.path(), "./sub"),
        (dir.path(), &absolute_sub),
        (&sub, "."),
        (&sub, "../sub/risky.yaml"),
        (dir.path(), &absolute_vendor),
    ];
    for (cwd, target) in runs {
        let run = kubeward(
            cwd,
            &[
                "audit",
                "--only",
                "hostNetworkSet",
                "--format",
                "json",
                target,
            ],
        );
        assert_eq!(
            run.code,
            Some(0),
            "{} in {}: {run:?}",
            target,
            cwd.display()
        );
        assert!(run.rules_at().is_empty(), "{target}: {run:?}");
    }
    // Outside the globs: reported.
    let run = kubeward(dir.path(), &["audit", "--only", "hostNetworkSet", "."]);
    assert_eq!(run.code, Some(0), "{run:?}");
    std::fs::write(dir.path().join("other.yaml"), RISKY_POD).expect("write");
    let run = kubeward(&sub, &["audit", "--only", "hostNetworkSet", ".."]);
    assert_eq!(
        run.code,
        Some(3),
        "other.yaml is neither exempt nor ignored: {run:?}"
    );
}

/// Overlays usually name shared patches in another folder: `../../patches/x.yaml`.
#[test]
fn a_kustomize_patch_in_another_folder_is_skipped() {
    let patch =
        b"apiVersion: v1\nkind: Pod\nmetadata:\n  name: risky\nspec:\n  hostNetwork: true\n";
    let dir = workspace(&[
        (
            "overlays/prod/kustomization.yaml",
            b"apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- ../../base\npatches:\n- path: ../../patches/host-network.yaml\n- path: ./local.yaml\n",
        ),
        ("overlays/prod/local.yaml", patch),
        ("patches/host-network.yaml", patch),
        ("base/pod.yaml", RISKY_POD.as_bytes()),
    ]);
    for root in [".", "./overlays/../"] {
        let run = kubeward(
            dir.path(),
            &[
                "audit",
                "--only",
                "hostNetworkSet",
                "--format",
                "json",
                root,
            ],
        );
        let paths: Vec<String> = run.rules_at().into_iter().map(|(p, _, _)| p).collect();
        assert_eq!(paths.len(), 1, "only base/pod.yaml: {run:?}");
        assert!(paths[0].ends_with("base/pod.yaml"), "{run:?}");
        assert_eq!(
            run.json()["stats"]["filesSkipped"],
            serde_json::json!({"kustomizePatch": 2}),
            "{run:?}"
        );
    }
}

/// `kubeward audit . pod.yaml` names one file twice (once through the folder).
#[test]
fn the_same_file_named_twice_is_audited_once() {
    let dir = workspace(&[("pod.yaml", RISKY_POD.as_bytes())]);
    for args in [&[".", "pod.yaml"][..], &["pod.yaml", "./pod.yaml"][..]] {
        let mut all = vec!["audit", "--only", "hostNetworkSet", "--format", "json"];
        all.extend_from_slice(args);
        let run = kubeward(dir.path(), &all);
        assert_eq!(run.rules_at().len(), 1, "{args:?}: {run:?}");
        assert_eq!(run.json()["stats"]["files"], 1, "{args:?}: {run:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Policy discovery and output

#[test]
fn kubeward_yaml_is_discovered_from_the_working_directory() {
    let dir = workspace(&[
        (".kubeward.yaml", b"checks:\n  hostNetworkSet: warning\n"),
        ("apps/web/pod.yaml", RISKY_POD.as_bytes()),
        (
            "other-policy.yaml",
            b"checks:\n  runAsRootAllowed: danger\n",
        ),
    ]);
    // In the folder itself.
    let run = kubeward(dir.path(), &["audit", "apps"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(
        run.stdout
            .contains("apps/web/pod.yaml:7:16 warning hostNetworkSet"),
        "{run:?}"
    );
    assert!(
        run.stdout.contains("0 danger, 1 warning"),
        "Polaris `checks` is the complete set: {run:?}"
    );

    // In a parent of the working directory.
    let run = kubeward(&dir.path().join("apps/web"), &["audit", "pod.yaml"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(
        run.stdout.contains("pod.yaml:7:16 warning hostNetworkSet"),
        "{run:?}"
    );

    // `--config` wins over discovery.
    let run = kubeward(
        dir.path(),
        &["audit", "--config", "other-policy.yaml", "apps"],
    );
    assert_eq!(run.code, Some(3), "{run:?}");
    assert!(run.stdout.contains("danger runAsRootAllowed"), "{run:?}");
    assert!(!run.stdout.contains("hostNetworkSet"), "{run:?}");

    // The policy file is not audited as a manifest when its folder is walked.
    let run = kubeward(dir.path(), &["audit", "--format", "json", "."]);
    let json = run.json();
    assert_eq!(
        json["stats"]["files"], 2,
        "pod.yaml and other-policy.yaml: {run:?}"
    );
}

#[test]
fn text_output_has_no_colour_codes_when_stdout_is_not_a_terminal() {
    let dir = workspace(&[
        ("risky.yaml", RISKY_POD.as_bytes()),
        ("logo.yaml", b"\0\0binary"),
    ]);
    let run = kubeward(dir.path(), &["audit", "."]);
    assert_eq!(run.code, Some(3), "{run:?}");
    assert!(run.stdout.contains("danger hostNetworkSet"), "{run:?}");
    assert!(run.stdout.contains("warning: logo.yaml"), "{run:?}");
    assert!(
        !run.stdout.contains('\x1b'),
        "ANSI escape in piped output: {run:?}"
    );
    assert!(!run.stderr.contains('\x1b'), "{run:?}");
}

/// The other half of the rule above: on a terminal (a pseudo-terminal made by util-linux's
/// `script`) the output is coloured, and `NO_COLOR` turns colour off there too.
#[test]
fn text_output_is_coloured_on_a_terminal_unless_no_color_is_set() {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("skipped: `script` (util-linux) is not installed");
        return;
    }
    let dir = workspace(&[("risky.yaml", RISKY_POD.as_bytes())]);
    let command = format!(
        "'{}' audit --only hostNetworkSet risky.yaml",
        env!("CARGO_BIN_EXE_kubeward")
    );
    let on_terminal = |no_color: bool| {
        let mut cmd = Command::new("script");
        cmd.args(["-qec", &command, "/dev/null"])
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .env_remove("NO_COLOR");
        if no_color {
            cmd.env("NO_COLOR", "1");
        }
        let out = cmd.output().expect("script runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let coloured = on_terminal(false);
    assert!(coloured.contains("\x1b[31mdanger\x1b[0m"), "{coloured:?}");
    let plain = on_terminal(true);
    assert!(plain.contains("danger hostNetworkSet"), "{plain:?}");
    assert!(!plain.contains('\x1b'), "NO_COLOR: {plain:?}");
}

#[test]
fn text_output_is_one_line_per_finding_then_a_summary() {
    let dir = workspace(&[("risky.yaml", RISKY_POD.as_bytes())]);
    let run = kubeward(
        dir.path(),
        &[
            "audit",
            "--only",
            "hostNetworkSet,runAsRootAllowed",
            "risky.yaml",
        ],
    );
    assert_eq!(
        run.stdout,
        "risky.yaml\n\
         risky.yaml:7:16 danger hostNetworkSet Host network should not be configured (Pod/prod/risky)\n\
         risky.yaml:9:7 danger runAsRootAllowed Should not be allowed to run as root (Pod/prod/risky, container app)\n\
         \n\
         2 danger, 0 warning in 1 object from 1 file\n"
    );
}

// ---------------------------------------------------------------------------------------------
// Help and rules

#[test]
fn help_texts_explain_themselves() {
    let dir = workspace(&[]);
    let run = kubeward(dir.path(), &["--help"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    for needle in [
        "Usage: kubeward <COMMAND>",
        "audit",
        "rules",
        "Exit status",
        "0 ",
        "3 ",
        "2 ",
    ] {
        assert!(run.stdout.contains(needle), "`{needle}` in --help: {run:?}");
    }

    let run = kubeward(dir.path(), &["audit", "--help"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    // Help wraps to the terminal: compare the words, not the line breaks.
    let words = run.stdout.split_whitespace().collect::<Vec<_>>().join(" ");
    for needle in [
        "Usage: kubeward audit",
        "[PATH]",
        "stdin",
        "--format",
        "text, json, sarif",
        "--only",
        "--config",
        ".kubeward.yaml",
        "--fail-on",
        "danger, warning, never",
    ] {
        assert!(
            words.contains(needle),
            "`{needle}` in audit --help: {run:?}"
        );
    }

    let run = kubeward(dir.path(), &["rules", "--help"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    for needle in ["Usage: kubeward rules", "[ID]", "explain", "--config"] {
        assert!(
            run.stdout.contains(needle),
            "`{needle}` in rules --help: {run:?}"
        );
    }

    // No command at all: usage on stderr, exit 2.
    let run = kubeward(dir.path(), &[]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stderr.contains("Usage"), "{run:?}");
}

#[test]
fn rules_lists_every_rule_with_category_and_severity() {
    let dir = workspace(&[]);
    let run = kubeward(dir.path(), &["rules"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    let mut lines = run.stdout.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(header, ["RULE", "CATEGORY", "SEVERITY", "TITLE"]);
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split_whitespace().collect()).collect();
    let registry = kubeward::audit::Registry::builtin().expect("rules load");
    assert_eq!(rows.len(), registry.rules().count(), "{run:?}");
    let row = |id: &str| {
        rows.iter()
            .find(|r| r.first() == Some(&id))
            .unwrap_or_else(|| panic!("{id} listed"))
            .clone()
    };
    assert_eq!(
        &row("runAsRootAllowed")[..3],
        ["runAsRootAllowed", "Security", "danger"]
    );
    assert_eq!(
        &row("cpuLimitsMissing")[..3],
        ["cpuLimitsMissing", "Efficiency", "warning"]
    );
    assert_eq!(
        &row("imageNotPinnedByDigest")[..3],
        ["imageNotPinnedByDigest", "Security", "off"]
    );

    // Severities follow the discovered policy.
    let dir = workspace(&[(".kubeward.yaml", b"rules:\n  runAsRootAllowed: warning\n")]);
    let run = kubeward(dir.path(), &["rules"]);
    let line = run
        .stdout
        .lines()
        .find(|l| l.starts_with("runAsRootAllowed "))
        .expect("listed");
    assert_eq!(line.split_whitespace().nth(2), Some("warning"), "{line}");
}

#[test]
fn rules_explains_one_rule() {
    let dir = workspace(&[]);
    let run = kubeward(dir.path(), &["rules", "runAsRootAllowed"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    for needle in [
        "# runAsRootAllowed",
        "- Category: Security",
        "- Severity: danger",
        "## Why it matters",
        "## How to fix",
        "runAsNonRoot",
        "kubeward.io/runAsRootAllowed-exempt",
    ] {
        assert!(run.stdout.contains(needle), "`{needle}`: {run:?}");
    }
    let run = kubeward(dir.path(), &["rules", "imageNotPinnedByDigest"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stdout.contains("off by default"), "{run:?}");
    // The engine's own findings are explained too.
    for id in ["parseError", "exemptionAdded"] {
        let run = kubeward(dir.path(), &["rules", id]);
        assert_eq!(run.code, Some(0), "{run:?}");
        assert!(run.stdout.contains(&format!("# {id}")), "{run:?}");
        assert!(run.stdout.contains("## How to fix"), "{run:?}");
    }
}

#[test]
fn rules_with_an_unknown_id_is_a_usage_error_with_a_suggestion() {
    let dir = workspace(&[]);
    let run = kubeward(dir.path(), &["rules", "runAsRootAlowed"]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(
        run.stderr.contains("unknown rule `runAsRootAlowed`"),
        "{run:?}"
    );
    assert!(
        run.stderr.contains("did you mean `runAsRootAllowed`"),
        "{run:?}"
    );
    assert!(run.stdout.is_empty(), "{run:?}");
}

// ---------------------------------------------------------------------------------------------
// Hostile and YAML 1.1 input

#[test]
fn a_billion_laughs_file_is_a_quick_parse_error_and_the_other_files_are_audited() {
    let mut bomb = String::from(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: lol\n  namespace: prod\ndata:\n  a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    // Ten levels of nine aliases each: 9^10 (about 3.5 billion) nodes if expanded.
    let names: Vec<char> = ('a'..='k').collect();
    for pair in names.windows(2) {
        let (prev, next) = (pair[0], pair[1]);
        let refs = vec![format!("*{prev}"); 9].join(",");
        bomb.push_str(&format!("  {next}: &{next} [{refs}]\n"));
    }
    let dir = workspace(&[
        ("bomb.yaml", bomb.as_bytes()),
        ("risky.yaml", RISKY_POD.as_bytes()),
    ]);
    let started = Instant::now();
    let run = kubeward(
        dir.path(),
        &["audit", "--only", "hostNetworkSet", "--format", "json", "."],
    );
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(1), "took {elapsed:?}");
    assert_eq!(run.code, Some(3), "{run:?}");
    let json = run.json();
    let findings = json["findings"].as_array().expect("findings");
    let bomb_error = findings
        .iter()
        .find(|f| f["path"] == "bomb.yaml")
        .unwrap_or_else(|| panic!("a finding for bomb.yaml: {run:?}"));
    assert_eq!(bomb_error["rule"], "parseError");
    let message = bomb_error["message"].as_str().unwrap_or_default();
    assert!(message.contains("alias"), "{message}");
    assert!(message.contains("billion laughs"), "{message}");
    assert!(
        findings
            .iter()
            .any(|f| f["path"] == "risky.yaml" && f["rule"] == "hostNetworkSet"),
        "{run:?}"
    );
}

/// The hostile alias file in miniature: after a risky Pod (22 nodes), ConfigMaps of 929 nodes
/// each once their aliases are expanded (and their anchors' copies counted), under the per-document alias limit (10,000) and under the default
/// per-file budget (1,000,000) at this size. A small `maxFileNodes` in the policy stands in for
/// the 20,000 documents of the real attack (measured in `cargo bench --bench hostile`).
fn alias_heavy_file(documents: usize) -> String {
    let mut text = String::from(RISKY_POD);
    for i in 0..documents {
        text.push_str(&format!(
            "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: lol-{i}\n  namespace: prod\n\
             data:\n  a: &a [x, x, x, x, x, x, x, x, x, x]\n  b: &b [*a, *a, *a, *a, *a, *a, *a, *a]\n\
             \x20 c: [*b, *b, *b, *b, *b, *b, *b, *b]\n"
        ));
    }
    text
}

#[test]
fn a_file_over_its_parse_budget_is_one_parse_error_and_the_others_are_audited() {
    let bomb = alias_heavy_file(100);
    let files = |policy: &'static str| {
        workspace(&[
            ("alias.yaml", bomb.as_bytes()),
            ("pod.yaml", RISKY_POD.as_bytes()),
            (".kubeward.yaml", policy.as_bytes()),
        ])
    };
    let args = ["audit", "--only", "hostNetworkSet", "--format", "json", "."];

    // Within the default budgets, the whole file is audited.
    let run = kubeward(files("failOn: danger\n").path(), &args);
    assert_eq!(run.code, Some(3), "{run:?}");
    assert!(
        run.rules_at()
            .contains(&("alias.yaml".into(), "hostNetworkSet".into(), 7)),
        "{run:?}"
    );
    assert!(!run.stdout.contains("parseError"), "{run:?}");

    // Over a budget, the file is one parseError and nothing in it is audited, the risky Pod
    // that came before the excess included: no finding may stand for a file only half read.
    let dir = files("limits:\n  maxFileNodes: 5000\n");
    let run = kubeward(dir.path(), &args);
    assert_eq!(run.code, Some(3), "{run:?}");
    assert_eq!(
        run.rules_at(),
        [
            ("alias.yaml".to_owned(), "parseError".to_owned(), 70),
            ("pod.yaml".to_owned(), "hostNetworkSet".to_owned(), 7)
        ],
        "stopped at the first excess, the 5,001st node: {run:?}"
    );
    let json = run.json();
    let message = json["findings"][0]["message"].as_str().unwrap_or_default();
    assert_eq!(
        message,
        "file over its parse budget of 5000 YAML nodes, aliases counted at every use \
         (raise `limits.maxFileNodes` in the policy to allow more); none of this file was audited"
    );
    assert_eq!(json["findings"][0]["severity"], "danger");
    let run = kubeward(
        dir.path(),
        &["audit", "--only", "hostNetworkSet", "alias.yaml"],
    );
    assert!(
        run.stdout
            .contains("alias.yaml:70:11 danger parseError file over its parse budget of 5000"),
        "{run:?}"
    );

    // The exit status follows the policy's severity for parseError, as for any parse error.
    let dir = files("limits: {maxFileNodes: 5000}\nrules: {parseError: warning}\n");
    let run = kubeward(
        dir.path(),
        &["audit", "--only", "hostNetworkSet", "alias.yaml"],
    );
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(
        run.stdout
            .contains("alias.yaml:70:11 warning parseError file over its parse budget"),
        "{run:?}"
    );

    // The document and scalar-byte budgets are configured the same way.
    let dir = files("limits: {maxFileDocuments: 50}\n");
    let run = kubeward(dir.path(), &args);
    let json = run.json();
    assert_eq!(json["findings"][0]["rule"], "parseError", "{run:?}");
    assert!(
        json["findings"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("parse budget of 50 documents")
                && m.contains("`limits.maxFileDocuments`")),
        "{run:?}"
    );
    let dir = files("limits: {maxFileScalarBytes: 20000}\n");
    let run = kubeward(dir.path(), &args);
    assert!(
        run.json()["findings"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("parse budget of 20000 bytes of scalar text")),
        "{run:?}"
    );
}

/// A custom check of nested `anyOf` + `$ref` branches 2^26 ways on a value that fails them all
/// (11 s on one object before evaluation was bounded). The schema's size with its `$ref`s
/// followed is bounded when the policy loads, so the policy is refused, naming where it defines
/// the check: a check that cannot finish never runs, so it never passes anything.
#[test]
fn an_exponential_custom_check_is_refused_naming_its_file_and_line() {
    let mut policy = String::from(
        "failOn: danger\n\
         customChecks:\n\
         \x20 nestedAnyOf:\n\
         \x20   target: Container\n\
         \x20   severity: danger\n\
         \x20   failureMessage: Containers must match the nested schema\n\
         \x20   schema:\n\
         \x20     $ref: '#/$defs/d0'\n\
         \x20     $defs:\n",
    );
    for i in 0..26 {
        let next = format!("{{$ref: '#/$defs/d{}'}}", i + 1);
        policy.push_str(&format!("        d{i}: {{anyOf: [{next}, {next}]}}\n"));
    }
    policy.push_str("        d26: {const: never}\n");
    let dir = workspace(&[
        ("policy.yaml", policy.as_bytes()),
        ("pod.yaml", RISKY_POD.as_bytes()),
    ]);
    let run = kubeward(
        dir.path(),
        &[
            "audit",
            "--config",
            "policy.yaml",
            "--only",
            "nestedAnyOf",
            "--format",
            "json",
            "pod.yaml",
        ],
    );
    assert_eq!(run.code, Some(2), "a policy error: {run:?}");
    assert!(run.stdout.is_empty(), "no report: {run:?}");
    assert!(run.stderr.contains("policy.yaml:3"), "{run:?}");
    assert!(run.stderr.contains("nestedAnyOf"), "{run:?}");
    assert!(run.stderr.contains("more than 10000 subschemas"), "{run:?}");
}

/// A keyword the evaluator would skip makes the check pass everything: refused, with the line.
#[test]
fn a_custom_check_with_an_unknown_keyword_is_refused_naming_its_file_and_line() {
    let policy = "failOn: danger\n\
                  customChecks:\n\
                  \x20 labelled:\n\
                  \x20   target: Controller\n\
                  \x20   severity: danger\n\
                  \x20   failureMessage: needs a team label\n\
                  \x20   schema:\n\
                  \x20     properties:\n\
                  \x20       metadata:\n\
                  \x20         requried: [labels]\n";
    let dir = workspace(&[
        ("policy.yaml", policy.as_bytes()),
        ("pod.yaml", RISKY_POD.as_bytes()),
    ]);
    let run = kubeward(
        dir.path(),
        &["audit", "--config", "policy.yaml", "pod.yaml"],
    );
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stderr.contains("policy.yaml:3"), "{run:?}");
    assert!(run.stderr.contains("unknown keyword `requried`"), "{run:?}");
}

#[test]
fn yaml_1_1_scalars_are_honoured() {
    let with =
        |value: &str| RISKY_POD.replace("hostNetwork: true", &format!("hostNetwork: {value}"));
    let reported = ["true", "yes", "Yes", "YES", "on", "On", "y", "True"];
    let not_reported = [
        "\"yes\"",
        "'yes'",
        "!!str yes",
        "no",
        "off",
        "false",
        "\"true\"",
    ];
    let mut files: Vec<(String, String)> = Vec::new();
    for (i, v) in reported.iter().enumerate() {
        files.push((format!("reported/{i}.yaml"), with(v)));
    }
    for (i, v) in not_reported.iter().enumerate() {
        files.push((format!("quiet/{i}.yaml"), with(v)));
    }
    let refs: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(p, t)| (p.as_str(), t.as_bytes()))
        .collect();
    let dir = workspace(&refs);
    let run = kubeward(
        dir.path(),
        &[
            "audit",
            "--only",
            "hostNetworkSet",
            "--format",
            "json",
            "reported",
            "quiet",
        ],
    );
    let flagged: Vec<String> = run.rules_at().into_iter().map(|(p, _, _)| p).collect();
    for (i, v) in reported.iter().enumerate() {
        assert!(
            flagged.contains(&format!("reported/{i}.yaml")),
            "`hostNetwork: {v}` is true in YAML 1.1 and must be reported: {run:?}"
        );
    }
    for (i, v) in not_reported.iter().enumerate() {
        assert!(
            !flagged.contains(&format!("quiet/{i}.yaml")),
            "`hostNetwork: {v}` is not true and must not be reported: {run:?}"
        );
    }
}

/// A file that parses and names objects is audited whatever template text its values hold (an
/// install manifest whose ConfigMap carries `{{ .Values }}`); a file in a chart's `templates/`
/// is a template however well it parses.
#[test]
fn template_text_in_values_is_data_and_chart_templates_are_templates() {
    let install = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: help, namespace: shop}}\ndata:\n  readme: \"install with --set image={{{{ .Values.image }}}}\"\n---\n{RISKY_POD}"
    );
    let template = RISKY_POD.replace("name: risky", "name: \"{{ .Release.Name }}\"");
    let dir = workspace(&[
        ("install.yaml", install.as_bytes()),
        (
            "chart/Chart.yaml",
            b"apiVersion: v2\nname: c\nversion: 1.0.0\n",
        ),
        ("chart/templates/pod.yaml", template.as_bytes()),
    ]);
    let run = kubeward(dir.path(), &["audit", ".", "--format", "json"]);
    let paths: std::collections::BTreeSet<String> = run
        .rules_at()
        .into_iter()
        .map(|(path, _, _)| path)
        .collect();
    assert!(paths.contains("install.yaml"), "{run:?}");
    assert!(
        !paths.iter().any(|p| p.contains("templates")),
        "a chart template is not audited raw: {paths:?}"
    );
    // Named on its own, the template is still one.
    let run = kubeward(
        dir.path(),
        &["audit", "chart/templates/pod.yaml", "--format", "json"],
    );
    assert!(run.rules_at().is_empty(), "{run:?}");
}
