//! The one integration-test binary: real app, real Postgres and Redis, random ports.

mod auth;
mod cli;
mod errors;
mod helpers;
mod jwt;
mod ops;
mod ratelimit;
mod shutdown;
