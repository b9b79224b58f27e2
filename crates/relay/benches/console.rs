//! `cargo bench -p relay --bench console [-- ENTITIES [BACKEND]]` (defaults 100000 and `sqlite`;
//! BACKEND `sqlite` or `postgres`, the latter on a throwaway cluster, which needs PostgreSQL's
//! server binaries).
//!
//! Whether every page of the operator console renders in under 50 ms with ENTITIES entities in
//! the state. The state is seeded through the [`Store`] API (which records each entity's history
//! and the hourly outcomes itself) on a fake clock spread over 60 days up to now: shipping
//! (50 %), orders (25 %), stock (15 %) and prices (10 %), payloads of about 1 KB of JSON, steps
//! with target ids, aliases (shipping's order numbers) and SKUs (a lookup map), retried
//! attempts, about 8 % dead-lettered, some of those resolved or requeued by an operator (the
//! audit log), the newest few still pending, every cursor set and some set back by an operator.
//!
//! The state is then pruned to the default retention (30 days), as `relay serve` keeps it; on
//! PostgreSQL the planner's statistics are gathered (`ANALYZE`, what autovacuum does shortly
//! after a bulk change). Then `relay serve` starts in this process with the console on, signs
//! in, and GETs each page 3 times to warm up and 30 times measured, over HTTP on 127.0.0.1, one
//! request at a time; beside each page, the store calls that page makes are timed directly
//! (`store_*`), so a slow page points at its query. Prints one JSON object (stdout) and a table
//! (stderr); exits 1 when a page's p99 is 50 ms or more, 2 when the bench itself could not run.
//!
//! Environment: `CONSOLE_BENCH_KEEP=1` keeps the SQLite state file (its path is printed), or
//! the PostgreSQL cluster until a line on standard input (its URL is printed), to look at query
//! plans afterwards.

use std::cell::Cell;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, SecondsFormat, TimeDelta, Utc};
use relay::config::RelayConfig;
use relay::flows::{FlowContext, FlowError, FlowReport};
use relay::operator::CURSOR_FLOWS;
use relay::serve::{self, FlowEntry, FlowFuture, IngestFuture, SecretString, ServeSecrets};
use relay::state::{
    EntityQuery, EntityUpdate, InboxItem, PgStore, SqliteStore, StateError, Status, Store,
};
use serde_json::{Value, json};

/// The target: every page's p99 below this.
const BUDGET_MS: f64 = 50.0;
/// Unmeasured renders of each page first (the statement caches, the page cache).
const WARM_UPS: usize = 3;
/// Measured renders of each page.
const RENDERS: usize = 30;
/// The seeded entities' creation times cover this many days up to now.
const DAYS: i64 = 60;
/// The console's sign-in token for this run.
const TOKEN: &str = "console-bench-token-0123456789abcdef";
/// `a#next-page` links followed for the deep page of the entity list.
const DEEP_ENTITY_PAGES: usize = 20;
/// `a#next-page` links followed for a later page of the dead letters (fewer if there are fewer).
const LATER_LETTER_PAGES: usize = 40;
/// Records per entity-list page (the console's `PAGE_SIZE`), for the direct store timing.
const ENTITY_PAGE: usize = 50;
/// Dead letters per page (the console's), for the direct store timing.
const LETTER_PAGE: usize = 100;
/// Events on the detail page and audit entries on the audit page (the console's).
const HISTORY: usize = 200;
const AUDIT: usize = 500;
/// The lookup map the SKUs go in (the catalog's name for an account's SKUs).
const SKU_MAP: &str = "brightpearl-sku:bench";

thread_local! {
    /// The seeding thread's simulated time (milliseconds), read by the store's clock; `None`
    /// (the console's threads) is the wall clock.
    static NOW_MS: Cell<Option<i64>> = const { Cell::new(None) };
}

/// The store's clock: this thread's simulated time, else the wall clock.
fn clock() -> DateTime<Utc> {
    NOW_MS
        .with(Cell::get)
        .and_then(DateTime::from_timestamp_millis)
        .unwrap_or_else(Utc::now)
}

/// Sets this thread's simulated time.
fn at(time: DateTime<Utc>) {
    NOW_MS.with(|now| now.set(Some(time.timestamp_millis())));
}

fn err(e: StateError) -> String {
    e.to_string()
}

// ---------------------------------------------------------------------------------------------
// The seeded data: every entity is a function of its index, so the pages' targets are too.

/// What becomes of a seeded entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    /// Every step done.
    Done,
    /// Done after one failed attempt.
    Retried,
    /// Two failed attempts, then dead-lettered (open).
    Failed,
    /// Dead-lettered, then marked resolved by an operator.
    Resolved,
    /// Dead-lettered, requeued by an operator, then done.
    Requeued,
    /// Skipped by the mapping (a pickup-in-store order).
    Skipped,
    /// Created recently, first step only.
    Pending,
}

/// The plan of entity `i` of `n`.
struct Plan {
    flow: &'static str,
    source_id: String,
    target_id: String,
    alias: Option<String>,
    steps: &'static [&'static str],
    /// The step whose update records the target id.
    target_step: usize,
    fate: Fate,
    created: DateTime<Utc>,
}

fn flow_of(i: usize) -> &'static str {
    match i % 20 {
        0..=9 => "shipping",
        10..=14 => "orders",
        15..=17 => "stock",
        _ => "prices",
    }
}

/// The product (Brightpearl id, SKU) of a stock or prices entity: the n-th product of the
/// flow, so most products have a stock and a prices entity, as in a real catalog.
fn product_of(i: usize) -> (u64, String) {
    let ordinal = match i % 20 {
        r @ 15..=17 => (i / 20) * 3 + (r - 15),
        r => (i / 20) * 2 + r.saturating_sub(18),
    };
    (100_000 + ordinal as u64, format!("SKU-{ordinal:06}"))
}

fn plan(i: usize, n: usize, start: DateTime<Utc>) -> Plan {
    let flow = flow_of(i);
    let span_ms = DAYS * 86_400_000;
    let created = start + TimeDelta::milliseconds(span_ms * i as i64 / n.max(1) as i64);
    let fate = if i + n / 200 >= n {
        Fate::Pending
    } else {
        // Mixed, so that the fates fall on every flow alike (the flows follow `i % 20`).
        let h = ((i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40) as usize;
        match (h % 1000, h % 100) {
            (0, _) => Fate::Resolved,
            (1, _) => Fate::Requeued,
            (_, 0..=7) => Fate::Failed,
            (_, 8) if flow == "shipping" => Fate::Skipped,
            (_, 9..=14) => Fate::Retried,
            _ => Fate::Done,
        }
    };
    let (source_id, target_id, alias, steps, target_step): (_, _, _, &'static [&'static str], _) =
        match flow {
            "shipping" => (
                format!("{}", 4_000_000 + i),
                format!("SHP-{:08}", 70_000_000 + i),
                Some(format!("NC-{}", 500_000 + i)),
                &["resolved", "booked", "labels_saved", "status_sent"],
                1,
            ),
            "orders" => (
                format!("{}", 4_000_000 + i),
                format!("{}", 900_000 + i),
                None,
                &["contact", "created", "written_back"],
                1,
            ),
            _ => {
                let (product, _) = product_of(i);
                (
                    product.to_string(),
                    format!("JOB-{}", 30_000 + i / 400),
                    None,
                    &["written"],
                    0,
                )
            }
        };
    Plan {
        flow,
        source_id,
        target_id,
        alias,
        steps,
        target_step,
        fate,
        created,
    }
}

const FIRST_NAMES: [&str; 8] = [
    "Anna", "Erik", "Maria", "Lars", "Karin", "Johan", "Sofia", "Nils",
];
const LAST_NAMES: [&str; 8] = [
    "Andersson",
    "Johansson",
    "Karlsson",
    "Nilsson",
    "Eriksson",
    "Larsson",
    "Olsson",
    "Persson",
];
const CITIES: [(&str, &str); 4] = [
    ("Stockholm", "SE"),
    ("Göteborg", "SE"),
    ("Oslo", "NO"),
    ("Helsinki", "FI"),
];

/// About 1 KB of the JSON each flow keeps for an entity.
fn payload(plan: &Plan, i: usize, rng: &mut fastrand::Rng) -> String {
    let first = FIRST_NAMES[rng.usize(..FIRST_NAMES.len())];
    let last = LAST_NAMES[rng.usize(..LAST_NAMES.len())];
    let (city, country) = CITIES[rng.usize(..CITIES.len())];
    let lines: Vec<Value> = (1..=rng.usize(2..=4))
        .map(|line| {
            json!({
                "lineNo": line,
                "partNo": format!("SKU-{:06}", rng.usize(..60_000)),
                "name": "Merino wool crew neck sweater, charcoal grey, size M",
                "quantity": rng.u32(1..4),
                "unitPrice": rng.u32(99..2_000),
                "vatRate": 25,
            })
        })
        .collect();
    let method = ["POSTNORD-HOME", "DHL-SERVICEPOINT", "BUDBEE-BOX"][i % 3];
    let value = match plan.flow {
        "shipping" | "orders" => json!({
            "orderNo": plan.alias.clone().unwrap_or_else(|| format!("NC-{}", 500_000 + i)),
            "clientOrderRef": plan.source_id,
            "status": "ReadyForDelivery",
            "currency": if country == "SE" { "SEK" } else { "EUR" },
            "deliveryMethod": method,
            "customer": {
                "firstName": first, "lastName": last,
                "email": format!("{}.{}{}@example.com", first.to_lowercase(), last.to_lowercase(), i % 97),
                "phone": format!("+46 70 {:03} {:02} {:02}", i % 1000, i % 97, i % 89),
                "street": format!("Storgatan {}", 1 + i % 120), "zip": format!("{:05}", 10_000 + i % 89_999),
                "city": city, "country": country,
            },
            "lines": lines,
            "shipments": [{ "id": plan.target_id, "parcels": [format!("00370{:013}", i)] }],
            "labels": [format!("/var/lib/relay/labels/{}-1.pdf", plan.source_id)],
        }),
        "stock" => json!({
            "sku": product_of(i).1,
            "productId": plan.source_id,
            "onhand": { "MAIN": rng.u32(0..500), "STORE-1": rng.u32(0..40), "STORE-2": rng.u32(0..40) },
            "warehouses": [
                { "id": 2, "name": "Main warehouse (Borås)", "onHand": rng.u32(0..500), "allocated": rng.u32(0..20), "inTransit": 0 },
                { "id": 7, "name": "Store Drottninggatan", "onHand": rng.u32(0..40), "allocated": 0, "inTransit": rng.u32(0..5) },
                { "id": 9, "name": "Store Avenyn", "onHand": rng.u32(0..40), "allocated": 0, "inTransit": rng.u32(0..5) },
            ],
            "importJob": plan.target_id,
            "lines": lines,
        }),
        _ => json!({
            "sku": product_of(i).1,
            "productId": plan.source_id,
            "prices": {
                "SE-RETAIL": { "price": rng.u32(99..2_000), "currency": "SEK", "vatIncluded": true },
                "NO-RETAIL": { "price": rng.u32(99..2_000), "currency": "NOK", "vatIncluded": true },
                "FI-RETAIL": { "price": rng.u32(9..200), "currency": "EUR", "vatIncluded": true },
                "B2B": { "price": rng.u32(50..1_500), "currency": "SEK", "vatIncluded": false },
            },
            "campaign": { "code": "WINTER", "from": "2026-11-20", "to": "2026-12-31", "discountPercent": 20 },
            "importJob": plan.target_id,
            "lines": lines,
        }),
    };
    value.to_string()
}

fn failure(flow: &str, attempt: u32) -> String {
    match flow {
        "shipping" => format!(
            "nShift refused the booking (attempt {attempt}): service `DHL-SERVICEPOINT` needs a pickup point; hint: map the delivery method in [shipping.services]"
        ),
        "orders" => format!(
            "Brightpearl answered 400 (attempt {attempt}): no product with SKU `SKU-0{attempt}1234`; hint: create it or set orders.unknown_sku = \"skip\""
        ),
        _ => format!(
            "Norce import job failed (attempt {attempt}): 409 Conflict, another import of the channel is running"
        ),
    }
}

/// Moves the simulated time on by `minutes` and up to half a minute more (never past `end`).
fn tick(time: &mut DateTime<Utc>, minutes: i64, end: DateTime<Utc>, rng: &mut fastrand::Rng) {
    *time += TimeDelta::minutes(minutes) + TimeDelta::milliseconds(rng.i64(0..30_000));
    at((*time).min(end));
}

/// Records entity `i` as the flows (and, for some, an operator) would, on the simulated clock.
fn seed_one(
    store: &dyn Store,
    i: usize,
    n: usize,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    rng: &mut fastrand::Rng,
) -> Result<(), String> {
    let plan = plan(i, n, start);
    let (flow, id) = (plan.flow, plan.source_id.as_str());
    let mut time = plan.created;
    tick(&mut time, 0, end, rng);
    store
        .upsert_pending(flow, id, Some(&payload(&plan, i, rng)))
        .map_err(err)?;
    if let Some(alias) = &plan.alias {
        store.set_alias(flow, alias, id).map_err(err)?;
    }
    let last = plan.steps.len() - 1;
    // Where a failing entity gives up: at the booking (the step that records the target id).
    let dead_letter_at = plan.target_step.min(last);
    let mut requeued = false;
    let mut k = 0;
    while k <= last {
        tick(&mut time, 2, end, rng);
        match plan.fate {
            Fate::Pending if k > 0 => return Ok(()),
            Fate::Skipped => {
                store
                    .update(
                        flow,
                        id,
                        &EntityUpdate {
                            status: Some(Status::Skipped),
                            step: Some("resolved".into()),
                            ..EntityUpdate::default()
                        },
                    )
                    .map_err(err)?;
                return Ok(());
            }
            Fate::Failed | Fate::Resolved | Fate::Requeued if k == dead_letter_at && !requeued => {
                for attempt in 1..=2 {
                    store
                        .record_failure(flow, id, &failure(flow, attempt))
                        .map_err(err)?;
                    tick(&mut time, 5, end, rng);
                }
                let letter = store
                    .dead_letter(flow, id, &failure(flow, 3))
                    .map_err(err)?;
                // The operator gets to it the next day (or now, for the newest).
                tick(&mut time, 24 * 60, end, rng);
                match plan.fate {
                    Fate::Resolved => {
                        store
                            .resolve(
                                flow,
                                id,
                                "console:anna",
                                "Cancelled by the customer; refunded in Norce",
                            )
                            .map_err(err)?;
                        return Ok(());
                    }
                    Fate::Requeued => {
                        store.requeue_by(letter.id, "cli").map_err(err)?;
                        // Back to pending from the start: the flow runs it again, and it works.
                        requeued = true;
                        k = 0;
                        continue;
                    }
                    _ => return Ok(()),
                }
            }
            Fate::Retried if k == 0 => {
                store
                    .record_failure(flow, id, &failure(flow, 1))
                    .map_err(err)?;
                tick(&mut time, 5, end, rng);
            }
            _ => {}
        }
        store
            .update(
                flow,
                id,
                &EntityUpdate {
                    status: (k == last).then_some(Status::Done),
                    step: Some(plan.steps[k].into()),
                    target_id: (k == plan.target_step).then(|| plan.target_id.clone()),
                    clear_error: true,
                    ..EntityUpdate::default()
                },
            )
            .map_err(err)?;
        k += 1;
    }
    Ok(())
}

/// Seeds `n` entities on `threads` threads (entity `i` on thread `i % threads`, so creation
/// order follows time on every backend), then the SKUs, the cursors and some operator cursor
/// changes.
fn seed(
    store: &Arc<dyn Store>,
    n: usize,
    threads: usize,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Result<(), String> {
    let started = Instant::now();
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let store = store.clone();
                scope.spawn(move || -> Result<(), String> {
                    let mut rng = fastrand::Rng::with_seed(2026 + t as u64);
                    for i in (t..n).step_by(threads) {
                        seed_one(store.as_ref(), i, n, start, end, &mut rng)?;
                        if t == 0 && i % (threads * 10_000) == 0 && i > 0 {
                            eprintln!(
                                "console: seeded {i} of {n} entities ({:.0} s)",
                                started.elapsed().as_secs_f64()
                            );
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        workers.into_iter().try_for_each(|worker| {
            worker
                .join()
                .map_err(|_| "a seeding thread panicked".to_owned())?
        })
    })?;
    // The SKU → product id map, a thousand per transaction (what a catalog read writes).
    at(end - TimeDelta::hours(1));
    let mut products: Vec<(String, String)> = (0..n)
        .filter(|i| matches!(flow_of(*i), "stock" | "prices"))
        .map(|i| {
            let (id, sku) = product_of(i);
            (sku, id.to_string())
        })
        .collect();
    products.sort();
    products.dedup();
    for chunk in products.chunks(1000) {
        store.lookup_put(SKU_MAP, chunk).map_err(err)?;
    }
    for flow in CURSOR_FLOWS {
        let value = if *flow == "shipping-alerts" {
            "884211".to_owned()
        } else {
            stamp(end - TimeDelta::minutes(5))
        };
        store.set_cursor(flow, &value).map_err(err)?;
    }
    // Operators set a cursor back now and then (the audit log), and the flows moved it on.
    for day in (1..DAYS).step_by(7) {
        let when = end - TimeDelta::days(DAYS - day);
        at(when);
        let flow = ["orders", "stock", "prices", "shipping"][(day as usize / 7) % 4];
        store
            .set_cursor_by(flow, &stamp(when - TimeDelta::days(2)), "console:erik")
            .map_err(err)?;
    }
    at(end - TimeDelta::minutes(5));
    for flow in CURSOR_FLOWS.iter().filter(|f| **f != "shipping-alerts") {
        store
            .set_cursor(flow, &stamp(end - TimeDelta::minutes(5)))
            .map_err(err)?;
    }
    NOW_MS.with(|now| now.set(None));
    Ok(())
}

fn stamp(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Secs, true)
}

// ---------------------------------------------------------------------------------------------
// The console, in this process.

fn no_ingest<'a>(_ctx: &'a FlowContext, _item: &'a InboxItem) -> IngestFuture<'a> {
    Box::pin(async move { Ok(relay::flows::Ingested::Nothing) })
}

fn accepts_nothing(_source: &str) -> bool {
    false
}

/// A pass that does nothing: the state stays as seeded while the pages are measured.
fn idle_pass(_ctx: &FlowContext) -> FlowFuture<'_> {
    Box::pin(async move { Ok::<_, FlowError>(FlowReport::default()) })
}

fn flows() -> Vec<Arc<dyn relay::flows::Flow>> {
    const FLOWS: [(&str, &[&str]); 4] = [
        ("shipping", &["shipping"]),
        ("orders", &["orders"]),
        ("stock", &["stock"]),
        ("prices", &["prices"]),
    ];
    FLOWS
        .into_iter()
        .map(|(name, entity_flows)| {
            Arc::new(FlowEntry {
                name,
                entity_flows,
                run: idle_pass,
                accepts: accepts_nothing,
                ingest: no_ingest,
                every: None,
            }) as Arc<dyn relay::flows::Flow>
        })
        .collect()
}

/// A signed-in HTTP client of the console.
struct Browser {
    http: reqwest::Client,
    base: String,
    cookie: String,
}

impl Browser {
    async fn sign_in(base: String) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| e.to_string())?;
        let response = http
            .post(format!("{base}/console/login"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("token={TOKEN}&name=bench&next=%2Fconsole"))
            .send()
            .await
            .map_err(|e| format!("sign-in: {e}"))?;
        let cookie = response
            .headers()
            .get(reqwest::header::SET_COOKIE)
            .and_then(|c| c.to_str().ok())
            .and_then(|c| c.split(';').next())
            .ok_or_else(|| format!("sign-in answered {} without a cookie", response.status()))?
            .to_owned();
        Ok(Self { http, base, cookie })
    }

    /// GETs `path`: the time to the last byte, and the page (an error unless 200).
    async fn get(&self, path: &str) -> Result<(Duration, String), String> {
        let started = Instant::now();
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .header(reqwest::header::COOKIE, &self.cookie)
            .send()
            .await
            .map_err(|e| format!("GET {path}: {e}"))?;
        let status = response.status();
        let body = response
            .text()
            .await
            .map_err(|e| format!("GET {path}: {e}"))?;
        let took = started.elapsed();
        if status != reqwest::StatusCode::OK {
            let start = body.find("<main").unwrap_or(0);
            let excerpt: String = body[start..].chars().take(400).collect();
            return Err(format!("GET {path} answered {status}: {excerpt}"));
        }
        Ok((took, body))
    }

    /// Follows `a#next-page` from `path` `times` times (fewer when the pages run out): the
    /// path reached and how many links were followed.
    async fn follow_next(&self, path: &str, times: usize) -> Result<(String, usize), String> {
        let mut path = path.to_owned();
        for followed in 0..times {
            let (_, page) = self.get(&path).await?;
            match next_page(&page) {
                Some(next) => path = next,
                None => return Ok((path, followed)),
            }
        }
        Ok((path, times))
    }
}

/// The `href` of the page's `a#next-page`, unescaped.
fn next_page(page: &str) -> Option<String> {
    let marker = "id=\"next-page\" href=\"";
    let start = page.find(marker)? + marker.len();
    let end = start + page[start..].find('"')?;
    Some(page[start..end].replace("&amp;", "&"))
}

// ---------------------------------------------------------------------------------------------
// The pages and what each asks of the store.

/// The store calls a page makes, timed directly.
type Probe = Box<dyn Fn(&dyn Store) -> Result<(), StateError>>;

struct Page {
    name: String,
    path: String,
    /// Text the page must contain (it rendered what was asked, not an empty or error page).
    expect: String,
    probe: Option<Probe>,
}

/// The store query of an entity-list URL, as the console builds it (dates are whole UTC days;
/// `to` is inclusive).
fn entity_query(path: &str) -> EntityQuery {
    let mut query = EntityQuery {
        limit: ENTITY_PAGE,
        ..EntityQuery::default()
    };
    let day = |text: &str, next: bool| {
        NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .ok()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|t| t.and_utc() + TimeDelta::days(i64::from(next)))
    };
    let search = path.split_once('?').map_or("", |(_, q)| q);
    for (name, value) in form_urlencoded::parse(search.as_bytes()) {
        match &*name {
            "flow" => query.flow = Some(value.into_owned()),
            "status" => query.status = Status::from_name(&value),
            "ref" => query.reference = Some(value.into_owned()),
            "from" => query.updated_from = day(&value, false),
            "to" => query.updated_to = day(&value, true),
            "before" => query.before = value.parse().ok(),
            _ => {}
        }
    }
    query
}

fn search_probe(path: &str) -> Option<Probe> {
    let query = entity_query(path);
    Some(Box::new(move |store: &dyn Store| {
        store.search(&query).map(drop)
    }))
}

fn enc(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// Every page, with the targets taken from the seeded plan.
async fn pages(
    browser: &Browser,
    n: usize,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Result<Vec<Page>, String> {
    // Entities around the middle of the history, of the kind each page needs.
    let near =
        |from: usize, wanted: &dyn Fn(usize) -> bool| (from..n).chain(0..from).find(|i| wanted(*i));
    let missing = |what: &str| format!("no {what} among {n} entities: seed more");
    let done_shipping = near(n / 3, &|i| {
        flow_of(i) == "shipping" && plan(i, n, start).fate == Fate::Done
    })
    .ok_or_else(|| missing("done shipping entity"))?;
    let done_plan = plan(done_shipping, n, start);
    let failed_shipping = near(n / 2, &|i| {
        flow_of(i) == "shipping" && plan(i, n, start).fate == Fate::Failed
    })
    .ok_or_else(|| missing("failed shipping entity"))?;
    let failed_plan = plan(failed_shipping, n, start);
    let stock = near(n / 4, &|i| flow_of(i) == "stock").ok_or_else(|| missing("stock entity"))?;
    let sku = product_of(stock).1;
    let day = |days_ago: i64| {
        (end - TimeDelta::days(days_ago))
            .format("%Y-%m-%d")
            .to_string()
    };

    let (deep, followed) = browser
        .follow_next("/console/entities", DEEP_ENTITY_PAGES)
        .await?;
    if followed < DEEP_ENTITY_PAGES {
        eprintln!("console: the entity list has {followed} next pages only");
    }
    let (later_letters, letter_pages) = browser
        .follow_next("/console/dead-letters", LATER_LETTER_PAGES)
        .await?;
    let later_after: i64 = later_letters
        .split_once("after=")
        .and_then(|(_, a)| a.split('&').next())
        .and_then(|a| a.parse().ok())
        .unwrap_or(0);
    let confirm_value = stamp(end - TimeDelta::days(3));

    let entity = |name: &str, path: String, expect: &str| Page {
        probe: search_probe(&path),
        name: name.to_owned(),
        path,
        expect: expect.to_owned(),
    };
    let row = |id: &str| format!("data-source-id=\"{id}\"");
    let mut list = vec![
        Page {
            name: "overview".into(),
            path: "/console".into(),
            expect: "id=\"chart\"".into(),
            probe: Some(Box::new(|store: &dyn Store| {
                store.hourly_outcomes(Utc::now() - TimeDelta::hours(48))?;
                store.dead_letter_counts()?;
                store.inbox_len()?;
                for flow in CURSOR_FLOWS {
                    store.cursor(flow)?;
                }
                Ok(())
            })),
        },
        entity("entities", "/console/entities".into(), "id=\"next-page\""),
        entity(
            "entities status=failed",
            "/console/entities?status=failed".into(),
            "status-failed",
        ),
        entity(
            "entities flow=orders status=failed",
            "/console/entities?flow=orders&status=failed".into(),
            "status-failed",
        ),
        entity(
            "entities ref=source id",
            format!("/console/entities?ref={}", enc(&done_plan.source_id)),
            &row(&done_plan.source_id),
        ),
        entity(
            "entities ref=target id",
            format!("/console/entities?ref={}", enc(&done_plan.target_id)),
            &row(&done_plan.source_id),
        ),
        entity(
            "entities ref=alias",
            format!(
                "/console/entities?ref={}",
                enc(done_plan.alias.as_deref().unwrap_or_default())
            ),
            &row(&done_plan.source_id),
        ),
        entity(
            "entities ref=SKU",
            format!("/console/entities?ref={}", enc(&sku)),
            &row(&product_of(stock).0.to_string()),
        ),
        entity(
            "entities date (1 day) 2 days ago",
            format!("/console/entities?from={}&to={}", day(2), day(2)),
            "id=\"entities\"",
        ),
        entity(
            "entities date (1 day) 30 days ago",
            format!("/console/entities?from={}&to={}", day(30), day(30)),
            "id=\"entities\"",
        ),
        entity(
            "entities date (1 day) 59 days ago",
            format!("/console/entities?from={}&to={}", day(59), day(59)),
            "id=\"entities\"",
        ),
        entity(
            "entities date last 7 days",
            format!("/console/entities?from={}&to={}", day(6), day(0)),
            "id=\"entities\"",
        ),
        entity(
            "entities date last 30 days",
            format!("/console/entities?from={}&to={}", day(29), day(0)),
            "id=\"entities\"",
        ),
        entity(
            "entities date 59 days ago, flow=prices",
            format!(
                "/console/entities?flow=prices&from={}&to={}",
                day(59),
                day(59)
            ),
            "id=\"entities\"",
        ),
        entity(
            "entities date 59 days ago, flow=shipping",
            format!(
                "/console/entities?flow=shipping&from={}&to={}",
                day(59),
                day(59)
            ),
            "id=\"entities\"",
        ),
        entity(
            "entities date 59 days ago, status=done",
            format!(
                "/console/entities?status=done&from={}&to={}",
                day(59),
                day(59)
            ),
            "id=\"entities\"",
        ),
        entity(
            &format!("entities page {} (next-page)", followed + 1),
            deep,
            "id=\"entities\"",
        ),
    ];
    {
        let (flow, id) = (failed_plan.flow.to_owned(), failed_plan.source_id.clone());
        list.push(Page {
            name: "entity detail (failed)".into(),
            path: format!("/console/entities/{flow}/{}", enc(&id)),
            expect: "id=\"retry\"".into(),
            probe: Some(Box::new(move |store: &dyn Store| {
                store.get(&flow, &id)?;
                store.events(&flow, &id, HISTORY)?;
                store.dead_letters_of(&flow, &id)?;
                Ok(())
            })),
        });
    }
    list.extend([
        Page {
            name: "dead letters".into(),
            path: "/console/dead-letters".into(),
            expect: "id=\"dead-letters\"".into(),
            probe: Some(Box::new(|store: &dyn Store| {
                store.dead_letters_page(None, 0, LETTER_PAGE)?;
                store.dead_letter_counts().map(drop)
            })),
        },
        Page {
            name: format!("dead letters page {}", letter_pages + 1),
            path: later_letters,
            expect: "id=\"dead-letters\"".into(),
            probe: Some(Box::new(move |store: &dyn Store| {
                store.dead_letters_page(None, later_after, LETTER_PAGE)?;
                store.dead_letter_counts().map(drop)
            })),
        },
        Page {
            name: "dead letters flow=orders".into(),
            path: "/console/dead-letters?flow=orders".into(),
            expect: "id=\"dead-letters\"".into(),
            probe: Some(Box::new(|store: &dyn Store| {
                store.dead_letters_page(Some("orders"), 0, LETTER_PAGE)?;
                store.dead_letter_counts().map(drop)
            })),
        },
        Page {
            name: "cursors".into(),
            path: "/console/cursors".into(),
            expect: "id=\"cursors\"".into(),
            probe: Some(Box::new(|store: &dyn Store| {
                for flow in CURSOR_FLOWS {
                    store.cursor(flow)?;
                }
                Ok(())
            })),
        },
        Page {
            name: "cursor confirm".into(),
            path: format!(
                "/console/cursors/orders/confirm?value={}",
                enc(&confirm_value)
            ),
            expect: "id=\"cursor-confirmation\"".into(),
            probe: Some(Box::new(|store: &dyn Store| {
                store.cursor("orders").map(drop)
            })),
        },
        Page {
            name: "mappings".into(),
            path: "/console/mappings".into(),
            expect: "class=\"mapping\"".into(),
            probe: None,
        },
        Page {
            name: "audit".into(),
            path: "/console/audit".into(),
            expect: "id=\"audit\"".into(),
            probe: Some(Box::new(|store: &dyn Store| {
                store.audit_log(AUDIT).map(drop)
            })),
        },
    ]);
    Ok(list)
}

/// The `p`-th percentile (0–100) of sorted values, nearest rank.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn round2(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Renders every page and times it; returns the results and whether every p99 is in budget.
async fn measure(
    store: Arc<dyn Store>,
    n: usize,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    dir: &std::path::Path,
) -> Result<(Vec<Value>, bool), String> {
    let mut config = RelayConfig::default();
    config.serve.listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    config.serve.inbox_sweep_secs = 0;
    config.serve.register_brightpearl_webhooks = false;
    config.serve.shipping_every_secs = 0;
    config.serve.orders_every_secs = 0;
    config.serve.stock_reconcile_every_secs = 0;
    config.state.dir = dir.to_path_buf();
    let secrets = ServeSecrets {
        console_token: Some(SecretString::from(TOKEN)),
        ..ServeSecrets::default()
    };
    let ctx = FlowContext {
        store: store.clone(),
        norce: None,
        nshift: None,
        brightpearl: None,
        config: Arc::new(config.clone()),
        stopping: Default::default(),
        coordination: Default::default(),
        pass_origin: Default::default(),
    };
    let listener = serve::bind(&config.serve)
        .await
        .map_err(|e| e.to_string())?;
    let handle = serve::start_with_flows(ctx, secrets, listener, flows())
        .await
        .map_err(|e| e.to_string())?;
    let browser = Browser::sign_in(handle.base_url()).await?;
    let pages = pages(&browser, n, start, end).await?;

    let mut results = Vec::new();
    let mut passed = true;
    eprintln!(
        "{:<48} {:>8} {:>8} {:>8} {:>9} {:>9} {:>8}  under {BUDGET_MS} ms",
        "page", "p50 ms", "p99 ms", "max ms", "store p50", "store max", "KiB"
    );
    for page in &pages {
        let mut bytes = 0;
        for _ in 0..WARM_UPS {
            let (_, body) = browser.get(&page.path).await?;
            if !body.contains(&page.expect) {
                return Err(format!(
                    "{} (GET {}) does not contain `{}`: not the page meant",
                    page.name, page.path, page.expect
                ));
            }
            bytes = body.len();
        }
        let mut http_ms = Vec::with_capacity(RENDERS);
        for _ in 0..RENDERS {
            http_ms.push(ms(browser.get(&page.path).await?.0));
        }
        http_ms.sort_by(f64::total_cmp);
        let mut store_ms = Vec::with_capacity(RENDERS);
        if let Some(probe) = &page.probe {
            let probe_store = store.clone();
            // The store blocks (SQLite's lock, PostgreSQL's answer): off the async threads.
            let timings = tokio::task::block_in_place(|| {
                (0..RENDERS)
                    .map(|_| {
                        let started = Instant::now();
                        probe(probe_store.as_ref()).map(|()| ms(started.elapsed()))
                    })
                    .collect::<Result<Vec<f64>, StateError>>()
            })
            .map_err(|e| format!("{}: the store: {e}", page.name))?;
            store_ms = timings;
            store_ms.sort_by(f64::total_cmp);
        }
        let (p50, p99, max) = (
            percentile(&http_ms, 50.0),
            percentile(&http_ms, 99.0),
            http_ms.last().copied().unwrap_or(0.0),
        );
        let under = p99 < BUDGET_MS;
        passed &= under;
        let store_p50 = (!store_ms.is_empty()).then(|| round2(percentile(&store_ms, 50.0)));
        let store_max = store_ms.last().copied().map(round2);
        let shown = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.2}"));
        eprintln!(
            "{:<48} {p50:>8.2} {p99:>8.2} {max:>8.2} {:>9} {:>9} {:>8.1}  {}",
            page.name,
            shown(store_p50),
            shown(store_max),
            bytes as f64 / 1024.0,
            if under { "yes" } else { "NO" }
        );
        results.push(json!({
            "page": page.name,
            "path": page.path,
            "p50_ms": round2(p50),
            "p99_ms": round2(p99),
            "max_ms": round2(max),
            "store_p50_ms": store_p50,
            "store_max_ms": store_max,
            "bytes": bytes,
            "under_budget": under,
        }));
    }
    let _ = handle.shutdown().await;
    Ok((results, passed))
}

/// The store to measure, and what keeps it alive (the cluster, the folder).
enum Backend {
    Sqlite {
        dir: PathBuf,
    },
    Postgres {
        _cluster: pg_cluster::Cluster,
        url: String,
    },
}

fn open(backend: &str) -> Result<(Arc<dyn Store>, Backend, PathBuf), String> {
    let dir = std::env::temp_dir().join(format!("relay-console-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    match backend {
        "sqlite" => {
            let store = SqliteStore::open_in(&dir).map_err(err)?.with_clock(clock);
            Ok((Arc::new(store), Backend::Sqlite { dir: dir.clone() }, dir))
        }
        "postgres" => {
            let cluster = pg_cluster::Cluster::create().map_err(|e| format!("PostgreSQL: {e}"))?;
            let url = cluster
                .create_database("relay_console_bench")
                .map_err(|e| format!("PostgreSQL: {e}"))?;
            let store = PgStore::connect(&url).map_err(err)?.with_clock(clock);
            let backend = Backend::Postgres {
                _cluster: cluster,
                url,
            };
            Ok((Arc::new(store), backend, dir))
        }
        other => Err(format!("BACKEND is `sqlite` or `postgres`, not `{other}`")),
    }
}

/// `ANALYZE` of the whole database, over a connection of its own.
fn analyze(url: &str) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime: {e}"))?;
    runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .map_err(|e| format!("PostgreSQL: {e}"))?;
        let connection = tokio::spawn(connection);
        client
            .batch_execute("ANALYZE")
            .await
            .map_err(|e| format!("PostgreSQL: ANALYZE: {e}"))?;
        drop(client);
        let _ = connection.await;
        Ok(())
    })
}

fn run(n: usize, backend_name: &str) -> Result<(Value, bool), String> {
    let (store, backend, dir) = open(backend_name)?;
    let end = Utc::now() - TimeDelta::minutes(10);
    let start = end - TimeDelta::days(DAYS);
    // PostgreSQL answers each call over a connection: several callers keep it busy.
    let threads = if backend_name == "postgres" { 8 } else { 1 };
    let seeding = Instant::now();
    seed(&store, n, threads, start, end)?;
    let seed_secs = seeding.elapsed().as_secs_f64();
    // What `relay serve` keeps at steady state: its prune (at start, then every hour) clears
    // payloads and drops the flows' history older than the retention (30 days by default). Done
    // here, to the end, so that the catch-up prune of freshly seeded state does not run (as
    // `relay serve`'s start-up prune would) while the pages are measured.
    let pruning = Instant::now();
    let policy = RelayConfig::default().state.retention_policy();
    let pruned = store
        .prune(&policy, Utc::now(), relay::serve::retention::BATCH)
        .map_err(err)?;
    let prune_secs = pruning.elapsed().as_secs_f64();
    if let Backend::Postgres { url, .. } = &backend {
        // The planner's statistics, as autovacuum gathers them within a minute or two of a bulk
        // change: without them, the first minutes' plans come from default estimates (see the
        // bench's report), and when autovacuum gets to it would decide what is measured.
        analyze(url)?;
    }
    let size = store.size().map_err(err)?;
    let counts = store.counts().map_err(err)?;
    eprintln!(
        "console: seeded {n} entities on {backend_name} in {seed_secs:.1} s, pruned to the default retention in {prune_secs:.1} s ({} payloads cleared): {} entities, {} with a payload, {} dead letters, {:.1} MiB",
        pruned.payloads_cleared,
        size.entities,
        size.entity_payloads,
        size.dead_letters,
        size.file_bytes as f64 / (1024.0 * 1024.0)
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime: {e}"))?;
    let outcome = runtime.block_on(measure(store.clone(), n, start, end, &dir));
    drop(runtime);
    drop(store);
    let keep = std::env::var_os("CONSOLE_BENCH_KEEP").is_some();
    match &backend {
        Backend::Sqlite { dir } if keep => {
            eprintln!(
                "console: state kept in {}",
                dir.join("state.sqlite").display()
            );
        }
        Backend::Postgres { url, .. } if keep => {
            eprintln!("console: PostgreSQL kept at {url} until a line on standard input");
            let _ = std::io::stdin().read_line(&mut String::new());
            let _ = std::fs::remove_dir_all(&dir);
        }
        _ => {
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
    drop(backend);
    let (pages, passed) = outcome?;
    let by_status: serde_json::Map<String, Value> = counts
        .iter()
        .map(|(flow, status, count)| (format!("{flow}/{}", status.as_str()), json!(count)))
        .collect();
    Ok((
        json!({
            "entities": n,
            "backend": backend_name,
            "seed_secs": round2(seed_secs),
            "prune_secs": round2(prune_secs),
            "retention_days": policy.max_age.num_days(),
            "state": {
                "entities": size.entities,
                "entity_payloads": size.entity_payloads,
                "dead_letters": size.dead_letters,
                "bytes": size.file_bytes,
                "by_flow_and_status": by_status,
            },
            "renders_per_page": RENDERS,
            "budget_ms": BUDGET_MS,
            "all_under_budget": passed,
            "pages": pages,
        }),
        passed,
    ))
}

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| !a.starts_with("--"));
    let n = args
        .next()
        .and_then(|a| a.replace('_', "").parse().ok())
        .unwrap_or(100_000);
    let backend = args.next().unwrap_or_else(|| "sqlite".to_owned());
    match run(n, &backend) {
        Ok((json, passed)) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&json).unwrap_or_default()
            );
            if !passed {
                eprintln!("console: a page's p99 is {BUDGET_MS} ms or more (see the table)");
                std::process::exit(1);
            }
        }
        Err(e) => {
            eprintln!("console: {e}");
            std::process::exit(2);
        }
    }
}
