//! The relay integration runtime: the connector flows with durable state, the receivers, and
//! the operator's CLI (`relay verify`, `run`, `serve`, `status`, `replay`, `cursor`).

pub mod cli;
pub mod config;
pub mod embedded;
pub mod flows;
pub mod scenario;
pub mod serve;
pub mod state;
pub mod table;
pub mod text;
pub mod verify;
