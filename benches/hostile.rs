//! Hostile input through a real `kubeward audit` process (release build): the alias file of
//! a hostile pull request against the per-file parse budgets, with same-run baselines.
//!
//! `cargo bench --bench hostile` prints, for each case, the child's wall time (fastest, median
//! and slowest of `KUBEWARD_HOSTILE_RUNS` runs, default 5) and its peak resident memory. Peak
//! memory is the kernel's `ru_maxrss` for that child (`benches/measure/`).
//!
//! Cases, each checked for the outcome it claims before its figures are printed:
//! - `floor`: one small manifest, the process's own cost;
//! - `benign`: as many documents as the attack (20,000 ConfigMaps without aliases, similar
//!   size; the document budget raised to let them in): what a real file that large costs;
//! - `attack`: the hostile file, 20,000 documents whose aliases expand to 8,331 nodes each,
//!   under the per-document alias limit (10,000), default budgets: one `parseError`;
//! - `at-node-budget`, `at-scalar-budget`: the largest files of that kind the default budgets
//!   accept, fully audited: the most memory one file can take;
//! - `unbudgeted` (only with `KUBEWARD_HOSTILE_UNBUDGETED=1`: it needs about 6 GiB): the attack
//!   with the per-file budgets raised out of reach, as before they existed.
//!
//! `KUBEWARD_HOSTILE_DOCS` (default 20,000) changes the attack's document count.

mod measure;

use std::path::{Path, PathBuf};
use std::time::Duration;

use measure::Sample;

use kubeward::yaml::{Limits, parse_file};
use serde_json::Value;

/// One measured run of `kubeward ARGS` in `dir`; its JSON report is left in `dir/out.json`.
fn run_once(dir: &Path, args: &[&str]) -> Sample {
    measure::run(measure::kubeward(), args, dir, &dir.join("out.json"))
}

struct Case {
    name: &'static str,
    file: PathBuf,
    policy: Option<String>,
    check: fn(&Value, i32),
}

fn report(dir: &Path) -> Value {
    let text = std::fs::read_to_string(dir.join("out.json")).expect("report");
    serde_json::from_str(&text).expect("the report is JSON")
}

fn measure(case: &Case, runs: usize) {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir(dir.path().join(".git")).expect("mkdir .git");
    let mut args = vec!["audit", "--format", "json"];
    let policy_path = dir.path().join("policy.yaml");
    if let Some(policy) = &case.policy {
        std::fs::write(&policy_path, policy).expect("policy");
        args.push("--config");
        args.push(policy_path.to_str().expect("UTF-8 temp path"));
    }
    args.push(case.file.to_str().expect("UTF-8 temp path"));
    let mut samples: Vec<Sample> = (0..runs).map(|_| run_once(dir.path(), &args)).collect();
    let last = samples.last().expect("at least one run");
    (case.check)(&report(dir.path()), last.exit);
    samples.sort_by_key(|s| s.wall);
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let mib = |kib: u64| kib as f64 / 1024.0;
    let peak = samples.iter().map(|s| s.maxrss_kib).max().unwrap_or(0);
    let low = samples.iter().map(|s| s.maxrss_kib).min().unwrap_or(0);
    let bytes = std::fs::metadata(&case.file).map_or(0, |m| m.len());
    println!(
        "{:<17} {:>9} bytes  wall {:>9.1} / {:>9.1} / {:>9.1} ms  peak RSS {:>7.1}-{:.1} MiB  exit {}",
        case.name,
        bytes,
        ms(samples[0].wall),
        ms(samples[samples.len() / 2].wall),
        ms(samples[samples.len() - 1].wall),
        mib(low),
        mib(peak),
        samples[0].exit,
    );
}

/// One document of the attack: aliases copy 8,331 nodes into it (10·11 + 9·111 + 7·1,000 +
/// 2·111), under the per-document limit of 10,000.
fn attack_document(i: usize) -> String {
    format!(
        "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: lol-{i:05}\n  namespace: prod\ndata:\n\
         \x20 a: &a [x, x, x, x, x, x, x, x, x, x]\n\
         \x20 b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n\
         \x20 c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n\
         \x20 d: [*c, *c, *c, *c, *c, *c, *c]\n\
         \x20 e: [*b, *b]\n"
    )
}

/// A ConfigMap of about the attack document's size, with no alias.
fn benign_document(i: usize) -> String {
    format!(
        "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app-{i:05}\n  namespace: prod\ndata:\n\
         \x20 LOG_LEVEL: info\n  FEATURE_FLAGS: search,checkout,recommendations\n\
         \x20 UPSTREAM: http://backend.prod.svc.cluster.local:8080/api/v1\n\
         \x20 RETRIES: \"3\"\n  TIMEOUT: 30s\n  REGION: eu-west-1\n  OWNER: team-{}\n",
        i % 48
    )
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write input");
    path
}

fn parse_error_for(report: &Value, key: &str) -> bool {
    report["findings"].as_array().is_some_and(|f| {
        f.len() == 1
            && f[0]["rule"] == "parseError"
            && f[0]["message"].as_str().is_some_and(|m| m.contains(key))
    })
}

fn no_parse_error(report: &Value) -> bool {
    report["findings"]
        .as_array()
        .is_some_and(|f| f.iter().all(|f| f["rule"] != "parseError"))
}

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    if measure::wrapper_if_asked() {
        return;
    }
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        return;
    }
    let runs = env_number("KUBEWARD_HOSTILE_RUNS", 5).max(1);
    let documents = env_number("KUBEWARD_HOSTILE_DOCS", 20_000);
    let inputs = tempfile::tempdir().expect("temp dir");
    let dir = inputs.path();

    let attack: String = (0..documents).map(attack_document).collect();
    let benign: String = (0..documents).map(benign_document).collect();
    // As many attack documents as fit under the default node budget.
    let limits = Limits::default();
    let per_document = parse_file(&attack_document(0), limits).weight.nodes;
    let fitting = limits.max_file_nodes / per_document;
    let at_nodes: String = (0..fitting).map(attack_document).collect();
    // The default scalar budget is 64 MiB: one 64 KiB string copied 1,000 times by aliases.
    let at_bytes = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: big\n  namespace: prod\ndata:\n  s: &s {}\n  l: [{}]\n",
        "x".repeat(65_536),
        vec!["*s"; 1_000].join(", ")
    );
    let cases = [
        Case {
            name: "floor",
            file: write(dir, "floor.yaml", &benign_document(0)),
            policy: None,
            check: |r, _| assert!(no_parse_error(r), "{r}"),
        },
        Case {
            name: "benign",
            file: write(dir, "benign.yaml", &benign),
            // As many documents as the attack, over the default document budget (10,000).
            policy: Some(format!("limits: {{maxFileDocuments: {documents}}}\n")),
            check: |r, _| {
                assert!(no_parse_error(r), "{r}");
                assert!(
                    r["stats"]["objects"].as_u64() > Some(1_000),
                    "{}",
                    r["stats"]
                );
            },
        },
        Case {
            name: "attack",
            file: write(dir, "attack.yaml", &attack),
            policy: None,
            check: |r, exit| {
                assert!(parse_error_for(r, "`limits.maxFileNodes`"), "{r}");
                assert_eq!(exit, 3, "parseError is danger by default");
            },
        },
        Case {
            name: "at-node-budget",
            file: write(dir, "at-nodes.yaml", &at_nodes),
            policy: None,
            check: |r, _| {
                assert!(no_parse_error(r), "{r}");
                assert!(r["stats"]["objects"].as_u64() > Some(100), "{}", r["stats"]);
            },
        },
        Case {
            name: "at-scalar-budget",
            file: write(dir, "at-bytes.yaml", &at_bytes),
            policy: None,
            check: |r, _| assert!(no_parse_error(r), "{r}"),
        },
    ];
    eprintln!(
        "attack: {documents} documents, {} bytes, each {per_document} nodes (aliases and anchors' \
         copies counted); at-node-budget: {fitting} of them; {runs} runs per case; wall fastest / \
         median / slowest",
        attack.len()
    );
    for case in &cases {
        measure(case, runs);
    }
    if std::env::var_os("KUBEWARD_HOSTILE_UNBUDGETED").is_some() {
        // Out of reach, and still an integer YAML reads as one.
        let max = 1_000_000_000_000u64;
        measure(
            &Case {
                name: "unbudgeted",
                file: cases[2].file.clone(),
                policy: Some(format!(
                    "limits: {{maxFileNodes: {max}, maxFileScalarBytes: {max}, maxFileDocuments: {max}}}\n"
                )),
                check: |r, _| assert!(no_parse_error(r), "{}", r["stats"]),
            },
            1,
        );
    }
}
