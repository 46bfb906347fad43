//! Forges (GitHub, GitLab): thin adapters that talk to the hosting service's API.

pub mod budget;
pub mod command;
pub mod github;
pub mod gitlab;
pub mod http;
pub mod ids;
pub mod job;
pub mod reply;
pub mod secret;

pub use secret::Secret;
