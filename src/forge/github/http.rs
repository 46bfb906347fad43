//! The real client as the publisher's [`GitHubApi`].

use std::time::Duration;

use super::api::{ApiError, ApiFuture, ApiReply, ApiRequest, GitHubApi, Method};
use super::client::{self, GitHubClient, GitHubError};

/// How long to wait after a rate limit that named no time (GitHub's advice: at least a minute).
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(60);

fn convert(method: Method, path: &str, error: GitHubError) -> ApiError {
    if let GitHubError::RateLimited { retry_after, .. } = &error {
        // Typed, with its wait: the worker defers the job instead of failing it.
        return ApiError::RateLimited {
            retry_after: retry_after.unwrap_or(DEFAULT_RETRY_AFTER),
            message: error.to_string(),
        };
    }
    if let GitHubError::TooManyPages {
        path,
        pages,
        per_page,
    } = error
    {
        return ApiError::TooManyPages {
            path,
            pages,
            per_page,
        };
    }
    if error.is_unconfirmed() {
        return ApiError::Unconfirmed(format!(
            "{} {}",
            method.as_str(),
            path.split('?').next().unwrap_or("")
        ));
    }
    match error.status() {
        Some(status) => ApiError::Status {
            method: method.as_str(),
            path: path.split('?').next().unwrap_or("").to_owned(),
            status,
            message: error.to_string(),
        },
        None => match &error {
            GitHubError::Network { .. } => ApiError::Network {
                method: method.as_str(),
                path: path.split('?').next().unwrap_or("").to_owned(),
                detail: error.to_string(),
            },
            _ => ApiError::Other(error.to_string()),
        },
    }
}

impl GitHubApi for GitHubClient {
    fn call(&self, installation: u64, request: ApiRequest) -> ApiFuture<'_> {
        Box::pin(async move {
            let started = std::time::Instant::now();
            let sent = client::ApiRequest {
                body: request.body.as_ref(),
                budget: request.budget,
                ..client::ApiRequest::new(request.method.to_reqwest(), &request.path, request.kind)
            };
            let result = self.send_request(Some(installation), &sent).await;
            let status = match &result {
                Ok(r) => r.status.to_string(),
                Err(e) => e
                    .status()
                    .map_or_else(|| "error".to_owned(), |s| s.to_string()),
            };
            metrics::counter!("kubeward_forge_requests_total", "forge" => "github", "status" => status).increment(1);
            metrics::histogram!("kubeward_forge_request_seconds", "forge" => "github")
                .record(started.elapsed().as_secs_f64());
            result
                .map(|r| ApiReply {
                    status: r.status,
                    next: self.next_page(&r),
                    body: r.body,
                })
                .map_err(|e| convert(request.method, &request.path, e))
        })
    }
}
