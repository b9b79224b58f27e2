//! The relay integration runtime. So far: `relay verify`, which checks each configured
//! platform connection, or the embedded sandbox when nothing is configured.

pub mod embedded;
pub mod verify;
