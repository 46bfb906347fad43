//! `kubeward ci` in GitLab CI: merge-request pipelines (merged-results ones included).

use std::io::Write;

use anyhow::Context;
use serde::Deserialize;

use super::{CiArgs, Env, exit_status, failed, result_line, review_checkout, write_sarif};
use crate::bot::review::{Flow, Reviewer, Work, run as review_flow};
use crate::bot::runner::Cancel;
use crate::forge::Secret;
use crate::forge::gitlab::adapter::GitLabMergeRequest;
use crate::forge::gitlab::client::{GitLabClient, GitLabClientConfig};
use crate::forge::gitlab::reply::parse;
use crate::forge::gitlab::{GitLabApi, Request};
use crate::owners::Flavor;

/// `GET /user`: who the token posts as.
#[derive(Debug, Deserialize)]
struct User {
    username: String,
}

pub(super) async fn run(
    args: &CiArgs,
    env: &Env,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<u8> {
    let var = |name: &str| env.get(name).filter(|v| !v.is_empty());
    let Some(iid) = var("CI_MERGE_REQUEST_IID") else {
        eprintln!(
            "kubeward ci: not a merge-request pipeline (CI_MERGE_REQUEST_IID is not set); add `rules: - if: $CI_PIPELINE_SOURCE == \"merge_request_event\"`, or use `kubeward audit`"
        );
        return Ok(crate::cli::EXIT_USAGE);
    };
    let iid: u64 = iid.parse().context("CI_MERGE_REQUEST_IID")?;
    let project_id: u64 = var("CI_PROJECT_ID")
        .context("CI_PROJECT_ID is not set")?
        .parse()
        .context("CI_PROJECT_ID")?;
    let base = var("CI_MERGE_REQUEST_DIFF_BASE_SHA")
        .context("CI_MERGE_REQUEST_DIFF_BASE_SHA is not set")?;
    // A merged-results pipeline runs on a merge commit GitLab made: the merge request's own
    // head is the source branch's.
    let head = var("CI_MERGE_REQUEST_SOURCE_BRANCH_SHA")
        .or_else(|| var("CI_COMMIT_SHA"))
        .context("neither CI_MERGE_REQUEST_SOURCE_BRANCH_SHA nor CI_COMMIT_SHA is set")?;
    let token_env = args.token_env.as_deref().unwrap_or("KUBEWARD_GITLAB_TOKEN");
    let token = var(token_env).map(|t| Secret::new(t.as_str()));
    let server = var("CI_SERVER_URL").map_or("https://gitlab.com", String::as_str);
    let project_path = var("CI_PROJECT_PATH").map_or("", String::as_str);
    let workspace = var("CI_PROJECT_DIR").map_or(".", String::as_str);
    let remote = crate::forge::gitlab::adapter::clone_url(server, project_path)
        .ok()
        .map(|url| super::Remote {
            url,
            credentials: token.clone().map(|t| ("oauth2".to_owned(), t)),
            head_refspec: format!("+refs/merge-requests/{iid}/head:refs/kubeward/ci/mr/{iid}"),
        });
    let checkout = super::Checkout {
        path: std::path::Path::new(workspace),
        base,
        head,
        flavor: Flavor::GitLab,
        remote,
    };
    let reviewed = {
        let args = args.clone();
        tokio::task::block_in_place(|| review_checkout(&checkout, &args))
    };
    if let Some(token) = token {
        // The job token cannot post notes: a project or group access token can.
        let client = GitLabClient::new(GitLabClientConfig::new(server, token))
            .context("building the GitLab client")?;
        let username = match &args.bot_login {
            Some(login) => login.clone(),
            None => {
                let reply = client
                    .call(Request::get("/user"))
                    .await
                    .context("asking GitLab who the token is")?;
                parse::<User>("GET /user", &reply.body)?.username
            }
        };
        let merge_request = GitLabMergeRequest {
            api: &client,
            project_id,
            path_with_namespace: project_path,
            iid,
            bot_username: &username,
            host: "gitlab",
            git_base_url: server,
            git_username: "oauth2",
            git_token: None,
        };
        let flow = Flow {
            review_drafts: true,
            reviewer: Reviewer::Done(Box::new(reviewed.clone())),
        };
        let work = Work::Review {
            expected_head: Some(head.clone()),
            new_status: false,
            previous_head: None,
        };
        if let Err(e) = review_flow(&merge_request, &work, &flow, &Cancel::default(), true).await {
            eprintln!(
                "kubeward ci: could not publish on the merge request ({e}); the Code Quality report has the findings"
            );
        }
    }
    let plan = match reviewed {
        Ok(plan) => plan,
        Err(failure) => return Ok(failed(&failure)),
    };
    let report = args
        .codequality
        .clone()
        .unwrap_or_else(|| std::path::Path::new(workspace).join("gl-code-quality-report.json"));
    let json = super::codequality::report(&plan).context("writing the Code Quality report")?;
    std::fs::write(&report, json).with_context(|| format!("writing {}", report.display()))?;
    if let Some(path) = &args.sarif {
        write_sarif(path, &plan)?;
    }
    writeln!(out, "{}", result_line(&plan))?;
    Ok(exit_status(&plan))
}
