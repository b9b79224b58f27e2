#![doc = include_str!("../README.md")]

pub mod snapshot;
pub mod strict;
mod tap;

pub use snapshot::RequestSnapshot;
pub use strict::{DecodeProblem, FieldDiff, Mismatch, StrictReport, compare};
pub use tap::{Exchange, Tap};
