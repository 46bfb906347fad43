//! A real git smart-HTTP server for tests: axum on 127.0.0.1 in front of `git http-backend`,
//! requiring HTTP Basic auth with a given password, and recording what clients sent.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, Response, StatusCode, Uri};
use base64::Engine;
use tokio::io::AsyncWriteExt;

#[derive(Clone)]
struct Shared {
    root: PathBuf,
    password: Option<String>,
    seen_auth: Arc<Mutex<Vec<String>>>,
}

pub struct GitHttpServer {
    pub base_url: String,
    pub seen_auth: Arc<Mutex<Vec<String>>>,
    _task: tokio::task::JoinHandle<()>,
}

/// Serves the bare repositories under `root` at `http://127.0.0.1:PORT/<path>`.
pub async fn serve(root: PathBuf, password: Option<&str>) -> GitHttpServer {
    let shared = Shared {
        root,
        password: password.map(str::to_owned),
        seen_auth: Arc::new(Mutex::new(Vec::new())),
    };
    let seen_auth = shared.seen_auth.clone();
    let app = axum::Router::new().fallback(handle).with_state(shared);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    GitHttpServer {
        base_url: format!("http://{addr}"),
        seen_auth,
        _task: task,
    }
}

fn unauthorized() -> Response<Body> {
    Response::builder()
        .status(StatusCode::UNAUTHORIZED)
        .header("WWW-Authenticate", "Basic realm=\"git\"")
        .body(Body::empty())
        .expect("static response")
}

async fn handle(
    State(shared): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response<Body> {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if let Some(a) = &auth {
        shared.seen_auth.lock().expect("lock").push(a.clone());
    }
    if let Some(password) = &shared.password {
        let ok = auth
            .as_deref()
            .and_then(|a| a.strip_prefix("Basic "))
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
            .and_then(|d| String::from_utf8(d).ok())
            .is_some_and(|creds| creds.split_once(':').is_some_and(|(_, p)| p == password));
        if !ok {
            return unauthorized();
        }
    }
    let mut child = match tokio::process::Command::new("git")
        .args(["-c", "uploadpack.allowAnySHA1InWant=true", "http-backend"])
        .env("GIT_PROJECT_ROOT", &shared.root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("PATH_INFO", uri.path())
        .env("QUERY_STRING", uri.query().unwrap_or(""))
        .env("REQUEST_METHOD", method.as_str())
        .env(
            "CONTENT_TYPE",
            headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or(""),
        )
        .env("CONTENT_LENGTH", body.len().to_string())
        .env(
            "GIT_PROTOCOL",
            headers
                .get("git-protocol")
                .and_then(|v| v.to_str().ok())
                .unwrap_or(""),
        )
        .env("REMOTE_USER", "git")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
    {
        Ok(c) => c,
        Err(_) => {
            return Response::builder()
                .status(500)
                .body(Body::empty())
                .expect("static response");
        }
    };
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(&body).await;
    }
    let output = match child.wait_with_output().await {
        Ok(o) => o.stdout,
        Err(_) => Vec::new(),
    };
    // CGI: headers, blank line, body.
    let split = output
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| (p, 4))
        .or_else(|| output.windows(2).position(|w| w == b"\n\n").map(|p| (p, 2)));
    let Some((at, sep)) = split else {
        return Response::builder()
            .status(500)
            .body(Body::empty())
            .expect("static response");
    };
    let head = String::from_utf8_lossy(&output[..at]).into_owned();
    let mut builder = Response::builder().status(200);
    for line in head.lines() {
        if let Some((name, value)) = line.split_once(':') {
            let value = value.trim();
            if name.eq_ignore_ascii_case("Status") {
                let code = value
                    .split(' ')
                    .next()
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(200);
                builder = builder.status(code);
            } else {
                builder = builder.header(name.trim(), value);
            }
        }
    }
    builder
        .body(Body::from(output[at + sep..].to_vec()))
        .expect("CGI response")
}
