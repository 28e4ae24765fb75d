use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Revoking every session of a user (`guildhall admin revoke-sessions`): access tokens issued
/// before `not_before` are refused. Nodes keep the recent cutoffs in memory (invariant 7: the
/// cache is driven by a write): every insert or update NOTIFYs `guildhall_sessions` with
/// `<user_id>:<unix seconds>` on commit, so every node also closes that user's WebSockets.
const UP: &str = r"
CREATE TABLE user_token_cutoffs (
    user_id    uuid PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    not_before timestamptz NOT NULL
);

CREATE FUNCTION user_token_cutoffs_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('guildhall_sessions',
        NEW.user_id::text || ':' || floor(extract(epoch FROM NEW.not_before))::bigint::text);
    RETURN NULL;
END;
$$;
CREATE TRIGGER user_token_cutoffs_notify AFTER INSERT OR UPDATE ON user_token_cutoffs
    FOR EACH ROW EXECUTE FUNCTION user_token_cutoffs_notify();
";

const DOWN: &str = r"
DROP TABLE IF EXISTS user_token_cutoffs;
DROP FUNCTION IF EXISTS user_token_cutoffs_notify();
";

crate::sql_migration!(UP, DOWN);
