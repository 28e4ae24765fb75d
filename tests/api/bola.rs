//! Broken object-level authorization (BOLA): every endpoint that takes an id, called with the
//! ids of another community (or, inside a community, of a private room or DM the caller is not
//! in), must refuse exactly as it refuses an id that does not exist: never 2xx, 404 where the
//! object is invisible, and the same bytes as for a random uuid (no existence oracle).
//! Afterwards nothing in either community has changed.
//!
//! The matrix is table-driven: the cases are generated from the endpoint templates of the
//! OpenAPI document (a pure test checks every id-taking endpoint has cases), then one loop sends
//! each case and its random-id controls and collects the failures by case name.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::{self, Display};

use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{Session, TestApp, spawn_app};

// ---------------------------------------------------------------------------------------------
// The objects of one community, as ids.

#[derive(Debug, Clone)]
struct World {
    name: &'static str,
    community: Uuid,
    group: Uuid,
    /// Child of `group`.
    subgroup: Uuid,
    /// In `subgroup`.
    public_room: Uuid,
    /// In `group`; only its creator (the owner) is a room member.
    private_room: Uuid,
    /// A custom role, granted to `member` at `group`, with an override there.
    custom_role: Uuid,
    admin_role: Uuid,
    owner_role: Uuid,
    owner: Uuid,
    /// A plain member (holding `custom_role` at `group`, not in `private_room`).
    member: Uuid,
    /// A second plain member.
    peer: Uuid,
    /// The DM of `member` and `peer`, if the world has one.
    dm: Option<Uuid>,
    invite: String,
}

impl World {
    /// Every id of the world with a readable label (for case names).
    fn labels(&self) -> Vec<(Uuid, String)> {
        let n = self.name;
        let mut labels = vec![
            (self.community, format!("{n}.community")),
            (self.group, format!("{n}.group")),
            (self.subgroup, format!("{n}.subgroup")),
            (self.public_room, format!("{n}.public_room")),
            (self.private_room, format!("{n}.private_room")),
            (self.custom_role, format!("{n}.custom_role")),
            (self.admin_role, format!("{n}.admin_role")),
            (self.owner_role, format!("{n}.owner_role")),
            (self.owner, format!("{n}.owner")),
            (self.member, format!("{n}.member")),
            (self.peer, format!("{n}.peer")),
        ];
        labels.extend(self.dm.map(|dm| (dm, format!("{n}.dm"))));
        labels
    }

    fn ids(&self) -> BTreeSet<Uuid> {
        self.labels().into_iter().map(|(id, _)| id).collect()
    }

    /// Random ids only (for the pure coverage test).
    fn random(name: &'static str) -> Self {
        let id = Uuid::new_v4;
        Self {
            name,
            community: id(),
            group: id(),
            subgroup: id(),
            public_room: id(),
            private_room: id(),
            custom_role: id(),
            admin_role: id(),
            owner_role: id(),
            owner: id(),
            member: id(),
            peer: id(),
            dm: Some(id()),
            invite: "code".into(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Cases.

/// One request: the documented template it instantiates, the concrete path and body.
#[derive(Debug, Clone)]
struct Req {
    method: Method,
    template: &'static str,
    path: String,
    body: Option<Value>,
}

/// Instantiates `template` with `params`; every `{name}` must be given.
fn req(
    method: Method,
    template: &'static str,
    params: &[(&str, &dyn Display)],
    body: Option<Value>,
) -> Req {
    let mut path = template.to_owned();
    for (name, value) in params {
        let placeholder = format!("{{{name}}}");
        assert!(
            path.contains(&placeholder),
            "{template} has no {placeholder}"
        );
        path = path.replace(&placeholder, &value.to_string());
    }
    assert!(
        !path.contains('{'),
        "{template}: unfilled parameter in {path}"
    );
    Req {
        method,
        template,
        path,
        body,
    }
}

impl Req {
    fn query(mut self, query: &str) -> Self {
        self.path = format!("{}?{query}", self.path);
        self
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// The object is invisible to the caller: 404.
    NotFound,
    /// Refused with exactly this status (a foreign id in a body, or a foreign role/user under
    /// the caller's own scope).
    Status(u16),
    /// Any 4xx (a plain member may be refused for lacking a permission before any id is looked at).
    Refused,
    /// Success is legitimate (the foreign id is mere data about the caller's own community, e.g.
    /// a what-if naming a non-member); only the no-oracle rule applies.
    SameAsRandom,
}

#[derive(Debug, Clone)]
struct Case {
    name: String,
    actor: &'static str,
    req: Req,
    /// Ids of objects the actor must not reach: the controls replace them with random uuids.
    foreign: Vec<Uuid>,
    expect: Expect,
}

/// Turns requests into named cases for `actor`; `foreign` are the ids the controls randomise.
fn cases(
    actor: &'static str,
    reqs: Vec<(Req, Expect)>,
    foreign: &BTreeSet<Uuid>,
    labels: &[(Uuid, String)],
) -> Vec<Case> {
    reqs.into_iter()
        .map(|(req, expect)| {
            let text = format!(
                "{} {}",
                req.path,
                req.body.as_ref().map(Value::to_string).unwrap_or_default()
            );
            let foreign: Vec<Uuid> = foreign
                .iter()
                .copied()
                .filter(|id| text.contains(&id.to_string()))
                .collect();
            assert!(
                !foreign.is_empty(),
                "{actor}: {} {} names no foreign id",
                req.method,
                req.path
            );
            let mut shown = text.trim_end().to_owned();
            for (id, label) in labels {
                shown = shown.replace(&id.to_string(), label);
            }
            Case {
                name: format!("{actor}: {} {shown}", req.method),
                actor,
                req,
                foreign,
                expect,
            }
        })
        .collect()
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Community,
    Group,
    Room,
}

/// The five scoped permission endpoints of one scope kind, as documented.
struct Scoped {
    id: &'static str,
    grant: &'static str,
    overrides: &'static str,
    me: &'static str,
    explain: &'static str,
    simulate: &'static str,
}

fn scoped(kind: Kind) -> Scoped {
    match kind {
        Kind::Community => Scoped {
            id: "community_id",
            grant: "/v1/communities/{community_id}/members/{user_id}/roles/{role_id}",
            overrides: "/v1/communities/{community_id}/overrides/{subject}",
            me: "/v1/communities/{community_id}/permissions/me",
            explain: "/v1/communities/{community_id}/permissions/explain",
            simulate: "/v1/communities/{community_id}/permissions/simulate",
        },
        Kind::Group => Scoped {
            id: "group_id",
            grant: "/v1/groups/{group_id}/members/{user_id}/roles/{role_id}",
            overrides: "/v1/groups/{group_id}/overrides/{subject}",
            me: "/v1/groups/{group_id}/permissions/me",
            explain: "/v1/groups/{group_id}/permissions/explain",
            simulate: "/v1/groups/{group_id}/permissions/simulate",
        },
        Kind::Room => Scoped {
            id: "room_id",
            grant: "/v1/rooms/{room_id}/members/{user_id}/roles/{role_id}",
            overrides: "/v1/rooms/{room_id}/overrides/{subject}",
            me: "/v1/rooms/{room_id}/permissions/me",
            explain: "/v1/rooms/{room_id}/permissions/explain",
            simulate: "/v1/rooms/{room_id}/permissions/simulate",
        },
    }
}

fn grant_req(method: Method, kind: Kind, scope: Uuid, user: Uuid, role: Uuid) -> Req {
    let s = scoped(kind);
    req(
        method,
        s.grant,
        &[(s.id, &scope), ("user_id", &user), ("role_id", &role)],
        None,
    )
}

fn override_req(
    method: Method,
    kind: Kind,
    scope: Uuid,
    subject: &str,
    body: Option<Value>,
) -> Req {
    let s = scoped(kind);
    req(
        method,
        s.overrides,
        &[(s.id, &scope), ("subject", &subject)],
        body,
    )
}

fn simulate_req(kind: Kind, scope: Uuid, change: Value) -> Req {
    let s = scoped(kind);
    req(
        Method::POST,
        s.simulate,
        &[(s.id, &scope)],
        Some(json!({"changes": [change]})),
    )
}

/// Every scoped permission endpoint at one scope of `w`, called by `me`.
fn scoped_reqs(kind: Kind, scope: Uuid, w: &World, me: Uuid) -> Vec<Req> {
    let s = scoped(kind);
    let id: &[(&str, &dyn Display)] = &[(s.id, &scope)];
    let allow = || Some(json!({"allow": ["view", "send_messages"], "deny": []}));
    vec![
        grant_req(Method::PUT, kind, scope, w.member, w.custom_role),
        grant_req(Method::PUT, kind, scope, me, w.admin_role),
        grant_req(Method::DELETE, kind, scope, w.member, w.custom_role),
        grant_req(Method::DELETE, kind, scope, w.owner, w.owner_role),
        override_req(
            Method::PUT,
            kind,
            scope,
            &format!("role:{}", w.custom_role),
            allow(),
        ),
        override_req(
            Method::PUT,
            kind,
            scope,
            &format!("user:{}", w.member),
            allow(),
        ),
        override_req(Method::PUT, kind, scope, &format!("user:{me}"), allow()),
        override_req(
            Method::DELETE,
            kind,
            scope,
            &format!("role:{}", w.custom_role),
            None,
        ),
        override_req(
            Method::DELETE,
            kind,
            scope,
            &format!("user:{}", w.member),
            None,
        ),
        req(Method::GET, s.me, id, None),
        req(Method::GET, s.explain, id, None).query("permission=view"),
        req(Method::GET, s.explain, id, None)
            .query(&format!("permission=send_messages&user_id={}", w.member)),
        simulate_req(
            kind,
            scope,
            json!({"op": "grant", "user_id": w.member, "role_id": w.custom_role}),
        ),
        simulate_req(
            kind,
            scope,
            json!({"op": "set_override", "subject": format!("user:{me}"), "allow": ["view"], "deny": []}),
        ),
    ]
}

fn group_reqs(group: Uuid, other_group: Uuid) -> Vec<Req> {
    let id: &[(&str, &dyn Display)] = &[("group_id", &group)];
    vec![
        req(Method::GET, "/v1/groups/{group_id}", id, None),
        req(
            Method::PATCH,
            "/v1/groups/{group_id}",
            id,
            Some(json!({"name": "taken over"})),
        ),
        req(
            Method::PATCH,
            "/v1/groups/{group_id}",
            id,
            Some(json!({"parent_id": null})),
        ),
        req(
            Method::PATCH,
            "/v1/groups/{group_id}",
            id,
            Some(json!({"parent_id": other_group})),
        ),
        req(Method::DELETE, "/v1/groups/{group_id}", id, None),
    ]
}

fn room_reqs(room: Uuid, users: &[Uuid]) -> Vec<Req> {
    let id: &[(&str, &dyn Display)] = &[("room_id", &room)];
    let mut reqs = vec![
        req(Method::GET, "/v1/rooms/{room_id}", id, None),
        req(
            Method::PATCH,
            "/v1/rooms/{room_id}",
            id,
            Some(json!({"name": "taken over"})),
        ),
        req(
            Method::PATCH,
            "/v1/rooms/{room_id}",
            id,
            Some(json!({"private": false})),
        ),
        req(
            Method::PATCH,
            "/v1/rooms/{room_id}",
            id,
            Some(json!({"group_id": null})),
        ),
        req(Method::DELETE, "/v1/rooms/{room_id}", id, None),
    ];
    for user in users {
        let params: &[(&str, &dyn Display)] = &[("room_id", &room), ("user_id", user)];
        reqs.push(req(
            Method::PUT,
            "/v1/rooms/{room_id}/members/{user_id}",
            params,
            None,
        ));
        reqs.push(req(
            Method::DELETE,
            "/v1/rooms/{room_id}/members/{user_id}",
            params,
            None,
        ));
    }
    reqs
}

fn community_reqs(w: &World, me: Uuid) -> Vec<Req> {
    let c = w.community;
    let id: &[(&str, &dyn Display)] = &[("community_id", &c)];
    let mut reqs = vec![
        req(Method::GET, "/v1/communities/{community_id}", id, None),
        req(
            Method::PATCH,
            "/v1/communities/{community_id}",
            id,
            Some(json!({"name": "taken over"})),
        ),
        req(
            Method::PATCH,
            "/v1/communities/{community_id}",
            id,
            Some(json!({"visibility": "public"})),
        ),
        req(Method::DELETE, "/v1/communities/{community_id}", id, None),
        req(Method::GET, "/v1/communities/{community_id}/tree", id, None),
        req(
            Method::POST,
            "/v1/communities/{community_id}/join",
            id,
            None,
        ),
        req(
            Method::POST,
            "/v1/communities/{community_id}/invites",
            id,
            Some(json!({})),
        ),
        req(
            Method::POST,
            "/v1/communities/{community_id}/invites",
            id,
            Some(json!({"max_uses": 5, "expires_in_s": 3600})),
        ),
        req(
            Method::GET,
            "/v1/communities/{community_id}/members",
            id,
            None,
        ),
        req(
            Method::POST,
            "/v1/communities/{community_id}/groups",
            id,
            Some(json!({"name": "intruders"})),
        ),
        req(
            Method::POST,
            "/v1/communities/{community_id}/groups",
            id,
            Some(json!({"name": "intruders", "parent_id": w.group})),
        ),
        req(
            Method::POST,
            "/v1/communities/{community_id}/rooms",
            id,
            Some(json!({"name": "intruders", "private": false})),
        ),
        req(
            Method::POST,
            "/v1/communities/{community_id}/rooms",
            id,
            Some(json!({"name": "intruders", "group_id": w.subgroup, "private": true})),
        ),
        req(
            Method::GET,
            "/v1/communities/{community_id}/roles",
            id,
            None,
        ),
        req(
            Method::POST,
            "/v1/communities/{community_id}/roles",
            id,
            Some(json!({"name": "intruder", "permissions": ["view"]})),
        ),
        req(
            Method::GET,
            "/v1/communities/{community_id}/audit-log",
            id,
            None,
        ),
    ];
    for user in [w.member, w.owner, me] {
        let params: &[(&str, &dyn Display)] = &[("community_id", &c), ("user_id", &user)];
        reqs.push(req(
            Method::DELETE,
            "/v1/communities/{community_id}/members/{user_id}",
            params,
            None,
        ));
    }
    for user in [w.member, w.owner] {
        let params: &[(&str, &dyn Display)] = &[("community_id", &c), ("user_id", &user)];
        reqs.push(req(
            Method::PUT,
            "/v1/communities/{community_id}/bans/{user_id}",
            params,
            Some(json!({"reason": "x"})),
        ));
        reqs.push(req(
            Method::DELETE,
            "/v1/communities/{community_id}/bans/{user_id}",
            params,
            None,
        ));
    }
    for role in [w.custom_role, w.admin_role, w.owner_role] {
        let params: &[(&str, &dyn Display)] = &[("community_id", &c), ("role_id", &role)];
        let template = "/v1/communities/{community_id}/roles/{role_id}";
        reqs.push(req(
            Method::PATCH,
            template,
            params,
            Some(json!({"name": "renamed"})),
        ));
        reqs.push(req(
            Method::PATCH,
            template,
            params,
            Some(json!({"permissions": ["view"]})),
        ));
        reqs.push(req(Method::DELETE, template, params, None));
    }
    reqs
}

/// Every id-taking endpoint aimed at the objects of `w`, by a caller `me` outside it.
fn aimed_at(w: &World, me: Uuid) -> Vec<Req> {
    let mut reqs = community_reqs(w, me);
    reqs.extend(group_reqs(w.group, w.subgroup));
    reqs.extend(group_reqs(w.subgroup, w.group));
    let mut scopes = vec![
        (Kind::Community, w.community),
        (Kind::Group, w.group),
        (Kind::Group, w.subgroup),
        (Kind::Room, w.public_room),
        (Kind::Room, w.private_room),
    ];
    let mut rooms = vec![w.public_room, w.private_room];
    if let Some(dm) = w.dm {
        rooms.push(dm);
        scopes.push((Kind::Room, dm));
    }
    for room in rooms {
        reqs.extend(room_reqs(room, &[me, w.member]));
    }
    for (kind, scope) in scopes {
        reqs.extend(scoped_reqs(kind, scope, w, me));
    }
    reqs
}

/// `req` with uuid parameters.
fn with(
    template: &'static str,
    method: Method,
    params: &[(&str, Uuid)],
    body: Option<Value>,
) -> Req {
    let params: Vec<(&str, &dyn Display)> = params
        .iter()
        .map(|(k, v)| (*k, v as &dyn Display))
        .collect();
    req(method, template, &params, body)
}

/// Requests mixing the caller's own community `own` (where `me` is `own.owner`) with ids of
/// `foreign`, with the status the owner of `own` must get.
fn mixed(own: &World, foreign: &World) -> Vec<(Req, Expect)> {
    use Expect::{SameAsRandom, Status};
    let (b, a) = (own, foreign);
    let allow = || Some(json!({"allow": ["view"], "deny": []}));
    let b_roles =
        |role: Uuid| -> [(&str, Uuid); 2] { [("community_id", b.community), ("role_id", role)] };
    let role_path = "/v1/communities/{community_id}/roles/{role_id}";
    let mut reqs = Vec::new();
    // A's roles under B's community.
    for role in [a.custom_role, a.admin_role, a.owner_role] {
        reqs.push((
            with(
                role_path,
                Method::PATCH,
                &b_roles(role),
                Some(json!({"name": "renamed"})),
            ),
            Status(404),
        ));
        reqs.push((
            with(
                role_path,
                Method::PATCH,
                &b_roles(role),
                Some(json!({"permissions": ["view"]})),
            ),
            Status(404),
        ));
        reqs.push((
            with(role_path, Method::DELETE, &b_roles(role), None),
            Status(404),
        ));
        for (kind, scope) in [
            (Kind::Community, b.community),
            (Kind::Group, b.group),
            (Kind::Room, b.public_room),
        ] {
            reqs.push((
                grant_req(Method::PUT, kind, scope, b.member, role),
                Status(404),
            ));
            reqs.push((
                grant_req(Method::DELETE, kind, scope, b.member, role),
                Status(404),
            ));
            reqs.push((
                override_req(Method::PUT, kind, scope, &format!("role:{role}"), allow()),
                Status(404),
            ));
            reqs.push((
                override_req(Method::DELETE, kind, scope, &format!("role:{role}"), None),
                Status(404),
            ));
        }
        let change = json!({"op": "grant", "user_id": b.member, "role_id": role});
        reqs.push((
            simulate_req(Kind::Community, b.community, change.clone()),
            Status(422),
        ));
        reqs.push((simulate_req(Kind::Group, b.subgroup, change), Status(422)));
    }
    // A's users under B's scopes.
    for user in [a.member, a.owner] {
        for (kind, scope) in [
            (Kind::Community, b.community),
            (Kind::Group, b.group),
            (Kind::Room, b.private_room),
        ] {
            reqs.push((
                grant_req(Method::PUT, kind, scope, user, b.custom_role),
                Status(422),
            ));
            reqs.push((
                grant_req(Method::DELETE, kind, scope, user, b.custom_role),
                Status(422),
            ));
            reqs.push((
                override_req(Method::PUT, kind, scope, &format!("user:{user}"), allow()),
                Status(404),
            ));
            reqs.push((
                override_req(Method::DELETE, kind, scope, &format!("user:{user}"), None),
                Status(404),
            ));
        }
        let member = [("community_id", b.community), ("user_id", user)];
        reqs.push((
            with(
                "/v1/communities/{community_id}/members/{user_id}",
                Method::DELETE,
                &member,
                None,
            ),
            Status(404),
        ));
        // (Banning any existing user, member or not, is legitimate, so PUT bans is not here.)
        reqs.push((
            with(
                "/v1/communities/{community_id}/bans/{user_id}",
                Method::DELETE,
                &member,
                None,
            ),
            Status(404),
        ));
        let room_member = [("room_id", b.private_room), ("user_id", user)];
        reqs.push((
            with(
                "/v1/rooms/{room_id}/members/{user_id}",
                Method::PUT,
                &room_member,
                None,
            ),
            Status(422),
        ));
        reqs.push((
            with(
                "/v1/rooms/{room_id}/members/{user_id}",
                Method::DELETE,
                &room_member,
                None,
            ),
            Status(404),
        ));
        let change = json!({"op": "grant", "user_id": user, "role_id": b.custom_role});
        reqs.push((
            simulate_req(Kind::Community, b.community, change),
            SameAsRandom,
        ));
        reqs.push((
            with(
                "/v1/dms",
                Method::POST,
                &[],
                Some(json!({"user_ids": [user]})),
            ),
            Status(422),
        ));
        reqs.push((
            with(
                "/v1/dms",
                Method::POST,
                &[],
                Some(json!({"user_ids": [b.member, user]})),
            ),
            Status(422),
        ));
    }
    // A's groups (and a room) as parents in B's bodies.
    for parent in [a.group, a.subgroup, a.public_room] {
        let community = [("community_id", b.community)];
        let groups = "/v1/communities/{community_id}/groups";
        let rooms = "/v1/communities/{community_id}/rooms";
        reqs.push((
            with(
                groups,
                Method::POST,
                &community,
                Some(json!({"name": "x", "parent_id": parent})),
            ),
            Status(422),
        ));
        reqs.push((
            with(
                rooms,
                Method::POST,
                &community,
                Some(json!({"name": "x", "group_id": parent, "private": false})),
            ),
            Status(422),
        ));
        for group in [b.group, b.subgroup] {
            let body = Some(json!({"parent_id": parent}));
            reqs.push((
                with(
                    "/v1/groups/{group_id}",
                    Method::PATCH,
                    &[("group_id", group)],
                    body,
                ),
                Status(422),
            ));
        }
        for room in [b.public_room, b.private_room] {
            let body = Some(json!({"group_id": parent}));
            reqs.push((
                with(
                    "/v1/rooms/{room_id}",
                    Method::PATCH,
                    &[("room_id", room)],
                    body,
                ),
                Status(422),
            ));
        }
    }
    // A's scopes in paths, with B's ids elsewhere.
    for (kind, scope) in [
        (Kind::Community, a.community),
        (Kind::Group, a.group),
        (Kind::Room, a.public_room),
        (Kind::Room, a.private_room),
    ] {
        reqs.push((
            grant_req(Method::PUT, kind, scope, b.member, b.custom_role),
            Status(404),
        ));
        reqs.push((
            grant_req(Method::DELETE, kind, scope, b.member, b.custom_role),
            Status(404),
        ));
        reqs.push((
            override_req(
                Method::PUT,
                kind,
                scope,
                &format!("role:{}", b.custom_role),
                allow(),
            ),
            Status(404),
        ));
        let change = json!({"op": "grant", "user_id": b.member, "role_id": b.custom_role});
        reqs.push((simulate_req(kind, scope, change), Status(404)));
    }
    reqs.push((
        with(
            "/v1/groups/{group_id}",
            Method::PATCH,
            &[("group_id", a.group)],
            Some(json!({"parent_id": b.group})),
        ),
        Status(404),
    ));
    reqs.push((
        with(
            "/v1/rooms/{room_id}",
            Method::PATCH,
            &[("room_id", a.public_room)],
            Some(json!({"group_id": b.group})),
        ),
        Status(404),
    ));
    let room_member = [("room_id", a.private_room), ("user_id", b.member)];
    reqs.push((
        with(
            "/v1/rooms/{room_id}/members/{user_id}",
            Method::PUT,
            &room_member,
            None,
        ),
        Status(404),
    ));
    reqs
}

/// Ids of one kind where another kind is expected (a group as a community, a community as a
/// room, ...), by `me` who may do everything in `w`: each must be as unknown as a random id.
fn confused(w: &World, me: Uuid) -> Vec<Req> {
    let mut reqs = Vec::new();
    for not_a_community in [w.group, w.public_room] {
        let confused = World {
            community: not_a_community,
            ..w.clone()
        };
        reqs.extend(community_reqs(&confused, me));
    }
    for not_a_group in [w.community, w.public_room] {
        reqs.extend(group_reqs(not_a_group, w.subgroup));
    }
    for not_a_room in [w.community, w.group] {
        reqs.extend(room_reqs(not_a_room, &[me, w.member]));
    }
    for (kind, scope) in [
        (Kind::Community, w.group),
        (Kind::Community, w.public_room),
        (Kind::Group, w.community),
        (Kind::Group, w.public_room),
        (Kind::Room, w.community),
        (Kind::Room, w.group),
    ] {
        reqs.extend(scoped_reqs(kind, scope, w, me));
    }
    reqs
}

/// The requests of a community member `me` of `w` aimed at a private room (or DM) they are not in.
fn outside_room(w: &World, room: Uuid, me: Uuid) -> Vec<(Req, Expect)> {
    let mut reqs: Vec<(Req, Expect)> = room_reqs(room, &[me, w.owner])
        .into_iter()
        .map(|r| (r, Expect::NotFound))
        .collect();
    reqs.extend(
        scoped_reqs(Kind::Room, room, w, me)
            .into_iter()
            .map(|r| (r, Expect::NotFound)),
    );
    // The room named as a parent inside the member's own community: not a group, as for a random id.
    let community: &[(&str, &dyn Display)] = &[("community_id", &w.community)];
    for template in [
        "/v1/communities/{community_id}/groups",
        "/v1/communities/{community_id}/rooms",
    ] {
        let body = json!({"name": "x", "parent_id": room, "group_id": room, "private": false});
        reqs.push((
            req(Method::POST, template, community, Some(body)),
            Expect::Status(422),
        ));
    }
    reqs
}

struct Actors {
    b_owner: Uuid,
    b_member: Uuid,
    a_member: Uuid,
    a_owner: Uuid,
}

/// The whole matrix.
fn matrix(a: &World, b: &World, actors: &Actors) -> Vec<Case> {
    let labels: Vec<(Uuid, String)> = a.labels().into_iter().chain(b.labels()).collect();
    let a_ids = a.ids();
    let dm = a.dm.expect("A has a DM");
    let not_found = |reqs: Vec<Req>| {
        reqs.into_iter()
            .map(|r| (r, Expect::NotFound))
            .collect::<Vec<_>>()
    };
    let mut all = cases(
        "b_owner",
        not_found(aimed_at(a, actors.b_owner)),
        &a_ids,
        &labels,
    );
    all.extend(cases(
        "b_member",
        not_found(aimed_at(a, actors.b_member)),
        &a_ids,
        &labels,
    ));
    all.extend(cases("b_owner", mixed(b, a), &a_ids, &labels));
    let as_member = mixed(b, a)
        .into_iter()
        .map(|(r, e)| {
            (
                r,
                if e == Expect::SameAsRandom {
                    e
                } else {
                    Expect::Refused
                },
            )
        })
        .collect();
    all.extend(cases("b_member", as_member, &a_ids, &labels));
    let private_room = BTreeSet::from([a.private_room]);
    all.extend(cases(
        "a_member",
        outside_room(a, a.private_room, actors.a_member),
        &private_room,
        &labels,
    ));
    let dm_only = BTreeSet::from([dm]);
    all.extend(cases(
        "a_owner",
        outside_room(a, dm, actors.a_owner),
        &dm_only,
        &labels,
    ));
    let scopes = BTreeSet::from([a.community, a.group, a.public_room]);
    all.extend(cases(
        "a_owner",
        not_found(confused(a, actors.a_owner)),
        &scopes,
        &labels,
    ));
    all
}

// ---------------------------------------------------------------------------------------------
// Coverage: the matrix has cases for every documented endpoint that takes an id.

/// `(METHOD, template)` of every documented communities/permissions endpoint with an id in its
/// path, plus `POST /v1/dms` (ids in the body). Invite codes are bearer capabilities, not ids.
fn id_taking_endpoints() -> BTreeSet<(String, String)> {
    let spec: Value = serde_json::from_str(&guildhall::openapi::spec_json()).unwrap();
    let mut endpoints = BTreeSet::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let tags: Vec<&str> = operation["tags"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            let ours = tags.contains(&"communities") || tags.contains(&"permissions");
            let takes_id = path.contains('{') || path == "/v1/dms";
            if ours && takes_id && path != "/v1/invites/{code}/accept" {
                endpoints.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    endpoints
}

#[test]
fn matrix_covers_every_id_taking_endpoint() {
    let (a, b) = (World::random("A"), World::random("B"));
    let actors = Actors {
        b_owner: b.owner,
        b_member: b.member,
        a_member: a.member,
        a_owner: a.owner,
    };
    let covered: BTreeSet<(String, String)> = matrix(&a, &b, &actors)
        .iter()
        .map(|c| (c.req.method.to_string(), c.req.template.to_owned()))
        .collect();
    let documented = id_taking_endpoints();
    assert!(
        documented.len() > 40,
        "the spec lists the endpoints: {documented:?}"
    );
    let missing: Vec<_> = documented.difference(&covered).collect();
    assert!(
        missing.is_empty(),
        "endpoints without BOLA cases: {missing:?}"
    );
    let undocumented: Vec<_> = covered.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "cases for undocumented endpoints: {undocumented:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Sending and comparing.

/// Everything a client can observe of an answer, minus what differs per request anyway.
#[derive(PartialEq, Eq)]
struct Answer {
    status: u16,
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
}

impl fmt::Debug for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {:?} {}",
            self.status,
            self.headers,
            String::from_utf8_lossy(&self.body)
        )
    }
}

const PER_REQUEST_HEADERS: [&str; 2] = ["date", "x-request-id"];

async fn send(
    app: &TestApp,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Answer {
    let response = app.request(method, path, Some(token), body).await;
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .filter(|(name, _)| !PER_REQUEST_HEADERS.contains(&name.as_str()))
        .map(|(name, value)| {
            (
                name.to_string(),
                value.to_str().unwrap_or("<binary>").to_owned(),
            )
        })
        .collect();
    let body = response.bytes().await.unwrap().to_vec();
    Answer {
        status,
        headers,
        body,
    }
}

/// The case with `ids` replaced by fresh random uuids (ids that exist nowhere).
fn control(case: &Case, ids: &[Uuid]) -> (String, Option<Value>) {
    let mut path = case.req.path.clone();
    let mut body = case.req.body.as_ref().map(Value::to_string);
    for id in ids {
        let random = Uuid::new_v4().to_string();
        path = path.replace(&id.to_string(), &random);
        body = body.map(|b| b.replace(&id.to_string(), &random));
    }
    (path, body.map(|b| serde_json::from_str(&b).unwrap()))
}

/// Runs one case and its controls; the failures, if any.
async fn check(app: &TestApp, token: &str, case: &Case) -> Vec<String> {
    let mut failures = Vec::new();
    let answer = send(
        app,
        token,
        case.req.method.clone(),
        &case.req.path,
        case.req.body.clone(),
    )
    .await;
    let success = (200..300).contains(&answer.status);
    let expected = match case.expect {
        Expect::NotFound => answer.status == 404,
        Expect::Status(status) => answer.status == status,
        Expect::Refused => (400..500).contains(&answer.status),
        Expect::SameAsRandom => true,
    };
    if (success && case.expect != Expect::SameAsRandom) || !expected {
        failures.push(format!(
            "{}\n    expected {:?}, got {answer:?}",
            case.name, case.expect
        ));
    }
    // Against all foreign ids at once, and (when there are several) each one alone.
    let mut variants = vec![case.foreign.clone()];
    if case.foreign.len() > 1 {
        variants.extend(case.foreign.iter().map(|id| vec![*id]));
    }
    for ids in variants {
        let (path, body) = control(case, &ids);
        let random = send(app, token, case.req.method.clone(), &path, body).await;
        if random != answer {
            failures.push(format!(
                "{}\n    differs from the same request with random ids ({} replaced): an existence oracle\n    real:   {answer:?}\n    random: {random:?}",
                case.name,
                ids.len()
            ));
        }
    }
    failures
}

// ---------------------------------------------------------------------------------------------
// Arranging the two communities.

async fn expect_json(response: reqwest::Response, status: u16, what: &str) -> Value {
    let actual = response.status().as_u16();
    let text = response.text().await.unwrap();
    assert_eq!(actual, status, "{what}: {text}");
    if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap()
    }
}

fn id_of(body: &Value) -> Uuid {
    body["id"].as_str().unwrap().parse().unwrap()
}

/// A community owned by `owner` with a group, a subgroup, a public and a private room, a custom
/// role granted at the group with an override there, an invite (through which `members` join),
/// and, with two members, their DM.
async fn build_world(
    app: &TestApp,
    name: &'static str,
    visibility: &str,
    owner: &Session,
    members: [&Session; 2],
) -> World {
    let token = Some(owner.access_token.as_str());
    let community = id_of(
        &expect_json(
            app.post(
                "/v1/communities",
                token,
                json!({"name": format!("{name} community"), "visibility": visibility}),
            )
            .await,
            201,
            "create community",
        )
        .await,
    );
    let invite = expect_json(
        app.post(
            &format!("/v1/communities/{community}/invites"),
            token,
            json!({}),
        )
        .await,
        201,
        "invite",
    )
    .await;
    let code = invite["code"].as_str().unwrap().to_owned();
    for member in members {
        expect_json(
            app.post(
                &format!("/v1/invites/{code}/accept"),
                Some(&member.access_token),
                json!({}),
            )
            .await,
            200,
            "accept",
        )
        .await;
    }
    let groups = format!("/v1/communities/{community}/groups");
    let group = id_of(
        &expect_json(
            app.post(&groups, token, json!({"name": "lobby"})).await,
            201,
            "group",
        )
        .await,
    );
    let subgroup = id_of(
        &expect_json(
            app.post(&groups, token, json!({"name": "inner", "parent_id": group}))
                .await,
            201,
            "subgroup",
        )
        .await,
    );
    let rooms = format!("/v1/communities/{community}/rooms");
    let public_room = id_of(
        &expect_json(
            app.post(
                &rooms,
                token,
                json!({"name": "general", "group_id": subgroup, "private": false}),
            )
            .await,
            201,
            "room",
        )
        .await,
    );
    let private_room = id_of(
        &expect_json(
            app.post(
                &rooms,
                token,
                json!({"name": "staff", "group_id": group, "private": true}),
            )
            .await,
            201,
            "private room",
        )
        .await,
    );
    let roles = format!("/v1/communities/{community}/roles");
    let custom = json!({"name": "helper", "permissions": ["view", "read_history", "send_messages", "create_polls"]});
    let custom_role = id_of(&expect_json(app.post(&roles, token, custom).await, 201, "role").await);
    let listed = expect_json(app.get(&roles, token).await, 200, "roles").await;
    let builtin = |name: &str| {
        listed
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name && r["builtin"] == true)
            .map(id_of)
            .unwrap()
    };
    let member = members[0].user_id;
    let grant = format!("/v1/groups/{group}/members/{member}/roles/{custom_role}");
    expect_json(
        app.request(Method::PUT, &grant, token, None).await,
        204,
        "grant",
    )
    .await;
    let subject = format!("/v1/groups/{group}/overrides/role:{custom_role}");
    let body = json!({"allow": ["upload_media"], "deny": ["create_polls"]});
    expect_json(
        app.request(Method::PUT, &subject, token, Some(body)).await,
        204,
        "override",
    )
    .await;
    let dm = expect_json(
        app.post(
            "/v1/dms",
            Some(&members[0].access_token),
            json!({"user_ids": [members[1].user_id]}),
        )
        .await,
        201,
        "dm",
    )
    .await;
    World {
        name,
        community,
        group,
        subgroup,
        public_room,
        private_room,
        custom_role,
        admin_role: builtin("admin"),
        owner_role: builtin("owner"),
        owner: owner.user_id,
        member,
        peer: members[1].user_id,
        dm: Some(id_of(&dm)),
        invite: code,
    }
}

/// What the owner (and the plain member) of `w` read of it: must be identical before and after.
async fn snapshot(
    app: &TestApp,
    w: &World,
    owner: &Session,
    member: &Session,
) -> Vec<(String, Value)> {
    let c = w.community;
    let mut reads: Vec<(&Session, String)> = [
        format!("/v1/communities/{c}"),
        format!("/v1/communities/{c}/tree"),
        format!("/v1/communities/{c}/members"),
        format!("/v1/communities/{c}/roles"),
        format!("/v1/communities/{c}/audit-log?limit=100"),
        format!("/v1/groups/{}", w.group),
        format!("/v1/groups/{}", w.subgroup),
        format!("/v1/rooms/{}", w.public_room),
        format!("/v1/rooms/{}", w.private_room),
        format!(
            "/v1/rooms/{}/permissions/explain?permission=send_messages&user_id={}",
            w.public_room, w.member
        ),
    ]
    .into_iter()
    .map(|path| (owner, path))
    .collect();
    reads.push((member, format!("/v1/communities/{c}/tree")));
    for scope in [
        format!("communities/{c}"),
        format!("groups/{}", w.group),
        format!("rooms/{}", w.public_room),
    ] {
        reads.push((member, format!("/v1/{scope}/permissions/me")));
    }
    reads.extend(w.dm.map(|dm| (member, format!("/v1/rooms/{dm}"))));
    let mut seen = Vec::new();
    for (session, path) in reads {
        let body = expect_json(
            app.get(&path, Some(&session.access_token)).await,
            200,
            &path,
        )
        .await;
        seen.push((format!("{} GET {path}", session.username), body));
    }
    seen
}

// ---------------------------------------------------------------------------------------------
// The matrix.

#[tokio::test]
async fn no_endpoint_reaches_objects_of_another_community_or_an_unjoined_private_room() {
    // Arrange: two private communities with disjoint members.
    let app = spawn_app().await;
    let a_owner = app.register("a_owner").await;
    let a_member = app.register("a_member").await;
    let a_peer = app.register("a_peer").await;
    let b_owner = app.register("b_owner").await;
    let b_member = app.register("b_member").await;
    let b_peer = app.register("b_peer").await;
    let a = build_world(&app, "A", "private", &a_owner, [&a_member, &a_peer]).await;
    let b = build_world(&app, "B", "private", &b_owner, [&b_member, &b_peer]).await;
    let actors = Actors {
        b_owner: b_owner.user_id,
        b_member: b_member.user_id,
        a_member: a_member.user_id,
        a_owner: a_owner.user_id,
    };
    let before = (
        snapshot(&app, &a, &a_owner, &a_member).await,
        snapshot(&app, &b, &b_owner, &b_member).await,
    );
    let tokens = [
        ("b_owner", &b_owner),
        ("b_member", &b_member),
        ("a_member", &a_member),
        ("a_owner", &a_owner),
    ];

    // Act: every case, with its random-id controls.
    let cases = matrix(&a, &b, &actors);
    let mut failures = Vec::new();
    for case in &cases {
        let session = tokens
            .iter()
            .find(|(name, _)| *name == case.actor)
            .unwrap()
            .1;
        failures.extend(check(&app, &session.access_token, case).await);
    }

    // Assert: every case refused like a random id, and nothing changed in A or B.
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    let after = (
        snapshot(&app, &a, &a_owner, &a_member).await,
        snapshot(&app, &b, &b_owner, &b_member).await,
    );
    for ((path, was), (_, is)) in before
        .0
        .iter()
        .zip(&after.0)
        .chain(before.1.iter().zip(&after.1))
    {
        assert_eq!(was, is, "{path} changed");
    }
    // The invites were never consumed or revoked by the attempts.
    let newcomer = app.register("newcomer").await;
    for w in [&a, &b] {
        let accepted = app
            .post(
                &format!("/v1/invites/{}/accept", w.invite),
                Some(&newcomer.access_token),
                json!({}),
            )
            .await;
        assert_eq!(accepted.status(), 200, "invite of {} still works", w.name);
    }
}
