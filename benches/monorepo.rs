//! A platform team's monorepo through the real `kubeward` binary (release build): time and
//! peak memory of `audit` and `review` as the repository grows, against the bare parse of the
//! same files measured in the same run.
//!
//! `cargo bench --bench monorepo` generates the seeded corpus (`benches/corpus/`) at each size
//! of `KUBEWARD_MONOREPO_DOCS` (default `1000,5000,25000,100000` documents), writes it as a
//! folder and as a git repository, and measures one child process per case
//! (`benches/measure/`: wall time and the kernel's peak RSS of that process alone):
//!
//! - `floor`: this binary parsing every file with `saphyr-parser` and dropping the events, the
//!   least any YAML tool does with these bytes;
//! - `audit json|sarif|text`: `kubeward audit --format F` of the folder;
//! - `audit, one rule`: `--only hostPIDSet --format json`: the trees with almost no findings;
//! - `review, cold`: `kubeward review --format json` of a change to 5 files of the repository,
//!   every blob parsed;
//! - `review, warm store`: the same with `--view-store`, the store as a review of another change
//!   (to 5 other files) left it, restored before each of `KUBEWARD_MONOREPO_WARM_RUNS` (default
//!   5) runs; the median is reported;
//! - `4 reviews at once`: four of those processes started together, cold and warm: the slowest
//!   one's time, the sum of the four peaks (an upper bound: each peak counts the pages the four
//!   share, the binary's and the repository's, and the peaks need not coincide), and the peak
//!   of the four's summed PSS sampled every 2 ms (shared pages counted once: what they held
//!   at once, as the pod's memory limit counts it).
//!
//! `KUBEWARD_MONOREPO_KEEP=DIR` keeps each size's folder and repository under `DIR/<size>/`.
//! `KUBEWARD_MONOREPO_RUNS` (default 1) runs each case that many times and keeps the fastest.
//! `KUBEWARD_MONOREPO_BASELINE=PATH` also runs the audit cases with another `kubeward` binary
//! (an earlier build), in the same run, for a before/after ratio, and checks that it wrote the
//! same reports byte for byte. `KUBEWARD_MONOREPO_SHAPE=typical` generates the audit bench's
//! corpus shape instead (`Shape::TYPICAL`; 12,000 documents is that bench's corpus).
//! Figures and the command are in docs/benchmarks.md ("A monorepo").

mod corpus;
mod measure;

use std::path::Path;
use std::time::Instant;

use kubeward::git::build;

const CHANGED: usize = 5;

fn env_list(name: &str, default: &str) -> Vec<usize> {
    std::env::var(name)
        .unwrap_or_else(|_| default.to_owned())
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect()
}

/// `--parse-floor DIR`: every `.yaml` file under DIR through the bare event parser; prints the
/// event count (so the work cannot be optimised away).
fn parse_floor(dir: &Path) {
    let mut events = 0u64;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(folder) = stack.pop() {
        for entry in std::fs::read_dir(&folder).expect("folder") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "yaml") {
                let text = std::fs::read_to_string(&path).expect("file");
                for event in saphyr_parser::Parser::new_from_str(&text) {
                    event.expect("valid YAML");
                    events += 1;
                }
            }
        }
    }
    println!("{events}");
}

/// The corpus's files with a team folder each, as a monorepo lays them out.
fn files_of(corpus: &corpus::Corpus) -> Vec<(String, Vec<u8>)> {
    corpus
        .files
        .iter()
        .enumerate()
        .map(|(i, f)| {
            (
                format!("team-{:02}/{}", i % 40, f.path),
                f.text.as_bytes().to_vec(),
            )
        })
        .collect()
}

/// Findings in a JSON report, counted without building it.
fn findings_in(report: &Path) -> usize {
    #[derive(serde::Deserialize)]
    struct Report {
        findings: Vec<serde::de::IgnoredAny>,
    }
    let file = std::fs::File::open(report).expect("report");
    let report: Report =
        serde_json::from_reader(std::io::BufReader::new(file)).expect("a JSON report");
    report.findings.len()
}

/// Copies a folder tree (the view store, to restore it between runs).
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("folder");
    for entry in std::fs::read_dir(from).expect("folder").flatten() {
        let path = entry.path();
        let target = to.join(entry.file_name());
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            std::fs::copy(&path, &target).expect("copy");
        }
    }
}

struct Row {
    label: String,
    sample: measure::Sample,
}

fn best(runs: usize, mut one: impl FnMut() -> measure::Sample) -> measure::Sample {
    (0..runs)
        .map(|_| one())
        .min_by_key(|s| s.wall)
        .expect("at least one run")
}

fn main() {
    if measure::wrapper_if_asked() {
        return;
    }
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--parse-floor") {
        parse_floor(Path::new(&args[2]));
        return;
    }
    // `cargo test --benches` runs this without `--bench`: one small size, as a check.
    let measuring = args.iter().any(|a| a == "--bench");
    let sizes = if measuring {
        env_list("KUBEWARD_MONOREPO_DOCS", "1000,5000,25000,100000")
    } else {
        vec![500]
    };
    let runs = env_list("KUBEWARD_MONOREPO_RUNS", "1")
        .first()
        .copied()
        .unwrap_or(1)
        .max(1);
    let warm_runs = env_list("KUBEWARD_MONOREPO_WARM_RUNS", "5")
        .first()
        .copied()
        .unwrap_or(5)
        .max(1);
    let me = std::env::current_exe().expect("own path");
    println!(
        "| documents | files | MB | findings | case | wall ms | peak RSS MiB | × floor time | × floor RSS |"
    );
    println!("|---:|---:|---:|---:|---|---:|---:|---:|---:|");
    let shape = match std::env::var("KUBEWARD_MONOREPO_SHAPE").as_deref() {
        Ok("typical") => corpus::Shape::TYPICAL,
        Ok("monorepo") | Err(_) => corpus::Shape::MONOREPO,
        Ok(other) => panic!("KUBEWARD_MONOREPO_SHAPE: `typical` or `monorepo`, not `{other}`"),
    };
    for docs in sizes {
        let started = Instant::now();
        let corpus = corpus::generate_shaped(corpus::SEED, docs, shape);
        let files = files_of(&corpus);
        let dir = match std::env::var_os("KUBEWARD_MONOREPO_KEEP") {
            // Kept for a closer look (`/usr/bin/time -v kubeward audit DIR/tree`, heap profiles).
            Some(keep) => {
                let keep = Path::new(&keep).join(docs.to_string());
                std::fs::create_dir_all(&keep).expect("the folder to keep");
                tempfile::Builder::new()
                    .disable_cleanup(true)
                    .tempdir_in(keep)
                    .expect("temp dir")
            }
            None => tempfile::tempdir().expect("temp dir"),
        };
        let tree = dir.path().join("tree");
        for (path, text) in &files {
            let file = tree.join(path);
            std::fs::create_dir_all(file.parent().expect("a folder")).expect("folders");
            std::fs::write(&file, text).expect("write");
        }
        // A repository root of its own, so no policy above the temporary folder is found.
        std::fs::create_dir(tree.join(".git")).expect(".git");
        let git_dir = dir.path().join("repo.git");
        let git = git2::Repository::init_bare(&git_dir).expect("init");
        let base_view: Vec<(&str, &[u8])> = files
            .iter()
            .map(|(p, c)| (p.as_str(), c.as_slice()))
            .collect();
        let base =
            build::commit(&git, Some("refs/heads/main"), &[], &base_view, "base").expect("base");
        let mut head_files = files.clone();
        let step = (head_files.len() / CHANGED).max(1);
        for (i, (_, content)) in head_files
            .iter_mut()
            .enumerate()
            .step_by(step)
            .take(CHANGED)
        {
            content.extend_from_slice(
                format!(
                    "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: debug-{i}\n  namespace: bench\nspec:\n  hostNetwork: true\n  containers:\n    - name: shell\n      image: busybox:latest\n      securityContext:\n        privileged: true\n"
                )
                .as_bytes(),
            );
        }
        let head_view: Vec<(&str, &[u8])> = head_files
            .iter()
            .map(|(p, c)| (p.as_str(), c.as_slice()))
            .collect();
        build::commit(
            &git,
            Some("refs/heads/change"),
            &[base],
            &head_view,
            "change",
        )
        .expect("head");
        // Another pull request, to other files: the view store warms on it, as the bot's store
        // warms on a repository's earlier pull requests.
        let mut other_files = files.clone();
        for (_, content) in other_files
            .iter_mut()
            .skip(step / 2)
            .step_by(step)
            .take(CHANGED)
        {
            content.extend_from_slice(
                b"---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: extra}\n",
            );
        }
        let other_view: Vec<(&str, &[u8])> = other_files
            .iter()
            .map(|(p, c)| (p.as_str(), c.as_slice()))
            .collect();
        build::commit(
            &git,
            Some("refs/heads/other"),
            &[base],
            &other_view,
            "other",
        )
        .expect("other");
        // Packed, as a fetched repository is: git2 wrote every object loose, and reading
        // 30,000 loose objects is a cost no bot's cache has.
        let packed = std::process::Command::new("git")
            .args(["-C", git_dir.to_str().expect("UTF-8 temp path")])
            .args(["repack", "-a", "-d", "-q"])
            .status()
            .is_ok_and(|s| s.success());
        if !packed {
            eprintln!("git repack failed: the repository's objects stay loose");
        }
        eprintln!(
            "{docs} documents: {} (set up in {:.1} s)",
            corpus.summary().split(';').next().unwrap_or(""),
            started.elapsed().as_secs_f64()
        );
        let out = dir.path().join("out");
        let tree_arg = tree.to_str().expect("UTF-8 temp path");
        let git_arg = git_dir.to_str().expect("UTF-8 temp path");
        let floor = best(runs, || {
            measure::run(&me, &["--parse-floor", tree_arg], dir.path(), &out)
        });
        assert_eq!(floor.exit, 0, "the floor parse failed");
        let mut rows = vec![Row {
            label: "floor (bare parse)".into(),
            sample: floor,
        }];
        let mut findings = 0;
        let mut binaries = vec![(measure::kubeward().to_path_buf(), "")];
        if let Some(before) = std::env::var_os("KUBEWARD_MONOREPO_BASELINE") {
            binaries.push((before.into(), ", baseline binary"));
        }
        for (binary, which) in &binaries {
            for (label, format) in [
                ("audit json", "json"),
                ("audit sarif", "sarif"),
                ("audit text", "text"),
            ] {
                let sample = best(runs, || {
                    measure::run(
                        binary,
                        &["audit", "--format", format, tree_arg],
                        &tree,
                        &out,
                    )
                });
                // 3: findings at or above failOn, which this corpus has.
                assert!(
                    matches!(sample.exit, 0 | 3),
                    "{label} exited {}",
                    sample.exit
                );
                let kept = dir.path().join(format!("report.{format}"));
                if which.is_empty() {
                    if format == "json" {
                        findings = findings_in(&out);
                    }
                    std::fs::rename(&out, &kept).expect("keep the report");
                } else {
                    // The baseline must have written the very same report.
                    let same = std::fs::read(&out).expect("report")
                        == std::fs::read(&kept).expect("report");
                    assert!(same, "{label}: the baseline binary's report differs");
                }
                rows.push(Row {
                    label: format!("{label}{which}"),
                    sample,
                });
            }
        }
        let one_rule = best(runs, || {
            measure::run(
                measure::kubeward(),
                &[
                    "audit",
                    "--only",
                    "hostPIDSet",
                    "--format",
                    "json",
                    tree_arg,
                ],
                &tree,
                &out,
            )
        });
        rows.push(Row {
            label: "audit, one rule".into(),
            sample: one_rule,
        });
        let review_args = |head: &'static str, store: Option<&str>| -> Vec<String> {
            let mut args: Vec<String> = [
                "review", "--repo", git_arg, "--base", "main", "--head", head, "--format", "json",
            ]
            .iter()
            .map(|a| (*a).to_owned())
            .collect();
            if let Some(store) = store {
                args.extend(["--view-store".to_owned(), store.to_owned()]);
            }
            args
        };
        let review_run = |args: &[String], out: &Path| {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let sample = measure::run(measure::kubeward(), &args, dir.path(), out);
            assert!(
                matches!(sample.exit, 0 | 3),
                "review exited {}",
                sample.exit
            );
            sample
        };
        let cold = review_args("change", None);
        rows.push(Row {
            label: "review, 5 files changed, cold".into(),
            sample: best(runs, || review_run(&cold, &out)),
        });
        // The store as the other pull request left it, restored before every warm run.
        let store = dir.path().join("views");
        let warmed = dir.path().join("views-warmed");
        let store_arg = store.to_str().expect("UTF-8 temp path");
        review_run(&review_args("other", Some(store_arg)), &out);
        copy_dir(&store, &warmed);
        let restore = || {
            let _ = std::fs::remove_dir_all(&store);
            copy_dir(&warmed, &store);
        };
        let warm = review_args("change", Some(store_arg));
        let mut warm_runs: Vec<measure::Sample> = (0..warm_runs)
            .map(|_| {
                restore();
                review_run(&warm, &out)
            })
            .collect();
        warm_runs.sort_by_key(|s| s.wall);
        let median = warm_runs[warm_runs.len() / 2];
        rows.push(Row {
            label: format!(
                "review, 5 files changed, warm store (p50 of {})",
                warm_runs.len()
            ),
            sample: median,
        });
        // Four reviews at once, as four bot workers run them: each its own process.
        for (label, args) in [("cold", &cold), ("warm store", &warm)] {
            restore();
            let runs: Vec<(Vec<String>, std::path::PathBuf)> = (0..4)
                .map(|i| (args.clone(), dir.path().join(format!("out-{i}"))))
                .collect();
            let together = measure::run_together(measure::kubeward(), &runs, dir.path());
            for sample in &together.samples {
                assert!(
                    matches!(sample.exit, 0 | 3),
                    "review exited {}",
                    sample.exit
                );
            }
            let slowest = together
                .samples
                .iter()
                .map(|s| s.wall)
                .max()
                .unwrap_or_default();
            let total_kib = together.samples.iter().map(|s| s.maxrss_kib).sum();
            rows.push(Row {
                label: format!("4 reviews at once, {label}: slowest, sum of peaks"),
                sample: measure::Sample {
                    exit: 0,
                    wall: slowest,
                    maxrss_kib: total_kib,
                },
            });
            rows.push(Row {
                label: format!("4 reviews at once, {label}: peak of their summed PSS"),
                sample: measure::Sample {
                    exit: 0,
                    wall: slowest,
                    maxrss_kib: together.peak_pss_kib,
                },
            });
        }
        for row in rows {
            println!(
                "| {docs} | {} | {:.1} | {findings} | {} | {:.0} | {:.1} | {:.2} | {:.2} |",
                corpus.files.len(),
                corpus.bytes as f64 / 1e6,
                row.label,
                row.sample.ms(),
                row.sample.mib(),
                row.sample.ms() / floor.ms(),
                row.sample.mib() / floor.mib(),
            );
        }
    }
}
