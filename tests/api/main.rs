//! The one integration-test binary: real app, real Postgres and Redis, random ports.

mod auth;
mod bola;
mod calendar;
mod cli;
mod communities;
mod errors;
mod helpers;
mod ics_feed;
mod jwt;
mod mass_assignment;
mod media;
mod messages;
mod ops;
mod permission_model;
mod permissions;
mod polls;
mod presence;
mod ratelimit;
mod realtime;
mod rrule_oracle;
mod shutdown;
mod subscriptions;
mod surveys;
mod ws;
