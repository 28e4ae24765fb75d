use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Attachments: uploads straight to S3, checked by the media Lambda. Triggers and constraints:
/// - `status` only moves forward (pending -> processing -> ready | failed, or straight to failed);
///   a ready attachment has its measured size and type, a failed one a reason;
/// - every object an attachment owned (the original, its variants) is queued in `media_garbage`
///   when the attachment fails or its row goes (cleanup job, room or community deleted), so the
///   cleanup job can delete the objects even after the row is gone;
/// - `media_callbacks` remembers each accepted callback signature: a replay finds it taken.
const UP: &str = r"
CREATE TABLE attachments (
    id              uuid PRIMARY KEY,
    room_id         uuid NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    uploader_id     uuid NOT NULL REFERENCES users(id),
    -- Chosen by the server: uploads/{community or dm}/{room}/{id}.
    object_key      text NOT NULL UNIQUE,
    filename        text NOT NULL CHECK (char_length(filename) BETWEEN 1 AND 255),
    declared_type   text NOT NULL,
    declared_size   bigint NOT NULL CHECK (declared_size > 0),
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'processing', 'ready', 'failed')),
    -- Measured by the Lambda (ready), or detected when the check failed.
    content_type    text,
    size            bigint CHECK (size >= 0),
    width           integer CHECK (width > 0),
    height          integer CHECK (height > 0),
    blurhash        text,
    variants        jsonb NOT NULL DEFAULT '[]',
    failure_reason  text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CHECK (status <> 'ready' OR (content_type IS NOT NULL AND size IS NOT NULL)),
    CHECK (status <> 'failed' OR failure_reason IS NOT NULL)
);
CREATE INDEX attachments_room ON attachments (room_id);
CREATE INDEX attachments_unfinished ON attachments (updated_at) WHERE status <> 'ready';
CREATE TRIGGER attachments_set_updated_at BEFORE UPDATE ON attachments
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE FUNCTION attachments_forward_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status <> OLD.status AND NOT (
        (OLD.status = 'pending' AND NEW.status IN ('processing', 'failed')) OR
        (OLD.status = 'processing' AND NEW.status IN ('pending', 'ready', 'failed'))
    ) THEN
        RAISE EXCEPTION 'attachment % cannot go from % to %', OLD.id, OLD.status, NEW.status
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER attachments_forward_only BEFORE UPDATE OF status ON attachments
    FOR EACH ROW EXECUTE FUNCTION attachments_forward_only();

CREATE TABLE media_garbage (
    id         bigserial PRIMARY KEY,
    object_key text NOT NULL,
    queued_at  timestamptz NOT NULL DEFAULT now()
);

-- The original and every variant key the row knows of.
CREATE FUNCTION attachment_object_keys(a attachments) RETURNS SETOF text LANGUAGE sql AS $$
    SELECT a.object_key
    UNION ALL
    SELECT v ->> 'key' FROM jsonb_array_elements(a.variants) v WHERE v ? 'key'
$$;

CREATE FUNCTION attachments_queue_garbage() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        INSERT INTO media_garbage (object_key) SELECT attachment_object_keys(OLD);
        RETURN OLD;
    END IF;
    INSERT INTO media_garbage (object_key) SELECT attachment_object_keys(NEW);
    RETURN NEW;
END $$;
CREATE TRIGGER attachments_garbage_on_delete AFTER DELETE ON attachments
    FOR EACH ROW EXECUTE FUNCTION attachments_queue_garbage();
CREATE TRIGGER attachments_garbage_on_failure AFTER UPDATE OF status ON attachments
    FOR EACH ROW WHEN (NEW.status = 'failed' AND OLD.status <> 'failed')
    EXECUTE FUNCTION attachments_queue_garbage();

CREATE TABLE media_callbacks (
    signature   text PRIMARY KEY,
    received_at timestamptz NOT NULL DEFAULT now()
);
";

const DOWN: &str = r"
DROP TABLE IF EXISTS media_callbacks;
DROP FUNCTION IF EXISTS attachments_queue_garbage() CASCADE;
DROP FUNCTION IF EXISTS attachment_object_keys(attachments);
DROP TABLE IF EXISTS attachments;
DROP FUNCTION IF EXISTS attachments_forward_only();
DROP TABLE IF EXISTS media_garbage;
";

crate::sql_migration!(UP, DOWN);
