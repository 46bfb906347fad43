//! `kubeward serve` against clients that send bodies without a signature: each body reserves
//! its declared length from a budget before it is read, a share of it stays for small bodies,
//! each client address has a cap, and past those the answer is `503` with `Retry-After`,
//! counted in `/metrics`. Clients come from different loopback addresses (127.0.0.x) so the
//! per-client cap sees different peers.

use std::net::{IpAddr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kubeward::server::github::github_signature;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::support::free_port;

const SECRET: &str = "intake-secret";
const GITLAB_SECRET: &str = "intake-gitlab-secret";
const MIB: usize = 1 << 20;
/// Long enough that bodies held open on purpose are not timed out during a test.
const READ_TIMEOUT_SECONDS: u64 = 30;

struct Served {
    child: Child,
    address: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `kubeward serve` with both forges, a 1 MiB body limit, a 4 MiB budget of which 1 MiB is
/// kept for small bodies, and at most `per_peer` bodies per client address.
async fn serve(per_peer: usize) -> Served {
    let dir = tempfile::tempdir().expect("temp");
    let port = free_port();
    let settings = dir.path().join("serve.yaml");
    std::fs::write(
        &settings,
        format!(
            "listen: 127.0.0.1:{port}
database: sqlite://{db}
cacheDir: {cache}
workers: 1
maxBodyBytes: {MIB}
bodyBudgetBytes: {budget}
smallBodyShareBytes: {MIB}
bodiesPerPeer: {per_peer}
readTimeoutSeconds: {READ_TIMEOUT_SECONDS}
github:
  apiUrl: http://127.0.0.1:9
  gitUrl: http://127.0.0.1:9
  botLogin: kubeward[bot]
gitlab:
  instanceUrl: http://127.0.0.1:9
  botUsername: kubeward-bot
  projects:
    - id: 4242
      secretEnv: INTAKE_GITLAB_SECRET
",
            db = dir.path().join("queue.db").display(),
            cache = dir.path().join("cache").display(),
            budget = 4 * MIB,
        ),
    )
    .expect("settings");
    let child = Command::new(env!("CARGO_BIN_EXE_kubeward"))
        .args(["serve", "--config"])
        .arg(&settings)
        .env("KUBEWARD_GITHUB_WEBHOOK_SECRET", SECRET)
        .env("KUBEWARD_GITHUB_TOKEN", "ghs_intake_token")
        .env("KUBEWARD_GITLAB_TOKEN", "glpat-intake-token")
        .env("INTAKE_GITLAB_SECRET", GITLAB_SECRET)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve starts");
    let address: SocketAddr = format!("127.0.0.1:{port}").parse().expect("address");
    let served = Served {
        child,
        address,
        _dir: dir,
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while reqwest::get(format!("http://{address}/readyz"))
        .await
        .map(|r| !r.status().is_success())
        .unwrap_or(true)
    {
        assert!(Instant::now() < deadline, "serve never became ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    served
}

/// A connection from `source` (a loopback address).
async fn connect_from(source: &str, address: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind(SocketAddr::new(source.parse().expect("ip"), 0))
        .expect("bind the source address");
    socket.connect(address).await.expect("connect")
}

/// Headers of a delivery declaring `length` bytes (`None`: chunked), unsigned unless a
/// GitHub `signature` is given. Each is the connection's only request.
fn head(path: &str, length: Option<usize>, signature: Option<&str>) -> String {
    let framing = match length {
        Some(n) => format!("Content-Length: {n}"),
        None => "Transfer-Encoding: chunked".to_owned(),
    };
    let zeros = format!("sha256={}", "0".repeat(64));
    format!(
        "POST {path} HTTP/1.1\r\nHost: kubeward\r\nConnection: close\r\n\
         Content-Type: application/json\r\nX-GitHub-Event: pull_request\r\n\
         X-GitHub-Delivery: raw-delivery\r\nX-Hub-Signature-256: {signature}\r\n\
         X-Gitlab-Event: Merge Request Hook\r\nX-Gitlab-Token: wrong\r\n{framing}\r\n\r\n",
        signature = signature.unwrap_or(&zeros),
    )
}

/// A client that declares a body, sends its headers and `start` bytes of it, and then waits.
async fn begin_body(
    source: &str,
    address: SocketAddr,
    path: &str,
    length: Option<usize>,
    start: &[u8],
) -> TcpStream {
    let mut stream = connect_from(source, address).await;
    stream
        .write_all(head(path, length, None).as_bytes())
        .await
        .expect("headers");
    stream.write_all(start).await.expect("start of the body");
    stream
}

/// Everything the server sends until it closes the connection (at most 10 s), lower-cased.
async fn answer(stream: &mut TcpStream) -> String {
    let mut bytes = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut bytes)).await;
    String::from_utf8_lossy(&bytes).to_lowercase()
}

async fn metrics(address: SocketAddr) -> String {
    reqwest::get(format!("http://{address}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text")
}

/// A counter or gauge from `/metrics`: the line naming `name` and every one of `labels`.
async fn metric(address: SocketAddr, name: &str, labels: &[&str]) -> f64 {
    metrics(address)
        .await
        .lines()
        .filter(|line| {
            line.split([' ', '{']).next() == Some(name)
                && labels.iter().all(|label| line.contains(label))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Waits until the bodies in flight hold exactly `bytes` of the budget.
async fn wait_reserved(address: SocketAddr, bytes: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let reserved = metric(address, "kubeward_intake_reserved_bytes", &[]).await;
        if reserved == bytes as f64 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "reserved {reserved} bytes, expected {bytes}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A signed `pull_request.opened` delivery's body.
fn opened() -> Vec<u8> {
    let sha = "1111111111111111111111111111111111111111";
    serde_json::to_vec(&json!({
        "action": "opened",
        "number": 7,
        "pull_request": {"number": 7, "state": "open", "draft": false,
            "head": {"sha": sha, "ref": "f", "repo": {"id": 4242}},
            "base": {"sha": sha, "ref": "main", "repo": {"id": 4242}}},
        "repository": {"id": 4242, "name": "shop", "full_name": "octo/shop", "private": false,
            "owner": {"login": "octo", "id": 1, "type": "Organization"}},
        "installation": {"id": 77},
        "sender": {"login": "dev", "id": 2, "type": "User"},
    }))
    .expect("json")
}

/// A signed delivery from `source`; its status.
async fn signed_delivery(address: SocketAddr, source: &str, delivery: &str) -> u16 {
    let body = opened();
    let client = reqwest::Client::builder()
        .local_address(source.parse::<IpAddr>().expect("ip"))
        .build()
        .expect("client");
    client
        .post(format!("http://{address}/webhooks/github"))
        .header("content-type", "application/json")
        .header("x-github-event", "pull_request")
        .header("x-github-delivery", delivery)
        .header("x-hub-signature-256", github_signature(SECRET, &body))
        .body(body)
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

fn refusal(reply: &str) {
    assert!(reply.starts_with("http/1.1 503"), "{reply}");
    assert!(
        reply.contains(&format!("retry-after: {READ_TIMEOUT_SECONDS}\r\n")),
        "{reply}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_past_the_budget_get_503_while_a_signed_delivery_still_gets_202() {
    let served = serve(8).await;
    let address = served.address;
    // Three clients of one address each declare a 1 MiB body and trickle it: together they
    // hold all the budget but the share kept for small bodies.
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(begin_body("127.0.0.1", address, "/webhooks/github", Some(MIB), b"{").await);
    }
    wait_reserved(address, 3 * MIB).await;

    // Another client's large body does not fit, whatever its framing or route: 503 at once,
    // before a byte of the body is sent.
    for (path, length) in [
        ("/webhooks/github", Some(MIB)),
        ("/webhooks/github", None),
        ("/webhooks/gitlab", Some(300 << 10)),
    ] {
        let mut stream = begin_body("127.0.0.3", address, path, length, b"").await;
        refusal(&answer(&mut stream).await);
    }
    // A real delivery, a few hundred bytes, still gets in: the small share is its.
    assert_eq!(signed_delivery(address, "127.0.0.2", "real-1").await, 202);
    let refused = |forge: &'static str| async move {
        metric(
            address,
            "kubeward_deliveries_refused_total",
            &[&format!("forge=\"{forge}\""), "reason=\"budget\""],
        )
        .await
    };
    assert_eq!(refused("github").await, 2.0);
    assert_eq!(refused("gitlab").await, 1.0);

    // The budget is given back when those clients go away: the same large body is read, and
    // refused for what it is, an unsigned delivery.
    drop(held);
    wait_reserved(address, 0).await;
    let mut body = vec![b' '; MIB];
    body[0] = b'{';
    body[MIB - 1] = b'}';
    let mut stream = begin_body("127.0.0.3", address, "/webhooks/github", Some(MIB), &body).await;
    let reply = answer(&mut stream).await;
    assert!(reply.starts_with("http/1.1 401"), "{reply}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_half_the_budget_one_client_address_sends_at_most_its_cap_of_bodies() {
    let served = serve(4).await;
    let address = served.address;
    // Six small bodies still arriving from one address, over both routes: more than its cap,
    // but with the budget nearly free a burst from one address is not refused.
    let mut held = Vec::new();
    for path in ["/webhooks/github", "/webhooks/gitlab"] {
        for _ in 0..3 {
            held.push(begin_body("127.0.0.1", address, path, Some(10_000), b"{").await);
        }
    }
    wait_reserved(address, 60_000).await;
    // Another address's large bodies take the budget past half: now the cap applies.
    let mut large = Vec::new();
    for _ in 0..2 {
        large.push(begin_body("127.0.0.3", address, "/webhooks/github", Some(MIB), b"{").await);
    }
    wait_reserved(address, 2 * MIB + 60_000).await;
    let mut stream = begin_body("127.0.0.1", address, "/webhooks/github", Some(10), b"").await;
    refusal(&answer(&mut stream).await);
    assert_eq!(
        metric(
            address,
            "kubeward_deliveries_refused_total",
            &["forge=\"github\"", "reason=\"peer\""],
        )
        .await,
        1.0
    );
    // Another address is not held up by it.
    assert_eq!(
        signed_delivery(address, "127.0.0.2", "other-peer").await,
        202
    );
    // And the first gets its slots back as its bodies end: three arriving, under its cap.
    held.truncate(3);
    wait_reserved(address, 2 * MIB + 30_000).await;
    assert_eq!(
        signed_delivery(address, "127.0.0.1", "same-peer").await,
        202
    );
    drop((held, large));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_is_never_read_past_its_declared_length_or_the_limit() {
    let served = serve(8).await;
    let address = served.address;
    // Declared over maxBodyBytes: 413 before the body is sent.
    let mut stream = begin_body("127.0.0.1", address, "/webhooks/github", Some(MIB + 1), b"").await;
    let reply = answer(&mut stream).await;
    assert!(reply.starts_with("http/1.1 413"), "{reply}");

    // No length (chunked) reserves the limit and is cut off there.
    let mut stream = begin_body("127.0.0.1", address, "/webhooks/github", None, b"").await;
    let chunk = vec![b' '; 64 << 10];
    for _ in 0..(MIB / chunk.len() + 1) {
        let framed = [format!("{:x}\r\n", chunk.len()).as_bytes(), &chunk, b"\r\n"].concat();
        if stream.write_all(&framed).await.is_err() {
            break;
        }
    }
    let reply = answer(&mut stream).await;
    assert!(reply.starts_with("http/1.1 413"), "{reply}");

    // More bytes than the Content-Length: the body is the declared bytes (their signature
    // checks out), and nothing after them is read into it.
    let body = opened();
    let signature = github_signature(SECRET, &body);
    let mut stream = connect_from("127.0.0.1", address).await;
    let head = head("/webhooks/github", Some(body.len()), Some(&signature));
    let sent = [head.as_bytes(), &body, &vec![b'x'; 4096]].concat();
    stream.write_all(&sent).await.expect("write");
    let reply = answer(&mut stream).await;
    assert!(reply.starts_with("http/1.1 202"), "{reply}");
    wait_reserved(address, 0).await;
}
