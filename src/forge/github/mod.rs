//! GitHub: REST client and App authentication.

pub mod adapter;
pub mod api;
pub mod client;
pub mod events;
pub mod fake;
pub mod http;
pub mod publish;
pub mod reply;
