#![doc = include_str!("../README.md")]

// Every item lives in a module of its own and is re-exported here: no module uses the root,
// so none can form a cycle through it.
mod decimal;
pub mod header;
mod info;
mod operation;
mod param;
pub mod path;
pub mod redact;
mod schema;
mod timestamp;
mod vat;

pub use decimal::DecimalNumber;
pub use info::{OperationInfo, ResponseVisitor};
pub use operation::{Caller, Operation};
pub use param::ParamError;
pub use rust_decimal::Decimal;
pub use timestamp::{Timestamp, TimestampError};
pub use vat::{VatMultiplier, VatPercent, VatRate};
