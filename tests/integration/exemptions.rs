//! Exemptions from annotations (ours and the anchors' keys, on the object or its pod template)
//! and from configuration, each silencing exactly what it names.

use kubeward::audit::{AuditResult, Registry, audit};
use kubeward::config::{ConfigFile, Policy};
use kubeward::manifest::ManifestFile;
use kubeward::yaml::Limits;

fn run(path: &str, manifest: &str, config: Option<&str>) -> AuditResult {
    let registry = Registry::builtin().expect("rules load");
    let file = config.map(|c| ConfigFile::parse("k.yaml", c).expect("config parses"));
    let policy = Policy::build(&registry, file.as_ref(), None).expect("valid config");
    audit(
        &[ManifestFile::parse(path, manifest, Limits::default())],
        &policy,
    )
}

fn rules(result: &AuditResult) -> Vec<&str> {
    result.findings.iter().map(|f| f.rule.as_str()).collect()
}

fn deployment(object_annotations: &str, template_annotations: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: shop\n  annotations: {object_annotations}\nspec:\n  replicas: 3\n  template:\n    metadata:\n      labels: {{app: web}}\n      annotations: {template_annotations}\n    spec:\n      hostNetwork: true\n      containers:\n      - name: app\n        image: nginx:1.27\n      - name: istio-proxy\n        image: istio/proxyv2:1.22\n        securityContext: {{privileged: true}}\n"
    )
}

#[test]
fn our_annotation_on_the_pod_template_exempts_one_rule() {
    let plain = run("d.yaml", &deployment("{}", "{}"), None);
    assert!(rules(&plain).contains(&"hostNetworkSet"));
    let exempt = run(
        "d.yaml",
        &deployment("{}", "{kubeward.io/hostNetworkSet-exempt: \"true\"}"),
        None,
    );
    assert!(!rules(&exempt).contains(&"hostNetworkSet"));
    assert!(
        rules(&exempt).contains(&"runAsPrivileged"),
        "only the named rule"
    );
    let silenced = exempt
        .exempted
        .iter()
        .find(|f| f.rule == "hostNetworkSet")
        .expect("kept as exempted, for reviews to see");
    assert!(
        silenced
            .exempted_by
            .as_deref()
            .is_some_and(|e| e.contains("kubeward.io/hostNetworkSet-exempt"))
    );
}

#[test]
fn exempt_all_and_the_value_must_be_true() {
    let all = run(
        "d.yaml",
        &deployment("{kubeward.io/exempt: \"true\"}", "{}"),
        None,
    );
    assert!(all.findings.is_empty());
    let not_true = run(
        "d.yaml",
        &deployment("{kubeward.io/exempt: \"no\"}", "{}"),
        None,
    );
    assert!(!not_true.findings.is_empty());
}

#[test]
fn polaris_kube_linter_and_kube_score_keys_are_honoured() {
    let polaris = run(
        "d.yaml",
        &deployment(
            "{polaris.fairwinds.com/hostNetworkSet-exempt: \"TRUE\"}",
            "{}",
        ),
        None,
    );
    assert!(!rules(&polaris).contains(&"hostNetworkSet"));
    let kube_linter = run(
        "d.yaml",
        &deployment(
            "{ignore-check.kube-linter.io/host-network: \"needs node ports\"}",
            "{}",
        ),
        None,
    );
    assert!(!rules(&kube_linter).contains(&"hostNetworkSet"));
    assert!(rules(&kube_linter).contains(&"runAsPrivileged"));
    let kube_score = run(
        "d.yaml",
        &deployment(
            "{kube-score/ignore: \"pod-probes, container-resources\"}",
            "{}",
        ),
        None,
    );
    let found = rules(&kube_score);
    assert!(!found.contains(&"livenessProbeMissing"));
    assert!(!found.contains(&"cpuLimitsMissing"));
    assert!(found.contains(&"hostNetworkSet"));
}

#[test]
fn config_exemptions_match_by_rule_namespace_name_container_and_path() {
    let manifest = deployment("{}", "{}");
    let by_container = run(
        "apps/d.yaml",
        &manifest,
        Some(
            "exemptions:\n- rules: [runAsPrivileged]\n  containers: [istio-*]\n  reason: mesh sidecar needs it\n",
        ),
    );
    assert!(!rules(&by_container).contains(&"runAsPrivileged"));
    let exempted = by_container
        .exempted
        .iter()
        .find(|f| f.rule == "runAsPrivileged")
        .expect("kept as exempted");
    assert!(
        exempted
            .exempted_by
            .as_deref()
            .is_some_and(|e| e.contains("k.yaml:2") && e.contains("mesh sidecar"))
    );
    let wrong_namespace = run(
        "apps/d.yaml",
        &manifest,
        Some("exemptions:\n- namespaces: [kube-system]\n  reason: system\n"),
    );
    assert!(rules(&wrong_namespace).contains(&"hostNetworkSet"));
    let by_path = run(
        "vendor/d.yaml",
        &manifest,
        Some("exemptions:\n- paths: [\"vendor/**\"]\n  reason: third-party chart\n"),
    );
    assert!(by_path.findings.is_empty());
    let polaris_style = run(
        "apps/d.yaml",
        &manifest,
        Some(
            "exemptions:\n- namespace: shop\n  controllerNames: [we]\n  rules: [hostNetworkSet]\n",
        ),
    );
    assert!(
        !rules(&polaris_style).contains(&"hostNetworkSet"),
        "prefix match on the name"
    );
}

#[test]
fn exemptions_can_be_switched_off() {
    let manifest = deployment("{kubeward.io/exempt: \"true\"}", "{}");
    let result = run(
        "d.yaml",
        &manifest,
        Some("disallowAnnotationExemptions: true\n"),
    );
    assert!(!result.findings.is_empty());
}
