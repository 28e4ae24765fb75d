use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// `set_updated_at()`: every table with an `updated_at` column attaches it as a BEFORE UPDATE
/// trigger, so the column is right whichever code path (or psql session) writes the row.
const UP: &str = r"
CREATE OR REPLACE FUNCTION set_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END;
$$;
";

const DOWN: &str = "DROP FUNCTION IF EXISTS set_updated_at();";

crate::sql_migration!(UP, DOWN);
