//! A deterministic corpus of Kubernetes manifests for the benchmarks.
//!
//! No dependencies: a splitmix64 generator with a fixed seed drives every choice, so the same
//! seed always gives byte-identical files on every machine. The corpus imitates a mono-repo of
//! many teams: applications (a workload plus its Service, ConfigMap, HPA, PDB, Ingress,
//! NetworkPolicy, ServiceAccount, Role and RoleBinding) spread over namespaces, written either as
//! one multi-document file per application or as one file per kind. Manifests vary in container
//! count, probes, resources, security contexts, env vars, volumes, comments and YAML anchors,
//! and a share of them are sloppy on purpose so the audit produces a realistic number of findings.

#![allow(dead_code)]

use std::fmt::Write as _;

/// The seed the published figures were measured with. Change it and the figures change.
pub const SEED: u64 = 0x6B75_6265_7761_7264; // "kubeward"

/// How many documents the benchmark corpus holds at least.
pub const TARGET_DOCUMENTS: usize = 12_000;

/// splitmix64 (Steele, Lea, Flood 2014): tiny, fast, and good enough for test data.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[(self.next_u64() % items.len() as u64) as usize]
    }

    /// Picks by weight: `items` are `(weight, value)`.
    pub fn weighted<'a, T>(&mut self, items: &'a [(u64, T)]) -> &'a T {
        let total: u64 = items.iter().map(|(w, _)| w).sum();
        let mut roll = self.next_u64() % total;
        for (w, v) in items {
            if roll < *w {
                return v;
            }
            roll -= w;
        }
        &items[items.len() - 1].1
    }

    pub fn hex(&mut self, len: usize) -> String {
        let mut s = String::with_capacity(len);
        while s.len() < len {
            let _ = write!(s, "{:016x}", self.next_u64());
        }
        s.truncate(len);
        s
    }
}

/// One generated file.
#[derive(Debug, Clone)]
pub struct CorpusFile {
    pub path: String,
    pub text: String,
    /// YAML documents in the file.
    pub documents: usize,
}

#[derive(Debug, Clone)]
pub struct Corpus {
    pub files: Vec<CorpusFile>,
    pub documents: usize,
    pub bytes: usize,
    /// Documents per kind, for the record.
    pub kinds: Vec<(&'static str, usize)>,
}

impl Corpus {
    pub fn summary(&self) -> String {
        let kinds: Vec<String> = self.kinds.iter().map(|(k, n)| format!("{k} {n}")).collect();
        format!(
            "{} files, {} documents, {} bytes, fnv1a64 {:016x}; {}",
            self.files.len(),
            self.documents,
            self.bytes,
            self.fingerprint(),
            kinds.join(", ")
        )
    }

    /// FNV-1a over every path and text, to check two machines generated the same bytes.
    pub fn fingerprint(&self) -> u64 {
        let mut hash = 0xcbf2_9ce4_8422_2325u64;
        for file in &self.files {
            for byte in file
                .path
                .bytes()
                .chain([0])
                .chain(file.text.bytes())
                .chain([0])
            {
                hash = (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
            }
        }
        hash
    }
}

/// How the generated applications are written: the same seed and shape give the same bytes.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// Weights of hardened, typical and sloppy applications.
    pub care: [u64; 3],
    /// Weights of pods with 1, 2, 3 and 4 containers.
    pub containers: [u64; 4],
    /// At most this many env vars per container.
    pub env_max: u64,
    /// At most this many feature flags, and of `app.yaml` blocks, per ConfigMap.
    pub config_flags: u64,
    pub config_blocks: u64,
}

impl Shape {
    /// The corpus the audit, range and review benchmarks were measured on.
    pub const TYPICAL: Shape = Shape {
        care: [30, 50, 20],
        containers: [60, 28, 9, 3],
        env_max: 8,
        config_flags: 6,
        config_blocks: 8,
    };

    /// Shaped like a real platform monorepo (public repositories' manifests measured at about
    /// 2.4 KB and 9.5 findings per document): more sidecars, longer env lists and ConfigMaps,
    /// and more applications written without care.
    pub const MONOREPO: Shape = Shape {
        care: [5, 30, 65],
        containers: [5, 25, 40, 30],
        env_max: 32,
        config_flags: 120,
        config_blocks: 90,
    };
}

/// Generates applications until the corpus holds at least `target_documents` documents.
pub fn generate(seed: u64, target_documents: usize) -> Corpus {
    generate_shaped(seed, target_documents, Shape::TYPICAL)
}

/// [`generate`] with applications written as `shape` says.
pub fn generate_shaped(seed: u64, target_documents: usize, shape: Shape) -> Corpus {
    let mut g = Gen {
        rng: Rng::new(seed),
        kinds: Vec::new(),
        shape,
    };
    let namespaces: Vec<String> = (0..48)
        .map(|i| {
            format!(
                "{}-{}",
                g.rng.pick(TEAMS),
                ["prod", "staging", "dev"][i % 3]
            )
        })
        .enumerate()
        .map(|(i, ns)| format!("{ns}-{i}"))
        .collect();
    let mut files = Vec::new();
    let mut documents = 0;
    let mut app_index = 0usize;
    while documents < target_documents {
        let ns = namespaces[g.rng.range(0, namespaces.len() as u64 - 1) as usize].clone();
        let app = App::new(&mut g.rng, app_index, ns, &g.shape);
        app_index += 1;
        let docs = g.app_documents(&app);
        documents += docs.len();
        let dir = format!("clusters/{}/{}", app.namespace, app.name);
        if g.rng.chance(45) {
            // One multi-document file per application, as `kubectl apply -f app.yaml` wants.
            let mut text = String::new();
            if g.rng.chance(50) {
                let _ = writeln!(text, "# {} — owned by team {}", app.name, app.team);
                let _ = writeln!(text, "# Generated by the platform scaffolder; edit freely.");
            }
            let count = docs.len();
            for (i, (_, doc)) in docs.into_iter().enumerate() {
                if i > 0 || g.rng.chance(30) {
                    text.push_str("---\n");
                }
                text.push_str(&doc);
            }
            files.push(CorpusFile {
                path: format!("{dir}/{}.yaml", app.name),
                text,
                documents: count,
            });
        } else {
            // One file per kind, the kustomize-base layout.
            let mut by_file: Vec<(String, String, usize)> = Vec::new();
            for (kind, doc) in docs {
                let file = match kind {
                    "Role" | "RoleBinding" | "ServiceAccount" => "rbac.yaml".to_owned(),
                    "HorizontalPodAutoscaler" | "PodDisruptionBudget" => "scaling.yaml".to_owned(),
                    k => format!("{}.yaml", k.to_lowercase()),
                };
                match by_file.iter_mut().find(|(f, _, _)| *f == file) {
                    Some((_, text, n)) => {
                        text.push_str("---\n");
                        text.push_str(&doc);
                        *n += 1;
                    }
                    None => by_file.push((file, doc, 1)),
                }
            }
            for (file, text, n) in by_file {
                files.push(CorpusFile {
                    path: format!("{dir}/{file}"),
                    text,
                    documents: n,
                });
            }
        }
    }
    let bytes = files.iter().map(|f| f.text.len()).sum();
    let mut kinds = g.kinds;
    kinds.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    Corpus {
        files,
        documents,
        bytes,
        kinds,
    }
}

const TEAMS: &[&str] = &[
    "payments",
    "search",
    "identity",
    "checkout",
    "catalog",
    "platform",
    "data",
    "ml",
    "growth",
    "messaging",
    "billing",
    "infra",
];
const WORDS: &[&str] = &[
    "api",
    "worker",
    "gateway",
    "indexer",
    "sync",
    "cache",
    "scheduler",
    "frontend",
    "backend",
    "ledger",
    "router",
    "notifier",
    "exporter",
    "ingest",
    "render",
    "auth",
    "profile",
    "reports",
    "queue",
    "stream",
];
const REGISTRIES: &[&str] = &[
    "registry.example.com",
    "ghcr.io/example",
    "123456789012.dkr.ecr.eu-west-1.amazonaws.com",
    "docker.io/library",
    "quay.io/example",
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Workload {
    Deployment,
    StatefulSet,
    DaemonSet,
    CronJob,
    Job,
}

/// How careful the authors were: drives which best practices the manifests follow.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Care {
    Hardened,
    Typical,
    Sloppy,
}

struct App {
    name: String,
    team: String,
    namespace: String,
    workload: Workload,
    care: Care,
    port: u64,
    has_service: bool,
    has_config: bool,
    has_account: bool,
    has_hpa: bool,
    has_pdb: bool,
    has_ingress: bool,
    has_netpol: bool,
    has_rbac: bool,
}

impl App {
    fn new(rng: &mut Rng, index: usize, namespace: String, shape: &Shape) -> App {
        let workload = *rng.weighted(&[
            (55, Workload::Deployment),
            (14, Workload::StatefulSet),
            (8, Workload::DaemonSet),
            (15, Workload::CronJob),
            (8, Workload::Job),
        ]);
        let care = *rng.weighted(&[
            (shape.care[0], Care::Hardened),
            (shape.care[1], Care::Typical),
            (shape.care[2], Care::Sloppy),
        ]);
        let serving = matches!(workload, Workload::Deployment | Workload::StatefulSet);
        let has_service = match workload {
            Workload::Deployment => rng.chance(85),
            Workload::StatefulSet => true,
            Workload::DaemonSet => rng.chance(30),
            _ => false,
        };
        let team = rng.pick(TEAMS).to_string();
        App {
            name: format!("{}-{}-{index}", rng.pick(WORDS), rng.pick(WORDS)),
            team,
            namespace,
            workload,
            care,
            port: *rng.pick(&[80, 8080, 8000, 9090, 3000, 5000, 8443]),
            has_service,
            has_config: rng.chance(60),
            has_account: rng.chance(55),
            has_hpa: workload == Workload::Deployment && rng.chance(45),
            has_pdb: serving && rng.chance(50),
            has_ingress: has_service && serving && rng.chance(30),
            has_netpol: rng.chance(40),
            has_rbac: rng.chance(20),
        }
    }

    fn kind(&self) -> &'static str {
        match self.workload {
            Workload::Deployment => "Deployment",
            Workload::StatefulSet => "StatefulSet",
            Workload::DaemonSet => "DaemonSet",
            Workload::CronJob => "CronJob",
            Workload::Job => "Job",
        }
    }
}

struct Gen {
    rng: Rng,
    kinds: Vec<(&'static str, usize)>,
    shape: Shape,
}

impl Gen {
    fn count(&mut self, kind: &'static str) {
        match self.kinds.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, n)) => *n += 1,
            None => self.kinds.push((kind, 1)),
        }
    }

    fn app_documents(&mut self, app: &App) -> Vec<(&'static str, String)> {
        let mut docs = Vec::new();
        let mut add = |g: &mut Gen, kind: &'static str, text: String| {
            g.count(kind);
            docs.push((kind, text));
        };
        if app.has_account {
            let t = self.service_account(app);
            add(self, "ServiceAccount", t);
        }
        if app.has_config {
            let t = self.config_map(app);
            add(self, "ConfigMap", t);
        }
        let t = self.workload(app);
        add(self, app.kind(), t);
        if app.has_service {
            let t = self.service(app);
            add(self, "Service", t);
        }
        if app.has_ingress {
            let t = self.ingress(app);
            add(self, "Ingress", t);
        }
        if app.has_hpa {
            let t = self.hpa(app);
            add(self, "HorizontalPodAutoscaler", t);
        }
        if app.has_pdb {
            let t = self.pdb(app);
            add(self, "PodDisruptionBudget", t);
        }
        if app.has_netpol {
            let t = self.network_policy(app);
            add(self, "NetworkPolicy", t);
        }
        if app.has_rbac {
            let t = self.role(app);
            add(self, "Role", t);
            let t = self.role_binding(app);
            add(self, "RoleBinding", t);
        }
        docs
    }

    fn metadata(&mut self, out: &mut String, app: &App, name: &str, anchor_labels: bool) {
        out.push_str("metadata:\n");
        let _ = writeln!(out, "  name: {name}");
        if !(app.care == Care::Sloppy && self.rng.chance(40)) {
            let _ = writeln!(out, "  namespace: {}", app.namespace);
        }
        let _ = writeln!(
            out,
            "  labels:{}",
            if anchor_labels { " &labels" } else { "" }
        );
        let _ = writeln!(out, "    app.kubernetes.io/name: {}", app.name);
        if anchor_labels || self.rng.chance(70) {
            let _ = writeln!(out, "    app.kubernetes.io/part-of: {}", app.team);
        }
        if !anchor_labels && self.rng.chance(50) {
            let _ = writeln!(out, "    app.kubernetes.io/managed-by: kustomize");
            let _ = writeln!(out, "    app.kubernetes.io/version: \"{}\"", self.version());
        }
        if self.rng.chance(35) {
            out.push_str("  annotations:\n");
            let _ = writeln!(out, "    owner: team-{}@example.com", app.team);
            if self.rng.chance(40) {
                let _ = writeln!(
                    out,
                    "    kubeward.io/description: \"{} for the {} team\"",
                    app.name, app.team
                );
            }
            if app.care == Care::Sloppy && self.rng.chance(25) {
                out.push_str("    ignore-check.kube-linter.io/no-read-only-root-fs: \"legacy app writes to /var\"\n");
            }
        }
    }

    fn version(&mut self) -> String {
        format!(
            "{}.{}.{}",
            self.rng.range(0, 4),
            self.rng.range(0, 30),
            self.rng.range(0, 12)
        )
    }

    fn image(&mut self, app: &App, name: &str) -> String {
        let registry = self.rng.pick(REGISTRIES);
        let repo = format!("{registry}/{}/{name}", app.team);
        match app.care {
            Care::Hardened if self.rng.chance(70) => {
                format!("{repo}:{}@sha256:{}", self.version(), self.rng.hex(64))
            }
            Care::Sloppy if self.rng.chance(30) => repo,
            Care::Sloppy if self.rng.chance(30) => format!("{repo}:latest"),
            _ => format!("{repo}:{}", self.version()),
        }
    }

    fn service_account(&mut self, app: &App) -> String {
        let mut out = String::from("apiVersion: v1\nkind: ServiceAccount\n");
        self.metadata(&mut out, app, &app.name, false);
        if app.care != Care::Sloppy && self.rng.chance(60) {
            out.push_str("automountServiceAccountToken: false\n");
        }
        out
    }

    fn config_map(&mut self, app: &App) -> String {
        let mut out = String::from("apiVersion: v1\nkind: ConfigMap\n");
        self.metadata(&mut out, app, &format!("{}-config", app.name), false);
        out.push_str("data:\n");
        let _ = writeln!(
            out,
            "  LOG_LEVEL: {}",
            self.rng.pick(&["info", "debug", "warn"])
        );
        let _ = writeln!(out, "  LISTEN_ADDR: \":{}\"", app.port);
        for i in 0..self.rng.range(0, self.shape.config_flags) {
            let _ = writeln!(
                out,
                "  FEATURE_{}_{i}: \"{}\"",
                self.rng.pick(WORDS).to_uppercase(),
                self.rng.pick(&["true", "false", "on", "off", "42"])
            );
        }
        if app.care == Care::Sloppy && self.rng.chance(20) {
            // A secret where it does not belong: the kind of content auditors flag.
            let _ = writeln!(out, "  DB_PASSWORD: \"{}\"", self.rng.hex(16));
        }
        if self.rng.chance(50) {
            out.push_str("  app.yaml: |\n");
            let _ = writeln!(
                out,
                "    server:\n      port: {}\n      timeout: 30s",
                app.port
            );
            for _ in 0..self.rng.range(1, self.shape.config_blocks) {
                let w = self.rng.pick(WORDS);
                let _ = writeln!(
                    out,
                    "    {w}_{}:\n      enabled: true\n      url: https://{w}.{}.svc.cluster.local:8080",
                    self.rng.range(0, 999),
                    app.namespace
                );
            }
        }
        out
    }

    fn workload(&mut self, app: &App) -> String {
        let kind = app.kind();
        let api = match app.workload {
            Workload::CronJob | Workload::Job => "batch/v1",
            _ => "apps/v1",
        };
        let mut out = String::new();
        if self.rng.chance(25) {
            let _ = writeln!(out, "# {kind} for {} ({})", app.name, app.namespace);
        }
        let _ = writeln!(out, "apiVersion: {api}\nkind: {kind}");
        let anchor_labels = self.rng.chance(30);
        self.metadata(&mut out, app, &app.name, anchor_labels);
        out.push_str("spec:\n");
        // Indentation of the pod template, which CronJobs nest deeper.
        let t = match app.workload {
            Workload::CronJob => {
                let _ = writeln!(
                    out,
                    "  schedule: \"{} */{} * * *\"",
                    self.rng.range(0, 59),
                    self.rng.range(1, 6)
                );
                if app.care != Care::Sloppy {
                    out.push_str("  concurrencyPolicy: Forbid\n");
                    let _ = writeln!(
                        out,
                        "  startingDeadlineSeconds: {}",
                        self.rng.range(60, 600)
                    );
                }
                out.push_str("  successfulJobsHistoryLimit: 3\n  failedJobsHistoryLimit: 1\n");
                out.push_str("  jobTemplate:\n    spec:\n");
                if app.care != Care::Sloppy {
                    out.push_str("      ttlSecondsAfterFinished: 3600\n");
                }
                let _ = writeln!(out, "      backoffLimit: {}", self.rng.range(0, 6));
                "      "
            }
            Workload::Job => {
                if app.care != Care::Sloppy {
                    out.push_str("  ttlSecondsAfterFinished: 86400\n");
                }
                let _ = writeln!(out, "  backoffLimit: {}", self.rng.range(0, 6));
                "  "
            }
            w => {
                if w != Workload::DaemonSet && !(app.care == Care::Sloppy && self.rng.chance(50)) {
                    let _ = writeln!(out, "  replicas: {}", self.rng.range(1, 6));
                }
                if w == Workload::StatefulSet {
                    let _ = writeln!(out, "  serviceName: {}", app.name);
                }
                if self.rng.chance(50) {
                    out.push_str("  revisionHistoryLimit: 5\n");
                }
                out.push_str("  selector:\n    matchLabels:");
                if anchor_labels {
                    out.push_str(" *labels\n");
                } else {
                    let _ = writeln!(out, "\n      app.kubernetes.io/name: {}", app.name);
                }
                if w == Workload::Deployment && self.rng.chance(40) {
                    out.push_str("  strategy:\n    type: RollingUpdate\n    rollingUpdate:\n      maxSurge: 25%\n      maxUnavailable: 0\n");
                }
                "  "
            }
        };
        let _ = writeln!(out, "{t}template:\n{t}  metadata:\n{t}    labels:");
        let _ = writeln!(out, "{t}      app.kubernetes.io/name: {}", app.name);
        let _ = writeln!(out, "{t}      app.kubernetes.io/part-of: {}", app.team);
        if self.rng.chance(40) {
            let _ = writeln!(
                out,
                "{t}    annotations:\n{t}      prometheus.io/scrape: \"true\"\n{t}      prometheus.io/port: \"{}\"",
                app.port
            );
        }
        let _ = writeln!(out, "{t}  spec:");
        let p = format!("{t}    ");
        self.pod_spec(&mut out, app, &p);
        if app.workload == Workload::StatefulSet {
            out.push_str("  volumeClaimTemplates:\n  - metadata:\n      name: data\n    spec:\n      accessModes: [ReadWriteOnce]\n");
            let _ = writeln!(
                out,
                "      storageClassName: {}\n      resources:\n        requests:\n          storage: {}Gi",
                self.rng.pick(&["gp3", "standard", "premium-rwo"]),
                self.rng.range(1, 500)
            );
        }
        out
    }

    fn pod_spec(&mut self, out: &mut String, app: &App, p: &str) {
        let batch = matches!(app.workload, Workload::CronJob | Workload::Job);
        if batch {
            let _ = writeln!(
                out,
                "{p}restartPolicy: {}",
                self.rng.pick(&["OnFailure", "Never"])
            );
        }
        if app.has_account {
            let _ = writeln!(out, "{p}serviceAccountName: {}", app.name);
        }
        if app.care != Care::Sloppy && self.rng.chance(50) {
            let _ = writeln!(out, "{p}automountServiceAccountToken: false");
        }
        if self.rng.chance(30) {
            let _ = writeln!(
                out,
                "{p}priorityClassName: {}",
                self.rng.pick(&["high", "default", "batch-low"])
            );
        }
        if app.workload == Workload::DaemonSet && app.care == Care::Sloppy && self.rng.chance(40) {
            let _ = writeln!(out, "{p}hostNetwork: true\n{p}hostPID: true");
        }
        match app.care {
            Care::Hardened => {
                let _ = writeln!(
                    out,
                    "{p}securityContext:\n{p}  runAsNonRoot: true\n{p}  runAsUser: {}\n{p}  fsGroup: 2000\n{p}  seccompProfile:\n{p}    type: RuntimeDefault",
                    self.rng.range(1000, 65000)
                );
            }
            Care::Typical if self.rng.chance(50) => {
                let _ = writeln!(out, "{p}securityContext:\n{p}  runAsNonRoot: true");
            }
            _ => {}
        }
        if self.rng.chance(30) {
            let _ = writeln!(out, "{p}nodeSelector:\n{p}  kubernetes.io/os: linux");
        }
        if self.rng.chance(20) {
            let _ = writeln!(
                out,
                "{p}tolerations:\n{p}- key: dedicated\n{p}  operator: Equal\n{p}  value: {}\n{p}  effect: NoSchedule",
                app.team
            );
        }
        if !batch && self.rng.chance(30) {
            let _ = writeln!(
                out,
                "{p}topologySpreadConstraints:\n{p}- maxSkew: 1\n{p}  topologyKey: topology.kubernetes.io/zone\n{p}  whenUnsatisfiable: ScheduleAnyway\n{p}  labelSelector:\n{p}    matchLabels:\n{p}      app.kubernetes.io/name: {}",
                app.name
            );
        }
        if !batch && self.rng.chance(20) {
            let _ = writeln!(
                out,
                "{p}affinity:\n{p}  podAntiAffinity:\n{p}    preferredDuringSchedulingIgnoredDuringExecution:\n{p}    - weight: 100\n{p}      podAffinityTerm:\n{p}        topologyKey: kubernetes.io/hostname\n{p}        labelSelector:\n{p}          matchLabels:\n{p}            app.kubernetes.io/name: {}",
                app.name
            );
        }
        let init = self.rng.chance(25);
        if init {
            let _ = writeln!(out, "{p}initContainers:");
            self.container(out, app, p, "migrate", 0, true);
        }
        let _ = writeln!(out, "{p}containers:");
        let c = self.shape.containers;
        let count = *self
            .rng
            .weighted(&[(c[0], 1usize), (c[1], 2), (c[2], 3), (c[3], 4)]);
        for i in 0..count {
            let name = if i == 0 {
                "app".to_owned()
            } else {
                self.rng
                    .pick(&[
                        "envoy",
                        "log-shipper",
                        "metrics",
                        "oauth-proxy",
                        "cloudsql-proxy",
                    ])
                    .to_string()
            };
            let name = if i > 0 { format!("{name}-{i}") } else { name };
            self.container(out, app, p, &name, i, false);
        }
        let _ = writeln!(out, "{p}volumes:\n{p}- name: tmp\n{p}  emptyDir: {{}}");
        if app.has_config {
            let _ = writeln!(
                out,
                "{p}- name: config\n{p}  configMap:\n{p}    name: {}-config",
                app.name
            );
        }
        if app.care == Care::Sloppy && self.rng.chance(25) {
            let path = self
                .rng
                .pick(&["/var/log", "/var/run/docker.sock", "/etc/ssl/certs"]);
            let _ = writeln!(out, "{p}- name: host\n{p}  hostPath:\n{p}    path: {path}");
        }
    }

    /// One container, as a block sequence item under `p`.
    fn container(
        &mut self,
        out: &mut String,
        app: &App,
        p: &str,
        name: &str,
        index: usize,
        init: bool,
    ) {
        let c = format!("{p}  ");
        let _ = writeln!(out, "{p}- name: {name}");
        let image = self.image(app, name);
        let _ = writeln!(out, "{c}image: {image}");
        if self.rng.chance(60) {
            let policy = self.rng.pick(&["Always", "IfNotPresent"]);
            let _ = writeln!(out, "{c}imagePullPolicy: {policy}");
        }
        if init {
            let _ = writeln!(
                out,
                "{c}command: [\"/bin/sh\", \"-c\"]\n{c}args:\n{c}- |\n{c}  set -eu\n{c}  /app/migrate --database \"$DATABASE_URL\" up"
            );
        } else if self.rng.chance(30) {
            let _ = writeln!(
                out,
                "{c}args: [\"--port={}\", \"--log-format=json\"]",
                app.port + index as u64
            );
        }
        let serving = !init && !matches!(app.workload, Workload::CronJob | Workload::Job);
        if serving {
            let _ = writeln!(
                out,
                "{c}ports:\n{c}- name: {}\n{c}  containerPort: {}\n{c}  protocol: TCP",
                if index == 0 { "http" } else { "aux" },
                app.port + index as u64
            );
            if self.rng.chance(30) {
                let _ = writeln!(
                    out,
                    "{c}- name: metrics\n{c}  containerPort: {}",
                    9100 + index
                );
            }
            if app.care == Care::Sloppy && self.rng.chance(10) {
                let _ = writeln!(out, "{c}  hostPort: {}", 9100 + index);
            }
        }
        // Env: the first container anchors its list, later ones sometimes reuse it.
        let env_count = self.rng.range(0, self.shape.env_max);
        if index > 0 && self.rng.chance(30) && out.contains("env: &common-env") {
            let _ = writeln!(out, "{c}env: *common-env");
        } else if env_count > 0 {
            let anchor = if index == 0 && !init && self.rng.chance(50) {
                " &common-env"
            } else {
                ""
            };
            let _ = writeln!(out, "{c}env:{anchor}");
            for i in 0..env_count {
                let key = format!("{}_{}", self.rng.pick(WORDS).to_uppercase(), i);
                match self.rng.range(0, 9) {
                    0 => {
                        let _ = writeln!(
                            out,
                            "{c}- name: {key}\n{c}  valueFrom:\n{c}    secretKeyRef:\n{c}      name: {}-secrets\n{c}      key: {}",
                            app.name,
                            key.to_lowercase()
                        );
                    }
                    1 => {
                        let _ = writeln!(
                            out,
                            "{c}- name: POD_NAME\n{c}  valueFrom:\n{c}    fieldRef:\n{c}      fieldPath: metadata.name"
                        );
                    }
                    2 => {
                        let _ = writeln!(
                            out,
                            "{c}- name: {key}_TIMEOUT\n{c}  value: \"{}s\" # seconds",
                            self.rng.range(1, 120)
                        );
                    }
                    3 if app.care == Care::Sloppy => {
                        let _ = writeln!(
                            out,
                            "{c}- name: API_TOKEN_{i}\n{c}  value: \"{}\"",
                            self.rng.hex(24)
                        );
                    }
                    _ => {
                        let _ = writeln!(
                            out,
                            "{c}- name: {key}\n{c}  value: \"{}\"",
                            self.rng.pick(&[
                                "true",
                                "1",
                                "json",
                                "https://example.com",
                                "eu-west-1"
                            ])
                        );
                    }
                }
            }
        }
        if app.has_config && index == 0 && self.rng.chance(50) {
            let _ = writeln!(
                out,
                "{c}envFrom:\n{c}- configMapRef:\n{c}    name: {}-config",
                app.name
            );
        }
        // Resources: hardened sets all four, typical most, sloppy few.
        let (req, lim) = match app.care {
            Care::Hardened => (true, true),
            Care::Typical => (self.rng.chance(85), self.rng.chance(55)),
            Care::Sloppy => (self.rng.chance(30), self.rng.chance(15)),
        };
        if req || lim {
            let _ = writeln!(out, "{c}resources:");
            if req {
                let _ = writeln!(
                    out,
                    "{c}  requests:\n{c}    cpu: {}m\n{c}    memory: {}Mi",
                    self.rng.range(1, 20) * 50,
                    self.rng.range(1, 16) * 64
                );
            }
            if lim {
                let cpu = if self.rng.chance(50) {
                    format!("\n{c}    cpu: \"{}\"", self.rng.range(1, 4))
                } else {
                    String::new()
                };
                let _ = writeln!(
                    out,
                    "{c}  limits:{cpu}\n{c}    memory: {}Mi",
                    self.rng.range(2, 32) * 64
                );
            }
        }
        if serving && !(app.care == Care::Sloppy && self.rng.chance(60)) {
            let port = if index == 0 {
                "http".to_owned()
            } else {
                (app.port + index as u64).to_string()
            };
            if self.rng.chance(70) {
                let _ = writeln!(
                    out,
                    "{c}livenessProbe:\n{c}  httpGet:\n{c}    path: /healthz\n{c}    port: {port}\n{c}  initialDelaySeconds: {}\n{c}  periodSeconds: 10",
                    self.rng.range(0, 30)
                );
            } else {
                let _ = writeln!(
                    out,
                    "{c}livenessProbe:\n{c}  tcpSocket:\n{c}    port: {port}\n{c}  failureThreshold: 3"
                );
            }
            if self.rng.chance(80) {
                let _ = writeln!(
                    out,
                    "{c}readinessProbe:\n{c}  httpGet:\n{c}    path: /ready\n{c}    port: {port}\n{c}  periodSeconds: 5"
                );
            }
            if self.rng.chance(15) {
                let _ = writeln!(
                    out,
                    "{c}startupProbe:\n{c}  exec:\n{c}    command: [cat, /tmp/healthy]\n{c}  failureThreshold: 30"
                );
            }
        }
        match app.care {
            Care::Hardened => {
                let _ = writeln!(
                    out,
                    "{c}securityContext:\n{c}  allowPrivilegeEscalation: false\n{c}  readOnlyRootFilesystem: true\n{c}  runAsNonRoot: true\n{c}  capabilities:\n{c}    drop: [ALL]"
                );
            }
            Care::Typical if self.rng.chance(50) => {
                let _ = writeln!(
                    out,
                    "{c}securityContext:\n{c}  allowPrivilegeEscalation: false\n{c}  capabilities:\n{c}    drop:\n{c}    - ALL"
                );
                if self.rng.chance(10) {
                    let _ = writeln!(out, "{c}    add:\n{c}    - NET_BIND_SERVICE");
                }
            }
            Care::Sloppy if self.rng.chance(30) => {
                let _ = writeln!(
                    out,
                    "{c}securityContext:\n{c}  privileged: true\n{c}  runAsUser: 0\n{c}  capabilities:\n{c}    add: [SYS_ADMIN, NET_ADMIN]"
                );
            }
            _ => {}
        }
        let _ = writeln!(
            out,
            "{c}volumeMounts:\n{c}- name: tmp\n{c}  mountPath: /tmp"
        );
        if app.has_config && index == 0 {
            let _ = writeln!(
                out,
                "{c}- name: config\n{c}  mountPath: /etc/{}\n{c}  readOnly: true",
                app.name
            );
        }
    }

    fn service(&mut self, app: &App) -> String {
        let mut out = String::from("apiVersion: v1\nkind: Service\n");
        self.metadata(&mut out, app, &app.name, false);
        out.push_str("spec:\n");
        if app.workload == Workload::StatefulSet {
            out.push_str("  clusterIP: None\n");
        } else if self.rng.chance(15) {
            let _ = writeln!(
                out,
                "  type: {}",
                self.rng.pick(&["LoadBalancer", "NodePort"])
            );
        }
        // A few services select labels no pod carries: a typo that auditors catch.
        let selected = if self.rng.chance(3) {
            format!("{}-old", app.name)
        } else {
            app.name.clone()
        };
        let _ = writeln!(out, "  selector:\n    app.kubernetes.io/name: {selected}");
        let _ = writeln!(
            out,
            "  ports:\n  - name: http\n    port: 80\n    targetPort: http\n    protocol: TCP"
        );
        if self.rng.chance(30) {
            out.push_str("  - name: metrics\n    port: 9100\n    targetPort: metrics\n");
        }
        out
    }

    fn ingress(&mut self, app: &App) -> String {
        let mut out = String::from("apiVersion: networking.k8s.io/v1\nkind: Ingress\n");
        self.metadata(&mut out, app, &app.name, false);
        let host = format!("{}.{}.example.com", app.name, app.team);
        out.push_str("spec:\n  ingressClassName: nginx\n");
        if app.care != Care::Sloppy {
            let _ = writeln!(
                out,
                "  tls:\n  - hosts:\n    - {host}\n    secretName: {}-tls",
                app.name
            );
        }
        let _ = writeln!(
            out,
            "  rules:\n  - host: {host}\n    http:\n      paths:\n      - path: /\n        pathType: Prefix\n        backend:\n          service:\n            name: {}\n            port:\n              name: http",
            app.name
        );
        out
    }

    fn hpa(&mut self, app: &App) -> String {
        let mut out = String::from("apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\n");
        self.metadata(&mut out, app, &app.name, false);
        let min = self.rng.range(1, 4);
        let _ = writeln!(
            out,
            "spec:\n  scaleTargetRef:\n    apiVersion: apps/v1\n    kind: Deployment\n    name: {}\n  minReplicas: {min}\n  maxReplicas: {}",
            app.name,
            min + self.rng.range(0, 20)
        );
        let _ = writeln!(
            out,
            "  metrics:\n  - type: Resource\n    resource:\n      name: cpu\n      target:\n        type: Utilization\n        averageUtilization: {}",
            self.rng.range(50, 90)
        );
        out
    }

    fn pdb(&mut self, app: &App) -> String {
        let mut out = String::from("apiVersion: policy/v1\nkind: PodDisruptionBudget\n");
        self.metadata(&mut out, app, &app.name, false);
        out.push_str("spec:\n");
        if self.rng.chance(60) {
            let _ = writeln!(out, "  minAvailable: {}", self.rng.pick(&["1", "50%", "2"]));
        } else {
            let _ = writeln!(
                out,
                "  maxUnavailable: {}",
                self.rng.pick(&["1", "0", "25%"])
            );
        }
        let _ = writeln!(
            out,
            "  selector:\n    matchLabels:\n      app.kubernetes.io/name: {}",
            app.name
        );
        out
    }

    fn network_policy(&mut self, app: &App) -> String {
        let mut out = String::from("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n");
        self.metadata(&mut out, app, &app.name, false);
        let _ = writeln!(
            out,
            "spec:\n  podSelector:\n    matchLabels:\n      app.kubernetes.io/name: {}",
            app.name
        );
        let egress = self.rng.chance(50);
        out.push_str(if egress {
            "  policyTypes: [Ingress, Egress]\n"
        } else {
            "  policyTypes:\n  - Ingress\n"
        });
        let _ = writeln!(
            out,
            "  ingress:\n  - from:\n    - namespaceSelector:\n        matchLabels:\n          kubernetes.io/metadata.name: {}\n    ports:\n    - port: {}\n      protocol: TCP",
            app.namespace, app.port
        );
        if egress {
            out.push_str("  egress:\n  - to:\n    - ipBlock:\n        cidr: 10.0.0.0/8\n  - ports: # DNS\n    - port: 53\n      protocol: UDP\n");
        }
        out
    }

    fn role(&mut self, app: &App) -> String {
        let mut out = String::from("apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\n");
        self.metadata(&mut out, app, &app.name, false);
        out.push_str(
            "rules:\n- apiGroups: [\"\"]\n  resources: [configmaps]\n  verbs: [get, list, watch]\n",
        );
        if self.rng.chance(30) {
            out.push_str("- apiGroups: [\"\"]\n  resources: [secrets]\n  verbs: [get]\n");
        }
        if app.care == Care::Sloppy && self.rng.chance(40) {
            out.push_str("- apiGroups: [\"*\"]\n  resources: [\"*\"]\n  verbs: [\"*\"]\n");
        }
        out
    }

    fn role_binding(&mut self, app: &App) -> String {
        let mut out = String::from("apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\n");
        self.metadata(&mut out, app, &app.name, false);
        let _ = writeln!(
            out,
            "roleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: Role\n  name: {}\nsubjects:\n- kind: ServiceAccount\n  name: {}\n  namespace: {}",
            app.name,
            if app.has_account {
                app.name.as_str()
            } else {
                "default"
            },
            app.namespace
        );
        out
    }
}
