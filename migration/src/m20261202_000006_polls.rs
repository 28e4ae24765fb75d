use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Polls and surveys, carried into room timelines by messages. Triggers:
/// - option tallies and voter counts follow the vote and ballot rows, so a tally always equals a
///   recount of what is stored;
/// - anonymous polls: the ballot row says only that a keyed hash of (poll, user) has voted; its
///   choices are counted by the BEFORE INSERT trigger and erased before the row is written
///   (`CHECK (choices IS NULL)` holds the trigger to it), and `poll_votes` refuses anonymous
///   polls, so no stored row links a voter to a choice;
/// - survey response counts follow the response rows.
const UP: &str = r"
CREATE TABLE polls (
    id                 uuid PRIMARY KEY,
    room_id            uuid NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    -- The message that carries it into the timeline, set once that message is stored.
    message_id         uuid,
    creator_id         uuid NOT NULL REFERENCES users(id),
    question           text NOT NULL CHECK (char_length(question) BETWEEN 1 AND 300),
    multiple_choice    boolean NOT NULL,
    max_choices        integer CHECK (max_choices >= 1),
    anonymous          boolean NOT NULL,
    results_visibility text NOT NULL CHECK (results_visibility IN ('always', 'after_vote', 'after_close')),
    closes_at          timestamptz,
    closed_at          timestamptz,
    closed_by          uuid REFERENCES users(id),
    voter_count        integer NOT NULL DEFAULT 0 CHECK (voter_count >= 0),
    created_at         timestamptz NOT NULL DEFAULT now(),
    CHECK (multiple_choice OR max_choices IS NULL)
);
CREATE INDEX polls_room ON polls (room_id);
CREATE INDEX polls_due ON polls (closes_at) WHERE closed_at IS NULL AND closes_at IS NOT NULL;

CREATE TABLE poll_options (
    id       uuid PRIMARY KEY,
    poll_id  uuid NOT NULL REFERENCES polls(id) ON DELETE CASCADE,
    position smallint NOT NULL,
    label    text NOT NULL CHECK (char_length(label) BETWEEN 1 AND 100),
    votes    integer NOT NULL DEFAULT 0 CHECK (votes >= 0),
    UNIQUE (poll_id, position),
    UNIQUE (poll_id, id)
);

-- One row per voter and poll: a keyed hash of (poll, user), never a user id or a choice.
CREATE TABLE poll_ballots (
    poll_id   uuid NOT NULL REFERENCES polls(id) ON DELETE CASCADE,
    voter_key bytea NOT NULL CHECK (octet_length(voter_key) = 32),
    -- Only in flight: an anonymous ballot's options, counted and erased by the trigger.
    choices   uuid[] CHECK (choices IS NULL),
    PRIMARY KEY (poll_id, voter_key)
);

-- Who chose what, for polls that are not anonymous.
CREATE TABLE poll_votes (
    poll_id   uuid NOT NULL REFERENCES polls(id) ON DELETE CASCADE,
    option_id uuid NOT NULL,
    user_id   uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    voted_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (poll_id, user_id, option_id),
    FOREIGN KEY (poll_id, option_id) REFERENCES poll_options (poll_id, id) ON DELETE CASCADE
);
CREATE INDEX poll_votes_option ON poll_votes (option_id, voted_at, user_id);

CREATE FUNCTION poll_ballots_count_choices() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    counted integer;
BEGIN
    IF NEW.choices IS NULL THEN
        RETURN NEW;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM polls WHERE id = NEW.poll_id AND anonymous) THEN
        RAISE EXCEPTION 'choices ride on ballots of anonymous polls only' USING ERRCODE = 'check_violation';
    END IF;
    UPDATE poll_options SET votes = votes + 1
     WHERE poll_id = NEW.poll_id AND id = ANY (NEW.choices);
    GET DIAGNOSTICS counted = ROW_COUNT;
    IF counted <> cardinality(NEW.choices) THEN
        RAISE EXCEPTION 'a choice is not an option of poll %', NEW.poll_id USING ERRCODE = 'foreign_key_violation';
    END IF;
    NEW.choices := NULL;
    RETURN NEW;
END;
$$;
CREATE TRIGGER poll_ballots_count_choices BEFORE INSERT ON poll_ballots
    FOR EACH ROW EXECUTE FUNCTION poll_ballots_count_choices();

CREATE FUNCTION poll_ballots_count_voters() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE polls SET voter_count = voter_count + CASE WHEN TG_OP = 'INSERT' THEN 1 ELSE -1 END
     WHERE id = COALESCE(NEW.poll_id, OLD.poll_id);
    RETURN NULL;
END;
$$;
CREATE TRIGGER poll_ballots_count_voters AFTER INSERT OR DELETE ON poll_ballots
    FOR EACH ROW EXECUTE FUNCTION poll_ballots_count_voters();

CREATE FUNCTION poll_votes_refuse_anonymous() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM polls WHERE id = NEW.poll_id AND anonymous) THEN
        RAISE EXCEPTION 'poll % is anonymous: its votes are not stored per user', NEW.poll_id
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER poll_votes_refuse_anonymous BEFORE INSERT OR UPDATE ON poll_votes
    FOR EACH ROW EXECUTE FUNCTION poll_votes_refuse_anonymous();

CREATE FUNCTION poll_votes_tally() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE poll_options SET votes = votes + 1 WHERE id = NEW.option_id;
    ELSE
        UPDATE poll_options SET votes = votes - 1 WHERE id = OLD.option_id;
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER poll_votes_tally AFTER INSERT OR DELETE ON poll_votes
    FOR EACH ROW EXECUTE FUNCTION poll_votes_tally();

CREATE TABLE surveys (
    id                 uuid PRIMARY KEY,
    room_id            uuid NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    -- The message that carries it into the timeline, set once that message is stored.
    message_id         uuid,
    creator_id         uuid NOT NULL REFERENCES users(id),
    title              text NOT NULL CHECK (char_length(title) BETWEEN 1 AND 200),
    description        text NOT NULL DEFAULT '',
    results_visibility text NOT NULL CHECK (results_visibility IN ('always', 'after_response', 'after_close')),
    closes_at          timestamptz,
    closed_at          timestamptz,
    closed_by          uuid REFERENCES users(id),
    response_count     integer NOT NULL DEFAULT 0 CHECK (response_count >= 0),
    created_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX surveys_room ON surveys (room_id);
CREATE INDEX surveys_due ON surveys (closes_at) WHERE closed_at IS NULL AND closes_at IS NOT NULL;

CREATE TABLE survey_questions (
    id          uuid PRIMARY KEY,
    survey_id   uuid NOT NULL REFERENCES surveys(id) ON DELETE CASCADE,
    position    smallint NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('single', 'multiple', 'text', 'rating')),
    prompt      text NOT NULL CHECK (char_length(prompt) BETWEEN 1 AND 500),
    required    boolean NOT NULL,
    scale       smallint CHECK (scale IN (5, 10)),
    max_choices integer CHECK (max_choices >= 1),
    CHECK ((kind = 'rating') = (scale IS NOT NULL)),
    UNIQUE (survey_id, position)
);

CREATE TABLE survey_options (
    id          uuid PRIMARY KEY,
    question_id uuid NOT NULL REFERENCES survey_questions(id) ON DELETE CASCADE,
    position    smallint NOT NULL,
    label       text NOT NULL CHECK (char_length(label) BETWEEN 1 AND 100),
    UNIQUE (question_id, position)
);

CREATE TABLE survey_responses (
    id           uuid PRIMARY KEY,
    survey_id    uuid NOT NULL REFERENCES surveys(id) ON DELETE CASCADE,
    user_id      uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    submitted_at timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (survey_id, user_id)
);

CREATE TABLE survey_answers (
    response_id uuid NOT NULL REFERENCES survey_responses(id) ON DELETE CASCADE,
    question_id uuid NOT NULL REFERENCES survey_questions(id) ON DELETE CASCADE,
    option_ids  uuid[],
    text        text CHECK (char_length(text) <= 4000),
    rating      smallint CHECK (rating BETWEEN 1 AND 10),
    CHECK (num_nonnulls(option_ids, text, rating) = 1),
    PRIMARY KEY (response_id, question_id)
);
CREATE INDEX survey_answers_question ON survey_answers (question_id);

CREATE FUNCTION survey_responses_count() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE surveys SET response_count = response_count + CASE WHEN TG_OP = 'INSERT' THEN 1 ELSE -1 END
     WHERE id = COALESCE(NEW.survey_id, OLD.survey_id);
    RETURN NULL;
END;
$$;
CREATE TRIGGER survey_responses_count AFTER INSERT OR DELETE ON survey_responses
    FOR EACH ROW EXECUTE FUNCTION survey_responses_count();

-- The message that carries a poll or survey into the timeline; deleting the poll or survey
-- (when its message is deleted) leaves the tombstone.
ALTER TABLE messages ADD COLUMN poll_id uuid REFERENCES polls(id) ON DELETE SET NULL,
                     ADD COLUMN survey_id uuid REFERENCES surveys(id) ON DELETE SET NULL;
CREATE INDEX messages_poll ON messages (poll_id) WHERE poll_id IS NOT NULL;
CREATE INDEX messages_survey ON messages (survey_id) WHERE survey_id IS NOT NULL;

-- Deleting the carrying message deletes the poll or survey with its votes and answers.
CREATE FUNCTION messages_drop_carried() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM polls WHERE id = NEW.poll_id;
    DELETE FROM surveys WHERE id = NEW.survey_id;
    RETURN NULL;
END;
$$;
CREATE TRIGGER messages_drop_carried AFTER UPDATE OF deleted_at ON messages
    FOR EACH ROW WHEN (OLD.deleted_at IS NULL AND NEW.deleted_at IS NOT NULL
                       AND (NEW.poll_id IS NOT NULL OR NEW.survey_id IS NOT NULL))
    EXECUTE FUNCTION messages_drop_carried();
";

const DOWN: &str = r"
DROP TRIGGER IF EXISTS messages_drop_carried ON messages;
DROP FUNCTION IF EXISTS messages_drop_carried();
ALTER TABLE messages DROP COLUMN IF EXISTS poll_id, DROP COLUMN IF EXISTS survey_id;
DROP TABLE IF EXISTS survey_answers, survey_responses, survey_options, survey_questions, surveys,
    poll_votes, poll_ballots, poll_options, polls CASCADE;
DROP FUNCTION IF EXISTS poll_ballots_count_choices(), poll_ballots_count_voters(),
    poll_votes_refuse_anonymous(), poll_votes_tally(), survey_responses_count();
";

crate::sql_migration!(UP, DOWN);
