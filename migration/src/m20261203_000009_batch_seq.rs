use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Seq for batches (invariant 1): the group-commit writer reserves a room's seqs for the whole
/// batch with one `UPDATE rooms ... RETURNING` in the inserting statement, instead of one
/// UPDATE per row (each a new version of the same rooms row within the transaction, and a
/// foreign-key re-check of it). The trigger still assigns seq to inserts that bring none, and
/// refuses a supplied seq that was not reserved, so a bad insert cannot leave a gap.
const UP: &str = r"
CREATE OR REPLACE FUNCTION messages_assign_seq() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    reserved bigint;
BEGIN
    IF NEW.seq IS NOT NULL THEN
        SELECT last_seq INTO reserved FROM rooms WHERE id = NEW.room_id;
        IF reserved IS NULL THEN
            RAISE EXCEPTION 'room % does not exist', NEW.room_id USING ERRCODE = 'foreign_key_violation';
        END IF;
        IF NEW.seq < 1 OR NEW.seq > reserved THEN
            RAISE EXCEPTION 'seq % was not reserved in room % (last_seq %)', NEW.seq, NEW.room_id, reserved
                USING ERRCODE = 'check_violation';
        END IF;
        RETURN NEW;
    END IF;
    UPDATE rooms SET last_seq = last_seq + 1, last_message_at = NEW.created_at
     WHERE id = NEW.room_id
     RETURNING last_seq INTO NEW.seq;
    IF NEW.seq IS NULL THEN
        RAISE EXCEPTION 'room % does not exist', NEW.room_id USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NEW;
END;
$$;
";

const DOWN: &str = r"
CREATE OR REPLACE FUNCTION messages_assign_seq() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE rooms SET last_seq = last_seq + 1, last_message_at = NEW.created_at
     WHERE id = NEW.room_id
     RETURNING last_seq INTO NEW.seq;
    IF NEW.seq IS NULL THEN
        RAISE EXCEPTION 'room % does not exist', NEW.room_id USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NEW;
END;
$$;
";

crate::sql_migration!(UP, DOWN);
