//! The platform team's view, served by `kubeward serve` when `dashboard:` is set: on its own
//! listener (default 127.0.0.1:8081), never beside the public webhook, behind an
//! authenticating proxy ([`access`]). Today it serves the JSON API under `/api/v1/` (and a
//! team's findings as CSV) from the ownership store in the queue's database.

pub mod access;
mod api;

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use axum::routing::get;

use crate::queue::Queue;
pub use access::{Access, DashboardSettings};

pub struct DashboardState {
    pub queue: Queue,
    pub access: Access,
}

/// Every response: nothing to run, nothing to embed, nothing to sniff.
async fn hardened(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

pub fn router(state: Arc<DashboardState>) -> Router {
    Router::new()
        .route("/api/v1/overview", get(api::overview))
        .route("/api/v1/teams/{team}", get(api::team))
        .route("/api/v1/teams/{team}/findings.csv", get(api::team_csv))
        .route("/api/v1/rules/{rule}", get(api::rule))
        .route(
            "/api/v1/repositories/{forge}/{repo_id}",
            get(api::repository),
        )
        .layer(axum::middleware::map_response(hardened))
        .with_state(state)
}
