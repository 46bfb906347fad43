//! A review of a large repository: 5,000 manifest files, a change touching 20 of them.
//!
//! `cargo bench --bench review`. Measures the whole local pipeline (`kubeward review`: git,
//! parse, audit, plan) and prints where the time goes. Every distinct blob is parsed once, whichever
//! revisions and paths hold it: the run asserts that the parse count equals the number of distinct
//! manifest blobs (5,000 + the 20 changed ones), so untouched files are never parsed twice.

mod corpus;

/// The binary's allocator (src/main.rs), so the figures are what `kubeward` does.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::time::Duration;

use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use kubeward::git::{Repository, build};
use kubeward::owners::Flavor;
use kubeward::pipeline::{ReviewOptions, Revisions, Timings, review};

const FILES: usize = 5_000;
const CHANGED: usize = 20;

struct Fixture {
    _dir: tempfile::TempDir,
    repo: Repository,
    revisions: Revisions,
}

fn fixture() -> Fixture {
    // Enough documents for 5,000 files, from the seeded generator.
    let mut corpus = corpus::generate(corpus::SEED, 16_000);
    while corpus.files.len() < FILES {
        corpus = corpus::generate(corpus::SEED, corpus.documents * 2);
    }
    let files: Vec<(String, String)> = corpus
        .files
        .iter()
        .take(FILES)
        .enumerate()
        .map(|(i, f)| (format!("team-{:02}/{}", i % 40, f.path), f.text.clone()))
        .collect();
    let dir = tempfile::tempdir().expect("temp dir");
    let git = git2::Repository::init_bare(dir.path()).expect("init");
    let as_refs = |files: &[(String, String)]| -> Vec<(String, Vec<u8>)> {
        files
            .iter()
            .map(|(p, t)| (p.clone(), t.as_bytes().to_vec()))
            .collect()
    };
    let base_files = as_refs(&files);
    let base_refs: Vec<(&str, &[u8])> = base_files
        .iter()
        .map(|(p, c)| (p.as_str(), c.as_slice()))
        .collect();
    let base = build::commit(&git, Some("refs/heads/main"), &[], &base_refs, "base").expect("base");
    // The change: 20 files, spread over the tree, each gaining a risky workload.
    let mut head_files = base_files.clone();
    for (i, (path, content)) in head_files
        .iter_mut()
        .enumerate()
        .filter(|(i, _)| i % (FILES / CHANGED) == 0)
        .take(CHANGED)
    {
        content.extend_from_slice(
            format!(
                "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: debug-{i}\n  namespace: bench\nspec:\n  hostNetwork: true\n  containers:\n    - name: shell\n      image: busybox:latest\n      securityContext:\n        privileged: true\n"
            )
            .as_bytes(),
        );
        let _ = path;
    }
    let head_refs: Vec<(&str, &[u8])> = head_files
        .iter()
        .map(|(p, c)| (p.as_str(), c.as_slice()))
        .collect();
    let head = build::commit(
        &git,
        Some("refs/heads/change"),
        &[base],
        &head_refs,
        "change",
    )
    .expect("head");
    let repo = Repository::open(dir.path()).expect("open");
    Fixture {
        _dir: dir,
        repo,
        revisions: Revisions {
            merge_base: base,
            head,
            base_tip: base,
        },
    }
}

fn run(f: &Fixture) -> Timings {
    let (plan, timings) = review(
        &f.repo,
        &f.revisions,
        &ReviewOptions {
            forge: Flavor::GitHub,
            config_override: None,
            fail_on: None,
            budgets: Default::default(),
            render: None,
            progress: None,
            views: None,
        },
    )
    .expect("review");
    assert!(
        plan.counts.new.danger >= CHANGED,
        "the change's findings are found"
    );
    timings
}

fn benches(c: &mut Criterion) {
    let fixture = fixture();
    let first = run(&fixture);
    assert_eq!(
        first.files_parsed,
        FILES + CHANGED,
        "each distinct blob is parsed exactly once"
    );
    // Where the time goes, averaged over a few runs.
    let runs = 5;
    let mut total = Timings::default();
    for _ in 0..runs {
        let t = run(&fixture);
        total.git += t.git;
        total.parse += t.parse;
        total.audit += t.audit;
        total.plan += t.plan;
    }
    let sum = (total.git + total.parse + total.audit + total.plan).as_secs_f64();
    let share = |d: Duration| 100.0 * d.as_secs_f64() / sum;
    println!(
        "review of {FILES} files, {CHANGED} changed ({} files listed, {} distinct blobs parsed once): {:.0} ms per review; git {:.0}%, parse {:.0}%, audit {:.0}%, plan {:.0}%",
        first.files_listed,
        first.files_parsed,
        1000.0 * sum / runs as f64,
        share(total.git),
        share(total.parse),
        share(total.audit),
        share(total.plan),
    );
    let mut group = c.benchmark_group("review");
    group.sample_size(10);
    group.sampling_mode(SamplingMode::Flat);
    group.measurement_time(Duration::from_secs(20));
    group.bench_function("5000-files-20-changed", |b| b.iter(|| run(&fixture)));
    group.finish();
}

criterion_group!(review_benches, benches);
criterion_main!(review_benches);
