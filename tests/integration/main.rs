//! The integration tests, one module per area, built as a single test binary: each extra
//! binary links its own copy of the crate and every dependency (hundreds of MB with debug
//! info), which is what filled CI's disk when every file here was its own binary.
//!
//! Run one area with `cargo test --test integration <module>::`, e.g.
//! `cargo test --test integration github_bot::`.

#[macro_use]
mod support;

mod baseline;
mod bot_operations;
mod ci;
mod ci_install;
mod cli;
mod cli_review;
mod dashboard;
mod dashboard_pages;
mod deploy;
mod exemptions;
mod fixes;
mod git_cache;
mod github_bot;
mod github_check_lifecycle;
mod github_client;
mod github_events;
mod github_openapi;
mod github_pages;
mod github_replies;
mod github_write_budget;
mod gitlab_bot;
mod gitlab_client;
mod gitlab_events;
mod gitlab_pages;
mod gitlab_replies;
mod gitlab_serve;
mod hostile_pr;
mod http_listener;
mod output_formats;
mod polaris_conformance;
mod pre_commit;
mod queue;
mod queue_postgres;
mod render;
mod report;
mod review;
mod review_history;
mod review_identity;
mod review_render;
mod review_scope;
mod rule_docs;
mod rule_fixtures;
mod scale_out;
mod serve_process;
mod streamed_audit;
mod suggestions;
mod view_store;
mod webhook_ids;
mod webhook_intake;
