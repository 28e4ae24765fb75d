//! The one integration-test binary: real app, real Postgres and Redis, random ports.

mod auth;
mod bola;
mod cli;
mod communities;
mod errors;
mod helpers;
mod jwt;
mod messages;
mod ops;
mod permission_model;
mod permissions;
mod polls;
mod presence;
mod ratelimit;
mod realtime;
mod shutdown;
mod subscriptions;
mod surveys;
mod ws;
