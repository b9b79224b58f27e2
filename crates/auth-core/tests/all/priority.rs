//! One limiter shared by classes of work: under saturation live callers go first, background
//! callers resume after them, and each class's permits and waiting are counted.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use auth_core::{Budget, Priority, QuotaSpec, RateLimitError, RateLimitKey, RateLimiter};
use tokio::time::Instant;

/// One permit a second, no burst beyond one.
fn saturated() -> RateLimiter {
    RateLimiter::from_quota(QuotaSpec::per_period(1, Duration::from_secs(1), 1)).unwrap()
}

/// Lets every spawned task run up to its next wait.
async fn settle() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_live_caller_queued_after_many_background_ones_is_served_first() {
    let limiter = saturated();
    let key = RateLimitKey::new("account");
    let stock = Budget::new(Priority::Background, "stock");
    let orders = Budget::new(Priority::Live, "orders");
    // The one permit of the burst is gone: everyone after this waits.
    limiter.acquire_as(&key, &stock).await.unwrap();
    let order: Arc<Mutex<Vec<String>>> = Arc::default();
    let spawn = |budget: Budget, name: String| {
        let (limiter, key, order) = (limiter.clone(), key.clone(), Arc::clone(&order));
        tokio::spawn(async move {
            limiter.acquire_as(&key, &budget).await.unwrap();
            order.lock().unwrap().push(name);
        })
    };
    let mut tasks = Vec::new();
    for n in 0..5 {
        tasks.push(spawn(stock.clone(), format!("stock-{n}")));
        settle().await;
    }
    assert_eq!(limiter.queued(), (0, 5), "the background callers queue");
    tasks.push(spawn(orders.clone(), "order".into()));
    settle().await;
    assert_eq!(limiter.queued(), (1, 5));
    let start = Instant::now();
    for task in tasks {
        task.await.unwrap();
    }
    let order = order.lock().unwrap().clone();
    assert_eq!(
        order,
        [
            "order", "stock-0", "stock-1", "stock-2", "stock-3", "stock-4"
        ],
        "live first, then the background ones resume in their order"
    );
    // One permit a second: six waiters take six seconds, none is lost or refused.
    assert_eq!(start.elapsed(), Duration::from_secs(6));
    assert_eq!(limiter.queued(), (0, 0));

    let usage = limiter.usage();
    let of = |label: &str| usage.iter().find(|u| &*u.label == label).unwrap().clone();
    assert_eq!(of("orders").permits, 1);
    assert_eq!(of("orders").priority, Priority::Live);
    assert_eq!(of("orders").waited, Duration::from_secs(1));
    assert_eq!(of("stock").permits, 6);
    assert_eq!(of("stock").priority, Priority::Background);
    // The background callers waited 2+3+4+5+6 s (the first took the burst at once).
    assert_eq!(of("stock").waited, Duration::from_secs(20));
}

#[tokio::test(start_paused = true)]
async fn live_callers_keep_arriving_and_background_resumes_when_they_stop() {
    let limiter = saturated();
    let key = RateLimitKey::new("account");
    let stock = Budget::new(Priority::Background, "stock");
    let orders = Budget::new(Priority::Live, "orders");
    limiter.acquire(&key).await.unwrap();
    let background = {
        let (limiter, key) = (limiter.clone(), key.clone());
        tokio::spawn(async move {
            limiter.acquire_as(&key, &stock).await.unwrap();
            Instant::now()
        })
    };
    settle().await;
    let start = Instant::now();
    // Three live callers one after the other: each overtakes the waiting background one.
    for _ in 0..3 {
        limiter.acquire_as(&key, &orders).await.unwrap();
    }
    assert_eq!(start.elapsed(), Duration::from_secs(3));
    assert!(
        !background.is_finished(),
        "background yields to live callers"
    );
    let resumed = background.await.unwrap();
    assert_eq!(
        resumed - start,
        Duration::from_secs(4),
        "and resumes after them"
    );
}

#[tokio::test(start_paused = true)]
async fn a_caller_that_gives_up_leaves_the_queue() {
    let limiter = saturated();
    let key = RateLimitKey::new("account");
    let live = Budget::new(Priority::Live, "orders");
    limiter.acquire(&key).await.unwrap();
    // The head gives up: the caller behind it still gets the next permit.
    let given_up =
        tokio::time::timeout(Duration::from_millis(100), limiter.acquire_as(&key, &live)).await;
    assert!(given_up.is_err());
    assert_eq!(limiter.queued(), (0, 0));
    let start = Instant::now();
    limiter
        .acquire_as(&key, &Budget::new(Priority::Background, "stock"))
        .await
        .unwrap();
    assert_eq!(start.elapsed(), Duration::from_millis(900));
}

#[tokio::test(start_paused = true)]
async fn a_queued_caller_gives_up_at_the_maximum_wait() {
    let limiter = saturated().with_max_wait(Duration::from_secs(2)).unwrap();
    let key = RateLimitKey::new("account");
    limiter.acquire(&key).await.unwrap();
    let first = {
        let (limiter, key) = (limiter.clone(), key.clone());
        tokio::spawn(async move { limiter.acquire(&key).await })
    };
    settle().await;
    let second = {
        let (limiter, key) = (limiter.clone(), key.clone());
        tokio::spawn(async move { limiter.acquire(&key).await })
    };
    settle().await;
    let third = limiter.acquire(&key).await;
    assert_eq!(first.await.unwrap(), Ok(Duration::from_secs(1)));
    assert_eq!(second.await.unwrap(), Ok(Duration::from_secs(2)));
    assert!(
        matches!(third, Err(RateLimitError::MaxWaitExceeded { .. })),
        "{third:?}"
    );
}
