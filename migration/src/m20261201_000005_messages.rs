use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Messages and what hangs off them. Triggers:
/// - `seq`: per-room, gapless, strictly increasing, assigned in the inserting transaction by
///   bumping `rooms.last_seq` (the row lock serializes writers of one room; invariant 1); the
///   room's `last_message_at` follows;
/// - unread mention counters for mentioned users;
/// - `search` is a generated full-text vector, current on insert and edit.
const UP: &str = r"
ALTER TABLE rooms ADD COLUMN last_seq bigint NOT NULL DEFAULT 0,
                  ADD COLUMN last_message_at timestamptz;

CREATE TABLE messages (
    id            uuid PRIMARY KEY,
    room_id       uuid NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    seq           bigint NOT NULL,
    sender_id     uuid NOT NULL REFERENCES users(id),
    content       text NOT NULL,
    reply_to      uuid REFERENCES messages(id) ON DELETE SET NULL,
    client_msg_id text,
    attachments   jsonb NOT NULL DEFAULT '[]',
    mentions      uuid[] NOT NULL DEFAULT '{}',
    created_at    timestamptz NOT NULL DEFAULT now(),
    edited_at     timestamptz,
    deleted_at    timestamptz,
    search        tsvector GENERATED ALWAYS AS (to_tsvector('simple', content)) STORED,
    UNIQUE (room_id, seq),
    UNIQUE (room_id, sender_id, client_msg_id)
);
CREATE INDEX messages_search ON messages USING gin (search);
CREATE INDEX messages_sender ON messages (sender_id);

CREATE FUNCTION messages_assign_seq() RETURNS trigger LANGUAGE plpgsql AS $$
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
CREATE TRIGGER messages_assign_seq BEFORE INSERT ON messages
    FOR EACH ROW EXECUTE FUNCTION messages_assign_seq();

CREATE TABLE reactions (
    message_id uuid NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    user_id    uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    emoji      text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (message_id, user_id, emoji)
);

-- Read position and unread mentions per (room, user): unread = rooms.last_seq - last_read_seq.
CREATE TABLE read_markers (
    room_id       uuid NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    user_id       uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    last_read_seq bigint NOT NULL DEFAULT 0,
    mention_count integer NOT NULL DEFAULT 0,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (room_id, user_id)
);
CREATE INDEX read_markers_user ON read_markers (user_id);

CREATE FUNCTION messages_count_mentions() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO read_markers (room_id, user_id, mention_count)
    SELECT NEW.room_id, m, 1 FROM unnest(NEW.mentions) AS m WHERE m <> NEW.sender_id
    ON CONFLICT (room_id, user_id) DO UPDATE SET mention_count = read_markers.mention_count + 1;
    RETURN NULL;
END;
$$;
CREATE TRIGGER messages_count_mentions AFTER INSERT ON messages
    FOR EACH ROW WHEN (cardinality(NEW.mentions) > 0) EXECUTE FUNCTION messages_count_mentions();

-- Private-room membership decides who may follow a room: every change bumps the community's
-- policy version, so open sessions re-check their rooms (and pick up new ones) at once.
CREATE FUNCTION room_members_bump_policy() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE communities c SET policy_version = policy_version + 1
      FROM rooms r WHERE r.id = COALESCE(NEW.room_id, OLD.room_id) AND c.id = r.community_id;
    RETURN NULL;
END;
$$;
CREATE TRIGGER room_members_bump_policy AFTER INSERT OR DELETE ON room_members
    FOR EACH ROW EXECUTE FUNCTION room_members_bump_policy();
";

const DOWN: &str = r"
DROP TABLE IF EXISTS read_markers, reactions, messages CASCADE;
DROP TRIGGER IF EXISTS room_members_bump_policy ON room_members;
DROP FUNCTION IF EXISTS messages_assign_seq(), messages_count_mentions(), room_members_bump_policy();
ALTER TABLE rooms DROP COLUMN IF EXISTS last_seq, DROP COLUMN IF EXISTS last_message_at;
";

crate::sql_migration!(UP, DOWN);
