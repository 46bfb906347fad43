//! The platform team's view, served by `kubeward serve` when `dashboard:` is set: on its own
//! listener (default 127.0.0.1:8081), never beside the public webhook, behind an
//! authenticating proxy or with accounts from a file ([`access`], [`signin`]). It serves the
//! pages under `/dashboard` ([`pages`]) and the same data as JSON under `/api/v1/` ([`api`]),
//! from the ownership store in the queue's database.

pub mod access;
mod api;
pub mod links;
mod pages;
pub mod signin;

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::Redirect;
use axum::response::Response;
use axum::routing::{get, post};

use crate::queue::Queue;
pub use access::{Access, DashboardSettings};

pub struct DashboardState {
    pub queue: Queue,
    pub access: Access,
}

/// Every response: nothing to run, nothing inline, nothing to embed, nothing to sniff.
async fn hardened(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        // The stylesheet and icon are files of ours; forms post only here; nothing else loads.
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
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
        .route("/", get(|| async { Redirect::to("/dashboard") }))
        .route("/dashboard", get(pages::overview))
        .route("/dashboard/teams/{team}", get(pages::team))
        .route("/dashboard/rules/{rule}", get(pages::rule))
        .route(
            "/dashboard/repositories/{forge}/{repo_id}",
            get(pages::repository),
        )
        .route(
            "/dashboard/sign-in",
            get(pages::sign_in_form).post(pages::sign_in),
        )
        .route("/dashboard/sign-out", post(pages::sign_out))
        .route("/dashboard/static/dashboard.css", get(pages::stylesheet))
        .route("/dashboard/static/icon.svg", get(pages::icon))
        .route("/api/v1/overview", get(api::overview))
        .route("/api/v1/teams/{team}", get(api::team))
        .route("/api/v1/teams/{team}/findings.csv", get(api::team_csv))
        .route("/api/v1/rules/{rule}", get(api::rule))
        .route(
            "/api/v1/repositories/{forge}/{repo_id}",
            get(api::repository),
        )
        // A sign-in form is a few hundred bytes.
        .layer(axum::extract::DefaultBodyLimit::max(8 * 1024))
        .layer(axum::middleware::map_response(hardened))
        .with_state(state)
}
