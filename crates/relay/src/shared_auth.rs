//! The clients' shared auth state ([`auth_core::SharedAuthState`]) kept in relay's store, so
//! that several `relay serve` workers on one PostgreSQL database fetch one Norce token and
//! one nShift JWT per lifetime, spend each Brightpearl refresh token once, and draw from one
//! Norce token-endpoint budget and one Brightpearl budget.
//!
//! Rows, by prefix: `token/` and `pair/` in the store's shared values (secrets: the database
//! is where relay keeps them, never a log), `claim/` as leases, and the rate limits by key.
//! Instants come from the store's clock; the trait carries durations.

use std::sync::Arc;
use std::time::Duration;

use auth_core::{
    BoxFuture, ExposeSecret as _, SecretString, SharedAuthState, SharedPair, SharedStateError,
    SharedToken,
};
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::state::{SharedValue, StateError, Store};

/// [`SharedAuthState`] over a [`Store`].
#[derive(Clone)]
pub struct StoreAuthState {
    store: Arc<dyn Store>,
}

impl std::fmt::Debug for StoreAuthState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreAuthState")
    }
}

impl StoreAuthState {
    /// The shared auth state in `store`.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }
}

/// A token pair as stored (JSON in one shared value).
#[derive(Serialize, Deserialize)]
struct StoredPair {
    refresh_token: String,
    access_token: Option<String>,
    access_expires_at: Option<DateTime<Utc>>,
}

fn failed(operation: &'static str, name: &str) -> impl FnOnce(StateError) -> SharedStateError {
    move |e| SharedStateError::backend(operation, name, e)
}

fn after(now: DateTime<Utc>, lifetime: Option<Duration>) -> Option<DateTime<Utc>> {
    lifetime.map(|d| now + TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX))
}

/// What is left of a lifetime ending at `at` (zero once past).
fn left(now: DateTime<Utc>, at: DateTime<Utc>) -> Duration {
    (at - now).to_std().unwrap_or_default()
}

fn pair_to_text(pair: &SharedPair, now: DateTime<Utc>) -> Result<String, serde_json::Error> {
    serde_json::to_string(&StoredPair {
        refresh_token: pair.refresh_token.expose_secret().to_owned(),
        access_token: pair
            .access
            .as_ref()
            .map(|a| a.secret().expose_secret().to_owned()),
        access_expires_at: pair
            .access
            .as_ref()
            .and_then(|a| after(now, a.expires_in())),
    })
}

fn pair_from_text(
    name: &str,
    text: &str,
    now: DateTime<Utc>,
) -> Result<SharedPair, SharedStateError> {
    let stored: StoredPair =
        serde_json::from_str(text).map_err(|e| SharedStateError::Malformed {
            name: name.to_owned(),
            // serde's message names the position and field, never the value.
            reason: format!("not a stored token pair: {}", e.classify_name()),
        })?;
    let access = stored.access_token.map(|token| {
        let lifetime = stored.access_expires_at.map(|at| left(now, at));
        SharedToken::new(SecretString::from(token), lifetime)
    });
    Ok(SharedPair {
        refresh_token: SecretString::from(stored.refresh_token),
        access,
    })
}

/// serde_json's error category, a word without any of the input.
trait Classify {
    fn classify_name(&self) -> &'static str;
}

impl Classify for serde_json::Error {
    fn classify_name(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Io => "io",
            serde_json::error::Category::Syntax => "syntax error",
            serde_json::error::Category::Data => "unexpected fields",
            serde_json::error::Category::Eof => "truncated",
        }
    }
}

impl SharedAuthState for StoreAuthState {
    fn token<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<SharedToken>, SharedStateError>> {
        Box::pin(async move {
            let now = Utc::now();
            let row =
                (self.store.shared_get(&format!("token/{name}"))).map_err(failed("token", name))?;
            Ok(row.and_then(|row| match row.expires_at {
                Some(at) if at <= now => None,
                at => Some(SharedToken::new(
                    SecretString::from(row.value),
                    at.map(|at| left(now, at)),
                )),
            }))
        })
    }

    fn save_token<'a>(
        &'a self,
        name: &'a str,
        token: &'a SharedToken,
    ) -> BoxFuture<'a, Result<(), SharedStateError>> {
        Box::pin(async move {
            let value = SharedValue {
                value: token.secret().expose_secret().to_owned(),
                expires_at: after(Utc::now(), token.expires_in()),
            };
            (self.store.shared_put(&format!("token/{name}"), &value))
                .map_err(failed("save_token", name))
        })
    }

    fn claim<'a>(
        &'a self,
        name: &'a str,
        holder: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, SharedStateError>> {
        Box::pin(async move {
            (self.store.lease(&format!("claim/{name}"), holder, ttl)).map_err(failed("claim", name))
        })
    }

    fn release<'a>(
        &'a self,
        name: &'a str,
        holder: &'a str,
    ) -> BoxFuture<'a, Result<(), SharedStateError>> {
        Box::pin(async move {
            (self.store.release(&format!("claim/{name}"), holder)).map_err(failed("release", name))
        })
    }

    fn reserve<'a>(
        &'a self,
        key: &'a str,
        interval: Duration,
        burst: u32,
    ) -> BoxFuture<'a, Result<Duration, SharedStateError>> {
        Box::pin(async move {
            (self.store.rate_reserve(key, interval, burst)).map_err(failed("reserve", key))
        })
    }

    fn pause<'a>(
        &'a self,
        key: &'a str,
        pause: Duration,
    ) -> BoxFuture<'a, Result<(), SharedStateError>> {
        Box::pin(async move {
            let until = after(Utc::now(), Some(pause)).unwrap_or_else(Utc::now);
            (self.store.rate_pause(key, until)).map_err(failed("pause", key))
        })
    }

    fn paused_for<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Duration, SharedStateError>> {
        Box::pin(async move {
            let until = (self.store.rate_paused_until(key)).map_err(failed("paused_for", key))?;
            Ok(until.map_or(Duration::ZERO, |until| left(Utc::now(), until)))
        })
    }

    fn load_pair<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<SharedPair>, SharedStateError>> {
        Box::pin(async move {
            let row = (self.store.shared_get(&format!("pair/{name}")))
                .map_err(failed("load_pair", name))?;
            row.map(|row| pair_from_text(name, &row.value, Utc::now()))
                .transpose()
        })
    }

    fn swap_pair<'a>(
        &'a self,
        name: &'a str,
        expected_refresh: Option<&'a SecretString>,
        new: &'a SharedPair,
    ) -> BoxFuture<'a, Result<bool, SharedStateError>> {
        Box::pin(async move {
            let key = format!("pair/{name}");
            let now = Utc::now();
            let text = pair_to_text(new, now).map_err(|e| SharedStateError::Malformed {
                name: name.to_owned(),
                reason: format!("cannot encode the pair: {}", e.classify_name()),
            })?;
            let value = SharedValue {
                value: text,
                expires_at: None,
            };
            let swap = |expected: Option<&str>| {
                (self.store.shared_swap(&key, expected, &value)).map_err(failed("swap_pair", name))
            };
            let Some(expected_refresh) = expected_refresh else {
                return swap(None);
            };
            // The compare is on the whole stored text, read just before: it holds the refresh
            // token compared, and any change in between makes the swap fail.
            let current = (self.store.shared_get(&key)).map_err(failed("swap_pair", name))?;
            let Some(current) = current else {
                return Ok(false);
            };
            let stored = pair_from_text(name, &current.value, now)?;
            if stored.refresh_token.expose_secret() != expected_refresh.expose_secret() {
                return Ok(false);
            }
            swap(Some(&current.value))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::SqliteStore;

    fn state() -> StoreAuthState {
        StoreAuthState::new(Arc::new(SqliteStore::in_memory().unwrap()))
    }

    fn pair(refresh: &str) -> SharedPair {
        SharedPair {
            refresh_token: SecretString::from(refresh.to_owned()),
            access: Some(SharedToken::new(
                SecretString::from(format!("access-of-{refresh}")),
                Some(Duration::from_secs(3600)),
            )),
        }
    }

    #[tokio::test]
    async fn tokens_round_trip_until_they_expire() {
        let state = state();
        assert!(state.token("norce").await.unwrap().is_none());
        let token = SharedToken::new("t-1".into(), Some(Duration::from_secs(600)));
        state.save_token("norce", &token).await.unwrap();
        let read = state.token("norce").await.unwrap().unwrap();
        assert_eq!(read.secret().expose_secret(), "t-1");
        let left = read.expires_in().unwrap();
        assert!(left > Duration::from_secs(590) && left <= Duration::from_secs(600));
        let expired = SharedToken::new("t-2".into(), Some(Duration::ZERO));
        state.save_token("norce", &expired).await.unwrap();
        assert!(
            state.token("norce").await.unwrap().is_none(),
            "an expired token is none"
        );
    }

    #[tokio::test]
    async fn a_pair_is_swapped_only_from_the_refresh_token_it_replaces() {
        let state = state();
        assert!(state.swap_pair("bp", None, &pair("r1")).await.unwrap());
        assert!(
            !state.swap_pair("bp", None, &pair("rX")).await.unwrap(),
            "exists already"
        );
        let r1 = SecretString::from("r1");
        assert!(state.swap_pair("bp", Some(&r1), &pair("r2")).await.unwrap());
        // A second worker that spent r1 too loses: it must read r2.
        assert!(!state.swap_pair("bp", Some(&r1), &pair("r3")).await.unwrap());
        let now = state.load_pair("bp").await.unwrap().unwrap();
        assert_eq!(now.refresh_token.expose_secret(), "r2");
        assert_eq!(now.access.unwrap().secret().expose_secret(), "access-of-r2");
    }

    #[tokio::test]
    async fn claims_pauses_and_reservations_are_the_stores() {
        let state = state();
        assert!(
            state
                .claim("norce", "a", Duration::from_secs(30))
                .await
                .unwrap()
        );
        assert!(
            !state
                .claim("norce", "b", Duration::from_secs(30))
                .await
                .unwrap()
        );
        state.release("norce", "a").await.unwrap();
        assert!(
            state
                .claim("norce", "b", Duration::from_secs(30))
                .await
                .unwrap()
        );

        let second = Duration::from_secs(1);
        let waits: Vec<Duration> =
            futures::future::join_all((0..3).map(|_| state.reserve("bp", second, 2)))
                .await
                .into_iter()
                .map(Result::unwrap)
                .collect();
        assert_eq!(
            waits[..2],
            [Duration::ZERO, Duration::ZERO],
            "the burst of 2"
        );
        assert!(
            waits[2] > Duration::from_millis(900),
            "then one per second: {waits:?}"
        );

        assert_eq!(state.paused_for("bp").await.unwrap(), Duration::ZERO);
        state.pause("bp", Duration::from_secs(60)).await.unwrap();
        state.pause("bp", Duration::from_secs(5)).await.unwrap();
        let paused = state.paused_for("bp").await.unwrap();
        assert!(
            paused > Duration::from_secs(55),
            "a shorter pause never shortens: {paused:?}"
        );
    }

    #[test]
    fn debug_shows_no_secret() {
        assert_eq!(format!("{:?}", state()), "StoreAuthState");
    }
}
