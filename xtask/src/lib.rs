//! Project automation for the workspace (`cargo xtask …`).

pub mod codegen;
