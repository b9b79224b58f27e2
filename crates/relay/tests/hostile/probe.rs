//! The hostile cases found against `relay serve`, replayed against a running server: each is
//! a request (or a crowd of connections) and the answer a hardened server gives. Used by
//! `tests/hostile_probe.rs` (against an in-process server) and by the example
//! `cargo run -p relay --example hostile_probe -- <base URL>` (against any deployment).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpSocket, TcpStream};

/// Where the server is and the receivers' credentials.
#[derive(Clone)]
pub struct Target {
    /// `127.0.0.1:8080`.
    pub addr: SocketAddr,
    /// Basic user and password of the Norce order receiver.
    pub order_user: String,
    pub order_password: String,
    /// The Norce event webhook header and secret.
    pub norce_header: String,
    pub norce_secret: String,
    /// The Brightpearl webhook secret (`?secret=`).
    pub brightpearl_secret: String,
}

/// How hard to push.
#[derive(Clone, Debug)]
pub struct Options {
    /// Slow connections opened at once (headers never finished).
    pub slow_connections: usize,
    /// The source address of the slow connections (another loopback address keeps them apart
    /// from the probe's own requests for per-IP caps); `None`: the default route's.
    pub attacker_source: Option<IpAddr>,
    /// Longest acceptable answer time of `/healthz` and of a receiver under attack.
    pub max_latency: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            slow_connections: 300,
            attacker_source: Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2))),
            max_latency: Duration::from_secs(2),
        }
    }
}

/// One case's result.
#[derive(Debug)]
pub struct Outcome {
    pub case: &'static str,
    pub passed: bool,
    pub detail: String,
}

/// An answer: status, body, time taken.
struct Reply {
    status: u16,
    body: String,
    took: Duration,
}

/// One request over a fresh connection (`Connection: close`), raw, so nothing is added.
async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> Result<Reply, String> {
    let started = Instant::now();
    let mut stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream
        .write_all(head.as_bytes())
        .await
        .map_err(|e| format!("write: {e}"))?;
    // A server may answer (413) and close before the whole body is written.
    let _ = stream.write_all(body).await;
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw).await;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            format!(
                "no HTTP answer: {:?}",
                text.chars().take(80).collect::<String>()
            )
        })?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok(Reply {
        status,
        body,
        took: started.elapsed(),
    })
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {encoded}")
}

fn order(client_order_ref: &str, part_no: &str, quantity: u32) -> Vec<u8> {
    serde_json::json!({
        "ClientOrderRef": client_order_ref,
        "CurrencyCode": "SEK",
        "Items": [{"LineNo": 1, "PartNo": part_no, "Quantity": quantity, "UnitPrice": 100.0}],
        "ShipTo": {"Person": {"FirstName": "Probe", "LastName": "Case", "Email": "probe@example.com"},
                   "Address": {"Line1": "Gatan 1", "PostalCode": "11122", "City": "Stockholm", "CountryCode": "SE"}},
    })
    .to_string()
    .into_bytes()
}

fn check(case: &'static str, passed: bool, detail: impl Into<String>) -> Outcome {
    Outcome {
        case,
        passed,
        detail: detail.into(),
    }
}

fn expect(case: &'static str, reply: Result<Reply, String>, status: u16, text: &str) -> Outcome {
    match reply {
        Ok(r) => check(
            case,
            r.status == status && r.body.contains(text),
            format!(
                "{} in {} ms: {}",
                r.status,
                r.took.as_millis(),
                r.body.chars().take(160).collect::<String>()
            ),
        ),
        Err(e) => check(case, false, e),
    }
}

/// `status`, answered within `max`.
fn prompt(case: &'static str, reply: Result<Reply, String>, status: u16, max: Duration) -> Outcome {
    match reply {
        Ok(r) => check(
            case,
            r.status == status && r.took < max,
            format!("{} in {} ms", r.status, r.took.as_millis()),
        ),
        Err(e) => check(case, false, e),
    }
}

/// Runs every case; the order matters only in that the crowd of slow connections comes last.
pub async fn run(target: &Target, options: &Options) -> Vec<Outcome> {
    let addr = target.addr;
    let json = ("Content-Type", "application/json".to_owned());
    let auth = (
        "Authorization",
        basic(&target.order_user, &target.order_password),
    );
    let norce = (target.norce_header.as_str(), target.norce_secret.clone());
    let bp_path = format!("/brightpearl/webhooks?secret={}", target.brightpearl_secret);
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let mut out = Vec::new();
    let push = |body: Vec<u8>| {
        let headers = [json.clone(), auth.clone()];
        async move { send(addr, "POST", "/norce/order-receiver", &headers, &body).await }
    };

    // Credentials first: nothing else is reachable without them.
    let reply = send(
        addr,
        "POST",
        "/norce/order-receiver",
        std::slice::from_ref(&json),
        &order("1", "A", 1),
    )
    .await;
    out.push(expect(
        "order receiver without credentials: 401",
        reply,
        401,
        "",
    ));
    let reply = send(
        addr,
        "POST",
        "/norce/events/OrderConfirmedEvent",
        std::slice::from_ref(&json),
        b"{}",
    )
    .await;
    out.push(expect(
        "event receiver without the secret: 401",
        reply,
        401,
        "",
    ));
    let reply = send(
        addr,
        "POST",
        "/brightpearl/webhooks",
        std::slice::from_ref(&json),
        b"{}",
    )
    .await;
    out.push(expect(
        "webhook receiver without the secret: 401",
        reply,
        401,
        "",
    ));

    // A 10 MB body is refused on its Content-Length, before it is read.
    let big = vec![b'x'; 10 * 1024 * 1024];
    let reply = send(
        addr,
        "POST",
        "/norce/order-receiver",
        &[json.clone(), auth.clone()],
        &big,
    )
    .await;
    out.push(prompt(
        "10 MB body: 413 at once",
        reply,
        413,
        options.max_latency,
    ));

    // Not JSON by its content type.
    let reply = send(
        addr,
        "POST",
        "/norce/order-receiver",
        &[("Content-Type", "text/plain".to_owned()), auth.clone()],
        &order("1", "A", 1),
    )
    .await;
    out.push(expect(
        "order as text/plain: 415",
        reply,
        415,
        "application/json",
    ));

    // Accepted, then certain to fail: refused now instead.
    let reply = send(
        addr,
        "POST",
        "/norce/events/OrderConfirmedEvent",
        &[json.clone(), (norce.0, norce.1.clone())],
        b"{}",
    )
    .await;
    out.push(expect(
        "OrderConfirmedEvent without its fields: 400 naming a missing field",
        reply,
        400,
        "missing field `",
    ));
    let reply = send(
        addr,
        "POST",
        "/norce/events/SomethingNobodyWantsEvent",
        &[json.clone(), (norce.0, norce.1.clone())],
        b"{}",
    )
    .await;
    out.push(expect(
        "an event type relay does not subscribe to: 200, not stored",
        reply,
        200,
        "not stored",
    ));
    let webhook = |id: &str| {
        serde_json::json!({"accountCode": "probe", "resourceType": "product", "id": id, "lifecycleEvent": "modified", "fullEvent": "product.modified.on-hand-modified", "raisedOn": "2026-03-02T08:00:00Z"}).to_string()
    };
    let reply = send(
        addr,
        "POST",
        &bp_path,
        std::slice::from_ref(&json),
        webhook("abc; DROP TABLE entities").as_bytes(),
    )
    .await;
    out.push(expect(
        "a Brightpearl id that is not an ID set: 400",
        reply,
        400,
        "ID set",
    ));

    // A changed re-push is never answered "already queued" (that dropped the change): it is a
    // new version while the first is queued, or a new item once the first was processed.
    let reference = format!("probe-{stamp}");
    let first = push(order(&reference, "SKU-A", 1)).await;
    let second = push(order(&reference, "SKU-B", 3)).await;
    let same = push(order(&reference, "SKU-B", 3)).await;
    out.push(match (first, second, same) {
        (Ok(a), Ok(b), Ok(c)) => check(
            "a changed re-push is kept; the same body again changes nothing",
            a.status == 200
                && b.status == 200
                && c.status == 200
                && !b.body.contains("already queued")
                && !c.body.contains("updated"),
            format!("{} / {} / {}", a.body, b.body, c.body),
        ),
        (a, b, c) => check(
            "a changed re-push is kept",
            false,
            format!("{:?} {:?} {:?}", a.err(), b.err(), c.err()),
        ),
    });

    // One small webhook naming 100,000 products is answered at once and stalls nothing.
    let reply = send(
        addr,
        "POST",
        &bp_path,
        std::slice::from_ref(&json),
        webhook(&format!("1-{}", 100_000 + stamp % 1000)).as_bytes(),
    )
    .await;
    out.push(prompt(
        "a webhook naming 100,000 products: 200 at once",
        reply,
        200,
        options.max_latency,
    ));
    let reply = push(order(&format!("probe-after-{stamp}"), "SKU-A", 1)).await;
    out.push(prompt(
        "an order right after it is answered promptly",
        reply,
        200,
        options.max_latency,
    ));

    // A crowd of connections that never finish their headers.
    let mut crowd = Vec::new();
    let mut refused = 0usize;
    for _ in 0..options.slow_connections {
        let socket = match TcpSocket::new_v4() {
            Ok(s) => s,
            Err(_) => break,
        };
        if let Some(source) = options.attacker_source
            && socket.bind(SocketAddr::new(source, 0)).is_err()
        {
            break;
        }
        match socket.connect(addr).await {
            Ok(mut stream) => {
                let _ = stream
                    .write_all(b"POST /norce/order-receiver HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                    .await;
                crowd.push(stream);
            }
            Err(_) => refused += 1,
        }
    }
    let health = send(addr, "GET", "/healthz", &[], b"").await;
    out.push(match health {
        Ok(r) => check(
            "/healthz answers while slow connections hold the server",
            r.status == 200 && r.took < options.max_latency,
            format!(
                "{} in {} ms with {} slow connections open ({} refused at connect)",
                r.status,
                r.took.as_millis(),
                crowd.len(),
                refused
            ),
        ),
        Err(e) => check(
            "/healthz answers while slow connections hold the server",
            false,
            e,
        ),
    });
    // Those over the caps were answered 503 (or closed) instead of being held.
    let mut turned_away = 0usize;
    for stream in &mut crowd {
        let mut buf = [0u8; 64];
        match tokio::time::timeout(Duration::from_millis(20), stream.read(&mut buf)).await {
            Ok(Ok(0)) => turned_away += 1,
            Ok(Ok(n)) if String::from_utf8_lossy(&buf[..n]).contains(" 503 ") => turned_away += 1,
            _ => {}
        }
    }
    out.push(check(
        "connections over the caps are turned away, not held",
        options.slow_connections < 100 || turned_away > 0,
        format!("{turned_away} of {} turned away", crowd.len()),
    ));
    out
}

/// The outcomes as lines, `PASS`/`FAIL` first.
pub fn render(outcomes: &[Outcome]) -> String {
    outcomes
        .iter()
        .map(|o| {
            format!(
                "{} {}: {}\n",
                if o.passed { "PASS" } else { "FAIL" },
                o.case,
                o.detail
            )
        })
        .collect()
}
