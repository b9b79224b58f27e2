//! Typed models of the brightpearl API, generated from `specs/brightpearl/` by `cargo xtask codegen`.
//!
//! One module per spec file. Every operation has a constant in `<module>::operations`
//! (method, path, media types) and, where it applies, `<Op>Path`, `<Op>Query`,
//! `<Op>Headers`, `<Op>Request` and `<Op>Response` types.

mod generated;
pub use generated::*;

mod search;
pub use search::RowDecodeError;

mod multi;
