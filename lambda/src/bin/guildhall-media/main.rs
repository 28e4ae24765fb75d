//! The Lambda entry point: read the config from the environment, build the worker (S3 client,
//! callback client) once per cold start, then serve invocations. The per-invocation flow is in
//! `worker.rs`; everything that looks at bytes is in the library.

mod callback;
mod config;
mod error;
mod worker;

use std::sync::Arc;

use guildhall_media::Invocation;
use lambda_runtime::{Error, LambdaEvent, service_fn};

use crate::config::Config;
use crate::worker::Worker;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = Config::from_env(|name| std::env::var(name).ok())?;
    let worker = Arc::new(Worker::build(config).await?);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Invocation>| {
        let worker = Arc::clone(&worker);
        async move { worker.handle(event.payload).await }
    }))
    .await
}
