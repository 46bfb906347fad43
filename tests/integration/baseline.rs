//! Baselines: `kubeward audit --write-baseline` / `--baseline` on an old repository, and the
//! baseline a policy names in reviews, read at the base commit.

use std::path::Path;
use std::process::Command;

use crate::review::Repo;
use kubeward::review::baseline::Baseline;

const POD: &str = "apiVersion: v1
kind: Pod
metadata:
  name: web
  namespace: shop
spec:
  containers:
    - name: web
      image: web:1.0
      securityContext:
        privileged: true
";

fn audit(dir: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_kubeward"))
        .arg("audit")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("kubeward");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn count(json: &str) -> usize {
    let v: serde_json::Value = serde_json::from_str(json).expect("json");
    v["findings"].as_array().map_or(0, Vec::len)
}

#[test]
fn an_old_repository_reports_only_what_is_new_since_its_baseline() {
    let dir = tempfile::tempdir().expect("temp");
    std::fs::write(dir.path().join("web.yaml"), POD).expect("pod");
    let (code, _, _) = audit(dir.path(), &["--format", "json", "web.yaml"]);
    assert_eq!(code, Some(3));

    let (code, _, said) = audit(
        dir.path(),
        &["--write-baseline", "baseline.json", "web.yaml"],
    );
    assert_eq!(code, Some(0), "{said}");
    let text = std::fs::read_to_string(dir.path().join("baseline.json")).expect("baseline");
    let written = Baseline::parse(&text).expect("readable");
    assert!(!written.findings.is_empty());
    let mut sorted = written.findings.clone();
    sorted.sort();
    assert_eq!(sorted, written.findings, "entries are sorted");

    let (code, out, said) = audit(
        dir.path(),
        &[
            "--format",
            "json",
            "--baseline",
            "baseline.json",
            "web.yaml",
        ],
    );
    assert_eq!(code, Some(0), "{said}");
    assert_eq!(count(&out), 0, "{out}");
    assert!(
        said.contains(&format!("accepted {} finding(s)", written.findings.len()))
            && said.contains("0 of its entries are stale"),
        "{said}"
    );

    // Lines moved above the object: the same findings, still accepted (identity, not lines).
    std::fs::write(dir.path().join("web.yaml"), format!("# moved\n\n{POD}")).expect("pod");
    let (code, out, _) = audit(
        dir.path(),
        &[
            "--format",
            "json",
            "--baseline",
            "baseline.json",
            "web.yaml",
        ],
    );
    assert_eq!((code, count(&out)), (Some(0), 0), "{out}");

    // A new problem is reported; one fixed leaves a stale entry, which --write-baseline prunes.
    let changed = POD
        .replace("privileged: true", "privileged: false")
        .replace(
            "spec:\n  containers:",
            "spec:\n  hostNetwork: true\n  containers:",
        );
    std::fs::write(dir.path().join("web.yaml"), &changed).expect("pod");
    let (_, out, said) = audit(
        dir.path(),
        &[
            "--format",
            "json",
            "--baseline",
            "baseline.json",
            "web.yaml",
        ],
    );
    assert!(count(&out) >= 1, "{out}");
    assert!(!said.contains(" 0 of its entries are stale"), "{said}");
    let (code, _, said) = audit(
        dir.path(),
        &["--write-baseline", "baseline.json", "web.yaml"],
    );
    assert_eq!(code, Some(0));
    assert!(!said.contains(" 0 stale"), "pruned: {said}");
    let pruned = Baseline::parse(
        &std::fs::read_to_string(dir.path().join("baseline.json")).expect("baseline"),
    )
    .expect("readable");
    let (_, out, said) = audit(
        dir.path(),
        &[
            "--format",
            "json",
            "--baseline",
            "baseline.json",
            "web.yaml",
        ],
    );
    assert_eq!(count(&out), 0, "{out}");
    assert!(said.contains("0 of its entries are stale"), "{said}");
    assert_ne!(pruned, written);
}

const POLICY: &str = "baseline: .kubeward-baseline.json\nrules:\n  priorityClassNotSet: ignore\n";

fn baseline_of(text: &str) -> String {
    let dir = tempfile::tempdir().expect("temp");
    std::fs::write(dir.path().join("web.yaml"), text).expect("pod");
    let (code, _, said) = audit(dir.path(), &["--write-baseline", "b.json", "web.yaml"]);
    assert_eq!(code, Some(0), "{said}");
    std::fs::read_to_string(dir.path().join("b.json")).expect("baseline")
}

#[test]
fn a_review_accepts_what_the_base_baseline_names_and_reports_a_baseline_the_head_widens() {
    let accepted = baseline_of(POD);
    let repo = Repo::new();
    let base = repo.commit(
        "main",
        &[],
        &[
            (".kubeward.yaml", POLICY),
            (".kubeward-baseline.json", &accepted),
            (
                "apps/old.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n",
            ),
        ],
    );
    // The head adds the pod the base's baseline already accepts: not new.
    let head = repo.commit(
        "accepted",
        &[base],
        &[
            (".kubeward.yaml", POLICY),
            (".kubeward-baseline.json", &accepted),
            ("apps/web.yaml", POD),
        ],
    );
    let plan = repo.review(&base.to_string(), &head.to_string());
    assert!(
        !plan
            .new_findings
            .iter()
            .any(|f| f.finding.path == "apps/web.yaml"),
        "{:#?}",
        plan.new_findings
    );
    assert!(
        plan.pre_existing_findings
            .iter()
            .any(|f| f.finding.path == "apps/web.yaml"),
        "accepted findings are pre-existing"
    );

    // Without the baseline at the base, a head that adds the pod and its entries to the
    // baseline still has the finding reported, and the baseline change too.
    let bare = repo.commit(
        "bare",
        &[],
        &[
            (".kubeward.yaml", POLICY),
            (
                "apps/old.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n",
            ),
        ],
    );
    let widened = repo.commit(
        "widened",
        &[bare],
        &[
            (".kubeward.yaml", POLICY),
            (".kubeward-baseline.json", &accepted),
            ("apps/web.yaml", POD),
        ],
    );
    let plan = repo.review(&bare.to_string(), &widened.to_string());
    let rules: Vec<&str> = plan
        .new_findings
        .iter()
        .map(|f| f.finding.rule.as_str())
        .collect();
    assert!(
        plan.new_findings
            .iter()
            .any(|f| f.finding.path == "apps/web.yaml"),
        "the head cannot accept its own findings: {rules:?}"
    );
    let added = plan
        .new_findings
        .iter()
        .find(|f| f.finding.rule == kubeward::review::EXEMPTION_ADDED)
        .expect("the baseline change is reported like an added exemption");
    assert_eq!(added.finding.path, ".kubeward-baseline.json");
    assert!(
        added.finding.message.contains("adds"),
        "{}",
        added.finding.message
    );
}
