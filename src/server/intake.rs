//! The accept step of every webhook route: a body's memory is reserved before a byte of it is
//! read, so unsigned clients cannot make the server buffer more than a fixed budget.
//!
//! Signatures cover the raw body, so the body must be read before anyone is known to be the
//! forge. Each body therefore reserves its declared length (no length, as with chunked
//! encoding: `maxBodyBytes`) from one budget shared by all connections, and gives it back when
//! its request is answered. Bodies of [`SMALL_BODY`] or more may only use the budget minus a
//! share kept for smaller ones: real deliveries are a few KiB, so a flood of large bodies
//! cannot starve them. Once half the budget is held, each client address may be sending only
//! so many bodies at once, so one slow client cannot take the rest either. Below that the cap
//! does not apply: a forge's burst from one address (or every client behind one proxy) is not
//! refused while there is room. A body that has arrived no longer counts against its client
//! (the time to answer it is ours). Past any of these the answer is `503` with `Retry-After`,
//! before the body is read; the refusal is counted in
//! `kubeward_deliveries_refused_total{forge,reason}`.
//!
//! The reservation is also the most that is read: a body that turns out longer is cut off
//! with `413`.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::BytesMut;
use http_body_util::BodyExt;
use serde_json::json;
use tracing::debug;

/// Bodies declared below this size are "small": real deliveries are, and they alone may use
/// the share of the budget kept for them.
pub const SMALL_BODY: usize = 256 * 1024;

/// Default budget: nine bodies of the default `maxBodyBytes` (in the 48 MiB outside the small
/// share), or hundreds of real deliveries at once, in a pod with a 1 GiB memory limit.
pub const DEFAULT_BUDGET: usize = 64 << 20;
/// Default share for small bodies: 64 bodies just under [`SMALL_BODY`], some 500 typical
/// 30 KiB deliveries.
pub const DEFAULT_SMALL_SHARE: usize = 16 << 20;
/// Default cap per client address. A forge sends each body at once, so it is rarely sending
/// more than a few at the same moment; behind a proxy every client shares its address.
pub const DEFAULT_PER_PEER: usize = 32;

/// What the accept step enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntakeLimits {
    /// The longest body accepted (`maxBodyBytes`), and what a body without a length reserves.
    pub max_body: usize,
    /// Bytes of bodies reserved at once, over all connections (`bodyBudgetBytes`).
    pub budget: usize,
    /// The part of `budget` only bodies under [`SMALL_BODY`] may use (`smallBodyShareBytes`).
    pub small_share: usize,
    /// Once half the budget is held, bodies one client address may be sending at once; 0: no
    /// cap (`bodiesPerPeer`).
    pub per_peer: usize,
    /// Sent as `Retry-After` with a refusal.
    pub retry_after: Duration,
}

impl IntakeLimits {
    /// The default budget, share and cap for bodies of at most `max_body` bytes; the budget
    /// grows if needed so that a body of `max_body` bytes always fits.
    pub fn with_defaults(max_body: usize, retry_after: Duration) -> IntakeLimits {
        IntakeLimits {
            max_body,
            budget: DEFAULT_BUDGET.max(max_body.saturating_add(DEFAULT_SMALL_SHARE)),
            small_share: DEFAULT_SMALL_SHARE,
            per_peer: DEFAULT_PER_PEER,
            retry_after,
        }
    }

    /// What bodies of [`SMALL_BODY`] or more may hold together.
    fn large_budget(&self) -> usize {
        self.budget.saturating_sub(self.small_share)
    }
}

/// The shared budget. Cheap to lock: it is held only to add or subtract.
#[derive(Debug)]
pub struct Intake {
    limits: IntakeLimits,
    held: Mutex<Held>,
}

#[derive(Debug, Default)]
struct Held {
    total: usize,
    large: usize,
    peers: HashMap<IpAddr, usize>,
}

/// Why a body was refused before it was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    Budget,
    Peer,
}

impl Refusal {
    fn label(self) -> &'static str {
        match self {
            Refusal::Budget => "budget",
            Refusal::Peer => "peer",
        }
    }
}

/// One body's share of the budget, and its client's slot while it is being sent; given back
/// when dropped.
#[derive(Debug)]
struct Reservation {
    intake: Arc<Intake>,
    bytes: usize,
    large: bool,
    peer: Option<IpAddr>,
}

fn release_peer(held: &mut Held, peer: IpAddr) {
    if let Some(count) = held.peers.get_mut(&peer) {
        *count -= 1;
        if *count == 0 {
            held.peers.remove(&peer);
        }
    }
}

impl Reservation {
    /// The body has arrived: its client may send another (the bytes stay reserved).
    fn body_read(&mut self) {
        if let Some(peer) = self.peer.take() {
            release_peer(&mut self.intake.lock(), peer);
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut held = self.intake.lock();
        held.total -= self.bytes;
        if self.large {
            held.large -= self.bytes;
        }
        if let Some(peer) = self.peer {
            release_peer(&mut held, peer);
        }
        metrics::gauge!("kubeward_intake_reserved_bytes").set(held.total as f64);
    }
}

/// A client address as the per-peer cap counts it: an IPv6 client usually has a whole /64, so
/// that is one peer; IPv4-mapped addresses are their IPv4 address.
fn peer_key(address: IpAddr) -> IpAddr {
    match address.to_canonical() {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

impl Intake {
    pub fn new(limits: IntakeLimits) -> Arc<Intake> {
        Arc::new(Intake {
            limits,
            held: Mutex::new(Held::default()),
        })
    }

    pub fn limits(&self) -> &IntakeLimits {
        &self.limits
    }

    fn lock(&self) -> MutexGuard<'_, Held> {
        // Nothing panics while holding the lock; if something did, the counts are still sound.
        self.held
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn reserve(
        self: &Arc<Self>,
        bytes: usize,
        peer: Option<IpAddr>,
    ) -> Result<Reservation, Refusal> {
        let large = bytes >= SMALL_BODY;
        let mut held = self.lock();
        let pressed = held.total.saturating_add(bytes) > self.limits.budget / 2;
        if pressed
            && let Some(peer) = peer
            && self.limits.per_peer > 0
            && held.peers.get(&peer).copied().unwrap_or(0) >= self.limits.per_peer
        {
            return Err(Refusal::Peer);
        }
        let fits = held.total.saturating_add(bytes) <= self.limits.budget
            && (!large || held.large.saturating_add(bytes) <= self.limits.large_budget());
        if !fits {
            return Err(Refusal::Budget);
        }
        held.total += bytes;
        if large {
            held.large += bytes;
        }
        if let Some(peer) = peer {
            *held.peers.entry(peer).or_default() += 1;
        }
        metrics::gauge!("kubeward_intake_reserved_bytes").set(held.total as f64);
        Ok(Reservation {
            intake: self.clone(),
            bytes,
            large,
            peer,
        })
    }
}

fn forge_of(path: &str) -> &'static str {
    match path {
        "/webhooks/github" => "github",
        "/webhooks/gitlab" => "gitlab",
        _ => "other",
    }
}

fn refused(forge: &'static str, reason: &'static str) {
    metrics::counter!("kubeward_deliveries_refused_total", "forge" => forge, "reason" => reason)
        .increment(1);
}

fn too_large(max_body: usize) -> Response {
    (
        StatusCode::PAYLOAD_TOO_LARGE,
        // The rest of the body is not read: the connection cannot carry another request.
        [(header::CONNECTION, HeaderValue::from_static("close"))],
        axum::Json(json!({"error": format!("the body is larger than {max_body} bytes")})),
    )
        .into_response()
}

/// The accept step (an axum middleware): reserve, read at most the reservation, then hand
/// the buffered body to the route. The reservation is held until the route has answered.
pub async fn accept(State(intake): State<Arc<Intake>>, request: Request, next: Next) -> Response {
    let limits = *intake.limits();
    let forge = forge_of(request.uri().path());
    // The connection's address (from the listener), never a header a client can write.
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(address)| peer_key(address.ip()));
    let (parts, body) = request.into_parts();
    // The length hyper will hold the body to: Content-Length, or none when chunked.
    let declared = axum::body::HttpBody::size_hint(&body).exact();
    let reserve = match declared {
        Some(length) if length > limits.max_body as u64 => {
            refused(forge, "too_large");
            return too_large(limits.max_body);
        }
        Some(length) => length as usize,
        None => limits.max_body,
    };
    let mut reservation = match intake.reserve(reserve, peer) {
        Ok(reservation) => reservation,
        Err(refusal) => {
            refused(forge, refusal.label());
            debug!(
                forge,
                reason = refusal.label(),
                bytes = reserve,
                "body refused: intake busy"
            );
            let retry = limits.retry_after.as_secs().max(1).to_string();
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                [
                    (header::RETRY_AFTER, retry),
                    (header::CONNECTION, "close".to_owned()),
                ],
                axum::Json(json!({"error": "too many webhook bodies at once: try again later"})),
            )
                .into_response();
        }
    };
    let bytes = match read_body(body, reserve, declared.is_some()).await {
        Ok(bytes) => bytes,
        Err(ReadError::TooLarge) => {
            refused(forge, "too_large");
            return too_large(limits.max_body);
        }
        Err(ReadError::Body(e)) => {
            debug!(forge, error = %e, "the body could not be read");
            return (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({"error": "the body could not be read"})),
            )
                .into_response();
        }
    };
    reservation.body_read();
    let response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    drop(reservation);
    response
}

enum ReadError {
    TooLarge,
    Body(axum::Error),
}

/// Reads the body into one buffer of at most `limit` bytes. A declared length is allocated at
/// once (it is reserved already, and it spares the copies of a growing buffer).
async fn read_body(mut body: Body, limit: usize, declared: bool) -> Result<Bytes, ReadError> {
    let mut buffer = BytesMut::with_capacity(if declared { limit } else { limit.min(16 << 10) });
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(ReadError::Body)?;
        if let Ok(data) = frame.into_data() {
            if buffer.len().saturating_add(data.len()) > limit {
                return Err(ReadError::TooLarge);
            }
            buffer.extend_from_slice(&data);
        }
    }
    Ok(buffer.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> IntakeLimits {
        IntakeLimits {
            max_body: 1 << 20,
            budget: 4 << 20,
            small_share: 1 << 20,
            per_peer: 3,
            retry_after: Duration::from_secs(10),
        }
    }

    #[test]
    fn large_bodies_leave_the_small_share_and_give_back_what_they_held() {
        let intake = Intake::new(limits());
        let a: IpAddr = "192.0.2.1".parse().expect("ip");
        let b: IpAddr = "192.0.2.2".parse().expect("ip");
        let large: Vec<_> = [a, a, b]
            .into_iter()
            .map(|peer| intake.reserve(1 << 20, Some(peer)).expect("fits"))
            .collect();
        assert_eq!(
            intake.reserve(1 << 20, Some(b)).map(|_| ()),
            Err(Refusal::Budget),
            "the last MiB is the small share"
        );
        let small: Vec<_> = (0..2)
            .map(|_| {
                intake
                    .reserve(SMALL_BODY - 1, Some(b))
                    .expect("small share")
            })
            .collect();
        assert_eq!(
            intake.reserve(1, Some(b)).map(|_| ()),
            Err(Refusal::Peer),
            "three arriving from b, and more than half the budget held"
        );
        assert_eq!(
            intake.reserve(SMALL_BODY - 1, Some(a)).map(|_| ()).err(),
            None,
            "a has room for one more, and the share has room"
        );
        // A body that has arrived no longer takes its client's slot; its bytes stay held.
        let mut arrived = small;
        arrived[0].body_read();
        assert_eq!(intake.reserve(1, Some(b)).map(|_| ()), Ok(()));
        assert_eq!(intake.lock().total, 3 * (1 << 20) + 2 * (SMALL_BODY - 1));
        drop(large);
        drop(arrived);
        let held = intake.lock();
        assert_eq!((held.total, held.large, held.peers.len()), (0, 0, 0));
    }

    #[test]
    fn the_cap_per_client_applies_only_once_half_the_budget_is_held() {
        let intake = Intake::new(limits());
        let a: IpAddr = "192.0.2.1".parse().expect("ip");
        let burst: Vec<_> = (0..10)
            .map(|_| intake.reserve(30_000, Some(a)).expect("room enough"))
            .collect();
        let large: Vec<_> = (0..2)
            .map(|_| intake.reserve(1 << 20, None).expect("fits"))
            .collect();
        assert_eq!(
            intake.reserve(30_000, Some(a)).map(|_| ()),
            Err(Refusal::Peer)
        );
        drop((burst, large));
    }

    #[test]
    fn an_ipv6_client_is_its_slash_64() {
        let one: IpAddr = "2001:db8:1:2:aaaa::1".parse().expect("ip");
        let other: IpAddr = "2001:db8:1:2:bbbb::9".parse().expect("ip");
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().expect("ip");
        assert_eq!(peer_key(one), peer_key(other));
        assert_eq!(peer_key(mapped), "192.0.2.7".parse::<IpAddr>().expect("ip"));
    }

    #[test]
    fn the_default_budget_always_fits_the_largest_body() {
        let small = IntakeLimits::with_defaults(5 << 20, Duration::from_secs(10));
        assert_eq!((small.budget, small.small_share), (64 << 20, 16 << 20));
        let huge = IntakeLimits::with_defaults(100 << 20, Duration::from_secs(10));
        assert!(huge.large_budget() >= 100 << 20);
    }
}
