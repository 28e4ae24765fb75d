//! Guildhall: a community platform backend (communities, rooms, permissions, realtime chat).
//!
//! Kernel: `config`, `error`, `extract`, `state`, `telemetry`, `ratelimit`, `db`, `serve`, `app`.
//! Features (vertical slices): `identity`, `ops`. See ARCHITECTURE.md for the rules.

pub mod admin;
pub mod app;
pub mod asyncapi;
pub mod bodies;
pub mod calendar;
pub mod cli;
pub mod communities;
pub mod config;
pub mod db;
pub mod demo;
pub mod error;
pub mod extract;
pub mod identity;
pub mod media;
pub mod messages;
pub mod openapi;
pub mod ops;
pub mod permissions;
pub mod polls;
pub mod ratelimit;
pub mod realtime;
pub mod serve;
pub mod shared;
pub mod state;
pub mod telemetry;
pub mod webapp;
pub mod yaml;

pub use app::App;
pub use config::Config;
