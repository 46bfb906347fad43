//! `kubeward review`: the review pipeline on a local repository.

use std::io::Write;

use anyhow::Context;

use super::{EXIT_FINDINGS, EXIT_OK, EXIT_USAGE, ForgeArg, ReviewArgs, ReviewFormat};
use crate::audit::{AuditResult, Registry};
use crate::config::Policy;
use crate::git::Repository;
use crate::owners::Flavor;
use crate::pipeline::{PipelineError, ReviewBudgets, ReviewOptions, Revisions, review};
use crate::review::{AnchorKind, Conclusion, ReviewPlan};

pub fn run(args: ReviewArgs) -> anyhow::Result<u8> {
    let repo = match Repository::open(&args.repo) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("kubeward: {e}");
            return Ok(EXIT_USAGE);
        }
    };
    let base = match args.base.clone().map_or_else(|| repo.default_base(), Ok) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("kubeward: {e}");
            return Ok(EXIT_USAGE);
        }
    };
    let revisions = match Revisions::resolve(&repo, &base, &args.head) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("kubeward: {e}");
            return Ok(EXIT_USAGE);
        }
    };
    let forge = match args.forge {
        ForgeArg::Github => Flavor::GitHub,
        ForgeArg::Gitlab => Flavor::GitLab,
    };
    let options = ReviewOptions {
        forge,
        config_override: args.config.as_deref(),
        fail_on: args.fail_on.map(Into::into),
        budgets: ReviewBudgets::UNLIMITED,
        render: match args.render {
            super::RenderMode::Never => None,
            _ => {
                let found = crate::render::Tools::from_path();
                Some(crate::render::review::RenderOptions {
                    kubectl: args.kubectl.clone().or(found.kubectl),
                    helm: args.helm.clone().or(found.helm),
                    ..Default::default()
                })
            }
        },
    };
    let (plan, _) = match review(&repo, &revisions, &options) {
        Ok(result) => result,
        Err(PipelineError::Config(e)) => {
            eprintln!("kubeward: configuration error: {e}");
            return Ok(EXIT_USAGE);
        }
        Err(e) => return Err(e).context("reviewing the change"),
    };
    let output = match args.format {
        ReviewFormat::Text => text(&plan),
        ReviewFormat::Markdown => plan.summary.clone(),
        ReviewFormat::Json => {
            serde_json::to_string_pretty(&plan).context("serialising the plan")? + "\n"
        }
        ReviewFormat::Sarif => {
            let registry = Registry::builtin().context("loading rules")?;
            let policy = Policy::defaults(&registry);
            let result = AuditResult {
                findings: plan
                    .new_findings
                    .iter()
                    .map(|f| f.finding.clone())
                    .collect(),
                ..AuditResult::default()
            };
            crate::report::sarif_report(&result, &[], &policy) + "\n"
        }
    };
    std::io::stdout()
        .write_all(output.as_bytes())
        .context("writing the review")?;
    Ok(match plan.conclusion {
        Conclusion::Failure => EXIT_FINDINGS,
        Conclusion::Success | Conclusion::Neutral => EXIT_OK,
    })
}

fn text(plan: &ReviewPlan) -> String {
    let mut out = String::new();
    for f in &plan.new_findings {
        let anchor = f.anchor.as_ref();
        let at = match anchor.and_then(|a| a.line) {
            Some(line) => format!("{}:{line}", f.finding.path),
            None => f.finding.path.clone(),
        };
        let how = match anchor.map(|a| a.kind) {
            Some(AnchorKind::OwnLine) => String::new(),
            Some(AnchorKind::Suggestion) => " [suggestion]".into(),
            Some(AnchorKind::Summary) | None => " [summary only]".into(),
            Some(AnchorKind::File) => " [file comment]".into(),
            Some(other) => format!(" [on a changed line: {other:?}]"),
        };
        let owners = if f.owners.is_empty() {
            String::new()
        } else {
            format!(" owners: {}", f.owners.join(" "))
        };
        out.push_str(&format!(
            "{at} {} {} {} (found at line {}){how}{owners}\n",
            f.finding.severity.as_str(),
            f.finding.rule,
            f.finding.message,
            f.finding.line
        ));
    }
    for n in &plan.not_reviewed {
        let detail = n
            .detail
            .as_deref()
            .map(|d| format!(" ({d})"))
            .unwrap_or_default();
        let effect = if n.reason.makes_incomplete() {
            "not reviewed"
        } else {
            "not a manifest to review"
        };
        out.push_str(&format!(
            "{}: {effect}: {}{detail}\n",
            n.path,
            n.reason.describe()
        ));
    }
    if plan.incomplete {
        out.push_str(&format!(
            "incomplete: some changed files were not reviewed (policy: incomplete: {})\n",
            match plan.incomplete_policy {
                crate::config::Incomplete::Failure => "failure",
                crate::config::Incomplete::Neutral => "neutral",
            }
        ));
    }
    let c = &plan.counts;
    out.push_str(&format!(
        "{}: {} new ({} danger, {} warning), {} fixed, {} already there in changed objects\n",
        match plan.conclusion {
            Conclusion::Failure => "failure",
            Conclusion::Success => "success",
            Conclusion::Neutral => "neutral",
        },
        c.new.total(),
        c.new.danger,
        c.new.warning,
        c.fixed.total(),
        c.pre_existing.total()
    ));
    out
}
