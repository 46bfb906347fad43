//! Kustomize overlays rendered by the real `kubectl kustomize` (scripts/test.sh unpacks the
//! pinned one and sets KUBEWARD_TEST_KUBECTL): findings on their source lines, naming the
//! overlays; what kustomize changes (images, namespaces, prefixes) judged as rendered; what
//! would need the network or run programs refused and named.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::support::workspace;

/// The kubectl the tests render with, or `None` (then the test says so and passes).
pub(crate) fn kubectl() -> Option<PathBuf> {
    let path = std::env::var_os("KUBEWARD_TEST_KUBECTL").filter(|p| !p.is_empty())?;
    let path = PathBuf::from(path);
    assert!(
        path.is_file(),
        "KUBEWARD_TEST_KUBECTL={} is not a file",
        path.display()
    );
    Some(path)
}

fn audit(dir: &Path, kubectl: &Path, extra: &[&str]) -> (Option<i32>, Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_kubeward"))
        .current_dir(dir)
        .args(["audit", ".", "--format", "json", "--kubectl"])
        .arg(kubectl)
        .args(extra)
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let json = serde_json::from_str(&stdout).unwrap_or(Value::Null);
    (
        out.status.code(),
        json,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn findings(report: &Value) -> Vec<(String, String, u64, Vec<String>)> {
    report["findings"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|f| {
                    (
                        f["rule"].as_str().unwrap_or("").to_owned(),
                        f["path"].as_str().unwrap_or("").to_owned(),
                        f["line"].as_u64().unwrap_or(0),
                        f["targets"]
                            .as_array()
                            .map(|t| {
                                t.iter()
                                    .filter_map(|x| x.as_str().map(str::to_owned))
                                    .collect()
                            })
                            .unwrap_or_default(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

const POLICY: &[u8] = b"checks:\n  runAsPrivileged: danger\n  tagNotSpecified: danger\n  hostNetworkSet: danger\n  defaultNamespace: warning\n";

const BASE_DEPLOY: &[u8] = b"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      hostNetwork: true
      containers:
        - name: app
          image: nginx
";

fn overlay(namespace: &str, patches: &str) -> String {
    format!(
        "resources: [../../base]\nnamespace: {namespace}\nnamePrefix: {namespace}-\nimages:\n  - name: nginx\n    newTag: \"1.27\"\n{patches}"
    )
}

const PRIVILEGED_PATCH: &[u8] = b"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  template:
    spec:
      containers:
        - name: app
          securityContext:
            privileged: true
";

#[test]
fn overlays_are_judged_as_rendered_on_their_source_lines() {
    let Some(kubectl) = kubectl() else {
        eprintln!("skipped: no kubectl (scripts/test.sh sets KUBEWARD_TEST_KUBECTL)");
        return;
    };
    let prod = overlay("prod", "patches:\n  - path: privileged.yaml\n");
    let staging = overlay("staging", "");
    let dir = workspace(&[
        (".kubeward.yaml", POLICY),
        ("base/kustomization.yaml", b"resources: [deploy.yaml]\n"),
        ("base/deploy.yaml", BASE_DEPLOY),
        ("overlays/prod/kustomization.yaml", prod.as_bytes()),
        ("overlays/prod/privileged.yaml", PRIVILEGED_PATCH),
        ("overlays/staging/kustomization.yaml", staging.as_bytes()),
    ]);
    let (code, report, stderr) = audit(dir.path(), &kubectl, &[]);
    assert_eq!(code, Some(3), "{stderr}{report:#}");
    let found = findings(&report);
    let targets = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    assert_eq!(
        found,
        [
            // The base's own problem, once, naming both overlays that render it.
            (
                "hostNetworkSet".to_owned(),
                "base/deploy.yaml".to_owned(),
                10,
                targets(&["overlays/prod", "overlays/staging"])
            ),
            // The overlay's patch sets it: said on the patch's line.
            (
                "runAsPrivileged".to_owned(),
                "overlays/prod/privileged.yaml".to_owned(),
                11,
                targets(&["overlays/prod"])
            ),
        ],
        "no tagNotSpecified (the overlays pin the tag), no defaultNamespace (they set one): {report:#}"
    );
    // Objects are what kustomize made them: namespace and prefix.
    let object = &report["findings"][1]["object"];
    assert_eq!(object["namespace"], "prod");
    assert_eq!(object["name"], "prod-web");
    // The annotations kubeward asked kustomize for are not part of the audited objects.
    assert!(!report.to_string().contains("config.kubernetes.io/origin"));

    // Never rendering: the raw files as they are.
    let (_, raw, _) = audit(dir.path(), &kubectl, &["--render", "never"]);
    let rules: Vec<String> = findings(&raw).into_iter().map(|f| f.0).collect();
    assert!(rules.contains(&"tagNotSpecified".to_owned()), "{rules:?}");
}

#[test]
fn what_needs_the_network_or_a_missing_tool_is_named_and_never_passes_silently() {
    let Some(kubectl) = kubectl() else {
        eprintln!("skipped: no kubectl (scripts/test.sh sets KUBEWARD_TEST_KUBECTL)");
        return;
    };
    let dir = workspace(&[
        (".kubeward.yaml", POLICY),
        (
            "overlays/remote/kustomization.yaml",
            b"resources:\n  - https://github.com/kubernetes-sigs/kustomize//examples/helloWorld?ref=v5.0.0\n",
        ),
    ]);
    let (code, report, stderr) = audit(dir.path(), &kubectl, &[]);
    assert_eq!(code, Some(0), "nothing else to judge: {stderr}");
    let errors = report["errors"].to_string();
    assert!(
        errors.contains("overlays/remote") && errors.contains("remote resource"),
        "{report:#}"
    );
    let (code, _, stderr) = audit(dir.path(), &kubectl, &["--render", "always"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("remote resource"), "{stderr}");
    // Without the tool: named per target.
    let missing = dir.path().join("no-such-kubectl");
    let (_, report, _) = audit(dir.path(), &missing, &[]);
    assert!(
        report["errors"].to_string().contains("overlays/remote"),
        "{report:#}"
    );
}
