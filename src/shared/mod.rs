//! Small shared kernel pieces: pagination cursors and page parameters, a Redis subscription
//! that notices when it goes silent, the retry loop of long-lived feeds. Imports nothing
//! internal except `error`.

pub mod cursor;
pub mod retry;
pub mod subscription;

pub use cursor::{Cursor, PageParams};
