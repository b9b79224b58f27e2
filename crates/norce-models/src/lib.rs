//! Typed models of the norce API, generated from `specs/norce/` by `cargo xtask codegen`.
//!
//! One module per spec file. Every operation has a constant in `<module>::operations`
//! (method, path, media types) and, where it applies, `<Op>Path`, `<Op>Query`,
//! `<Op>Headers`, `<Op>Request` and `<Op>Response` types.

mod generated;
pub use generated::*;

/// Hand-written beside the generated code: event payloads decoded by their event type.
pub mod event;

/// Re-exported: the VAT rate forms the models carry (Query and Connect percent, Services
/// multiplier) and their one conversion to a fraction.
pub use models_runtime::{VatMultiplier, VatPercent, VatRate};
