//! Small shared kernel pieces: pagination cursors and page parameters. Imports nothing internal
//! except `error`.

pub mod cursor;

pub use cursor::{Cursor, PageParams};
