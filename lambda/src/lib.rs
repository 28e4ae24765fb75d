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
//!
//! The API depends on this crate for [`contract`] and [`sign`] only, so the wire contract has
//! one definition.

pub mod contract;
pub mod detect;
#[cfg(feature = "worker")]
mod encode;
pub mod error;
#[cfg(feature = "worker")]
pub mod evaluate;
/// Test images with planted metadata; also used by the API's integration tests.
#[doc(hidden)]
#[cfg(feature = "worker")]
pub mod fixtures;
pub mod limits;
#[cfg(feature = "worker")]
pub mod process;
pub mod sign;
#[cfg(feature = "worker")]
pub mod strip;

pub use contract::{CallbackBody, Invocation, Status, VariantInfo};
pub use detect::{Detected, check_claim, detect};
pub use error::MediaError;
#[cfg(feature = "worker")]
pub use evaluate::{Evaluation, Job, ObjectWrite, evaluate};
pub use limits::Limits;
#[cfg(feature = "worker")]
pub use process::{Processed, Variant, process_image};
pub use sign::sign;
