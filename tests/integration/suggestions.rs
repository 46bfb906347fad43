//! One-click fixes never break the workload: every suggestion a review offers applies to valid
//! YAML, clears its own findings, adds none, and leaves a container Kubernetes will start.

use std::collections::HashSet;

use kubeward::audit::{Registry, audit, fingerprint};
use kubeward::config::Policy;
use kubeward::manifest::ManifestFile;
use kubeward::owners::Flavor;
use kubeward::review::ReviewPlan;
use kubeward::yaml::Limits;

use crate::review::{Repo, apply_plan_suggestions};

fn pod(security_context: &str, pod_security: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  namespace: shop\nspec:\n{pod_security}  containers:\n    - name: app\n      image: web:1.0\n      securityContext:\n{security_context}"
    )
}

/// The plan of a pull request that adds `text` as `path` to a repository holding a README.
fn review_added(path: &str, text: &str, forge: Flavor) -> ReviewPlan {
    let repo = Repo::new();
    let base = repo.commit("main", &[], &[("README", "x\n")]);
    repo.commit("pr", &[base], &[(path, text)]);
    repo.review_as("main", "pr", forge)
}

fn suggestions_for<'p>(
    plan: &'p ReviewPlan,
    rule: &str,
) -> Vec<&'p kubeward::review::InlineComment> {
    plan.inline_comments
        .iter()
        .filter(|c| c.suggestion.is_some() && c.body.contains(&format!("`{rule}`")))
        .collect()
}

#[test]
fn dangerous_capabilities_removes_only_the_flagged_ones() {
    let text = pod(
        "        allowPrivilegeEscalation: false\n        capabilities:\n          add:\n            - NET_BIND_SERVICE\n            - SYS_ADMIN\n            - NET_RAW\n            - NET_ADMIN\n",
        "",
    );
    let plan = review_added("pod.yaml", &text, Flavor::GitHub);
    assert!(
        !suggestions_for(&plan, "dangerousCapabilities").is_empty(),
        "{:#?}",
        plan.inline_comments
    );
    let fixed = apply_plan_suggestions(&plan, "pod.yaml", &text);
    for kept in ["NET_BIND_SERVICE", "NET_RAW"] {
        assert!(fixed.contains(kept), "{kept} stays:\n{fixed}");
    }
    for gone in ["SYS_ADMIN", "NET_ADMIN"] {
        assert!(!fixed.contains(gone), "{gone} goes:\n{fixed}");
    }
}

/// `runAsNonRoot: true` beside an explicit `runAsUser: 0` makes the kubelet refuse the
/// container: no such suggestion, whether the UID is set on the container or the pod.
#[test]
fn no_run_as_non_root_suggestion_beside_an_explicit_root_uid() {
    for (container, pod_level) in [
        (
            "        runAsUser: 0\n        allowPrivilegeEscalation: false\n",
            "",
        ),
        (
            "        allowPrivilegeEscalation: false\n",
            "  securityContext:\n    runAsUser: 0\n",
        ),
    ] {
        let text = pod(container, pod_level);
        for forge in [Flavor::GitHub, Flavor::GitLab] {
            let plan = review_added("pod.yaml", &text, forge);
            assert!(
                plan.new_findings
                    .iter()
                    .any(|f| f.finding.rule == "runAsRootAllowed"),
                "still reported"
            );
            let fixed = apply_plan_suggestions(&plan, "pod.yaml", &text);
            assert!(
                !fixed.contains("runAsNonRoot: true"),
                "no suggestion sets runAsNonRoot beside runAsUser 0:\n{fixed}"
            );
            // Other fixes of the same container are still offered.
            assert!(
                plan.inline_comments.iter().any(|c| c.suggestion.is_some()),
                "{:#?}",
                plan.inline_comments
            );
        }
    }
}

/// Every rule fixture, added by a pull request: each suggestion applied on its own leaves
/// valid YAML in which its findings are gone and no finding is new (all rules, both forges).
#[test]
fn every_suggestion_of_every_rule_fixture_is_safe_to_apply() {
    let registry = Registry::builtin().expect("rules");
    let policy = Policy::defaults(&registry);
    let plain = |f: &kubeward::audit::Finding| {
        fingerprint(
            &f.rule,
            f.object.as_deref(),
            f.container.as_deref(),
            &f.field_path,
        )
    };
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/rules");
    let mut applied = 0;
    let mut rules_with_suggestions = HashSet::new();
    for rule in std::fs::read_dir(&root).expect("tests/rules") {
        let rule = rule.expect("entry").path();
        for fixture in std::fs::read_dir(&rule).expect("rule folder") {
            let fixture = fixture.expect("entry").path();
            let text = std::fs::read_to_string(&fixture).expect("fixture");
            for forge in [Flavor::GitHub, Flavor::GitLab] {
                let plan = review_added("m.yaml", &text, forge);
                // A finding the summary calls inline has its comment at its anchor.
                for f in &plan.new_findings {
                    let Some(anchor) = f.anchor.as_ref() else {
                        continue;
                    };
                    let inline = !matches!(
                        anchor.kind,
                        kubeward::review::AnchorKind::File | kubeward::review::AnchorKind::Summary
                    );
                    if inline {
                        assert!(
                            plan.inline_comments
                                .iter()
                                .any(|c| c.path == anchor.new_path
                                    && Some(c.line) == anchor.line
                                    && c.fingerprints.contains(&f.finding.fingerprint.to_string())),
                            "{}: {} is inline without a comment at {anchor:?}",
                            fixture.display(),
                            f.finding.rule
                        );
                    }
                }
                let before = audit(
                    &[ManifestFile::parse("m.yaml", &text, Limits::default())],
                    &policy,
                );
                let was: HashSet<kubeward::audit::Fingerprint> =
                    before.findings.iter().map(plain).collect();
                for comment in plan
                    .inline_comments
                    .iter()
                    .filter(|c| c.suggestion.is_some())
                {
                    let one = ReviewPlan {
                        inline_comments: vec![comment.clone()],
                        ..plan.clone()
                    };
                    let fixed = apply_plan_suggestions(&one, "m.yaml", &text);
                    let file = ManifestFile::parse("m.yaml", &fixed, Limits::default());
                    assert_eq!(
                        file.parse_errors().count(),
                        0,
                        "{}: valid YAML:\n{fixed}",
                        fixture.display()
                    );
                    let now: HashSet<kubeward::audit::Fingerprint> =
                        audit(&[file], &policy).findings.iter().map(plain).collect();
                    let added: Vec<&kubeward::audit::Fingerprint> = now.difference(&was).collect();
                    assert!(
                        added.is_empty(),
                        "{}: new findings {added:?}:\n{fixed}",
                        fixture.display()
                    );
                    // Each finding of the comment whose own fix the suggestion carries is gone.
                    let fixed_here: Vec<&kubeward::review::PlannedFinding> = plan
                        .new_findings
                        .iter()
                        .filter(|f| {
                            comment
                                .fingerprints
                                .contains(&f.finding.fingerprint.to_string())
                        })
                        .filter(|f| {
                            f.anchor.as_ref().is_some_and(|a| {
                                a.kind == kubeward::review::AnchorKind::Suggestion
                                    && a.line == Some(comment.line)
                            })
                        })
                        .collect();
                    for f in fixed_here {
                        assert!(
                            !now.contains(&plain(&f.finding)),
                            "{}: {} still reported after its suggestion:\n{fixed}",
                            fixture.display(),
                            f.finding.rule
                        );
                        rules_with_suggestions.insert(f.finding.rule.clone());
                    }
                    applied += 1;
                }
            }
        }
    }
    assert!(applied > 20, "suggestions applied: {applied}");
    assert!(
        rules_with_suggestions.len() >= 10,
        "{rules_with_suggestions:?}"
    );
}
