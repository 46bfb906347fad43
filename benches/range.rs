//! Reviewing a long range of a big repository: 7,000 changed files, 3,000 of them manifests
//! (some renamed), the rest source files and docs, as years of history look.
//!
//! `cargo bench --bench range` builds the repository (seeded), then times, in the same run,
//! `git diff -M --stat` of the range (the baseline: git's own rename detection over every
//! changed file) and `kubeward review` of it (`kubeward::pipeline::review`: diff, parse,
//! audit, plan). It prints the median of `KUBEWARD_RANGE_RUNS` runs (default 5) of each and
//! their ratio; the goal is at most 3×.

mod corpus;

/// The binary's allocator (src/main.rs), so the figures are what `kubeward` does.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::time::{Duration, Instant};

use kubeward::git::{Repository, build};
use kubeward::owners::Flavor;
use kubeward::pipeline::{ReviewOptions, Revisions, review};

const MANIFESTS: usize = 3_000;
const OTHERS: usize = 4_000;
/// Every tenth manifest moves to another folder in the range.
const RENAMED_EVERY: usize = 10;

fn source_file(i: usize, version: usize) -> String {
    let mut text = format!("// service {i}, revision {version}\npackage svc{i}\n\n");
    for f in 0..40 {
        text.push_str(&format!(
            "func Handler{f}(w http.ResponseWriter, r *http.Request) {{\n\tlog.Printf(\"svc {i} handler {f} v{version}\")\n}}\n\n"
        ));
    }
    text
}

fn main() {
    let runs: usize = std::env::var("KUBEWARD_RANGE_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let mut corpus = corpus::generate(corpus::SEED, 10_000);
    while corpus.files.len() < MANIFESTS {
        corpus = corpus::generate(corpus::SEED, corpus.documents * 2);
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let git = git2::Repository::init_bare(dir.path()).expect("init");
    let mut base: Vec<(String, Vec<u8>)> = Vec::new();
    let mut head: Vec<(String, Vec<u8>)> = Vec::new();
    for (i, f) in corpus.files.iter().take(MANIFESTS).enumerate() {
        let path = format!("team-{:02}/{}", i % 40, f.path);
        base.push((path.clone(), f.text.clone().into_bytes()));
        // Every manifest changes (a label bump); some also move.
        let changed = f
            .text
            .replacen("metadata:", "metadata:\n  labels: {revision: \"2\"}", 1);
        let head_path = if i % RENAMED_EVERY == 0 {
            format!("moved/{path}")
        } else {
            path
        };
        head.push((head_path, changed.into_bytes()));
    }
    for i in 0..OTHERS {
        let path = format!("src/svc{:03}/handler{i}.go", i % 200);
        base.push((path.clone(), source_file(i, 1).into_bytes()));
        head.push((path, source_file(i, 2).into_bytes()));
    }
    let base_refs: Vec<(&str, &[u8])> = base
        .iter()
        .map(|(p, c)| (p.as_str(), c.as_slice()))
        .collect();
    let head_refs: Vec<(&str, &[u8])> = head
        .iter()
        .map(|(p, c)| (p.as_str(), c.as_slice()))
        .collect();
    let base_oid =
        build::commit(&git, Some("refs/heads/main"), &[], &base_refs, "base").expect("base");
    let head_oid = build::commit(
        &git,
        Some("refs/heads/change"),
        &[base_oid],
        &head_refs,
        "years",
    )
    .expect("head");
    println!(
        "range: {} changed files ({MANIFESTS} manifests, every {RENAMED_EVERY}th renamed; {OTHERS} others), {} documents",
        MANIFESTS + OTHERS,
        corpus
            .files
            .iter()
            .take(MANIFESTS)
            .map(|f| f.documents)
            .sum::<usize>()
    );

    let git_diff = || {
        let started = Instant::now();
        let out = std::process::Command::new("git")
            .arg("--git-dir")
            .arg(dir.path())
            .args(["diff", "-M", "--stat"])
            .arg(base_oid.to_string())
            .arg(head_oid.to_string())
            .output()
            .expect("git runs");
        assert!(out.status.success(), "git diff failed");
        started.elapsed()
    };
    let repo = Repository::open(dir.path()).expect("open");
    let revisions = Revisions::resolve(&repo, "main", "change").expect("revisions");
    let options = ReviewOptions {
        forge: Flavor::GitHub,
        config_override: None,
        fail_on: None,
        budgets: Default::default(),
        render: None,
        progress: None,
        views: None,
    };
    let kubeward_review = || {
        let started = Instant::now();
        let (plan, timings) = review(&repo, &revisions, &options).expect("review");
        (started.elapsed(), plan, timings)
    };
    // Warm the object database's caches for both.
    git_diff();
    let (_, plan, _) = kubeward_review();
    assert!(!plan.incomplete, "the range is reviewed in full");
    let median = |mut v: Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let mut git_times = Vec::new();
    let mut review_times = Vec::new();
    let mut last = None;
    for _ in 0..runs {
        git_times.push(git_diff());
        let (t, _, timings) = kubeward_review();
        review_times.push(t);
        last = Some(timings);
    }
    let (g, r) = (median(git_times), median(review_times));
    println!(
        "git diff -M --stat   median {:>8.0} ms",
        g.as_secs_f64() * 1e3
    );
    println!(
        "kubeward review      median {:>8.0} ms",
        r.as_secs_f64() * 1e3
    );
    if let Some(t) = last {
        println!(
            "  of which: git {:.0} ms, parse {:.0} ms, audit {:.0} ms, plan {:.0} ms",
            t.git.as_secs_f64() * 1e3,
            t.parse.as_secs_f64() * 1e3,
            t.audit.as_secs_f64() * 1e3,
            t.plan.as_secs_f64() * 1e3
        );
    }
    println!(
        "ratio {:.2}× (goal: at most 3×); {} new findings",
        r.as_secs_f64() / g.as_secs_f64(),
        plan.new_findings.len()
    );
}
