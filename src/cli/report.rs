//! `kubeward report`: the ownership report of a local repository at a commit.

use anyhow::Context;

use super::{EXIT_OK, EXIT_USAGE, ForgeArg, RenderMode, ReportArgs, ReportFormat, write_stdout};
use crate::git::Repository;
use crate::owners::Flavor;
use crate::pipeline::audit_revision;
use crate::report::ownership::{
    OwnershipReport, ownership_html, ownership_json, ownership_markdown,
};

/// Most YAML one report reads: a monorepo's worth.
const MAX_REPORT_BYTES: u64 = 1 << 30;

pub fn run(args: ReportArgs) -> anyhow::Result<u8> {
    let repo = match Repository::open(&args.path) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("kubeward: {e}");
            return Ok(EXIT_USAGE);
        }
    };
    let commit = match repo.resolve(&args.commit) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("kubeward: {e}");
            return Ok(EXIT_USAGE);
        }
    };
    let flavor = match args.forge {
        ForgeArg::Github => Flavor::GitHub,
        ForgeArg::Gitlab => Flavor::GitLab,
    };
    let tools = args.tools.tools();
    let renderer: Option<&dyn crate::render::Renderer> = match args.render {
        RenderMode::Never => None,
        _ => Some(&tools),
    };
    let revision = match audit_revision(&repo, commit, flavor, renderer, MAX_REPORT_BYTES) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("kubeward: {e}");
            return Ok(EXIT_USAGE);
        }
    };
    if args.render == RenderMode::Always && !revision.not_rendered.is_empty() {
        for (target, error) in &revision.not_rendered {
            eprintln!("kubeward: {target}: not rendered: {error}");
        }
        return Ok(EXIT_USAGE);
    }
    let name = repo
        .inner()
        .workdir()
        .unwrap_or_else(|| repo.inner().path())
        .canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "repository".to_owned());
    let now = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap_or_else(|_| time::OffsetDateTime::now_utc());
    let generated_at = now
        .format(&time::format_description::well_known::Rfc3339)
        .context("formatting the date")?;
    let report = OwnershipReport::of(&revision, &name, &commit.to_string(), &generated_at);
    let text = match args.format {
        ReportFormat::Html => ownership_html(&report).context("rendering the HTML report")?,
        ReportFormat::Markdown => ownership_markdown(&report),
        ReportFormat::Json => ownership_json(&report) + "\n",
    };
    match &args.output {
        Some(path) => {
            std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
            eprintln!(
                "kubeward: wrote the ownership report of {name} at {} to {} ({} open findings, {} teams)",
                &report.commit[..12.min(report.commit.len())],
                path.display(),
                report.overview.open.total(),
                report.overview.teams.len()
            );
        }
        None => write_stdout(&text).context("writing the report")?,
    }
    Ok(EXIT_OK)
}
