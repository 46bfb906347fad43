//! kubeward: reviews Kubernetes manifests in pull requests, judging only what a change did.
//!
//! The pipeline, one direction: [`source`] reads files, [`manifest`] turns YAML ([`yaml`]) into
//! objects, [`audit`] runs the rules under a [`config::Policy`], and [`report`] renders findings.

pub mod audit;
pub mod bot;
pub mod ci;
pub mod cli;
pub mod config;
pub mod dashboard;
pub mod diff;
pub mod explain;
pub mod fix;
pub mod forge;
pub mod git;
pub mod manifest;
pub mod owners;
pub mod ownership;
pub mod pipeline;
pub mod queue;
pub mod render;
pub mod report;
pub mod review;
pub mod server;
pub mod source;
pub mod views;
pub mod walk;
pub mod yaml;

/// Where the project lives; rule documentation links point below it.
pub const PROJECT_URL: &str = "https://github.com/kubeward/kubeward";
/// Base of the per-rule documentation pages (`docs/rules/<id>.md` in the repository).
pub const RULE_DOCS_BASE: &str = "https://github.com/kubeward/kubeward/blob/main/docs/rules";
