//! The webhook listener against slow clients: headers and bodies are read under a timeout,
//! so a client trickling bytes cannot hold a connection (and its memory) open.

use std::time::{Duration, Instant};

use kubeward::forge::Secret;
use kubeward::queue::Queue;
use kubeward::server::{AppState, GitHubHooks, listen, router};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

const READ_TIMEOUT: Duration = Duration::from_millis(600);

/// The real router and listener on loopback; its address, and the sender that stops it.
async fn start() -> (std::net::SocketAddr, watch::Sender<bool>, Queue) {
    let queue = Queue::connect("sqlite::memory:").await.expect("queue");
    let state = AppState {
        queue: queue.clone(),
        github: Some(GitHubHooks {
            secrets: vec![Secret::new("s")],
            app_id: None,
            bot_login: "kubeward[bot]".into(),
        }),
        metrics: None,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let (stop, mut stopped) = watch::channel(false);
    let app = router(state, 64 * 1024, READ_TIMEOUT);
    tokio::spawn(listen::serve(
        listener,
        app,
        READ_TIMEOUT,
        Duration::from_secs(5),
        async move {
            let _ = stopped.changed().await;
        },
    ));
    (address, stop, queue)
}

/// Everything the server sends until it closes the connection (or 10 s pass).
async fn read_until_closed(stream: &mut TcpStream) -> String {
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

/// A client that sends nothing, or never finishes its headers, is disconnected after the read
/// timeout.
#[tokio::test]
async fn clients_that_never_finish_their_headers_are_disconnected() {
    let (address, _stop, _queue) = start().await;
    let openings: [&[u8]; 2] = [
        b"",
        b"POST /webhooks/github HTTP/1.1\r\nHost: kubeward\r\nX-GitHub-Event: ping\r\n",
    ];
    for opening in openings {
        let mut stream = TcpStream::connect(address).await.expect("connect");
        stream.write_all(opening).await.expect("write");
        let started = Instant::now();
        let answer = read_until_closed(&mut stream).await;
        let waited = started.elapsed();
        assert!(
            waited >= READ_TIMEOUT / 2 && waited < Duration::from_secs(5),
            "{opening:?}: closed after {waited:?}: {answer:?}"
        );
    }
}

#[tokio::test]
async fn a_body_that_stops_arriving_gets_408_and_nothing_is_queued() {
    let (address, _stop, queue) = start().await;
    let mut stream = TcpStream::connect(address).await.expect("connect");
    stream
        .write_all(
            b"POST /webhooks/github HTTP/1.1\r\nHost: kubeward\r\nX-GitHub-Event: ping\r\n\
              X-GitHub-Delivery: slow-1\r\nContent-Type: application/json\r\n\
              Content-Length: 100\r\n\r\n{\"zen\":",
        )
        .await
        .expect("write");
    let started = Instant::now();
    let answer = read_until_closed(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(!queue.delivery_seen("github", "slow-1").await.expect("read"));
}

#[tokio::test]
async fn a_prompt_client_is_answered_and_shutdown_closes_the_listener() {
    let (address, stop, _queue) = start().await;
    let mut stream = TcpStream::connect(address).await.expect("connect");
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: kubeward\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let answer = read_until_closed(&mut stream).await;
    assert!(
        answer.starts_with("HTTP/1.1 200") && answer.ends_with("ok"),
        "{answer:?}"
    );
    let _ = stop.send(true);
    let deadline = Instant::now() + Duration::from_secs(5);
    while TcpStream::connect(address).await.is_ok() {
        assert!(Instant::now() < deadline, "still accepting after shutdown");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
