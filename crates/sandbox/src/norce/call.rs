//! The start every `/commerce/...` handler shares: settle due jobs, check the bearer, read the
//! operation's headers.

use axum::http::HeaderMap;
use axum::response::Response;
use models_runtime::ParamError;

use super::{identity, push};
use crate::state::{AppState, SharedState};

/// The `ApplicationId` header lookup: case-insensitive, also accepting `application-id`
/// (the Query guide's spelling).
pub(super) fn app_lookup<'a>(headers: &'a HeaderMap) -> impl Fn(&str) -> Option<&'a str> + 'a {
    let base = crate::util::header_lookup(headers);
    move |name: &str| {
        base(name).or_else(|| {
            if name.eq_ignore_ascii_case("ApplicationId") {
                base("application-id")
            } else {
                None
            }
        })
    }
}

/// Completes due jobs (lazily, on the virtual clock) and pushes their `JobCompletedEvent`s.
pub(super) fn settle(state: &SharedState) {
    let now = state.clock.now();
    let done = state.norce.lock().complete_due_jobs(now);
    for (job_id, status_id) in done {
        push::job_completed(state, job_id, status_id);
    }
}

/// Bearer check for every `/commerce/...` call (401 when missing, unknown or expired).
fn authorize(state: &AppState, headers: &HeaderMap) -> Result<(), Response> {
    identity::check_bearer(state, headers)
}

/// The start every `/commerce/...` handler shares: settle due jobs, check the bearer, then read
/// the operation's headers with `parse` (a header error becomes `on_error`'s response).
pub(super) fn start_call<H>(
    state: &SharedState,
    headers: &HeaderMap,
    parse: impl FnOnce(&HeaderMap) -> Result<H, ParamError>,
    on_error: impl FnOnce(ParamError) -> Response,
) -> Result<H, Response> {
    settle(state);
    authorize(state, headers)?;
    parse(headers).map_err(on_error)
}
