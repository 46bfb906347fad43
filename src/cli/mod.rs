//! The command line: `kubeward audit`, `kubeward rules`, and the commands built on them.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};

use crate::audit::{Registry, Severity};
use crate::config::{ConfigError, ConfigFile, FailOn, PathRoot, Policy, lexical_normal};
use crate::report::{write_json_report, write_sarif_report, write_text_report};
use crate::source;

mod report;
mod review;

pub use review::plan_sarif;

/// Exit status: nothing reached the fail-on level.
pub const EXIT_OK: u8 = 0;
/// Exit status: an unexpected failure.
pub const EXIT_FAILURE: u8 = 1;
/// Exit status: bad usage or configuration.
pub const EXIT_USAGE: u8 = 2;
/// Exit status: findings at or above the fail-on level.
pub const EXIT_FINDINGS: u8 = 3;

#[derive(Debug, Parser)]
#[command(
    name = "kubeward",
    version,
    about = "Reviews Kubernetes manifests: every finding on its exact line, and in pull requests only what the change did.",
    long_about = "kubeward audits Kubernetes manifests against Polaris-compatible rules and its own, \
                  pointing every finding at the exact file, line and column.\n\n\
                  The same engine runs locally (`audit`, `review`), in CI (JSON, SARIF) and as a \
                  pull-request bot, so what you see before pushing is what the bot will say.",
    after_help = "Exit status: 0 nothing reached --fail-on, 3 something did (or a review could not judge part of the change), 2 usage or configuration error. A reader that stops early (`| head`) changes none of them."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Audit manifest files and folders (recursively; `-` reads stdin).
    Audit(AuditArgs),
    /// Review what a change did: findings it introduced, on the lines that introduced them,
    /// with owners and fixes, exactly as the bot would post them.
    Review(ReviewArgs),
    /// List the rules, or explain one: `kubeward rules runAsRootAllowed`.
    Rules(RulesArgs),
    /// Run the bot for GitHub and/or GitLab: webhooks in, reviews out. Secrets come from the
    /// environment (KUBEWARD_GITHUB_WEBHOOK_SECRET, KUBEWARD_GITHUB_PRIVATE_KEY or
    /// KUBEWARD_GITHUB_TOKEN; KUBEWARD_GITLAB_TOKEN and the per-project variables the settings
    /// name) or from files named in the settings, never from the command line.
    Serve(ServeArgs),
    /// Try the whole bot on this machine: a throwaway repository with example pull requests
    /// (one changes a Helm chart's values, when helm is there), the real server and worker, and
    /// a dry-run GitHub that shows what would be posted.
    Testdrive(TestdriveArgs),
    /// Review the pull request or merge request this CI job runs for (GitHub Actions, GitLab
    /// CI) and publish the review as the bot would: comments, summary, check or status. With a
    /// read-only token (a fork's), the review goes to the job: annotations, job summary, SARIF,
    /// a Code Quality report. Policy is read at the base commit; the token comes from the
    /// environment (GITHUB_TOKEN, KUBEWARD_GITLAB_TOKEN), never the command line.
    Ci(CiArgs),
    /// The ownership report of a repository at a commit: open findings by CODEOWNERS team,
    /// rule and environment, as one self-contained HTML file, Markdown or JSON. Everything is
    /// read from git objects (policy, CODEOWNERS and manifests of that commit).
    Report(ReportArgs),
    /// Print an account line for the dashboard's credentials file: `NAME:argon2-hash[:GROUPS]`.
    /// The password is read from stdin (one line), never from the command line.
    DashboardPassword(DashboardPasswordArgs),
    /// Internal: one review in a child process of `serve` (request on stdin, JSON lines out).
    #[command(name = "review-process", hide = true)]
    ReviewProcess,
}

#[derive(Debug, clap::Args)]
pub struct DashboardPasswordArgs {
    /// The account's name.
    pub name: String,
    /// Groups for the dashboard's grants, comma-separated.
    #[arg(long, value_name = "GROUPS")]
    pub groups: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct CiArgs {
    /// The policy file's path in the repository, read at the base commit (never from the
    /// checkout: the pull request controls that). Default: `.kubeward.yaml`.
    #[arg(long, value_name = "PATH")]
    pub config: Option<String>,
    /// Tightens the base policy's `failOn` (never relaxes it).
    #[arg(long, value_enum)]
    pub fail_on: Option<FailOnArg>,
    /// Also write the new findings as SARIF here (for code scanning).
    #[arg(long, value_name = "FILE")]
    pub sarif: Option<PathBuf>,
    /// The environment variable that holds the API token.
    #[arg(long, value_name = "NAME")]
    pub token_env: Option<String>,
    /// The account the token posts as (default `github-actions[bot]`; on GitLab, asked of the
    /// API): our earlier comments are found by it.
    #[arg(long, value_name = "LOGIN")]
    pub bot_login: Option<String>,
    /// GitLab: where to write the Code Quality report (default
    /// `$CI_PROJECT_DIR/gl-code-quality-report.json`).
    #[arg(long, value_name = "FILE")]
    pub codequality: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Settings file (YAML; see docs/setup-github.md and docs/setup-gitlab.md). Defaults apply
    /// without one.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct TestdriveArgs {
    /// The helm that renders the Helm chart example [default: on PATH; without one, that
    /// example is left out].
    #[arg(long, value_name = "PATH")]
    pub helm: Option<PathBuf>,
    /// Where to write the ownership report of the example repository (HTML)
    /// [default: kubeward-testdrive/ownership-report.html in the temporary folder].
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReviewFormat {
    Text,
    Markdown,
    Json,
    Sarif,
}

#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// The repository (its work tree, or a bare repository).
    #[arg(value_name = "PATH", default_value = ".")]
    pub path: PathBuf,
    /// The commit to report on.
    #[arg(long, default_value = "HEAD")]
    pub commit: String,
    #[arg(long, value_enum, default_value_t = ReportFormat::Html)]
    pub format: ReportFormat,
    /// Write the report here instead of stdout.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Whose CODEOWNERS rules apply (GitLab has sections and default owners).
    #[arg(long, value_enum, default_value_t = ForgeArg::Github)]
    pub forge: ForgeArg,
    /// Render kustomize overlays and Helm charts and report what they deploy, as `audit` does.
    #[arg(long, value_enum, default_value_t = RenderMode::Auto)]
    pub render: RenderMode,
    #[command(flatten)]
    pub tools: ToolArgs,
}

/// The render tools, each found on PATH unless named.
#[derive(Debug, Clone, clap::Args)]
pub struct ToolArgs {
    /// The kubectl that renders kustomize overlays [default: on PATH].
    #[arg(long, value_name = "PATH")]
    pub kubectl: Option<PathBuf>,
    /// The helm that renders charts [default: on PATH].
    #[arg(long, value_name = "PATH")]
    pub helm: Option<PathBuf>,
}

impl ToolArgs {
    pub fn tools(&self) -> crate::render::Tools {
        let found = crate::render::Tools::from_path();
        crate::render::Tools {
            kubectl: self.kubectl.clone().or(found.kubectl),
            helm: self.helm.clone().or(found.helm),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    Html,
    Markdown,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ForgeArg {
    Github,
    Gitlab,
}

#[derive(Debug, clap::Args)]
pub struct ReviewArgs {
    /// The repository (a working tree or a bare repository) [default: the current one].
    #[arg(long, value_name = "PATH", default_value = ".")]
    pub repo: PathBuf,
    /// The branch the change goes into [default: the upstream's default branch: origin/HEAD,
    /// else main, else master]. The audit's base side is the merge-base with --head.
    #[arg(long, value_name = "REV")]
    pub base: Option<String>,
    /// The change's tip.
    #[arg(long, value_name = "REV", default_value = "HEAD")]
    pub head: String,
    /// Whose CODEOWNERS rules and comment syntax to use.
    #[arg(long, value_enum, default_value_t = ForgeArg::Github)]
    pub forge: ForgeArg,
    /// Output: text for people, markdown as the bot's summary, json for the whole ReviewPlan,
    /// sarif for the new findings.
    #[arg(long, value_enum, default_value_t = ReviewFormat::Text)]
    pub format: ReviewFormat,
    /// Policy file to use instead of `.kubeward.yaml` at the tip of the base branch.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Exit 3 when a new finding reaches this severity [default: the policy's failOn].
    #[arg(long, value_enum)]
    pub fail_on: Option<FailOnArg>,
    /// Render the kustomize overlays the change touches, both sides (`auto`, `always`: a
    /// target that cannot be rendered is named and makes the review incomplete), or `never`.
    #[arg(long, value_enum, default_value_t = RenderMode::Auto)]
    pub render: RenderMode,
    #[command(flatten)]
    pub tools: ToolArgs,
    /// Keep the inventory views of the files a review parses in DIR, and take them from there
    /// next time: a later review of the repository parses only the blobs it has not seen (the
    /// bot does this in its cache folder).
    #[arg(long, value_name = "DIR")]
    pub view_store: Option<PathBuf>,
    /// Most bytes the view store may hold.
    #[arg(long, value_name = "BYTES", default_value_t = crate::views::DEFAULT_MAX_BYTES)]
    pub view_store_max_bytes: u64,
    /// Print how long each stage took (git, parse, audit, plan, render) to stderr.
    #[arg(long)]
    pub timings: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
    Sarif,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FailOnArg {
    Danger,
    Warning,
    Never,
}

impl From<FailOnArg> for FailOn {
    fn from(value: FailOnArg) -> Self {
        match value {
            FailOnArg::Danger => FailOn::Danger,
            FailOnArg::Warning => FailOn::Warning,
            FailOnArg::Never => FailOn::Never,
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct PolicyArgs {
    /// Policy file. Default: `.kubeward.yaml` in the current folder or a parent, up to the
    /// repository root. Polaris config files are accepted as they are.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Exit 3 when a finding reaches this severity [default: the config's failOn, else danger].
    #[arg(long, value_enum)]
    pub fail_on: Option<FailOnArg>,
}

#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    /// Files and folders to audit; `-` for stdin.
    #[arg(value_name = "PATH", default_value = ".")]
    pub paths: Vec<PathBuf>,
    /// Output: text for people, json for scripts (docs/json-output.md), sarif for code scanning.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Run only these rules (comma-separated IDs), even ones that are off by default.
    #[arg(long, value_delimiter = ',', value_name = "ID[,ID...]")]
    pub only: Option<Vec<String>>,
    /// Render kustomize overlays found among the files and audit what they produce, findings
    /// on their source lines: `auto` when kubectl is there (saying which targets could not be
    /// rendered), `always` (a target that cannot be rendered is an error), `never`.
    #[arg(long, value_enum, default_value_t = RenderMode::Auto)]
    pub render: RenderMode,
    #[command(flatten)]
    pub tools: ToolArgs,
    /// Also walk hidden folders and files (`.github/`, `.config/`); `.git` never.
    #[arg(long)]
    pub hidden: bool,
    /// Also walk what `.gitignore` (and `.git/info/exclude`, the global excludes) leaves out.
    #[arg(long)]
    pub no_ignore: bool,
    /// Report only findings not in this baseline file (default: the policy's `baseline`),
    /// and say how many it accepted and how many of its entries are stale.
    #[arg(long, value_name = "FILE")]
    pub baseline: Option<PathBuf>,
    /// Record today's findings as the baseline (sorted; stale entries pruned) and exit 0.
    #[arg(long, value_name = "FILE", conflicts_with = "baseline")]
    pub write_baseline: Option<PathBuf>,
    #[command(flatten)]
    pub policy: PolicyArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RenderMode {
    Auto,
    Always,
    Never,
}

#[derive(Debug, clap::Args)]
pub struct RulesArgs {
    /// A rule ID to explain.
    pub id: Option<String>,
    /// Also list custom checks from this policy file.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// Loads the policy: an explicit `--config`, else a discovered `.kubeward.yaml`, else defaults.
pub fn load_policy(
    config: Option<&PathBuf>,
    only: Option<&[String]>,
) -> Result<Policy, ConfigError> {
    let registry = Registry::builtin().map_err(|e| ConfigError {
        file: e.origin.clone(),
        mark: None,
        message: e.message.clone(),
    })?;
    let path = match config {
        Some(p) => Some(p.clone()),
        None => std::env::current_dir()
            .ok()
            .and_then(|cwd| ConfigFile::discover(&cwd)),
    };
    let file = path.as_deref().map(ConfigFile::load).transpose()?;
    let mut policy = Policy::build(&registry, file.as_ref(), only)?;
    // Read here, in the shell, so the engine's path matching is lexical.
    let working_dir = std::env::current_dir().ok().map(|d| lexical_normal(&d));
    let root = path
        .as_deref()
        .and_then(|p| std::path::absolute(p).ok())
        .and_then(|p| p.parent().map(lexical_normal));
    policy.path_root = root
        .zip(working_dir)
        .map(|(root, working_dir)| PathRoot { root, working_dir });
    Ok(policy)
}

fn run_dashboard_password(args: DashboardPasswordArgs) -> anyhow::Result<u8> {
    use anyhow::Context;
    if args.name.is_empty() || args.name.contains([':', '\n']) {
        anyhow::bail!("the name must be non-empty and hold no `:`");
    }
    let mut password = String::new();
    std::io::stdin()
        .read_line(&mut password)
        .context("reading the password from stdin")?;
    let password = password.trim_end_matches(['\r', '\n']);
    if password.is_empty() {
        anyhow::bail!("no password on stdin");
    }
    let hash = crate::dashboard::signin::hash_password(password)
        .map_err(|e| anyhow::anyhow!("hashing the password: {e}"))?;
    let groups = args.groups.map(|g| format!(":{g}")).unwrap_or_default();
    write_stdout(&format!("{}:{hash}{groups}\n", args.name)).context("writing the line")?;
    Ok(0)
}

impl Command {
    /// Whether the command may open an HTTPS connection (a fetch, a forge or database call):
    /// the others never need a certificate bundle. Reviews, in the bot's children too, and
    /// audits read local repositories and files, and render without network.
    pub fn speaks_https(&self) -> bool {
        !matches!(
            self,
            Command::ReviewProcess | Command::Audit(_) | Command::Review(_) | Command::Rules(_)
        )
    }
}

pub fn run(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::ReviewProcess => return crate::bot::sandbox::run_child(),
        Command::Audit(args) => run_audit(args),
        Command::Review(args) => crate::cli::review::run(args),
        Command::Serve(args) => run_serve(args),
        Command::Ci(args) => run_ci(args),
        Command::Testdrive(args) => run_testdrive(args),
        Command::Rules(args) => run_rules(args),
        Command::Report(args) => crate::cli::report::run(args),
        Command::DashboardPassword(args) => run_dashboard_password(args),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("kubeward: {e:#}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

/// Writes a command's output. A reader that stops early (`| head`) closes the pipe: that ends
/// the output quietly, and the command exits with the status its result gives, as if all of it
/// had been read. Rust ignores SIGPIPE, so the closed pipe arrives here as an error.
/// Runs `write` on a buffered stdout, then flushes; a reader that went away (`| head`) is
/// not an error.
pub(crate) fn write_stdout_with(
    write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    match write(&mut out).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        result => result,
    }
}

pub(crate) fn write_stdout(output: &str) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(output.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        result => result,
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn run_ci(args: CiArgs) -> anyhow::Result<u8> {
    let args = crate::ci::CiArgs {
        config: args.config,
        fail_on: args.fail_on.map(Into::into),
        sarif: args.sarif,
        token_env: args.token_env,
        bot_login: args.bot_login,
        codequality: args.codequality,
    };
    let env: crate::ci::Env = std::env::vars().collect();
    let mut stdout = std::io::stdout();
    runtime()?.block_on(crate::ci::run(&args, &env, &mut stdout))
}

fn run_serve(args: ServeArgs) -> anyhow::Result<u8> {
    let settings = match &args.config {
        Some(path) => match crate::server::settings::ServeSettings::load(path) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("kubeward: {e}");
                return Ok(EXIT_USAGE);
            }
        },
        None => crate::server::settings::ServeSettings::default(),
    };
    runtime()?.block_on(crate::bot::serve::serve(settings))?;
    Ok(EXIT_OK)
}

fn run_testdrive(args: TestdriveArgs) -> anyhow::Result<u8> {
    if let Some(helm) = &args.helm
        && !helm.is_file()
    {
        eprintln!("kubeward: --helm {}: no such file", helm.display());
        return Ok(EXIT_USAGE);
    }
    let options = crate::bot::testdrive::TestdriveOptions {
        helm: args.helm,
        report: args.report.unwrap_or_else(|| {
            std::env::temp_dir()
                .join("kubeward-testdrive")
                .join("ownership-report.html")
        }),
    };
    let report = runtime()?.block_on(crate::bot::testdrive::run(options))?;
    write_stdout(&report).context("writing the report")?;
    Ok(EXIT_OK)
}

fn run_audit(args: AuditArgs) -> anyhow::Result<u8> {
    let mut policy = match load_policy(args.policy.config.as_ref(), args.only.as_deref()) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("kubeward: configuration error: {e}");
            return Ok(EXIT_USAGE);
        }
    };
    if let Some(f) = args.policy.fail_on {
        policy.fail_on = f.into();
    }
    let walk = source::WalkOptions {
        hidden: args.hidden,
        no_ignore: args.no_ignore,
    };
    // Each file is judged as it is parsed, and only what the cross-object rules read of it
    // is kept: the audit's memory is its findings, not every tree of the input.
    // Stdin cannot be read a second time, should a CRD of the input ask for it.
    let judging = match args.paths.iter().any(|p| p.as_os_str() == "-") {
        true => crate::audit::Judging::keeping_trees(&policy),
        false => crate::audit::Judging::new(&policy),
    };
    let loaded = source::load_each(&args.paths, &policy, &walk, &|file| judging.file(file));
    if !loaded.unusable.is_empty() {
        for error in &loaded.unusable {
            eprintln!("kubeward: {}: {}", error.path, error.message);
        }
        return Ok(EXIT_USAGE);
    }
    let source::Loaded {
        files,
        errors: mut input_errors,
        excluded,
        ..
    } = loaded;
    let (result, render_errors) = match audit_rendering(files, judging, &args, &policy) {
        Ok(result) => result,
        Err(code) => return Ok(code),
    };
    let mut result = result;
    result.stats.files_excluded = excluded;
    input_errors.extend(render_errors);
    let errors = input_errors;
    if let Some(path) = &args.write_baseline {
        return write_baseline(path, &result.findings);
    }
    let baseline = args
        .baseline
        .clone()
        .or_else(|| policy.baseline.as_ref().map(PathBuf::from));
    if let Some(path) = baseline {
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            // A baseline the policy names but nobody wrote yet accepts nothing.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && args.baseline.is_none() => {
                String::new()
            }
            Err(e) => {
                eprintln!("kubeward: {}: {e}", path.display());
                return Ok(EXIT_USAGE);
            }
        };
        if !text.is_empty() {
            let baseline = match crate::review::baseline::Baseline::parse(&text) {
                Ok(b) => b,
                Err(e) => {
                    eprintln!("kubeward: {}: {e}", path.display());
                    return Ok(EXIT_USAGE);
                }
            };
            let applied = baseline.apply(&mut result.findings);
            eprintln!(
                "kubeward: the baseline {} accepted {} finding(s); {} of its entries are stale (fixed since: `--write-baseline` prunes them)",
                path.display(),
                applied.accepted,
                applied.stale
            );
        }
    }
    let color = std::io::stdout().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    // Streamed: a large audit's report is never held whole in memory.
    write_stdout_with(|out| match args.format {
        Format::Text => write_text_report(out, &result, &errors, color),
        Format::Json => write_json_report(out, &result, &errors).and_then(|()| writeln!(out)),
        Format::Sarif => {
            write_sarif_report(out, &result, &errors, &policy).and_then(|()| writeln!(out))
        }
    })
    .context("writing the report")?;
    let fails = result
        .findings
        .iter()
        .any(|f| policy.fail_on.fails(f.severity));
    Ok(if fails { EXIT_FINDINGS } else { EXIT_OK })
}

/// Writes today's findings as the baseline, atomically (a reader never sees half a file).
fn write_baseline(
    path: &std::path::Path,
    findings: &[crate::audit::Finding],
) -> anyhow::Result<u8> {
    let baseline = crate::review::baseline::Baseline::of(findings);
    let stale = std::fs::read_to_string(path)
        .ok()
        .and_then(|t| crate::review::baseline::Baseline::parse(&t).ok())
        .map_or(0, |old| {
            let now = baseline.fingerprints();
            old.findings
                .iter()
                .filter(|e| !now.contains(&e.fingerprint))
                .count()
        });
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let mut file = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("writing the baseline in {}", dir.display()))?;
    file.write_all(baseline.render().as_bytes())
        .context("writing the baseline")?;
    file.persist(path)
        .with_context(|| format!("writing {}", path.display()))?;
    eprintln!(
        "kubeward: wrote {} finding(s) to the baseline {}; {stale} stale entr{} pruned",
        baseline.findings.len(),
        path.display(),
        if stale == 1 { "y" } else { "ies" }
    );
    Ok(EXIT_OK)
}

/// The audit of the loaded files, kustomize overlays among them rendered (per `--render`):
/// files the rendered overlays read are judged through them, at their source lines, naming the
/// overlays. The errors to show: targets that could not be rendered.
fn audit_rendering(
    files: Vec<crate::manifest::ManifestFile>,
    judging: crate::audit::Judging<'_>,
    args: &AuditArgs,
    policy: &Policy,
) -> Result<(crate::audit::AuditResult, Vec<source::InputError>), u8> {
    use crate::render::{RenderLimits, judge};
    let paths: Vec<String> = files
        .iter()
        .map(|f| f.path.trim_start_matches("./").to_owned())
        .collect();
    let tree = crate::render::DiskTree {
        root: PathBuf::from("."),
    };
    let targets = match args.render {
        RenderMode::Never => Vec::new(),
        _ => crate::render::targets::all_targets(
            &tree,
            &paths,
            &policy.render.kustomize,
            &policy.render.helm,
        ),
    };
    let tools = args.tools.tools();
    let limits = RenderLimits::default();
    let (result, failed) =
        match judge::audit_judged_tree(&tree, files, judging, &targets, &tools, &limits, policy) {
            Ok(audited) => audited,
            // Rare (a CRD in the input makes a kind cluster-scoped): parsed again, whole.
            Err(crate::audit::JudgeAgain) => {
                let walk = source::WalkOptions {
                    hidden: args.hidden,
                    no_ignore: args.no_ignore,
                };
                let again = source::load_with(&args.paths, policy, &walk);
                judge::audit_tree(&tree, &again.files, &targets, &tools, &limits, policy)
            }
        };
    let errors: Vec<source::InputError> = failed
        .iter()
        .map(|(target, error)| source::InputError {
            path: target.name().to_owned(),
            message: format!("not rendered: {error}"),
        })
        .collect();
    if args.render == RenderMode::Always && !errors.is_empty() {
        for e in &errors {
            eprintln!("kubeward: {}: {}", e.path, e.message);
        }
        return Err(EXIT_USAGE);
    }
    Ok((result, errors))
}

fn run_rules(args: RulesArgs) -> anyhow::Result<u8> {
    let policy = match load_policy(args.config.as_ref(), None) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("kubeward: configuration error: {e}");
            return Ok(EXIT_USAGE);
        }
    };
    let registry = &policy.registry;
    let mut out = String::new();
    match args.id {
        None => {
            out.push_str(&format!(
                "{:<44} {:<12} {:<9} {}\n",
                "RULE", "CATEGORY", "SEVERITY", "TITLE"
            ));
            for rule in registry.rules() {
                let severity = policy.severity_of(&rule.id).map_or("off", Severity::as_str);
                out.push_str(&format!(
                    "{:<44} {:<12} {:<9} {}\n",
                    rule.id,
                    rule.category.as_str(),
                    severity,
                    rule.title
                ));
            }
        }
        Some(id) => {
            if let Some(pseudo) = crate::audit::pseudo_rule(&id) {
                out.push_str(&pseudo.explain());
            } else if let Some(rule) = registry.get(&id) {
                out.push_str(&crate::explain::explain(rule, policy.severity_of(&rule.id)));
            } else {
                let ids: Vec<&str> = registry
                    .ids()
                    .chain(crate::audit::PSEUDO_RULES.iter().map(|p| p.id))
                    .collect();
                eprintln!(
                    "kubeward: {}",
                    crate::yaml::unknown_word_message("rule", &id, &ids)
                );
                return Ok(EXIT_USAGE);
            }
        }
    }
    write_stdout(&out).context("writing the rule list")?;
    Ok(EXIT_OK)
}
