//! Shared test support, included with `mod support;` (each test binary uses only part of it).
//!
//! - [`npm`]: the GitHub fixtures installed from npm by `scripts/test.sh`.
//! - [`github_openapi`]: checks requests to GitHub against its OpenAPI description and limits.
//! - [`github_graphql`]: checks GraphQL requests against GitHub's published GraphQL schema.
//! - [`mock_github`]: a recording mock GitHub over HTTP, backed by the in-memory fake.
//!
//! (`git_http.rs` is included on its own, with `#[path = "support/git_http.rs"]`.)
#![allow(dead_code)]

pub mod github_graphql;
pub mod github_openapi;
pub mod mock_github;
pub mod npm;
