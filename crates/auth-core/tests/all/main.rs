//! Integration tests for auth-core, in one binary to keep link time low.

mod auth401;
mod cache;
mod common;
mod priority;
mod ratelimit;
mod redaction;
mod refresh;
mod retry;
mod shared;
