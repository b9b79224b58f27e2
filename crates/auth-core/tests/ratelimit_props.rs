//! Properties of the GCRA limiter under any arrival pattern (tokio's paused clock, so every
//! case is exact and instant): it never admits more than `burst + window / interval` requests
//! in any window, and every caller is admitted without waiting longer than the quota needs.

use std::time::Duration;

use auth_core::{QuotaSpec, RateLimitKey, RateLimiter};
use proptest::prelude::*;

/// Runs `arrivals` (milliseconds between callers) through a limiter and returns when each was
/// admitted, in milliseconds from the start.
fn admitted_at(quota: QuotaSpec, arrivals: &[u64]) -> Vec<u128> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    runtime.block_on(async {
        let limiter = RateLimiter::from_quota(quota).unwrap();
        let key = RateLimitKey::new("account");
        let start = tokio::time::Instant::now();
        let mut tasks = Vec::new();
        for gap in arrivals {
            tokio::time::sleep(Duration::from_millis(*gap)).await;
            let (limiter, key) = (limiter.clone(), key.clone());
            tasks.push(tokio::spawn(async move {
                limiter.acquire(&key).await.unwrap();
                tokio::time::Instant::now()
            }));
        }
        let mut times = Vec::new();
        for task in tasks {
            times.push(task.await.unwrap().duration_since(start).as_millis());
        }
        times.sort_unstable();
        times
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn no_window_admits_more_than_the_quota(
        interval_ms in 10u64..2_000,
        burst in 1u32..20,
        arrivals in proptest::collection::vec(0u64..3_000, 1..60),
        window_intervals in 1u64..30,
    ) {
        let quota = QuotaSpec { replenish_interval: Duration::from_millis(interval_ms), burst };
        let times = admitted_at(quota, &arrivals);
        prop_assert_eq!(times.len(), arrivals.len(), "every caller is admitted");
        let window = u128::from(interval_ms * window_intervals);
        let allowed = u128::from(burst) + u128::from(window_intervals);
        for (i, start) in times.iter().enumerate() {
            let inside = times[i..].iter().take_while(|t| **t < start + window).count() as u128;
            prop_assert!(
                inside <= allowed,
                "{} admitted in [{}, {}) ms; the quota allows {}", inside, start, start + window, allowed
            );
        }
    }

    #[test]
    fn a_caller_waits_no_longer_than_the_quota_needs(
        interval_ms in 10u64..1_000,
        burst in 1u32..10,
        callers in 1usize..40,
    ) {
        // All at once: the first `burst` at once, then one every interval.
        let quota = QuotaSpec { replenish_interval: Duration::from_millis(interval_ms), burst };
        let times = admitted_at(quota, &vec![0; callers]);
        for (n, at) in times.iter().enumerate() {
            let needed = (n as u64).saturating_sub(u64::from(burst) - 1) * interval_ms;
            prop_assert!(
                *at <= u128::from(needed) + 1,
                "caller {} admitted at {} ms; the quota admits it by {} ms", n, at, needed
            );
        }
    }
}

#[test]
fn callers_at_once_are_spread_one_interval_apart_after_the_burst() {
    let quota = QuotaSpec {
        replenish_interval: Duration::from_millis(1_000),
        burst: 2,
    };
    assert_eq!(admitted_at(quota, &[0; 5]), vec![0, 0, 1_000, 2_000, 3_000]);
}
