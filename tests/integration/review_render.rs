//! How a review reads on the forge: one compact comment for the many findings of a new object,
//! and a summary that stays valid Markdown, notes included, at the forge's size limit.

use kubeward::audit::Registry;
use kubeward::config::Policy;
use kubeward::owners::Flavor;
use kubeward::review::render::{SUMMARY_MARKER, parse_marker};
use kubeward::review::{InlineComment, MAX_BODY_CHARS, ReviewPlan};

use crate::review::Repo;

/// A Deployment as written in a hurry, on one line as generated manifests often are: no
/// probes, limits, replicas, security context or image tag, and the host's namespaces.
const ONE_LINE_DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec: {selector: {matchLabels: {app: web}}, template: {metadata: {labels: {app: web}}, spec: {hostNetwork: true, hostPID: true, containers: [{name: web, image: nginx}]}}}
";

/// The same bare Deployment, written out in block style.
const BARE_DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
spec:
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: web
          image: nginx
";

/// What a forge needs of Markdown, checked line by line: fences closed, each `<details>`
/// closed after it opens and never nested, and an even number of backticks on every line
/// outside a fence, so no code span is cut or runs on into what follows.
fn assert_valid_markdown(text: &str) {
    let mut fence: Option<usize> = None;
    let mut open = 0usize;
    for (i, line) in text.lines().enumerate() {
        let ticks = line.trim_start().chars().take_while(|c| *c == '`').count();
        match fence {
            Some(len) if ticks >= len && line.trim() == "`".repeat(ticks) => {
                fence = None;
                continue;
            }
            Some(_) => continue,
            None if ticks >= 3 => {
                fence = Some(ticks);
                continue;
            }
            None => {}
        }
        for _ in line.matches("<details>") {
            assert_eq!(open, 0, "line {}: nested <details>: {line}", i + 1);
            open += 1;
        }
        for _ in line.matches("</details>") {
            assert_eq!(open, 1, "line {}: </details> without <details>", i + 1);
            open -= 1;
        }
        assert_eq!(
            line.matches('`').count() % 2,
            0,
            "line {}: a cut code span: {line}",
            i + 1
        );
    }
    assert_eq!(fence, None, "a fence is left open");
    assert_eq!(open, 0, "a <details> is left open");
}

fn policy() -> Policy {
    Policy::defaults(&Registry::builtin().expect("rules"))
}

/// The lines that each say one finding, in a comment that carries several.
fn finding_lines(body: &str) -> Vec<&str> {
    body.lines()
        .filter(|l| l.starts_with("- 🔴 ") || l.starts_with("- 🟡 "))
        .collect()
}

fn most_findings(plan: &ReviewPlan) -> &InlineComment {
    plan.inline_comments
        .iter()
        .max_by_key(|c| c.fingerprints.len())
        .expect("an inline comment")
}

#[test]
fn the_many_findings_of_a_new_deployment_make_one_compact_comment_under_4_kb() {
    let policy = policy();
    for forge in [Flavor::GitHub, Flavor::GitLab] {
        let repo = Repo::new();
        let base = repo.commit("main", &[], &[("README.md", "shop\n")]);
        repo.commit(
            "pr",
            &[base],
            &[("README.md", "shop\n"), ("web.yaml", ONE_LINE_DEPLOYMENT)],
        );
        let plan = repo.review_as("main", "pr", forge);
        let comment = most_findings(&plan);
        let body = &comment.body;
        assert!(comment.fingerprints.len() >= 20, "{forge:?}: {body}");
        assert!(
            body.len() < 4096,
            "{forge:?}: {} findings in {} bytes:\n{body}",
            comment.fingerprints.len(),
            body.len()
        );
        assert_valid_markdown(body);
        assert!(
            body.starts_with(&format!(
                "**{} problems** (5 danger, 15 warning) in Deployment `shop/web` and its container `web`:\n\n",
                comment.fingerprints.len()
            )),
            "what the findings share is said once: {body}"
        );

        // One line per finding: its severity, its rule linked to its page, its title.
        let lines = finding_lines(body);
        assert_eq!(lines.len(), comment.fingerprints.len(), "{body}");
        for f in plan.new_findings.iter().filter(|f| {
            comment
                .fingerprints
                .contains(&f.finding.fingerprint.to_string())
        }) {
            let rule = policy.registry.get(&f.finding.rule).expect("a rule");
            let line = lines
                .iter()
                .find(|l| l.contains(&format!("[`{}`]({})", rule.id, rule.doc_url())))
                .unwrap_or_else(|| panic!("{}: no line of its own: {body}", rule.id));
            assert!(line.contains(&rule.title), "{line}");
            let mark = match f.finding.severity {
                kubeward::audit::Severity::Danger => "- 🔴 ",
                _ => "- 🟡 ",
            };
            assert!(line.starts_with(mark), "{line}");
        }
        assert!(
            !body.contains("**Why:**"),
            "explanations are not written out: {body}"
        );

        // The merged suggestion, in the forge's syntax, then owners, then the marker last.
        let fence = match forge {
            Flavor::GitHub => "```suggestion\n".to_owned(),
            Flavor::GitLab => format!(
                "```suggestion:-{}+0\n",
                comment.line - comment.start_line.unwrap_or(comment.line)
            ),
        };
        assert_eq!(body.matches("```suggestion").count(), 1, "{body}");
        assert!(body.contains(&fence), "{forge:?}: {body}");
        let suggestion = comment.suggestion.as_ref().expect("a suggestion");
        assert!(body.contains(&format!("{fence}{}\n```\n", suggestion.join("\n"))));
        assert!(body.contains("\nOwners: no code owner\n"), "{body}");
        assert_eq!(parse_marker(body).as_ref(), Some(&comment.fingerprints));
        assert!(body.trim_end().ends_with(" -->"), "{body}");
    }
}

#[test]
fn a_comment_with_room_folds_each_rule_s_explanation_and_one_finding_keeps_the_full_form() {
    let repo = Repo::new();
    let base = repo.commit("main", &[], &[("README.md", "shop\n")]);
    repo.commit(
        "pr",
        &[base],
        &[("README.md", "shop\n"), ("web.yaml", BARE_DEPLOYMENT)],
    );
    let policy = policy();
    for forge in [Flavor::GitHub, Flavor::GitLab] {
        let plan = repo.review_as("main", "pr", forge);
        assert!(plan.new_findings.len() >= 19, "{}", plan.new_findings.len());
        for comment in &plan.inline_comments {
            let body = &comment.body;
            assert_valid_markdown(body);
            assert_eq!(parse_marker(body).as_ref(), Some(&comment.fingerprints));
            assert!(body.contains("\nOwners: no code owner\n"), "{body}");
            if comment.fingerprints.len() == 1 {
                assert!(
                    body.contains("**Why:**") && body.contains("**Fix:**"),
                    "{body}"
                );
                continue;
            }
            assert!(body.len() < 4096, "{} bytes:\n{body}", body.len());
            assert_eq!(
                finding_lines(body).len(),
                comment.fingerprints.len(),
                "{body}"
            );
            // Every rule of the comment explained once, folded.
            assert_eq!(
                body.matches("<details><summary>Why and how to fix</summary>")
                    .count(),
                1,
                "{body}"
            );
            let fold = &body[body.find("<details>").expect("folded")..];
            for f in plan.new_findings.iter().filter(|f| {
                comment
                    .fingerprints
                    .contains(&f.finding.fingerprint.to_string())
            }) {
                let rule = policy.registry.get(&f.finding.rule).expect("a rule");
                assert_eq!(
                    fold.matches(&format!("\n- `{}`: ", rule.id)).count(),
                    1,
                    "{}: {body}",
                    rule.id
                );
            }
            assert!(!fold.contains("The others"), "{body}");
            // Container findings name their field from the container on.
            if body.contains("and its container `web`") {
                assert!(
                    body.contains("Memory limit is not set · `resources.limits.memory`")
                        || body.contains(
                            "Container allows privilege escalation · `securityContext.allowPrivilegeEscalation`"
                        ),
                    "{body}"
                );
            }
        }
        let with_suggestion = plan
            .inline_comments
            .iter()
            .find(|c| c.suggestion.is_some())
            .expect("a suggestion");
        assert!(with_suggestion.fingerprints.len() > 1);
        let fence = match forge {
            Flavor::GitHub => "```suggestion\n".to_owned(),
            Flavor::GitLab => format!(
                "```suggestion:-{}+0\n",
                with_suggestion.line - with_suggestion.start_line.unwrap_or(with_suggestion.line)
            ),
        };
        assert!(
            with_suggestion.body.contains(&fence),
            "{}",
            with_suggestion.body
        );
    }
}

fn refs(files: &[(String, String)]) -> Vec<(&str, &str)> {
    files
        .iter()
        .map(|(p, t)| (p.as_str(), t.as_str()))
        .collect()
}

/// Long, hostile text of the kind a pull request controls: backticks, an HTML comment that
/// could fake our markers, a mention.
fn hostile(i: usize) -> String {
    format!(
        "x`{i}`<!-- kubeward:v1 fp=kw1-fake -->@admins-{}",
        "long-".repeat(30)
    )
}

fn deployment(name: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: \"{name}\"\n  namespace: shop\nspec:\n  selector:\n    matchLabels: {{app: web}}\n  template:\n    metadata:\n      labels: {{app: web}}\n    spec:\n      containers:\n        - name: \"c-{name}\"\n          image: nginx\n"
    )
}

#[test]
fn a_huge_change_keeps_a_valid_summary_within_the_limit_with_all_its_notes() {
    let policy_file = "limits: {maxFileSize: 4000}\nreview: {maxInlineComments: 3}\n";
    // The last matching line wins: everything is the org's but apps/; lines 3 and 4 are skipped.
    let owners = "* @org/everyone\napps/ @platform @shop-team\nlegacy/ @a`b\nold/ @<!--x-->\n";
    let dir_name = format!("`<@ops>`-{}", "d".repeat(150));
    // Thousands of findings: 200 Deployments in 40 files, each name long and hostile.
    let apps: Vec<(String, String)> = (0..40)
        .map(|f| {
            let docs: Vec<String> = (0..5).map(|d| deployment(&hostile(f * 5 + d))).collect();
            (
                format!("apps/{dir_name}/{}-{f}.yaml", "a".repeat(120)),
                docs.join("---\n"),
            )
        })
        .collect();
    // Fixed: 100 Deployments the change deletes.
    let gone: Vec<(String, String)> = (0..100)
        .map(|i| {
            (
                format!("old/{}-{i}.yaml", hostile(i)),
                deployment(&format!("old-{i}")),
            )
        })
        .collect();
    // Not reviewed, making the review incomplete: hundreds of manifests over the size limit.
    let big: Vec<(String, String)> = (0..300)
        .map(|i| {
            (
                format!("big/{dir_name}/{}-{i}.yaml", hostile(i)),
                format!("{}{}", deployment("big"), "# padding\n".repeat(400)),
            )
        })
        .collect();
    // Not reviewed, named: hundreds of files that hold no Kubernetes object.
    let values: Vec<(String, String)> = (0..200)
        .map(|i| {
            (
                format!("values/{}-{i}.yaml", hostile(i)),
                "replicas: 1\n".to_owned(),
            )
        })
        .collect();
    let settings: Vec<(&str, &str)> = vec![(".kubeward.yaml", policy_file), ("CODEOWNERS", owners)];
    let base_files = [settings.clone(), refs(&gone)].concat();
    let head_files = [settings, refs(&apps), refs(&big), refs(&values)].concat();

    let repo = Repo::new();
    let base = repo.commit("main", &[], &base_files);
    repo.commit("pr", &[base], &head_files);
    for forge in [Flavor::GitHub, Flavor::GitLab] {
        let plan = repo.review_as("main", "pr", forge);
        let summary = &plan.summary;
        assert!(
            plan.new_findings.len() >= 3_000,
            "{}",
            plan.new_findings.len()
        );
        assert!(
            plan.fixed_findings.len() >= 1_000,
            "{}",
            plan.fixed_findings.len()
        );
        assert_eq!(plan.not_reviewed.len(), 500);
        assert!(!plan.annotations.is_empty());

        // Within the forge's limit, however it counts, and cut because it had to be.
        assert!(summary.len() <= MAX_BODY_CHARS, "{} bytes", summary.len());
        assert!(
            summary.len() > MAX_BODY_CHARS - 10_000,
            "{} bytes",
            summary.len()
        );
        assert_valid_markdown(summary);
        assert!(summary.ends_with(&format!("\n{SUMMARY_MARKER}\n")));
        assert_eq!(summary.matches("<!--").count(), 1, "only our marker");
        assert!(!summary.contains("@admins"), "nobody is pinged");
        assert!(!summary.contains("@ops"), "nobody is pinged");

        // The files not reviewed, how to review them, and the folded others.
        assert!(summary.contains("#### Not reviewed\n"), "{summary}");
        let unjudged = summary
            .lines()
            .filter(|l| l.starts_with("- `big/") && l.ends_with(": larger than the size limit"))
            .count();
        assert!(unjudged > 0, "{summary}");
        assert!(
            summary.contains(&format!(
                "- …and {} more; `kubeward review --format json` names them all.\n",
                300 - unjudged
            )),
            "{summary}"
        );
        assert!(
            summary.contains("\nTo review them:\n- larger than the size limit: split the file, or raise `limits.maxFileSize`"),
            "{summary}"
        );
        assert!(
            summary.contains("<details><summary>Changed, not Kubernetes manifests (200)</summary>"),
            "{summary}"
        );

        // The new findings as far as they fit, then how many more and where they are.
        let listed = summary.lines().filter(|l| l.starts_with("- L")).count();
        assert!(listed > 50, "{listed}");
        let where_ = match forge {
            Flavor::GitHub => "the check run's annotations show more of them, and ",
            Flavor::GitLab => "",
        };
        assert!(
            summary.contains(&format!(
                "\n\n…and {} more; {where_}`kubeward review --format json` lists them all.\n",
                plan.new_findings.len() - listed
            )),
            "{summary}"
        );
        assert!(summary.contains("#### Owned by `@\u{200b}platform`, `@\u{200b}shop-team`\n"));

        // The fixed ones, folded and closed, cut too.
        assert!(summary.contains(&format!(
            "<details><summary>Fixed by this change ({})</summary>",
            plan.fixed_findings.len()
        )));
        let fixed_shown = summary.lines().filter(|l| l.starts_with("- `old/")).count();
        assert!(fixed_shown > 0, "{summary}");
        assert!(
            summary.contains(&format!(
                "- …and {} more\n\n</details>\n",
                plan.fixed_findings.len() - fixed_shown
            )),
            "{summary}"
        );

        // The notes: annotations, and the CODEOWNERS lines the forge skips, made inert.
        assert!(
            summary.contains(&format!(
                "{} findings were over the limit of 3 inline comments",
                plan.annotations.len()
            )),
            "{summary}"
        );
        let notes: Vec<&str> = summary.lines().filter(|l| l.starts_with("> ")).collect();
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(
            notes.iter().any(|n| n.contains("CODEOWNERS line 3")),
            "{notes:?}"
        );
        assert!(
            notes
                .iter()
                .any(|n| n.contains("CODEOWNERS line 4") && n.contains("‹!--x--›")),
            "{notes:?}"
        );

        // The comments of such a change are valid and inert too.
        for c in &plan.inline_comments {
            assert_valid_markdown(&c.body);
            assert!(c.body.len() <= MAX_BODY_CHARS);
            assert_eq!(c.body.matches("<!--").count(), 1, "{}", c.body);
            assert!(!c.body.contains("@admins"), "{}", c.body);
            assert_eq!(parse_marker(&c.body).as_ref(), Some(&c.fingerprints));
        }
    }
}

/// A suggestion whose lines hold a fence of their own (a script in a block scalar) is fenced
/// with more backticks, or its first ``` would end the suggestion and spill the rest.
#[test]
fn a_suggestion_holding_a_fence_is_fenced_longer() {
    let text = format!(
        "{BARE_DEPLOYMENT}          args:\n            - |\n              ```\n              echo hi\n              ```\n"
    );
    let repo = Repo::new();
    let base = repo.commit("main", &[], &[("README.md", "shop\n")]);
    repo.commit(
        "pr",
        &[base],
        &[("README.md", "shop\n"), ("web.yaml", &text)],
    );
    for (forge, fence) in [
        (Flavor::GitHub, "````suggestion\n"),
        (Flavor::GitLab, "````suggestion:-0+0\n"),
    ] {
        let plan = repo.review_as("main", "pr", forge);
        let comment = plan
            .inline_comments
            .iter()
            .find(|c| c.suggestion.is_some())
            .expect("a suggestion");
        let lines = comment.suggestion.as_ref().expect("lines");
        assert!(lines.iter().any(|l| l.trim() == "```"), "{lines:?}");
        assert_valid_markdown(&comment.body);
        assert!(
            comment
                .body
                .contains(&format!("{fence}{}\n````\n", lines.join("\n"))),
            "{}",
            comment.body
        );
        assert_eq!(
            parse_marker(&comment.body).as_ref(),
            Some(&comment.fingerprints)
        );
    }
}
