use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Roles, grants and overrides (what admins configure), the Casbin policy lines compiled from
/// them (`casbin_rule`, read through the Casbin adapter), and the audit log. Triggers:
/// - an audit row for every change to roles, grants, overrides, bans (ownership = owner grants),
///   with the acting user from `SET LOCAL guildhall.actor`;
/// - the last owner of a community can never lose the owner role (nor leave);
/// - membership keeps its Casbin `g` line (user holds the `member` role at the community);
/// - `policy_version` bumps on membership changes and NOTIFY `guildhall_policy` on every bump, so
///   every node drops stale permission indexes (invariant 7).
const UP: &str = r"
CREATE TABLE roles (
    id           uuid PRIMARY KEY,
    community_id uuid NOT NULL REFERENCES communities(id) ON DELETE CASCADE,
    name         text NOT NULL,
    permissions  text[] NOT NULL DEFAULT '{}',
    builtin      text CHECK (builtin IN ('owner', 'admin', 'moderator', 'member')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (community_id, builtin)
);
CREATE UNIQUE INDEX roles_name ON roles (community_id, lower(name));
CREATE TRIGGER roles_set_updated_at BEFORE UPDATE ON roles
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE role_grants (
    id           uuid PRIMARY KEY,
    community_id uuid NOT NULL REFERENCES communities(id) ON DELETE CASCADE,
    scope_kind   text NOT NULL CHECK (scope_kind IN ('community', 'group', 'room')),
    scope_id     uuid NOT NULL,
    user_id      uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role_id      uuid NOT NULL REFERENCES roles(id) ON DELETE CASCADE,
    granted_by   uuid REFERENCES users(id) ON DELETE SET NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (scope_id, user_id, role_id)
);
CREATE INDEX role_grants_community ON role_grants (community_id);
CREATE INDEX role_grants_user ON role_grants (user_id);

CREATE TABLE overrides (
    id           uuid PRIMARY KEY,
    community_id uuid NOT NULL REFERENCES communities(id) ON DELETE CASCADE,
    scope_kind   text NOT NULL CHECK (scope_kind IN ('community', 'group', 'room')),
    scope_id     uuid NOT NULL,
    subject_kind text NOT NULL CHECK (subject_kind IN ('role', 'user')),
    subject_id   uuid NOT NULL,
    allow        text[] NOT NULL DEFAULT '{}',
    deny         text[] NOT NULL DEFAULT '{}',
    updated_by   uuid REFERENCES users(id) ON DELETE SET NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (scope_id, subject_kind, subject_id)
);
CREATE INDEX overrides_community ON overrides (community_id);
CREATE TRIGGER overrides_set_updated_at BEFORE UPDATE ON overrides
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- Casbin policy lines of every community (model: src/permissions/model.conf). `position` is the
-- evaluation order the model's priority effect relies on; `origin` tells compiled policy lines
-- from membership lines kept by trigger.
-- Every scope a permission can be checked at, with its path (community first, itself last) and
-- depth: the permissions module reads the tree through this view only.
CREATE VIEW scopes AS
    SELECT c.id, 'community'::text AS kind, c.id AS community_id, ARRAY[c.id] AS path, 0 AS depth,
           false AS private, c.visibility = 'public' AS public
      FROM communities c
    UNION ALL
    SELECT g.id, 'group', g.community_id, g.community_id || g.path, g.depth, false, c.visibility = 'public'
      FROM groups g JOIN communities c ON c.id = g.community_id
    UNION ALL
    SELECT r.id, CASE WHEN r.kind = 'dm' THEN 'dm' ELSE 'room' END, r.community_id,
           CASE WHEN r.community_id IS NULL THEN ARRAY[r.id] ELSE (r.community_id || r.path) || r.id END,
           cardinality(r.path) + 1, r.private OR r.kind = 'dm', COALESCE(c.visibility = 'public', false)
      FROM rooms r LEFT JOIN communities c ON c.id = r.community_id;

CREATE TABLE casbin_rule (
    id           bigserial PRIMARY KEY,
    community_id uuid NOT NULL REFERENCES communities(id) ON DELETE CASCADE,
    origin       text NOT NULL DEFAULT 'policy' CHECK (origin IN ('policy', 'member')),
    position     integer NOT NULL DEFAULT 0,
    ptype        text NOT NULL,
    v0 text NOT NULL DEFAULT '', v1 text NOT NULL DEFAULT '', v2 text NOT NULL DEFAULT '',
    v3 text NOT NULL DEFAULT '', v4 text NOT NULL DEFAULT '', v5 text NOT NULL DEFAULT ''
);
CREATE INDEX casbin_rule_community ON casbin_rule (community_id, ptype, position);
CREATE UNIQUE INDEX casbin_rule_member ON casbin_rule (community_id, v0) WHERE origin = 'member';

CREATE TABLE audit_log (
    id           bigserial PRIMARY KEY,
    community_id uuid NOT NULL REFERENCES communities(id) ON DELETE CASCADE,
    actor_id     uuid,
    action       text NOT NULL,
    target       text NOT NULL,
    before       jsonb,
    after        jsonb,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_log_community ON audit_log (community_id, id DESC);

CREATE FUNCTION current_actor() RETURNS uuid LANGUAGE sql STABLE AS $$
    SELECT NULLIF(current_setting('guildhall.actor', true), '')::uuid
$$;

CREATE FUNCTION audit_change() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    row_before jsonb := CASE WHEN TG_OP IN ('UPDATE', 'DELETE') THEN to_jsonb(OLD) END;
    row_after jsonb := CASE WHEN TG_OP IN ('INSERT', 'UPDATE') THEN to_jsonb(NEW) END;
    community uuid := COALESCE(row_after, row_before) ->> 'community_id';
BEGIN
    IF TG_OP = 'UPDATE' AND row_before - 'updated_at' = row_after - 'updated_at' THEN
        RETURN NULL;
    END IF;
    -- Rows removed because their community is being deleted leave no audit trail behind.
    IF NOT EXISTS (SELECT 1 FROM communities WHERE id = community) THEN
        RETURN NULL;
    END IF;
    INSERT INTO audit_log (community_id, actor_id, action, target, before, after)
    VALUES (community, current_actor(), TG_TABLE_NAME || '.' || lower(TG_OP),
            COALESCE(row_after, row_before) ->> COALESCE(TG_ARGV[0], 'id'), row_before, row_after);
    RETURN NULL;
END;
$$;
CREATE TRIGGER roles_audit AFTER INSERT OR UPDATE OR DELETE ON roles
    FOR EACH ROW EXECUTE FUNCTION audit_change();
CREATE TRIGGER role_grants_audit AFTER INSERT OR DELETE ON role_grants
    FOR EACH ROW EXECUTE FUNCTION audit_change();
CREATE TRIGGER overrides_audit AFTER INSERT OR UPDATE OR DELETE ON overrides
    FOR EACH ROW EXECUTE FUNCTION audit_change();
CREATE TRIGGER bans_audit AFTER INSERT OR DELETE ON bans
    FOR EACH ROW EXECUTE FUNCTION audit_change('user_id');

-- Invariant 6: a community always keeps at least one owner.
CREATE FUNCTION keep_last_owner() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM roles WHERE id = OLD.role_id AND builtin = 'owner')
       AND EXISTS (SELECT 1 FROM communities WHERE id = OLD.community_id)
       AND NOT EXISTS (
           SELECT 1 FROM role_grants
            WHERE role_id = OLD.role_id AND id <> OLD.id AND user_id <> OLD.user_id) THEN
        RAISE EXCEPTION 'the last owner cannot be removed or demoted' USING ERRCODE = 'check_violation',
            CONSTRAINT = 'last_owner';
    END IF;
    RETURN OLD;
END;
$$;
CREATE TRIGGER role_grants_keep_last_owner BEFORE DELETE ON role_grants
    FOR EACH ROW EXECUTE FUNCTION keep_last_owner();

-- Membership: the member role's Casbin line, and leaving removes the user's grants, overrides
-- and private-room memberships in that community.
CREATE FUNCTION community_members_policy() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    member_role uuid;
BEGIN
    IF TG_OP = 'INSERT' THEN
        SELECT id INTO member_role FROM roles WHERE community_id = NEW.community_id AND builtin = 'member';
        INSERT INTO casbin_rule (community_id, origin, ptype, v0, v1, v2)
        VALUES (NEW.community_id, 'member', 'g', 'u:' || NEW.user_id, 'r:' || member_role, 's:' || NEW.community_id)
        ON CONFLICT DO NOTHING;
        UPDATE communities SET policy_version = policy_version + 1 WHERE id = NEW.community_id;
        RETURN NULL;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM communities WHERE id = OLD.community_id) THEN
        RETURN NULL;
    END IF;
    DELETE FROM role_grants WHERE community_id = OLD.community_id AND user_id = OLD.user_id;
    DELETE FROM overrides WHERE community_id = OLD.community_id AND subject_kind = 'user'
        AND subject_id = OLD.user_id;
    DELETE FROM room_members rm USING rooms r
        WHERE rm.room_id = r.id AND r.community_id = OLD.community_id AND rm.user_id = OLD.user_id;
    DELETE FROM casbin_rule WHERE community_id = OLD.community_id AND origin = 'member'
        AND v0 = 'u:' || OLD.user_id;
    UPDATE communities SET policy_version = policy_version + 1 WHERE id = OLD.community_id;
    RETURN NULL;
END;
$$;
CREATE TRIGGER community_members_policy AFTER INSERT OR DELETE ON community_members
    FOR EACH ROW EXECUTE FUNCTION community_members_policy();

-- Grants and overrides die with their scope.
CREATE FUNCTION scope_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM role_grants WHERE scope_id = OLD.id;
    DELETE FROM overrides WHERE scope_id = OLD.id;
    RETURN OLD;
END;
$$;
CREATE TRIGGER groups_scope_deleted BEFORE DELETE ON groups
    FOR EACH ROW EXECUTE FUNCTION scope_deleted();
CREATE TRIGGER rooms_scope_deleted BEFORE DELETE ON rooms
    FOR EACH ROW EXECUTE FUNCTION scope_deleted();

CREATE FUNCTION notify_policy_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('guildhall_policy', NEW.id::text || ':' || NEW.policy_version::text);
    RETURN NULL;
END;
$$;
CREATE TRIGGER communities_notify_policy AFTER UPDATE OF policy_version ON communities
    FOR EACH ROW WHEN (NEW.policy_version IS DISTINCT FROM OLD.policy_version)
    EXECUTE FUNCTION notify_policy_change();
";

const DOWN: &str = r"
DROP VIEW IF EXISTS scopes;
DROP TABLE IF EXISTS audit_log, casbin_rule, overrides, role_grants, roles CASCADE;
DROP TRIGGER IF EXISTS communities_notify_policy ON communities;
DROP TRIGGER IF EXISTS bans_audit ON bans;
DROP TRIGGER IF EXISTS community_members_policy ON community_members;
DROP TRIGGER IF EXISTS groups_scope_deleted ON groups;
DROP TRIGGER IF EXISTS rooms_scope_deleted ON rooms;
DROP FUNCTION IF EXISTS current_actor(), audit_change(), keep_last_owner(), community_members_policy(),
    scope_deleted(), notify_policy_change();
";

crate::sql_migration!(UP, DOWN);
