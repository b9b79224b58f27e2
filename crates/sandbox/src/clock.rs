//! The sandbox clock: wall time that tests can pause (tokio) and jump forward (`advance`).

use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::time::Instant;

use crate::util::lock;

/// Virtual wall time: `start + elapsed tokio time + everything advanced by hand`.
///
/// Built on `tokio::time::Instant`, so under `tokio::time::pause()` it stands still until the
/// test advances it, and token expiry, job completion and feed progress all follow.
#[derive(Debug)]
pub struct Clock {
    start_wall: DateTime<Utc>,
    start: Instant,
    advanced: Mutex<Duration>,
}

impl Clock {
    /// A clock that reads `start_wall` now.
    pub fn new(start_wall: DateTime<Utc>) -> Self {
        Self {
            start_wall,
            start: Instant::now(),
            advanced: Mutex::new(Duration::ZERO),
        }
    }

    /// The current virtual time.
    pub fn now(&self) -> DateTime<Utc> {
        let elapsed = self.start.elapsed() + self.advanced_by();
        self.start_wall + chrono::Duration::from_std(elapsed).unwrap_or(chrono::Duration::MAX)
    }

    /// Jumps the clock forward (it never goes back).
    pub fn advance(&self, by: Duration) {
        *lock(&self.advanced) += by;
    }

    /// Everything advanced by hand so far.
    pub fn advanced_by(&self) -> Duration {
        *lock(&self.advanced)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn follows_tokio_time_and_manual_advances() {
        let start = "2026-01-01T00:00:00Z".parse::<DateTime<Utc>>().unwrap();
        let clock = Clock::new(start);
        assert_eq!(clock.now(), start);
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(clock.now(), start + chrono::Duration::seconds(10));
        clock.advance(Duration::from_secs(3600));
        assert_eq!(clock.now(), start + chrono::Duration::seconds(3610));
    }
}
