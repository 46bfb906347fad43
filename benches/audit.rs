//! Throughput of parsing and auditing a generated corpus, in documents per second.
//!
//! `cargo bench --bench audit`. Four cases over the same corpus (see `corpus/mod.rs`, fixed
//! seed):
//!
//! - `parse/1-thread`: every file through `ManifestFile::parse`, on one thread;
//! - `parse+audit/1-thread`: the same, then one `audit` over all files, inside a one-thread rayon
//!   pool so the engine's internal `par_iter` stays on that thread;
//! - `parse/N-threads`, `parse+audit/N-threads`: files parsed with a rayon `par_iter` on the
//!   global pool (one thread per core), then the audit, which spreads objects over the same pool.
//!
//! The audit is one call over the whole corpus, as the CLI does for a repository: cross-object
//! rules see every object. Criterion reports `thrpt` in elements per second; an element is one
//! YAML document. `KUBEWARD_BENCH_DOCS=n` changes the corpus size (default 12,000) to study
//! scaling; published figures use the default.

mod corpus;

/// The binary's allocator (src/main.rs), so the figures are what `kubeward` does.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use kubeward::audit::{Registry, audit};
use kubeward::config::Policy;
use kubeward::manifest::ManifestFile;
use kubeward::yaml::Limits;
use rayon::prelude::*;

use corpus::{Corpus, SEED, TARGET_DOCUMENTS};

fn parse_serial(corpus: &Corpus) -> Vec<ManifestFile> {
    corpus
        .files
        .iter()
        .map(|f| ManifestFile::parse(f.path.as_str(), &f.text, Limits::default()))
        .collect()
}

fn parse_parallel(corpus: &Corpus) -> Vec<ManifestFile> {
    corpus
        .files
        .par_iter()
        .map(|f| ManifestFile::parse(f.path.as_str(), &f.text, Limits::default()))
        .collect()
}

fn target_documents() -> usize {
    std::env::var("KUBEWARD_BENCH_DOCS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(TARGET_DOCUMENTS)
}

/// Checks the corpus is what the figures claim: every document parses into an object, no file
/// is skipped, and the audit has something to say.
fn check_corpus(corpus: &Corpus, policy: &Policy) {
    let files = parse_serial(corpus);
    let mut documents = 0;
    for file in &files {
        let docs = file
            .content
            .as_ref()
            .unwrap_or_else(|reason| panic!("{} skipped: {reason:?}", file.path));
        documents += docs.len();
        if let Some((_, error)) = file.parse_errors().next() {
            panic!("{} does not parse: {error}", file.path);
        }
    }
    assert_eq!(
        documents, corpus.documents,
        "the parser sees every generated document"
    );
    let result = audit(&files, policy);
    assert_eq!(
        result.stats.objects, corpus.documents,
        "every document is one object"
    );
    let findings: usize = result.stats.findings.values().sum();
    eprintln!("corpus (seed {SEED:#x}): {}", corpus.summary());
    eprintln!(
        "audit: {} rules, {} objects, {findings} findings, {} exempted; rayon global pool: {} threads",
        result.stats.rules,
        result.stats.objects,
        result.stats.exempted,
        rayon::current_num_threads()
    );
}

fn benches(c: &mut Criterion) {
    let corpus = corpus::generate(SEED, target_documents());
    let registry = Registry::builtin().expect("built-in rules load");
    let policy = Policy::defaults(&registry);
    check_corpus(&corpus, &policy);

    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("a one-thread pool");
    let all = rayon::current_num_threads();

    let mut group = c.benchmark_group("corpus");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        // One iteration takes a good part of a second: flat sampling keeps it to ~10 of them.
        .sampling_mode(SamplingMode::Flat)
        .throughput(Throughput::Elements(corpus.documents as u64));

    group.bench_function("parse/1-thread", |b| {
        b.iter(|| one.install(|| black_box(parse_serial(black_box(&corpus)))))
    });
    group.bench_function("parse+audit/1-thread", |b| {
        b.iter(|| {
            one.install(|| {
                let files = parse_serial(black_box(&corpus));
                black_box(audit(&files, &policy))
            })
        })
    });
    group.bench_function(format!("parse/{all}-threads"), |b| {
        b.iter(|| black_box(parse_parallel(black_box(&corpus))))
    });
    group.bench_function(format!("parse+audit/{all}-threads"), |b| {
        b.iter(|| {
            let files = parse_parallel(black_box(&corpus));
            black_box(audit(&files, &policy))
        })
    });
    group.finish();
}

criterion_group!(audit_benches, benches);
criterion_main!(audit_benches);
