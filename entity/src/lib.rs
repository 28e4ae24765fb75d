//! sea-orm entities, one module per table. Shapes follow the migrations in `migration/`.

pub mod refresh_tokens;
pub mod users;
