use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Recurring events, stored as rule + zone and expanded on read (invariant 8). Per-occurrence
/// edits and RSVPs are keyed by the occurrence's original start (RECURRENCE-ID). Triggers:
/// - `sequence` and `updated_at` move on every change of a series (iCalendar SEQUENCE);
/// - RSVP counts per occurrence follow the RSVP rows.
const UP: &str = r"
CREATE TABLE events (
    id           uuid PRIMARY KEY,
    community_id uuid NOT NULL REFERENCES communities(id) ON DELETE CASCADE,
    group_id     uuid REFERENCES groups(id) ON DELETE CASCADE,
    room_id      uuid REFERENCES rooms(id) ON DELETE CASCADE,
    creator_id   uuid NOT NULL REFERENCES users(id),
    title        text NOT NULL CHECK (char_length(title) BETWEEN 1 AND 200),
    description  text NOT NULL DEFAULT '' CHECK (char_length(description) <= 4000),
    location     text NOT NULL DEFAULT '' CHECK (char_length(location) <= 500),
    starts_at    timestamptz NOT NULL,
    ends_at      timestamptz NOT NULL CHECK (ends_at >= starts_at),
    timezone     text NOT NULL,
    rrule        text,
    rdates       timestamptz[] NOT NULL DEFAULT '{}',
    exdates      timestamptz[] NOT NULL DEFAULT '{}',
    -- The series this one was split from (this-and-following).
    split_from   uuid REFERENCES events(id) ON DELETE SET NULL,
    sequence     integer NOT NULL DEFAULT 0,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX events_community ON events (community_id, starts_at);

CREATE FUNCTION events_bump_sequence() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.sequence := OLD.sequence + 1;
    NEW.updated_at := now();
    RETURN NEW;
END;
$$;
CREATE TRIGGER events_bump_sequence BEFORE UPDATE ON events
    FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION events_bump_sequence();

-- One occurrence edited or cancelled; unset columns keep the series' values.
CREATE TABLE event_overrides (
    event_id       uuid NOT NULL REFERENCES events(id) ON DELETE CASCADE,
    original_start timestamptz NOT NULL,
    cancelled      boolean NOT NULL DEFAULT false,
    title          text CHECK (char_length(title) BETWEEN 1 AND 200),
    description    text CHECK (char_length(description) <= 4000),
    location       text CHECK (char_length(location) <= 500),
    starts_at      timestamptz,
    ends_at        timestamptz,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    CHECK (starts_at IS NULL OR ends_at IS NULL OR ends_at >= starts_at),
    PRIMARY KEY (event_id, original_start)
);

CREATE TABLE event_rsvps (
    event_id       uuid NOT NULL REFERENCES events(id) ON DELETE CASCADE,
    original_start timestamptz NOT NULL,
    user_id        uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    status         text NOT NULL CHECK (status IN ('going', 'maybe', 'declined')),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (event_id, original_start, user_id)
);

-- Counts per occurrence, kept by the trigger below (lists read event_rsvps).
CREATE TABLE event_rsvp_counts (
    event_id       uuid NOT NULL REFERENCES events(id) ON DELETE CASCADE,
    original_start timestamptz NOT NULL,
    going          integer NOT NULL DEFAULT 0 CHECK (going >= 0),
    maybe          integer NOT NULL DEFAULT 0 CHECK (maybe >= 0),
    declined       integer NOT NULL DEFAULT 0 CHECK (declined >= 0),
    PRIMARY KEY (event_id, original_start)
);

CREATE FUNCTION event_rsvps_count() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        UPDATE event_rsvp_counts SET
            going = going - (OLD.status = 'going')::int,
            maybe = maybe - (OLD.status = 'maybe')::int,
            declined = declined - (OLD.status = 'declined')::int
         WHERE event_id = OLD.event_id AND original_start = OLD.original_start;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO event_rsvp_counts (event_id, original_start, going, maybe, declined)
        VALUES (NEW.event_id, NEW.original_start, (NEW.status = 'going')::int,
                (NEW.status = 'maybe')::int, (NEW.status = 'declined')::int)
        ON CONFLICT (event_id, original_start) DO UPDATE SET
            going = event_rsvp_counts.going + EXCLUDED.going,
            maybe = event_rsvp_counts.maybe + EXCLUDED.maybe,
            declined = event_rsvp_counts.declined + EXCLUDED.declined;
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER event_rsvps_count AFTER INSERT OR UPDATE OF status, event_id, original_start OR DELETE
    ON event_rsvps FOR EACH ROW EXECUTE FUNCTION event_rsvps_count();

-- Private calendar-feed tokens (calendar apps cannot send a bearer header); only a hash is kept.
CREATE TABLE calendar_feed_tokens (
    id         uuid PRIMARY KEY,
    user_id    uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    token_hash bytea NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX calendar_feed_tokens_user ON calendar_feed_tokens (user_id);

-- Reminders sent, one row per occurrence: the insert that wins is the one node that sends it.
CREATE TABLE event_reminders_sent (
    event_id       uuid NOT NULL REFERENCES events(id) ON DELETE CASCADE,
    original_start timestamptz NOT NULL,
    sent_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (event_id, original_start)
);
";

const DOWN: &str = r"
DROP TABLE IF EXISTS event_reminders_sent, calendar_feed_tokens, event_rsvp_counts, event_rsvps,
    event_overrides, events CASCADE;
DROP FUNCTION IF EXISTS events_bump_sequence(), event_rsvps_count();
";

crate::sql_migration!(UP, DOWN);
