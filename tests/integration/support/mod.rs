//! Shared test support.
//!
//! - [`npm`]: the GitHub fixtures installed from npm by `scripts/test.sh`.
//! - [`github_openapi`]: checks requests to GitHub against its OpenAPI description and limits.
//! - [`github_graphql`]: checks GraphQL requests against GitHub's published GraphQL schema.
//! - [`mock_github`]: a recording mock GitHub over HTTP, backed by the in-memory fake.
//! - [`git_http`]: a real git smart-HTTP server on loopback.
//! - [`polaris`]: Polaris's vendored per-check fixtures.
//! - [`queue_scenarios`]: the queue's behaviour, run against every backend.

pub mod git_http;
pub mod github_graphql;
pub mod github_openapi;
pub mod mock_github;
pub mod npm;
pub mod polaris;
#[macro_use]
pub mod queue_scenarios;
