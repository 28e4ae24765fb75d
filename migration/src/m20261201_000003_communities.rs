use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The community tree. Triggers keep it consistent whatever writes it:
/// - `groups.path` / `rooms.path` (ancestor group ids, root first) and `depth` on insert and move,
///   descendants following a move; cycles, cross-community parents and over-deep trees are rejected;
/// - `communities.member_count` follows `community_members`.
const UP: &str = r"
CREATE TABLE communities (
    id             uuid PRIMARY KEY,
    name           text NOT NULL,
    description    text NOT NULL DEFAULT '',
    visibility     text NOT NULL CHECK (visibility IN ('public', 'private')),
    created_by     uuid NOT NULL REFERENCES users(id),
    member_count   integer NOT NULL DEFAULT 0,
    max_depth      integer NOT NULL DEFAULT 8 CHECK (max_depth BETWEEN 1 AND 16),
    -- Bumped on every permission-relevant change; nodes drop compiled indexes older than it.
    policy_version bigint NOT NULL DEFAULT 0,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE TRIGGER communities_set_updated_at BEFORE UPDATE ON communities
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE groups (
    id           uuid PRIMARY KEY,
    community_id uuid NOT NULL REFERENCES communities(id) ON DELETE CASCADE,
    parent_id    uuid REFERENCES groups(id),
    name         text NOT NULL,
    -- Ancestor group ids from the top-level group down to this one (inclusive).
    path         uuid[] NOT NULL DEFAULT '{}',
    depth        integer NOT NULL DEFAULT 1,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX groups_community ON groups (community_id);
CREATE INDEX groups_path ON groups USING gin (path);
CREATE TRIGGER groups_set_updated_at BEFORE UPDATE ON groups
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE rooms (
    id           uuid PRIMARY KEY,
    community_id uuid REFERENCES communities(id) ON DELETE CASCADE,
    group_id     uuid REFERENCES groups(id),
    kind         text NOT NULL DEFAULT 'room' CHECK (kind IN ('room', 'dm')),
    name         text NOT NULL,
    topic        text NOT NULL DEFAULT '',
    private      boolean NOT NULL DEFAULT false,
    -- Ancestor group ids (root first); empty for rooms directly under the community.
    path         uuid[] NOT NULL DEFAULT '{}',
    -- Sorted member ids of a DM: the same set of users always maps to the same room.
    dm_key       text UNIQUE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CHECK ((kind = 'dm') = (community_id IS NULL)),
    CHECK ((kind = 'dm') = (dm_key IS NOT NULL))
);
CREATE INDEX rooms_community ON rooms (community_id);
CREATE INDEX rooms_group ON rooms (group_id);
CREATE TRIGGER rooms_set_updated_at BEFORE UPDATE ON rooms
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE community_members (
    community_id uuid NOT NULL REFERENCES communities(id) ON DELETE CASCADE,
    user_id      uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    joined_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (community_id, user_id)
);
CREATE INDEX community_members_user ON community_members (user_id);

-- Members of private rooms and DMs (public rooms include every community member).
CREATE TABLE room_members (
    room_id   uuid NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    user_id   uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    added_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (room_id, user_id)
);
CREATE INDEX room_members_user ON room_members (user_id);

CREATE TABLE invites (
    code         text PRIMARY KEY,
    community_id uuid NOT NULL REFERENCES communities(id) ON DELETE CASCADE,
    created_by   uuid NOT NULL REFERENCES users(id),
    max_uses     integer CHECK (max_uses > 0),
    uses         integer NOT NULL DEFAULT 0,
    expires_at   timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    CHECK (max_uses IS NULL OR uses <= max_uses)
);
CREATE INDEX invites_community ON invites (community_id);

CREATE TABLE bans (
    community_id uuid NOT NULL REFERENCES communities(id) ON DELETE CASCADE,
    user_id      uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    banned_by    uuid NOT NULL REFERENCES users(id),
    reason       text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (community_id, user_id)
);

-- Path, depth, cycle, cross-community and depth-limit rules for groups.
CREATE FUNCTION groups_maintain_path() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    parent groups%ROWTYPE;
    limit_depth integer;
    subtree_height integer := 0;
BEGIN
    SELECT max_depth INTO limit_depth FROM communities WHERE id = NEW.community_id;
    IF TG_OP = 'UPDATE' AND NEW.community_id <> OLD.community_id THEN
        RAISE EXCEPTION 'a group cannot change community' USING ERRCODE = 'check_violation',
            CONSTRAINT = 'groups_community_fixed';
    END IF;
    IF NEW.parent_id IS NULL THEN
        NEW.path := ARRAY[NEW.id];
        NEW.depth := 1;
    ELSE
        SELECT * INTO parent FROM groups WHERE id = NEW.parent_id;
        IF parent.community_id <> NEW.community_id THEN
            RAISE EXCEPTION 'parent group belongs to another community' USING ERRCODE = 'check_violation',
                CONSTRAINT = 'groups_parent_same_community';
        END IF;
        IF NEW.id = ANY(parent.path) THEN
            RAISE EXCEPTION 'a group cannot move under itself' USING ERRCODE = 'check_violation',
                CONSTRAINT = 'groups_no_cycle';
        END IF;
        NEW.path := parent.path || NEW.id;
        NEW.depth := parent.depth + 1;
    END IF;
    IF TG_OP = 'UPDATE' THEN
        SELECT COALESCE(max(depth), OLD.depth) - OLD.depth INTO subtree_height
            FROM groups WHERE path @> ARRAY[OLD.id];
    END IF;
    IF NEW.depth + subtree_height > limit_depth THEN
        RAISE EXCEPTION 'groups may nest at most % levels', limit_depth USING ERRCODE = 'check_violation',
            CONSTRAINT = 'groups_max_depth';
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER groups_path_before BEFORE INSERT OR UPDATE OF parent_id, community_id ON groups
    FOR EACH ROW EXECUTE FUNCTION groups_maintain_path();

-- Descendant groups and the rooms under the moved subtree follow a move.
CREATE FUNCTION groups_move_descendants() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.path IS DISTINCT FROM OLD.path THEN
        UPDATE groups
           SET path = NEW.path || path[array_position(path, NEW.id) + 1:],
               depth = NEW.depth + (cardinality(path) - array_position(path, NEW.id))
         WHERE path @> ARRAY[NEW.id] AND id <> NEW.id;
        UPDATE rooms r
           SET path = g.path
          FROM groups g
         WHERE r.group_id = g.id AND g.path @> ARRAY[NEW.id];
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER groups_path_after AFTER UPDATE OF parent_id ON groups
    FOR EACH ROW EXECUTE FUNCTION groups_move_descendants();

CREATE FUNCTION rooms_maintain_path() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    parent groups%ROWTYPE;
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.community_id IS DISTINCT FROM OLD.community_id THEN
        RAISE EXCEPTION 'a room cannot change community' USING ERRCODE = 'check_violation',
            CONSTRAINT = 'rooms_community_fixed';
    END IF;
    IF NEW.group_id IS NULL THEN
        NEW.path := '{}';
    ELSE
        SELECT * INTO parent FROM groups WHERE id = NEW.group_id;
        IF parent.community_id IS DISTINCT FROM NEW.community_id THEN
            RAISE EXCEPTION 'group belongs to another community' USING ERRCODE = 'check_violation',
                CONSTRAINT = 'rooms_group_same_community';
        END IF;
        NEW.path := parent.path;
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER rooms_path_before BEFORE INSERT OR UPDATE OF group_id, community_id ON rooms
    FOR EACH ROW EXECUTE FUNCTION rooms_maintain_path();

CREATE FUNCTION community_members_count() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE communities SET member_count = member_count + 1 WHERE id = NEW.community_id;
    ELSE
        UPDATE communities SET member_count = member_count - 1 WHERE id = OLD.community_id;
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER community_members_count AFTER INSERT OR DELETE ON community_members
    FOR EACH ROW EXECUTE FUNCTION community_members_count();
";

const DOWN: &str = r"
DROP TABLE IF EXISTS bans, invites, room_members, community_members, rooms, groups, communities CASCADE;
DROP FUNCTION IF EXISTS groups_maintain_path(), groups_move_descendants(), rooms_maintain_path(),
    community_members_count();
";

crate::sql_migration!(UP, DOWN);
