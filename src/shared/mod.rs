//! Small shared kernel pieces: pagination cursors and page parameters, a Redis subscription
//! that notices when it goes silent. Imports nothing internal except `error`.

pub mod cursor;
pub mod subscription;

pub use cursor::{Cursor, PageParams};
