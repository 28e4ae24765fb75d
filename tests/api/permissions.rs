//! Permissions over HTTP: rule precedence, owner protection, escalation prevention, explain and
//! simulate, cross-node propagation, the audit log and custom roles.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{
    Session, TestApp, assert_problem, problem_fields, spawn_app, spawn_app_with_redis, start,
};

const EVERYTHING: &[&str] = &[
    "view",
    "read_history",
    "send_messages",
    "manage_messages",
    "manage_community",
    "create_groups",
    "manage_groups",
    "create_rooms",
    "manage_rooms",
    "invite",
    "kick",
    "ban",
    "manage_roles",
    "manage_permissions",
    "create_polls",
    "vote",
    "create_events",
    "manage_events",
    "upload_media",
    "view_audit_log",
];

/// The built-in member role's permissions.
const MEMBER: &[&str] = &[
    "view",
    "read_history",
    "send_messages",
    "invite",
    "create_polls",
    "vote",
    "upload_media",
];

const VISITOR: &[&str] = &["view", "read_history"];

/// How long another node may keep serving the old policy.
const PROPAGATION: Duration = Duration::from_secs(1);
const POLL_STEP: Duration = Duration::from_millis(50);

// ---------------------------------------------------------------------------------------------
// Arranging helpers
// ---------------------------------------------------------------------------------------------

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| (*n).to_owned()).collect()
}

fn with(base: &[&str], extra: &[&str]) -> BTreeSet<String> {
    let mut out = set(base);
    out.extend(extra.iter().map(|n| (*n).to_owned()));
    out
}

fn without(base: &[&str], removed: &[&str]) -> BTreeSet<String> {
    let mut out = set(base);
    for name in removed {
        out.remove(*name);
    }
    out
}

/// Reads the body, failing with it when the status is not the expected one.
async fn check(response: Response, status: StatusCode, what: &str) -> Result<Value, String> {
    let actual = response.status();
    let text = response.text().await.unwrap_or_default();
    if actual != status {
        return Err(format!("{what}: expected {status}, got {actual}: {text}"));
    }
    Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn expect(response: Response, status: StatusCode, what: &str) -> Value {
    check(response, status, what)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

fn id_of(body: &Value) -> Uuid {
    body["id"].as_str().unwrap().parse().unwrap()
}

fn community_scope(id: Uuid) -> String {
    format!("/v1/communities/{id}")
}

fn group_scope(id: Uuid) -> String {
    format!("/v1/groups/{id}")
}

fn room_scope(id: Uuid) -> String {
    format!("/v1/rooms/{id}")
}

async fn create_community(app: &TestApp, owner: &Session, visibility: &str) -> Uuid {
    let response = app
        .post(
            "/v1/communities",
            Some(&owner.access_token),
            json!({"name": "Guild", "visibility": visibility}),
        )
        .await;
    id_of(&expect(response, StatusCode::CREATED, "create community").await)
}

async fn create_group(app: &TestApp, owner: &Session, community: Uuid) -> Uuid {
    let response = app
        .post(
            &format!("/v1/communities/{community}/groups"),
            Some(&owner.access_token),
            json!({"name": "Group"}),
        )
        .await;
    id_of(&expect(response, StatusCode::CREATED, "create group").await)
}

async fn create_room(
    app: &TestApp,
    owner: &Session,
    community: Uuid,
    group: Option<Uuid>,
    private: bool,
) -> Uuid {
    let response = app
        .post(
            &format!("/v1/communities/{community}/rooms"),
            Some(&owner.access_token),
            json!({"name": "room", "group_id": group, "private": private}),
        )
        .await;
    id_of(&expect(response, StatusCode::CREATED, "create room").await)
}

async fn join(app: &TestApp, user: &Session, community: Uuid) {
    let response = app
        .post(
            &format!("/v1/communities/{community}/join"),
            Some(&user.access_token),
            json!({}),
        )
        .await;
    expect(response, StatusCode::OK, "join").await;
}

/// Role name -> id, as `token`'s holder sees the community's roles.
async fn roles(app: &TestApp, user: &Session, community: Uuid) -> HashMap<String, Uuid> {
    let response = app
        .get(
            &format!("/v1/communities/{community}/roles"),
            Some(&user.access_token),
        )
        .await;
    expect(response, StatusCode::OK, "list roles")
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["name"].as_str().unwrap().to_owned(), id_of(r)))
        .collect()
}

async fn role_id(app: &TestApp, user: &Session, community: Uuid, name: &str) -> Uuid {
    roles(app, user, community).await[name]
}

async fn post_role(
    app: &TestApp,
    actor: &Session,
    community: Uuid,
    name: &str,
    perms: &[&str],
) -> Response {
    app.post(
        &format!("/v1/communities/{community}/roles"),
        Some(&actor.access_token),
        json!({"name": name, "permissions": perms}),
    )
    .await
}

async fn create_role(
    app: &TestApp,
    actor: &Session,
    community: Uuid,
    name: &str,
    perms: &[&str],
) -> Uuid {
    let response = post_role(app, actor, community, name, perms).await;
    id_of(&expect(response, StatusCode::CREATED, "create role").await)
}

async fn grant(app: &TestApp, actor: &Session, scope: &str, user: Uuid, role: Uuid) -> Response {
    app.request(
        Method::PUT,
        &format!("{scope}/members/{user}/roles/{role}"),
        Some(&actor.access_token),
        None,
    )
    .await
}

async fn revoke(app: &TestApp, actor: &Session, scope: &str, user: Uuid, role: Uuid) -> Response {
    app.request(
        Method::DELETE,
        &format!("{scope}/members/{user}/roles/{role}"),
        Some(&actor.access_token),
        None,
    )
    .await
}

async fn set_override(
    app: &TestApp,
    actor: &Session,
    scope: &str,
    subject: &str,
    allow: &[&str],
    deny: &[&str],
) -> Response {
    app.request(
        Method::PUT,
        &format!("{scope}/overrides/{subject}"),
        Some(&actor.access_token),
        Some(json!({"allow": allow, "deny": deny})),
    )
    .await
}

async fn me(app: &TestApp, user: &Session, scope: &str) -> Response {
    app.get(&format!("{scope}/permissions/me"), Some(&user.access_token))
        .await
}

/// The caller's effective permissions at `scope` (which must be visible).
async fn perms(app: &TestApp, user: &Session, scope: &str) -> BTreeSet<String> {
    let body = expect(me(app, user, scope).await, StatusCode::OK, "me").await;
    names(&body["permissions"])
}

async fn is_owner(app: &TestApp, user: &Session, community: Uuid) -> bool {
    let body = expect(
        me(app, user, &community_scope(community)).await,
        StatusCode::OK,
        "me",
    )
    .await;
    body["owner"].as_bool().unwrap()
}

fn names(value: &Value) -> BTreeSet<String> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

async fn ban(app: &TestApp, actor: &Session, community: Uuid, user: Uuid) -> Response {
    app.request(
        Method::PUT,
        &format!("/v1/communities/{community}/bans/{user}"),
        Some(&actor.access_token),
        Some(json!({"reason": "spam"})),
    )
    .await
}

async fn kick(app: &TestApp, actor: &Session, community: Uuid, user: Uuid) -> Response {
    app.request(
        Method::DELETE,
        &format!("/v1/communities/{community}/members/{user}"),
        Some(&actor.access_token),
        None,
    )
    .await
}

// ---------------------------------------------------------------------------------------------
// 1. Precedence
// ---------------------------------------------------------------------------------------------

/// Where in the per-case tree: community -> group -> room, plus a room directly under the
/// community ("elsewhere").
#[derive(Debug, Clone, Copy)]
enum At {
    Community,
    Group,
    Room,
    Elsewhere,
}

#[derive(Debug, Clone, Copy)]
enum Role {
    Member,
    Admin,
    /// A custom role, created (by the owner) the first time a case names it.
    Custom(&'static str, &'static [&'static str]),
}

#[derive(Debug, Clone, Copy)]
enum Who {
    Alice,
    Owner,
}

/// Arrangement steps, all performed by the owner except `Join`.
#[derive(Debug, Clone, Copy)]
enum Step {
    /// Alice joins the (public) community.
    Join,
    Grant(Role, At),
    RoleOverride(Role, At, &'static [&'static str], &'static [&'static str]),
    UserOverride(Who, At, &'static [&'static str], &'static [&'static str]),
    Ban,
    /// Alice is added to the (private) room.
    AddToRoom,
}

enum Expect {
    Exactly(BTreeSet<String>),
    /// Owner flag set and every permission.
    Owner,
    NotFound,
}

struct Case {
    name: &'static str,
    visibility: &'static str,
    private_room: bool,
    steps: Vec<Step>,
    who: Who,
    target: At,
    expect: Expect,
}

impl Case {
    fn new(name: &'static str, steps: Vec<Step>, expect: Expect) -> Self {
        Self {
            name,
            visibility: "public",
            private_room: false,
            steps,
            who: Who::Alice,
            target: At::Room,
            expect,
        }
    }
}

struct Arena<'a> {
    app: &'a TestApp,
    owner: &'a Session,
    alice: &'a Session,
    community: Uuid,
    group: Uuid,
    room: Uuid,
    elsewhere: Uuid,
    custom: HashMap<&'static str, Uuid>,
}

impl Arena<'_> {
    fn scope(&self, at: At) -> String {
        match at {
            At::Community => community_scope(self.community),
            At::Group => group_scope(self.group),
            At::Room => room_scope(self.room),
            At::Elsewhere => room_scope(self.elsewhere),
        }
    }

    fn session(&self, who: Who) -> &Session {
        match who {
            Who::Alice => self.alice,
            Who::Owner => self.owner,
        }
    }

    async fn role(&mut self, role: Role) -> Uuid {
        match role {
            Role::Member => role_id(self.app, self.owner, self.community, "member").await,
            Role::Admin => role_id(self.app, self.owner, self.community, "admin").await,
            Role::Custom(name, perms) => {
                if let Some(id) = self.custom.get(name) {
                    return *id;
                }
                let id = create_role(self.app, self.owner, self.community, name, perms).await;
                self.custom.insert(name, id);
                id
            }
        }
    }

    async fn apply(&mut self, step: Step) -> Result<(), String> {
        let (app, owner, alice) = (self.app, self.owner, self.alice);
        let no_content = StatusCode::NO_CONTENT;
        match step {
            Step::Join => {
                let url = format!("/v1/communities/{}/join", self.community);
                let response = app.post(&url, Some(&alice.access_token), json!({})).await;
                check(response, StatusCode::OK, "join").await?;
            }
            Step::Grant(role, at) => {
                let role = self.role(role).await;
                let response = grant(app, owner, &self.scope(at), alice.user_id, role).await;
                check(response, no_content, &format!("grant {role} at {at:?}")).await?;
            }
            Step::RoleOverride(role, at, allow, deny) => {
                let role = self.role(role).await;
                let subject = format!("role:{role}");
                let scope = self.scope(at);
                let response = set_override(app, owner, &scope, &subject, allow, deny).await;
                check(response, no_content, &format!("override {subject}")).await?;
            }
            Step::UserOverride(who, at, allow, deny) => {
                let subject = format!("user:{}", self.session(who).user_id);
                let scope = self.scope(at);
                let response = set_override(app, owner, &scope, &subject, allow, deny).await;
                check(response, no_content, &format!("override {subject}")).await?;
            }
            Step::Ban => {
                let response = ban(app, owner, self.community, alice.user_id).await;
                check(response, no_content, "ban").await?;
            }
            Step::AddToRoom => {
                let url = format!("/v1/rooms/{}/members/{}", self.room, alice.user_id);
                let response = app
                    .request(Method::PUT, &url, Some(&owner.access_token), None)
                    .await;
                check(response, no_content, "add to room").await?;
            }
        }
        Ok(())
    }
}

async fn run_case(
    app: &TestApp,
    owner: &Session,
    alice: &Session,
    case: &Case,
) -> Result<(), String> {
    let community = create_community(app, owner, case.visibility).await;
    let group = create_group(app, owner, community).await;
    let room = create_room(app, owner, community, Some(group), case.private_room).await;
    let elsewhere = create_room(app, owner, community, None, false).await;
    let mut arena = Arena {
        app,
        owner,
        alice,
        community,
        group,
        room,
        elsewhere,
        custom: HashMap::new(),
    };
    for step in &case.steps {
        arena.apply(*step).await?;
    }

    let response = me(app, arena.session(case.who), &arena.scope(case.target)).await;

    match &case.expect {
        Expect::NotFound => {
            check(response, StatusCode::NOT_FOUND, "me").await?;
        }
        Expect::Exactly(wanted) => {
            let body = check(response, StatusCode::OK, "me").await?;
            let got = names(&body["permissions"]);
            if &got != wanted {
                return Err(format!("expected {wanted:?}, got {got:?}"));
            }
        }
        Expect::Owner => {
            let body = check(response, StatusCode::OK, "me").await?;
            let got = names(&body["permissions"]);
            if got != set(EVERYTHING) || body["owner"] != true {
                return Err(format!("expected an owner with everything, got {body}"));
            }
        }
    }
    Ok(())
}

#[tokio::test]
async fn precedence_table() {
    use Step::*;
    const HELPER: Role = Role::Custom("helper", &["manage_messages"]);
    const ALPHA: Role = Role::Custom("alpha", &["vote"]);
    const BETA: Role = Role::Custom("beta", &["vote"]);
    const SEND: &[&str] = &["send_messages"];
    const EVENTS: &[&str] = &["create_events"];
    const NONE: &[&str] = &[];

    let cases = vec![
        Case::new(
            "a member holds the member role's permissions",
            vec![Join],
            Expect::Exactly(set(MEMBER)),
        ),
        Case::new(
            "a role granted at the community applies below it",
            vec![Join, Grant(HELPER, At::Community)],
            Expect::Exactly(with(MEMBER, &["manage_messages"])),
        ),
        Case::new(
            "a room-level role deny beats a community-level role allow",
            vec![Join, RoleOverride(Role::Member, At::Room, NONE, SEND)],
            Expect::Exactly(without(MEMBER, SEND)),
        ),
        Case::new(
            "a community-level role deny applies below it",
            vec![Join, RoleOverride(Role::Member, At::Community, NONE, SEND)],
            Expect::Exactly(without(MEMBER, SEND)),
        ),
        Case::new(
            "a group-level role allow beats a community-level role deny",
            vec![
                Join,
                RoleOverride(Role::Member, At::Community, NONE, SEND),
                RoleOverride(Role::Member, At::Group, SEND, NONE),
            ],
            Expect::Exactly(set(MEMBER)),
        ),
        Case::new(
            "a user allow beats a role deny at the same level",
            vec![
                Join,
                RoleOverride(Role::Member, At::Room, NONE, SEND),
                UserOverride(Who::Alice, At::Room, SEND, NONE),
            ],
            Expect::Exactly(set(MEMBER)),
        ),
        Case::new(
            "a user deny beats a role allow at the same level",
            vec![Join, UserOverride(Who::Alice, At::Community, NONE, SEND)],
            Expect::Exactly(without(MEMBER, SEND)),
        ),
        Case::new(
            "a role override allow at a room grants there",
            vec![
                Join,
                Grant(ALPHA, At::Community),
                RoleOverride(ALPHA, At::Room, EVENTS, NONE),
            ],
            Expect::Exactly(with(MEMBER, EVENTS)),
        ),
        Case::new(
            "of two held roles at the same level, the deny beats the allow",
            vec![
                Join,
                Grant(ALPHA, At::Community),
                Grant(BETA, At::Community),
                RoleOverride(ALPHA, At::Room, EVENTS, NONE),
                RoleOverride(BETA, At::Room, NONE, EVENTS),
            ],
            Expect::Exactly(set(MEMBER)),
        ),
        Case::new(
            "a farther user allow loses to a closer role deny",
            vec![
                Join,
                UserOverride(Who::Alice, At::Community, SEND, NONE),
                RoleOverride(Role::Member, At::Room, NONE, SEND),
            ],
            Expect::Exactly(without(MEMBER, SEND)),
        ),
        Case {
            who: Who::Owner,
            ..Case::new(
                "an owner has everything despite a user deny on them",
                vec![UserOverride(Who::Owner, At::Room, NONE, SEND)],
                Expect::Owner,
            )
        },
        Case::new(
            "a role granted at a group applies to rooms in that group",
            vec![Join, Grant(HELPER, At::Group)],
            Expect::Exactly(with(MEMBER, &["manage_messages"])),
        ),
        Case {
            target: At::Elsewhere,
            ..Case::new(
                "a role granted at a group does not apply to rooms elsewhere",
                vec![Join, Grant(HELPER, At::Group)],
                Expect::Exactly(set(MEMBER)),
            )
        },
        Case::new(
            "a non-member of a public community is a visitor",
            vec![],
            Expect::Exactly(set(VISITOR)),
        ),
        Case {
            visibility: "private",
            target: At::Community,
            ..Case::new(
                "a non-member cannot see a private community",
                vec![],
                Expect::NotFound,
            )
        },
        Case {
            target: At::Community,
            ..Case::new(
                "a banned user cannot see even a public community",
                vec![Join, Ban],
                Expect::NotFound,
            )
        },
        Case {
            private_room: true,
            ..Case::new(
                "a member outside a private room cannot see it",
                vec![Join],
                Expect::NotFound,
            )
        },
        Case {
            private_room: true,
            ..Case::new(
                "a member of a private room sees it",
                vec![Join, AddToRoom],
                Expect::Exactly(set(MEMBER)),
            )
        },
        Case {
            private_room: true,
            ..Case::new(
                "an admin (manage_rooms) sees a private room without joining it",
                vec![Join, Grant(Role::Admin, At::Community)],
                Expect::Exactly(set(EVERYTHING)),
            )
        },
    ];
    let app = spawn_app().await;
    let owner = app.register("owner").await;
    let alice = app.register("alice").await;

    let mut failures = Vec::new();
    for case in &cases {
        if let Err(why) = run_case(&app, &owner, &alice, case).await {
            failures.push(format!("{}: {why}", case.name));
        }
    }

    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[tokio::test]
async fn one_override_cannot_allow_and_deny_the_same_permission() {
    let app = spawn_app().await;
    let owner = app.register("owner").await;
    let alice = app.register("alice").await;
    let community = create_community(&app, &owner, "public").await;
    join(&app, &alice, community).await;

    let response = set_override(
        &app,
        &owner,
        &community_scope(community),
        &format!("user:{}", alice.user_id),
        &["send_messages"],
        &["send_messages"],
    )
    .await;

    let body = assert_problem(response, 422, "validation_failed").await;
    assert_eq!(problem_fields(&body), ["deny"]);
    assert_eq!(
        perms(&app, &alice, &community_scope(community)).await,
        set(MEMBER)
    );
}

#[tokio::test]
async fn overrides_on_the_owner_role_are_refused() {
    let app = spawn_app().await;
    let owner = app.register("owner").await;
    let community = create_community(&app, &owner, "public").await;
    let owner_role = role_id(&app, &owner, community, "owner").await;

    let response = set_override(
        &app,
        &owner,
        &community_scope(community),
        &format!("role:{owner_role}"),
        &[],
        &["send_messages"],
    )
    .await;

    // 409, not 422: the body is valid, the owner role's state forbids it (schemathesis ST202).
    let body = assert_problem(response, 409, "conflict").await;
    assert_eq!(problem_fields(&body), ["subject"]);

    let url = format!("/v1/communities/{community}/overrides/role:{owner_role}");
    let removed = app
        .request(Method::DELETE, &url, Some(&owner.access_token), None)
        .await;
    assert_problem(removed, 409, "conflict").await;
}

// ---------------------------------------------------------------------------------------------
// 2. Owners
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn the_last_owner_can_neither_step_down_nor_leave() {
    let app = spawn_app().await;
    let owner = app.register("owner").await;
    let community = create_community(&app, &owner, "public").await;
    let owner_role = role_id(&app, &owner, community, "owner").await;

    let step_down = revoke(
        &app,
        &owner,
        &community_scope(community),
        owner.user_id,
        owner_role,
    )
    .await;
    assert_problem(step_down, 409, "conflict").await;
    let leave = kick(&app, &owner, community, owner.user_id).await;
    assert_problem(leave, 409, "conflict").await;

    assert!(is_owner(&app, &owner, community).await);
}

#[tokio::test]
async fn with_two_owners_one_can_be_demoted() {
    let app = spawn_app().await;
    let first = app.register("first").await;
    let second = app.register("second").await;
    let community = create_community(&app, &first, "public").await;
    join(&app, &second, community).await;
    let owner_role = role_id(&app, &first, community, "owner").await;
    let scope = community_scope(community);
    let promote = grant(&app, &first, &scope, second.user_id, owner_role).await;
    expect(promote, StatusCode::NO_CONTENT, "promote").await;
    assert!(is_owner(&app, &second, community).await);

    let demote = revoke(&app, &second, &scope, first.user_id, owner_role).await;

    expect(demote, StatusCode::NO_CONTENT, "demote").await;
    assert!(!is_owner(&app, &first, community).await);
    // Now `second` is the last owner.
    let step_down = revoke(&app, &second, &scope, second.user_id, owner_role).await;
    assert_problem(step_down, 409, "conflict").await;
}

#[tokio::test]
async fn owners_cannot_be_kicked_or_banned() {
    let app = spawn_app().await;
    let owner = app.register("owner").await;
    let co_owner = app.register("coowner").await;
    let admin = app.register("admin").await;
    let community = create_community(&app, &owner, "public").await;
    join(&app, &co_owner, community).await;
    join(&app, &admin, community).await;
    let scope = community_scope(community);
    let owner_role = role_id(&app, &owner, community, "owner").await;
    let admin_role = role_id(&app, &owner, community, "admin").await;
    let response = grant(&app, &owner, &scope, co_owner.user_id, owner_role).await;
    expect(response, StatusCode::NO_CONTENT, "promote").await;
    let response = grant(&app, &owner, &scope, admin.user_id, admin_role).await;
    expect(response, StatusCode::NO_CONTENT, "grant admin").await;

    for actor in [&admin, &co_owner] {
        let kicked = kick(&app, actor, community, owner.user_id).await;
        assert_problem(kicked, 403, "forbidden").await;
        let banned = ban(&app, actor, community, owner.user_id).await;
        assert_problem(banned, 403, "forbidden").await;
    }

    assert!(is_owner(&app, &owner, community).await);
}

#[tokio::test]
async fn only_owners_grant_the_owner_role() {
    let app = spawn_app().await;
    let owner = app.register("owner").await;
    let admin = app.register("admin").await;
    let carol = app.register("carol").await;
    let community = create_community(&app, &owner, "public").await;
    join(&app, &admin, community).await;
    join(&app, &carol, community).await;
    let scope = community_scope(community);
    let owner_role = role_id(&app, &owner, community, "owner").await;
    let admin_role = role_id(&app, &owner, community, "admin").await;
    let response = grant(&app, &owner, &scope, admin.user_id, admin_role).await;
    expect(response, StatusCode::NO_CONTENT, "grant admin").await;

    let response = grant(&app, &admin, &scope, carol.user_id, owner_role).await;

    assert_problem(response, 403, "forbidden").await;
    assert!(!is_owner(&app, &carol, community).await);
}

#[tokio::test]
async fn the_owner_role_exists_only_at_community_level() {
    let app = spawn_app().await;
    let owner = app.register("owner").await;
    let carol = app.register("carol").await;
    let community = create_community(&app, &owner, "public").await;
    let group = create_group(&app, &owner, community).await;
    join(&app, &carol, community).await;
    let owner_role = role_id(&app, &owner, community, "owner").await;

    let response = grant(&app, &owner, &group_scope(group), carol.user_id, owner_role).await;

    let body = assert_problem(response, 422, "validation_failed").await;
    assert_eq!(problem_fields(&body), ["role_id"]);
    assert!(!is_owner(&app, &carol, community).await);
}

// ---------------------------------------------------------------------------------------------
// 3. Escalation
// ---------------------------------------------------------------------------------------------

/// A community where `steward` manages roles and permissions but cannot ban or kick.
struct Stewardship {
    app: TestApp,
    owner: Session,
    steward: Session,
    bob: Session,
    community: Uuid,
    room: Uuid,
}

async fn stewardship() -> Stewardship {
    let app = spawn_app().await;
    let owner = app.register("owner").await;
    let steward = app.register("steward").await;
    let bob = app.register("bob").await;
    let community = create_community(&app, &owner, "public").await;
    let room = create_room(&app, &owner, community, None, false).await;
    join(&app, &steward, community).await;
    join(&app, &bob, community).await;
    let role = create_role(
        &app,
        &owner,
        community,
        "steward",
        &[
            "view",
            "read_history",
            "send_messages",
            "manage_messages",
            "manage_roles",
            "manage_permissions",
        ],
    )
    .await;
    let response = grant(
        &app,
        &owner,
        &community_scope(community),
        steward.user_id,
        role,
    )
    .await;
    expect(response, StatusCode::NO_CONTENT, "grant steward").await;
    Stewardship {
        app,
        owner,
        steward,
        bob,
        community,
        room,
    }
}

#[tokio::test]
async fn roles_can_only_be_made_of_permissions_the_creator_holds() {
    let s = stewardship().await;

    let with_ban = post_role(&s.app, &s.steward, s.community, "bouncer", &["ban"]).await;
    let held = post_role(
        &s.app,
        &s.steward,
        s.community,
        "scribe",
        &["manage_messages"],
    )
    .await;

    assert_problem(with_ban, 403, "forbidden").await;
    expect(
        held,
        StatusCode::CREATED,
        "create a role of held permissions",
    )
    .await;
    let names = roles(&s.app, &s.owner, s.community).await;
    assert!(!names.contains_key("bouncer"), "{names:?}");
    assert!(names.contains_key("scribe"), "{names:?}");
}

#[tokio::test]
async fn roles_can_only_be_edited_with_permissions_the_editor_holds() {
    let s = stewardship().await;
    let member = role_id(&s.app, &s.owner, s.community, "member").await;
    let url = format!("/v1/communities/{}/roles/{member}", s.community);

    let response = s
        .app
        .request(
            Method::PATCH,
            &url,
            Some(&s.steward.access_token),
            Some(json!({"permissions": with(MEMBER, &["ban"])})),
        )
        .await;

    assert_problem(response, 403, "forbidden").await;
    assert_eq!(
        perms(&s.app, &s.bob, &community_scope(s.community)).await,
        set(MEMBER)
    );
}

#[tokio::test]
async fn roles_can_only_be_granted_by_holders_of_all_their_permissions() {
    let s = stewardship().await;
    let scope = community_scope(s.community);
    let moderator = role_id(&s.app, &s.owner, s.community, "moderator").await;
    let scribe = create_role(
        &s.app,
        &s.owner,
        s.community,
        "scribe",
        &["manage_messages"],
    )
    .await;

    let escalating = grant(&s.app, &s.steward, &scope, s.bob.user_id, moderator).await;
    let held = grant(&s.app, &s.steward, &scope, s.bob.user_id, scribe).await;

    assert_problem(escalating, 403, "forbidden").await;
    expect(
        held,
        StatusCode::NO_CONTENT,
        "grant a role of held permissions",
    )
    .await;
    assert_eq!(
        perms(&s.app, &s.bob, &scope).await,
        with(MEMBER, &["manage_messages"])
    );
}

#[tokio::test]
async fn overrides_can_only_name_permissions_the_setter_holds() {
    let s = stewardship().await;
    let member = role_id(&s.app, &s.owner, s.community, "member").await;
    let room = room_scope(s.room);
    let role_subject = format!("role:{member}");
    let bob_subject = format!("user:{}", s.bob.user_id);

    let allow_ban = set_override(&s.app, &s.steward, &room, &role_subject, &["ban"], &[]).await;
    let deny_ban = set_override(&s.app, &s.steward, &room, &role_subject, &[], &["ban"]).await;
    let allow_kick = set_override(&s.app, &s.steward, &room, &bob_subject, &["kick"], &[]).await;
    let held = set_override(
        &s.app,
        &s.steward,
        &room,
        &role_subject,
        &[],
        &["send_messages"],
    )
    .await;

    assert_problem(allow_ban, 403, "forbidden").await;
    assert_problem(deny_ban, 403, "forbidden").await;
    assert_problem(allow_kick, 403, "forbidden").await;
    expect(held, StatusCode::NO_CONTENT, "override of held permissions").await;
    assert_eq!(
        perms(&s.app, &s.bob, &room).await,
        without(MEMBER, &["send_messages"])
    );
}

// ---------------------------------------------------------------------------------------------
// 4. Explain
// ---------------------------------------------------------------------------------------------

async fn explain(
    app: &TestApp,
    asker: &Session,
    scope: &str,
    permission: &str,
    user: Option<Uuid>,
) -> Response {
    let about = user.map(|u| format!("&user_id={u}")).unwrap_or_default();
    app.get(
        &format!("{scope}/permissions/explain?permission={permission}{about}"),
        Some(&asker.access_token),
    )
    .await
}

#[tokio::test]
async fn explain_shows_the_deciding_room_level_deny_first() {
    let app = spawn_app().await;
    let owner = app.register("owner").await;
    let alice = app.register("alice").await;
    let community = create_community(&app, &owner, "public").await;
    let room = create_room(&app, &owner, community, None, false).await;
    join(&app, &alice, community).await;
    let member = role_id(&app, &owner, community, "member").await;
    let response = set_override(
        &app,
        &owner,
        &room_scope(room),
        &format!("role:{member}"),
        &[],
        &["send_messages"],
    )
    .await;
    expect(response, StatusCode::NO_CONTENT, "deny at room").await;

    let response = explain(&app, &alice, &room_scope(room), "send_messages", None).await;

    let body = expect(response, StatusCode::OK, "explain").await;
    assert_eq!(body["allowed"], false, "{body}");
    assert_eq!(body["casbin_allowed"], false, "{body}");
    assert_eq!(body["gate"], Value::Null, "{body}");
    let rules = body["rules"].as_array().unwrap();
    assert_eq!(
        rules[0],
        json!({
            "scope_id": room,
            "kind": "role",
            "subject": format!("role:{member}"),
            "held_at": community,
            "effect": "deny",
        }),
        "{body}"
    );
    // The overruled allow from the member role at the community comes later.
    assert!(
        rules[1..]
            .iter()
            .any(|r| r["scope_id"] == json!(community) && r["effect"] == "allow"),
        "{body}"
    );
}

#[tokio::test]
async fn explain_reports_gates_apart_from_the_casbin_decision() {
    let app = spawn_app().await;
    let owner = app.register("owner").await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let community = create_community(&app, &owner, "public").await;
    let private_room = create_room(&app, &owner, community, None, true).await;
    join(&app, &alice, community).await;
    join(&app, &bob, community).await;
    expect(
        ban(&app, &owner, community, bob.user_id).await,
        StatusCode::NO_CONTENT,
        "ban",
    )
    .await;

    let (room, whole) = (room_scope(private_room), community_scope(community));

    let hidden = explain(&app, &owner, &room, "view", Some(alice.user_id)).await;
    let banned = explain(&app, &owner, &whole, "view", Some(bob.user_id)).await;

    let hidden = expect(hidden, StatusCode::OK, "explain private room").await;
    assert_eq!(hidden["allowed"], false, "{hidden}");
    assert_eq!(hidden["gate"], "private_room", "{hidden}");
    // Before the gate, the member role allows view.
    assert_eq!(hidden["casbin_allowed"], true, "{hidden}");
    let banned = expect(banned, StatusCode::OK, "explain banned").await;
    assert_eq!(banned["allowed"], false, "{banned}");
    assert_eq!(banned["gate"], "banned", "{banned}");
    // Before the gate, the public-visitor rule allows view.
    assert_eq!(banned["casbin_allowed"], true, "{banned}");
}

#[tokio::test]
async fn explaining_someone_else_requires_manage_permissions() {
    let app = spawn_app().await;
    let owner = app.register("owner").await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let community = create_community(&app, &owner, "public").await;
    join(&app, &alice, community).await;
    join(&app, &bob, community).await;
    let scope = community_scope(community);

    let about_alice = explain(&app, &bob, &scope, "send_messages", Some(alice.user_id)).await;
    let about_self = explain(&app, &bob, &scope, "send_messages", Some(bob.user_id)).await;
    let by_owner = explain(&app, &owner, &scope, "send_messages", Some(alice.user_id)).await;

    assert_problem(about_alice, 403, "forbidden").await;
    let own = expect(about_self, StatusCode::OK, "explain self").await;
    assert_eq!(own["user_id"], json!(bob.user_id));
    assert_eq!(own["allowed"], true);
    let other = expect(by_owner, StatusCode::OK, "owner explains alice").await;
    assert_eq!(other["user_id"], json!(alice.user_id));
    assert_eq!(other["allowed"], true);
}

// ---------------------------------------------------------------------------------------------
// 5. Simulate
// ---------------------------------------------------------------------------------------------

async fn simulate(app: &TestApp, actor: &Session, scope: &str, changes: Value) -> Response {
    app.post(
        &format!("{scope}/permissions/simulate"),
        Some(&actor.access_token),
        json!({"changes": changes}),
    )
    .await
}

#[tokio::test]
async fn simulating_a_room_deny_lists_every_losing_member_and_changes_nothing() {
    let app = spawn_app().await;
    let owner = app.register("owner").await;
    let admin = app.register("admin").await;
    let bob = app.register("bob").await;
    let community = create_community(&app, &owner, "public").await;
    let room = create_room(&app, &owner, community, None, false).await;
    join(&app, &admin, community).await;
    join(&app, &bob, community).await;
    let member = role_id(&app, &owner, community, "member").await;
    let admin_role = role_id(&app, &owner, community, "admin").await;
    let response = grant(
        &app,
        &owner,
        &community_scope(community),
        admin.user_id,
        admin_role,
    )
    .await;
    expect(response, StatusCode::NO_CONTENT, "grant admin").await;
    let scope = room_scope(room);

    let response = simulate(
        &app,
        &owner,
        &scope,
        json!([{"op": "set_override", "subject": format!("role:{member}"), "allow": [], "deny": ["send_messages"]}]),
    )
    .await;

    let body = expect(response, StatusCode::OK, "simulate").await;
    let mut diffs: Vec<Value> = body["changes"].as_array().unwrap().clone();
    diffs.sort_by_key(|d| d["user_id"].as_str().unwrap().to_owned());
    let mut wanted: Vec<Value> = [admin.user_id, bob.user_id]
        .iter()
        .map(|user| json!({"user_id": user, "scope_id": room, "gained": [], "lost": ["send_messages"]}))
        .collect();
    wanted.sort_by_key(|d| d["user_id"].as_str().unwrap().to_owned());
    assert_eq!(diffs, wanted, "{body}");
    // Nothing was applied.
    assert!(perms(&app, &bob, &scope).await.contains("send_messages"));
    assert!(perms(&app, &admin, &scope).await.contains("send_messages"));
}

#[tokio::test]
async fn simulate_rejects_a_bad_subject() {
    let app = spawn_app().await;
    let owner = app.register("owner").await;
    let community = create_community(&app, &owner, "public").await;

    let response = simulate(
        &app,
        &owner,
        &community_scope(community),
        json!([{"op": "set_override", "subject": "team:everyone", "allow": [], "deny": ["send_messages"]}]),
    )
    .await;

    let body = assert_problem(response, 422, "validation_failed").await;
    assert_eq!(problem_fields(&body), ["changes[0].subject"]);
}

#[tokio::test]
async fn simulate_requires_manage_permissions() {
    let app = spawn_app().await;
    let owner = app.register("owner").await;
    let bob = app.register("bob").await;
    let community = create_community(&app, &owner, "public").await;
    join(&app, &bob, community).await;

    let response = simulate(&app, &bob, &community_scope(community), json!([])).await;

    assert_problem(response, 403, "forbidden").await;
}

// ---------------------------------------------------------------------------------------------
// 6. Propagation between nodes
// ---------------------------------------------------------------------------------------------

/// Polls `node` until `user`'s permissions at `scope` satisfy `done`, for at most
/// `PROPAGATION` from `since` (right after the write returned).
async fn converges(
    node: &TestApp,
    user: &Session,
    scope: &str,
    since: Instant,
    what: &str,
    done: impl Fn(&BTreeSet<String>) -> bool,
) {
    loop {
        let seen = perms(node, user, scope).await;
        if done(&seen) {
            return;
        }
        assert!(
            since.elapsed() < PROPAGATION,
            "{what}: the other node still answers {seen:?} after {:?}",
            since.elapsed()
        );
        tokio::time::sleep(POLL_STEP).await;
    }
}

/// Overrides and grants written on `a` are enforced by `b` within a second.
async fn writes_reach_the_other_node(a: &TestApp, b: &TestApp) {
    let owner = a.register("owner").await;
    let alice = a.register("alice").await;
    let community = create_community(a, &owner, "public").await;
    let room = create_room(a, &owner, community, None, false).await;
    join(a, &alice, community).await;
    let member = role_id(a, &owner, community, "member").await;
    let helper = create_role(a, &owner, community, "helper", &["manage_messages"]).await;
    let scope = room_scope(room);
    // Node B has the current policy cached.
    assert_eq!(perms(b, &alice, &scope).await, set(MEMBER));

    let subject = format!("role:{member}");
    let response = set_override(a, &owner, &scope, &subject, &[], &["send_messages"]).await;
    expect(response, StatusCode::NO_CONTENT, "deny on A").await;
    let written = Instant::now();
    converges(b, &alice, &scope, written, "override", |p| {
        !p.contains("send_messages")
    })
    .await;

    let response = grant(
        a,
        &owner,
        &community_scope(community),
        alice.user_id,
        helper,
    )
    .await;
    expect(response, StatusCode::NO_CONTENT, "grant on A").await;
    let written = Instant::now();
    converges(b, &alice, &scope, written, "grant", |p| {
        p.contains("manage_messages")
    })
    .await;
}

/// After a revocation or a removed allow on `a`, `b` stops allowing within a second.
async fn revocations_reach_the_other_node(a: &TestApp, b: &TestApp) {
    let owner = a.register("owner").await;
    let alice = a.register("alice").await;
    let community = create_community(a, &owner, "public").await;
    let room = create_room(a, &owner, community, None, false).await;
    join(a, &alice, community).await;
    let helper = create_role(a, &owner, community, "helper", &["manage_messages"]).await;
    let community_path = community_scope(community);
    let scope = room_scope(room);
    let response = grant(a, &owner, &community_path, alice.user_id, helper).await;
    expect(response, StatusCode::NO_CONTENT, "grant on A").await;
    let subject = format!("user:{}", alice.user_id);
    let response = set_override(a, &owner, &scope, &subject, &["create_events"], &[]).await;
    expect(response, StatusCode::NO_CONTENT, "allow on A").await;
    // Node B serves (and caches) the allows.
    converges(b, &alice, &scope, Instant::now(), "setup", |p| {
        p.contains("manage_messages") && p.contains("create_events")
    })
    .await;

    let response = revoke(a, &owner, &community_path, alice.user_id, helper).await;
    expect(response, StatusCode::NO_CONTENT, "revoke on A").await;
    let written = Instant::now();
    converges(b, &alice, &scope, written, "revoke", |p| {
        !p.contains("manage_messages")
    })
    .await;

    let response = a
        .request(
            Method::DELETE,
            &format!("{scope}/overrides/{subject}"),
            Some(&owner.access_token),
            None,
        )
        .await;
    expect(response, StatusCode::NO_CONTENT, "remove allow on A").await;
    let written = Instant::now();
    converges(b, &alice, &scope, written, "override removal", |p| {
        !p.contains("create_events")
    })
    .await;
}

#[tokio::test]
async fn writes_reach_another_node_within_a_second_over_redis() {
    let a = spawn_app_with_redis().await;
    let b = start(a.database.clone(), a.settings.clone()).await;
    writes_reach_the_other_node(&a, &b).await;
}

#[tokio::test]
async fn writes_reach_another_node_within_a_second_over_postgres_notify() {
    let a = spawn_app().await;
    let b = start(a.database.clone(), a.settings.clone()).await;
    writes_reach_the_other_node(&a, &b).await;
}

#[tokio::test]
async fn revocations_reach_another_node_within_a_second_over_redis() {
    let a = spawn_app_with_redis().await;
    let b = start(a.database.clone(), a.settings.clone()).await;
    revocations_reach_the_other_node(&a, &b).await;
}

#[tokio::test]
async fn revocations_reach_another_node_within_a_second_over_postgres_notify() {
    let a = spawn_app().await;
    let b = start(a.database.clone(), a.settings.clone()).await;
    revocations_reach_the_other_node(&a, &b).await;
}

// ---------------------------------------------------------------------------------------------
// 7. Audit log
// ---------------------------------------------------------------------------------------------

async fn audit_page(app: &TestApp, user: &Session, community: Uuid, query: &str) -> Response {
    app.get(
        &format!("/v1/communities/{community}/audit-log{query}"),
        Some(&user.access_token),
    )
    .await
}

fn entry<'a>(items: &'a [Value], action: &str) -> (usize, &'a Value) {
    items
        .iter()
        .enumerate()
        .find(|(_, e)| e["action"] == action)
        .unwrap_or_else(|| panic!("no {action} entry in {items:?}"))
}

#[tokio::test]
async fn grants_overrides_and_bans_are_audited_with_their_actor() {
    let app = spawn_app().await;
    let owner = app.register("owner").await;
    let admin = app.register("admin").await;
    let bob = app.register("bob").await;
    let community = create_community(&app, &owner, "public").await;
    join(&app, &admin, community).await;
    join(&app, &bob, community).await;
    let scope = community_scope(community);
    let admin_role = role_id(&app, &owner, community, "admin").await;
    let member = role_id(&app, &owner, community, "member").await;
    let subject = format!("role:{member}");

    let granted = grant(&app, &owner, &scope, admin.user_id, admin_role).await;
    expect(granted, StatusCode::NO_CONTENT, "grant").await;
    let first = set_override(&app, &admin, &scope, &subject, &["create_events"], &[]).await;
    expect(first, StatusCode::NO_CONTENT, "set override").await;
    let changed = set_override(&app, &admin, &scope, &subject, &[], &["send_messages"]).await;
    expect(changed, StatusCode::NO_CONTENT, "change override").await;
    let banned = ban(&app, &admin, community, bob.user_id).await;
    expect(banned, StatusCode::NO_CONTENT, "ban").await;

    let page = audit_page(&app, &owner, community, "?limit=100").await;
    let page = expect(page, StatusCode::OK, "audit log").await;
    let items = page["items"].as_array().unwrap();
    let (ban_at, ban_entry) = entry(items, "bans.insert");
    assert_eq!(ban_entry["actor_id"], json!(admin.user_id), "{ban_entry}");
    assert_eq!(ban_entry["target"], json!(bob.user_id), "{ban_entry}");
    assert_eq!(ban_entry["before"], Value::Null, "{ban_entry}");
    assert_eq!(
        ban_entry["after"]["user_id"],
        json!(bob.user_id),
        "{ban_entry}"
    );
    assert_eq!(ban_entry["after"]["reason"], "spam", "{ban_entry}");
    let (update_at, update) = entry(items, "overrides.update");
    assert_eq!(update["actor_id"], json!(admin.user_id), "{update}");
    assert_eq!(
        update["before"]["allow"],
        json!(["create_events"]),
        "{update}"
    );
    assert_eq!(update["before"]["deny"], json!([]), "{update}");
    assert_eq!(update["after"]["allow"], json!([]), "{update}");
    assert_eq!(
        update["after"]["deny"],
        json!(["send_messages"]),
        "{update}"
    );
    let grant_entry = items
        .iter()
        .position(|e| {
            e["action"] == "role_grants.insert" && e["after"]["user_id"] == json!(admin.user_id)
        })
        .expect("the admin grant is audited");
    let grant_entry_value = &items[grant_entry];
    assert_eq!(
        grant_entry_value["actor_id"],
        json!(owner.user_id),
        "{grant_entry_value}"
    );
    assert_eq!(
        grant_entry_value["before"],
        Value::Null,
        "{grant_entry_value}"
    );
    assert_eq!(
        grant_entry_value["after"]["role_id"],
        json!(admin_role),
        "{grant_entry_value}"
    );
    // Newest first.
    assert!(ban_at < update_at && update_at < grant_entry, "{items:?}");
    let ids: Vec<i64> = items
        .iter()
        .map(|e| e["id"].as_str().unwrap().parse().unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "{ids:?}");
}

#[tokio::test]
async fn the_audit_log_needs_view_audit_log() {
    let app = spawn_app().await;
    let owner = app.register("owner").await;
    let bob = app.register("bob").await;
    let community = create_community(&app, &owner, "public").await;
    join(&app, &bob, community).await;

    let response = audit_page(&app, &bob, community, "").await;

    assert_problem(response, 403, "forbidden").await;
}

#[tokio::test]
async fn the_audit_log_pages_by_cursor() {
    let app = spawn_app().await;
    let owner = app.register("owner").await;
    let community = create_community(&app, &owner, "public").await;
    create_role(&app, &owner, community, "helper", &["manage_messages"]).await;
    let all = audit_page(&app, &owner, community, "?limit=100").await;
    let all = expect(all, StatusCode::OK, "whole log").await;
    let all = all["items"].as_array().unwrap().clone();
    assert!(all.len() >= 2, "{all:?}");

    let first = audit_page(&app, &owner, community, "?limit=1").await;
    let first = expect(first, StatusCode::OK, "first page").await;
    let cursor = first["next_cursor"].as_str().expect("a next cursor");
    let second = audit_page(
        &app,
        &owner,
        community,
        &format!("?limit=1&cursor={cursor}"),
    )
    .await;
    let second = expect(second, StatusCode::OK, "second page").await;

    assert_eq!(first["items"], json!([all[0]]));
    assert_eq!(all[0]["action"], "roles.insert");
    assert_eq!(second["items"], json!([all[1]]));
}

// ---------------------------------------------------------------------------------------------
// 8. Roles
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn custom_roles_are_created_with_unique_names() {
    let app = spawn_app().await;
    let owner = app.register("owner").await;
    let community = create_community(&app, &owner, "public").await;

    let created = post_role(&app, &owner, community, "Helper", &["manage_messages"]).await;
    let duplicate = post_role(&app, &owner, community, "Helper", &["vote"]).await;

    let created = expect(created, StatusCode::CREATED, "create role").await;
    assert_eq!(created["name"], "Helper");
    assert_eq!(created["builtin"], false);
    assert_eq!(created["permissions"], json!(["manage_messages"]));
    assert_problem(duplicate, 409, "conflict").await;
    let listed = roles(&app, &owner, community).await;
    assert_eq!(listed.get("Helper"), Some(&id_of(&created)));
    for builtin in ["owner", "admin", "moderator", "member"] {
        assert!(listed.contains_key(builtin), "{listed:?}");
    }
}

#[tokio::test]
async fn role_permissions_must_come_from_the_catalogue() {
    let app = spawn_app().await;
    let owner = app.register("owner").await;
    let community = create_community(&app, &owner, "public").await;

    let response = post_role(&app, &owner, community, "wizard", &["cast_spells"]).await;

    let body = assert_problem(response, 422, "validation_failed").await;
    assert_eq!(problem_fields(&body), ["permissions"]);
    assert!(!roles(&app, &owner, community).await.contains_key("wizard"));
}

#[tokio::test]
async fn the_owner_role_cannot_be_edited() {
    let app = spawn_app().await;
    let owner = app.register("owner").await;
    let community = create_community(&app, &owner, "public").await;
    let owner_role = role_id(&app, &owner, community, "owner").await;

    let response = app
        .request(
            Method::PATCH,
            &format!("/v1/communities/{community}/roles/{owner_role}"),
            Some(&owner.access_token),
            Some(json!({"permissions": ["view"]})),
        )
        .await;

    assert_problem(response, 409, "conflict").await;
    assert!(is_owner(&app, &owner, community).await);
}

#[tokio::test]
async fn built_in_roles_cannot_be_deleted() {
    let app = spawn_app().await;
    let owner = app.register("owner").await;
    let community = create_community(&app, &owner, "public").await;
    let listed = roles(&app, &owner, community).await;

    for builtin in ["owner", "admin", "moderator", "member"] {
        let response = app
            .request(
                Method::DELETE,
                &format!("/v1/communities/{community}/roles/{}", listed[builtin]),
                Some(&owner.access_token),
                None,
            )
            .await;
        assert_problem(response, 409, "conflict").await;
    }
    assert_eq!(roles(&app, &owner, community).await, listed);
}

#[tokio::test]
async fn deleting_a_custom_role_removes_its_effect() {
    let app = spawn_app().await;
    let owner = app.register("owner").await;
    let alice = app.register("alice").await;
    let community = create_community(&app, &owner, "public").await;
    let room = create_room(&app, &owner, community, None, false).await;
    join(&app, &alice, community).await;
    let helper = create_role(&app, &owner, community, "helper", &["manage_messages"]).await;
    let response = grant(
        &app,
        &owner,
        &community_scope(community),
        alice.user_id,
        helper,
    )
    .await;
    expect(response, StatusCode::NO_CONTENT, "grant").await;
    let response = set_override(
        &app,
        &owner,
        &room_scope(room),
        &format!("role:{helper}"),
        &["create_events"],
        &[],
    )
    .await;
    expect(response, StatusCode::NO_CONTENT, "override").await;
    assert_eq!(
        perms(&app, &alice, &room_scope(room)).await,
        with(MEMBER, &["manage_messages", "create_events"])
    );

    let response = app
        .request(
            Method::DELETE,
            &format!("/v1/communities/{community}/roles/{helper}"),
            Some(&owner.access_token),
            None,
        )
        .await;

    expect(response, StatusCode::NO_CONTENT, "delete role").await;
    assert_eq!(perms(&app, &alice, &room_scope(room)).await, set(MEMBER));
    assert!(!roles(&app, &owner, community).await.contains_key("helper"));
}
