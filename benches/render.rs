//! Reviewing a chart change in a repository of 50 charts: what kubeward adds to the time spent
//! inside helm.
//!
//! `cargo bench --bench render` builds a repository of 50 charts (each a Chart.yaml, a
//! values.yaml and four templates) and a change of 5 files in 2 of them: a values change that
//! makes a container privileged among other changed keys, and template edits. It reviews the
//! change `KUBEWARD_RENDER_RUNS` times (default 5) and prints the median wall time, the time
//! spent inside helm (the baseline, measured in the same run), the difference (our work: git,
//! materializing, parsing, auditing, attribution, planning), their ratio, and the renders
//! each review ran. Goal: our work at most 0.5× helm's time, and only the touched charts
//! rendered. Needs helm: `KUBEWARD_HELM` or `KUBEWARD_TEST_HELM` (scripts/test.sh unpacks
//! the pinned one), else `helm` on PATH.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;
use std::time::Duration;

use kubeward::git::{Repository, build};
use kubeward::owners::Flavor;
use kubeward::pipeline::{ReviewOptions, Revisions, review};

const CHARTS: usize = 50;

fn chart_files(
    i: usize,
    privileged: bool,
    tag: &str,
    probe: bool,
    revision: u32,
) -> Vec<(String, String)> {
    let root = format!("charts/svc{i:02}");
    let values = format!(
        "replicaCount: {}\nimage:\n  repository: registry.example/svc{i:02}\n  tag: \"{tag}\"\nsecurityContext:\n  privileged: {privileged}\n  runAsNonRoot: true\nresources:\n  limits: {{cpu: 500m, memory: 256Mi}}\n  requests: {{cpu: 100m, memory: 128Mi}}\nservice:\n  port: 8080\n",
        2 + revision
    );
    let probe_text = if probe {
        "          readinessProbe:\n            httpGet: {path: /ready, port: http}\n"
    } else {
        ""
    };
    let deployment = format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{{{ .Release.Name }}}}-svc{i:02}
  labels: {{app: svc{i:02}}}
spec:
  replicas: {{{{ .Values.replicaCount }}}}
  selector:
    matchLabels: {{app: svc{i:02}}}
  template:
    metadata:
      labels: {{app: svc{i:02}}}
    spec:
      containers:
        - name: app
          image: \"{{{{ .Values.image.repository }}}}:{{{{ .Values.image.tag }}}}\"
          ports:
            - {{name: http, containerPort: {{{{ .Values.service.port }}}}}}
          securityContext:
            privileged: {{{{ .Values.securityContext.privileged }}}}
            runAsNonRoot: {{{{ .Values.securityContext.runAsNonRoot }}}}
          resources:
{{{{ toYaml .Values.resources | indent 12 }}}}
{probe_text}"
    );
    let service = format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: {{{{ .Release.Name }}}}-svc{i:02}\n  annotations: {{revision: \"{revision}\"}}\nspec:\n  selector: {{app: svc{i:02}}}\n  ports:\n    - port: {{{{ .Values.service.port }}}}\n"
    );
    let config = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{{{ .Release.Name }}}}-svc{i:02}\ndata:\n  tag: {{{{ .Values.image.tag | quote }}}}\n  revision: \"{revision}\"\n"
    );
    let account = format!(
        "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: {{{{ .Release.Name }}}}-svc{i:02}\n"
    );
    vec![
        (
            format!("{root}/Chart.yaml"),
            format!("apiVersion: v2\nname: svc{i:02}\nversion: 1.0.0\n"),
        ),
        (format!("{root}/values.yaml"), values),
        (format!("{root}/templates/deployment.yaml"), deployment),
        (format!("{root}/templates/service.yaml"), service),
        (format!("{root}/templates/configmap.yaml"), config),
        (format!("{root}/templates/serviceaccount.yaml"), account),
    ]
}

fn borrow(files: &[(String, String)]) -> Vec<(&str, &[u8])> {
    files
        .iter()
        .map(|(p, t)| (p.as_str(), t.as_bytes()))
        .collect()
}

fn helm() -> PathBuf {
    ["KUBEWARD_HELM", "KUBEWARD_TEST_HELM"]
        .iter()
        .find_map(|v| std::env::var_os(v).filter(|p| !p.is_empty()))
        .map(PathBuf::from)
        .or_else(|| kubeward::render::Tools::from_path().helm)
        .expect("helm: set KUBEWARD_HELM, or run scripts/test.sh once and set KUBEWARD_TEST_HELM")
}

fn main() {
    let runs: usize = std::env::var("KUBEWARD_RENDER_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let helm = helm();
    let dir = tempfile::tempdir().expect("temp dir");
    let git = git2::Repository::init_bare(dir.path()).expect("init");
    let policy = (".kubeward.yaml".to_owned(), "failOn: danger\n".to_owned());
    let mut base = vec![policy.clone()];
    let mut head = vec![policy];
    for i in 0..CHARTS {
        base.extend(chart_files(i, false, "1.0", true, 0));
        // 5 files in 2 charts: svc03's values (privileged, a new tag, one more replica),
        // service and config map; svc17's values and its deployment, which loses its probe.
        let changed = match i {
            3 => chart_files(i, true, "1.1", true, 1),
            17 => {
                let mut files = chart_files(i, false, "1.0", false, 0);
                files[1].1 = files[1].1.replace("replicaCount: 2", "replicaCount: 4");
                files
            }
            _ => chart_files(i, false, "1.0", true, 0),
        };
        head.extend(changed);
    }
    let (base_refs, head_refs) = (borrow(&base), borrow(&head));
    let base_oid =
        build::commit(&git, Some("refs/heads/main"), &[], &base_refs, "base").expect("base");
    build::commit(
        &git,
        Some("refs/heads/change"),
        &[base_oid],
        &head_refs,
        "change",
    )
    .expect("head");
    let repo = Repository::open(dir.path()).expect("open");
    let revisions = Revisions::resolve(&repo, "main", "change").expect("revisions");
    let changed_files = repo
        .changes(revisions.merge_base, revisions.head, u64::MAX)
        .expect("changes")
        .len();
    println!(
        "{CHARTS} charts, {} files; the change: {changed_files} files in 2 charts",
        base.len()
    );
    let options = ReviewOptions {
        forge: Flavor::GitHub,
        config_override: None,
        fail_on: None,
        budgets: Default::default(),
        render: Some(kubeward::render::review::RenderOptions {
            helm: Some(helm),
            ..Default::default()
        }),
        progress: None,
        views: None,
    };
    let run = || {
        let started = std::time::Instant::now();
        let (plan, timings) = review(&repo, &revisions, &options).expect("review");
        (started.elapsed(), plan, timings)
    };
    let (_, plan, _) = run();
    assert!(!plan.incomplete, "{:?}", plan.not_reviewed);
    let median = |mut v: Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let (mut walls, mut tools, mut ours) = (Vec::new(), Vec::new(), Vec::new());
    let mut last = None;
    for _ in 0..runs {
        let (wall, _, timings) = run();
        walls.push(wall);
        tools.push(timings.render_tools);
        ours.push(wall.saturating_sub(timings.render_tools));
        last = Some(timings);
    }
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let (wall, tool, own) = (median(walls), median(tools), median(ours));
    println!("review, wall          median {:>7.0} ms", ms(wall));
    println!(
        "  inside helm         median {:>7.0} ms (the baseline)",
        ms(tool)
    );
    println!("  our work            median {:>7.0} ms", ms(own));
    if let Some(t) = last {
        println!(
            "  renders per review: {} ({} for attribution and suggestion checks; {} charts touched of {CHARTS})",
            t.renders,
            t.attribution_renders,
            (t.renders - t.attribution_renders) / 2
        );
        println!(
            "  of our work: git {:.0} ms, render steps outside helm {:.0} ms, parse {:.0} ms, audit {:.0} ms, plan {:.0} ms",
            ms(t.git),
            ms(t.render.saturating_sub(t.render_tools)),
            ms(t.parse),
            ms(t.audit),
            ms(t.plan)
        );
    }
    println!(
        "ratio our work / helm {:.2}× (goal: at most 0.5×); {} new findings, {} inline comments",
        own.as_secs_f64() / tool.as_secs_f64(),
        plan.new_findings.len(),
        plan.inline_comments.len()
    );
}
