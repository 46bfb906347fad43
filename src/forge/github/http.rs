//! The real client as the publisher's [`GitHubApi`].

use reqwest::Method as HttpMethod;

use super::api::{ApiError, ApiFuture, ApiReply, ApiRequest, GitHubApi, Method};
use super::client::{GitHubClient, GitHubError};

fn http_method(method: Method) -> HttpMethod {
    match method {
        Method::Get => HttpMethod::GET,
        Method::Post => HttpMethod::POST,
        Method::Patch => HttpMethod::PATCH,
        Method::Put => HttpMethod::PUT,
        Method::Delete => HttpMethod::DELETE,
    }
}

fn convert(method: Method, path: &str, error: GitHubError) -> ApiError {
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
        None => ApiError::Other(error.to_string()),
    }
}

impl GitHubApi for GitHubClient {
    fn call(&self, installation: u64, request: ApiRequest) -> ApiFuture<'_> {
        Box::pin(async move {
            let started = std::time::Instant::now();
            let result = self
                .send(
                    Some(installation),
                    http_method(request.method),
                    &request.path,
                    request.body.as_ref(),
                    request.kind,
                )
                .await;
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
                    body: r.body,
                })
                .map_err(|e| convert(request.method, &request.path, e))
        })
    }
}
