//! What the Norce, nShift and Brightpearl clients share, and nothing platform-specific:
//!
//! - [`ReqwestTransport`]: the bottom of every client's tower stack (and the token transport of
//!   the OAuth sources): `http::Request<Bytes>` in, buffered `http::Response<Bytes>` out, with
//!   errors classified for the retry layer (not sent vs maybe sent) and a per-request timeout
//!   ([`DEFAULT_TIMEOUT`]); [`BoxTransport`], the type-erased transport a client is built on;
//!   [`is_timeout`], which tells a timeout apart in a stack error;
//! - [`ErrorKind`]: the one classification of a failed call (transient, throttled,
//!   unauthorized, permanent, ambiguous write) that every client's error answers;
//! - [`query_pairs`] / [`append_query`]: the query string of a generated `*Query` type;
//! - [`settings`]: reading settings from code or the environment, with errors that name the
//!   setting, and the HTTPS-except-loopback rule for base URLs;
//! - [`snapshot`]: a redacted, serializable view of a request for insta snapshots;
//! - [`strict`]: [`compare`], a strict-decode comparison of a raw response with a model type
//!   (what the model drops, what fails to decode, personal values masked), and [`Tap`], a
//!   transport that keeps a copy of every answer for such a comparison.

mod kind;
mod query;
pub mod settings;
pub mod snapshot;
pub mod strict;
mod tap;
mod transport;

pub use kind::ErrorKind;
pub use query::{append_query, query_pairs};
pub use settings::{Settings, SettingsError, base_url};
pub use snapshot::RequestSnapshot;
pub use strict::{DecodeProblem, FieldDiff, Mismatch, StrictReport, compare};
pub use tap::{Exchange, Tap};
pub use transport::{BoxTransport, DEFAULT_TIMEOUT, ReqwestTransport, is_timeout};
