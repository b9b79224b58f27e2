#![doc = include_str!("../README.md")]

pub mod alerts;
pub mod budget;
pub mod cli;
pub mod config;
pub mod embedded;
pub mod flows;
pub mod health;
pub mod operator;
pub mod platform;
pub mod scenario;
pub mod serve;
pub mod shared_auth;
pub mod state;
pub mod table;
pub mod text;
pub mod verify;
