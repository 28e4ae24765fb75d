//! Guildhall's media worker, the pure half: everything here works on bytes and plain values, with
//! no AWS, no network and no clock, so it is unit-tested directly. The Lambda binary
//! (`src/bin/guildhall-media/`) does the I/O around it: read the object from S3, call
//! [`evaluate`], write what it says to write, and POST the signed callback.
//!
//! - [`detect`]: the real content type from magic bytes, and whether it matches the declared one.
//! - [`limits`]: size and pixel limits, checked from the header before anything is decoded.
//! - [`process`]: decode, strip metadata, thumbnails, blurhash.
//! - [`strip`]: lossless container-level metadata removal for GIF and WebP.
//! - [`contract`]: the invocation payloads and the callback body (the wire contract with the API).
//! - [`evaluate`]: one upload in, the callback body and the objects to write out.
//! - [`sign`]: the callback signature the API verifies.

pub mod contract;
pub mod detect;
mod encode;
pub mod error;
pub mod evaluate;
#[cfg(test)]
mod fixtures;
pub mod limits;
pub mod process;
pub mod sign;
pub mod strip;

pub use contract::{CallbackBody, Invocation, Status, VariantInfo};
pub use detect::{Detected, check_claim, detect};
pub use error::MediaError;
pub use evaluate::{Evaluation, Job, ObjectWrite, evaluate};
pub use limits::Limits;
pub use process::{Processed, Variant, process_image};
pub use sign::sign;
