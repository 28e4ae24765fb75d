//! Behaviour of communities, the group/room tree, membership (join, invites, kicks, bans),
//! private-room members and DMs, through the public API.

use reqwest::{Method, Response};
use sea_orm::{ConnectionTrait, Statement};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{Session, TestApp, assert_problem, problem_fields, spawn_app, spawn_app_with};

// ---------------------------------------------------------------------------------------------
// Helpers.

/// Asserts the status (showing the body on failure) and returns the JSON body (Null if empty).
async fn expect(response: Response, status: u16, what: &str) -> Value {
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

fn uuid_at(body: &Value, key: &str) -> Option<Uuid> {
    body[key].as_str().map(|s| s.parse().unwrap())
}

async fn create_community(app: &TestApp, owner: &Session, name: &str, visibility: &str) -> Uuid {
    let body = json!({"name": name, "visibility": visibility});
    id_of(
        &expect(
            app.post("/v1/communities", Some(&owner.access_token), body)
                .await,
            201,
            "create community",
        )
        .await,
    )
}

async fn create_group(
    app: &TestApp,
    token: &str,
    community: Uuid,
    name: &str,
    parent: Option<Uuid>,
) -> Uuid {
    let path = format!("/v1/communities/{community}/groups");
    let body = json!({"name": name, "parent_id": parent});
    id_of(
        &expect(
            app.post(&path, Some(token), body).await,
            201,
            &format!("create group {name}"),
        )
        .await,
    )
}

async fn create_room(
    app: &TestApp,
    token: &str,
    community: Uuid,
    name: &str,
    group: Option<Uuid>,
    private: bool,
) -> Uuid {
    let path = format!("/v1/communities/{community}/rooms");
    let body = json!({"name": name, "group_id": group, "private": private});
    id_of(
        &expect(
            app.post(&path, Some(token), body).await,
            201,
            &format!("create room {name}"),
        )
        .await,
    )
}

async fn create_invite(app: &TestApp, token: &str, community: Uuid, body: Value) -> String {
    let path = format!("/v1/communities/{community}/invites");
    let invite = expect(
        app.post(&path, Some(token), body).await,
        201,
        "create invite",
    )
    .await;
    invite["code"].as_str().unwrap().to_owned()
}

async fn accept(app: &TestApp, user: &Session, code: &str) -> Response {
    app.post(
        &format!("/v1/invites/{code}/accept"),
        Some(&user.access_token),
        json!({}),
    )
    .await
}

/// Brings `members` into `community` through a fresh unlimited invite.
async fn admit(app: &TestApp, owner: &Session, community: Uuid, members: &[&Session]) {
    let code = create_invite(app, &owner.access_token, community, json!({})).await;
    for member in members {
        expect(accept(app, member, &code).await, 200, "accept invite").await;
    }
}

async fn create_role(
    app: &TestApp,
    token: &str,
    community: Uuid,
    name: &str,
    permissions: &[&str],
) -> Uuid {
    let path = format!("/v1/communities/{community}/roles");
    let body = json!({"name": name, "permissions": permissions});
    id_of(&expect(app.post(&path, Some(token), body).await, 201, "create role").await)
}

async fn builtin_role(app: &TestApp, token: &str, community: Uuid, name: &str) -> Uuid {
    let roles = expect(
        app.get(&format!("/v1/communities/{community}/roles"), Some(token))
            .await,
        200,
        "roles",
    )
    .await;
    roles
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name && r["builtin"] == true)
        .map(id_of)
        .unwrap()
}

/// Grants `role` to `user` at `scope` (e.g. `groups/<id>`).
async fn grant(app: &TestApp, token: &str, scope: &str, user: Uuid, role: Uuid) {
    let path = format!("/v1/{scope}/members/{user}/roles/{role}");
    expect(
        app.request(Method::PUT, &path, Some(token), None).await,
        204,
        "grant",
    )
    .await;
}

/// The caller's effective permissions at `scope` (e.g. `rooms/<id>`).
async fn perms_at(app: &TestApp, user: &Session, scope: &str) -> Vec<String> {
    let me = expect(
        app.get(
            &format!("/v1/{scope}/permissions/me"),
            Some(&user.access_token),
        )
        .await,
        200,
        "permissions/me",
    )
    .await;
    me["permissions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_owned())
        .collect()
}

async fn tree(app: &TestApp, user: &Session, community: Uuid) -> Value {
    expect(
        app.get(
            &format!("/v1/communities/{community}/tree"),
            Some(&user.access_token),
        )
        .await,
        200,
        "tree",
    )
    .await
}

/// The tree as indented lines: `#room` for rooms, `group/` for groups, rooms first per level.
fn outline(tree: &Value) -> Vec<String> {
    fn walk(node: &Value, depth: usize, lines: &mut Vec<String>) {
        let pad = "  ".repeat(depth);
        for room in node["rooms"].as_array().unwrap() {
            lines.push(format!("{pad}#{}", room["name"].as_str().unwrap()));
        }
        for group in node["groups"].as_array().unwrap() {
            lines.push(format!("{pad}{}/", group["name"].as_str().unwrap()));
            walk(group, depth + 1, lines);
        }
    }
    let mut lines = Vec::new();
    walk(tree, 0, &mut lines);
    lines
}

async fn member_ids(app: &TestApp, user: &Session, community: Uuid) -> Vec<Uuid> {
    let page = expect(
        app.get(
            &format!("/v1/communities/{community}/members"),
            Some(&user.access_token),
        )
        .await,
        200,
        "members",
    )
    .await;
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| uuid_at(m, "user_id").unwrap())
        .collect()
}

async fn my_community_ids(app: &TestApp, user: &Session) -> Vec<Uuid> {
    let page = expect(
        app.get("/v1/communities?limit=100", Some(&user.access_token))
            .await,
        200,
        "mine",
    )
    .await;
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(id_of)
        .collect()
}

async fn patch(app: &TestApp, token: &str, path: &str, body: Value) -> Response {
    app.request(Method::PATCH, path, Some(token), Some(body))
        .await
}

async fn delete(app: &TestApp, token: &str, path: &str) -> Response {
    app.request(Method::DELETE, path, Some(token), None).await
}

async fn put(app: &TestApp, token: &str, path: &str) -> Response {
    app.request(Method::PUT, path, Some(token), None).await
}

/// A 422 naming exactly `fields`.
async fn assert_invalid(response: Response, fields: &[&str]) {
    let body = assert_problem(response, 422, "validation_failed").await;
    assert_eq!(problem_fields(&body), fields, "{body}");
}

// ---------------------------------------------------------------------------------------------
// Communities.

#[tokio::test]
async fn creating_a_community_makes_the_creator_its_owner_and_only_member() {
    let app = spawn_app().await;
    let alice = app.register("alice").await;

    let response = app
        .post(
            "/v1/communities",
            Some(&alice.access_token),
            json!({"name": "  Makers  ", "description": "we make", "visibility": "private"}),
        )
        .await;

    let created = expect(response, 201, "create").await;
    assert_eq!(created["name"], "Makers", "names are trimmed");
    assert_eq!(created["description"], "we make");
    assert_eq!(created["visibility"], "private");
    assert_eq!(created["member_count"], 1);
    let id = id_of(&created);
    let fetched = expect(
        app.get(&format!("/v1/communities/{id}"), Some(&alice.access_token))
            .await,
        200,
        "get",
    )
    .await;
    assert_eq!(fetched, created);
    assert_eq!(member_ids(&app, &alice, id).await, [alice.user_id]);
    let me = expect(
        app.get(
            &format!("/v1/communities/{id}/permissions/me"),
            Some(&alice.access_token),
        )
        .await,
        200,
        "me",
    )
    .await;
    assert_eq!(me["owner"], true);
    assert_eq!(
        perms_at(&app, &alice, &format!("communities/{id}"))
            .await
            .len(),
        20,
        "owners hold the whole catalogue"
    );
    assert_eq!(my_community_ids(&app, &alice).await, [id]);
}

#[tokio::test]
async fn invalid_community_input_is_422_naming_each_field() {
    let app = spawn_app().await;
    let alice = app.register("alice").await;
    let token = Some(alice.access_token.as_str());
    let long = "x".repeat(101);
    let cases = [
        (json!({"name": "", "visibility": "public"}), vec!["name"]),
        (json!({"name": "   ", "visibility": "public"}), vec!["name"]),
        (json!({"name": long, "visibility": "public"}), vec!["name"]),
        (
            json!({"name": "ok", "visibility": "secret"}),
            vec!["visibility"],
        ),
        (
            json!({"name": "", "visibility": "secret"}),
            vec!["name", "visibility"],
        ),
        (json!({"name": "ok"}), vec!["visibility"]),
        (
            json!({"name": "ok", "description": "d".repeat(1001), "visibility": "public"}),
            vec!["description"],
        ),
    ];

    for (body, fields) in cases {
        let response = app.post("/v1/communities", token, body.clone()).await;
        let problem = assert_problem(response, 422, "validation_failed").await;
        assert_eq!(problem_fields(&problem), fields, "{body}");
    }

    assert!(
        my_community_ids(&app, &alice).await.is_empty(),
        "nothing was created"
    );
}

#[tokio::test]
async fn my_communities_are_cursor_paged_and_only_mine() {
    let app = spawn_app().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let mut expected = Vec::new();
    for (i, visibility) in ["private", "public", "private", "public", "private"]
        .iter()
        .enumerate()
    {
        expected.push(create_community(&app, &alice, &format!("alice {i}"), visibility).await);
    }
    let bobs_public = create_community(&app, &bob, "bob public", "public").await;
    create_community(&app, &bob, "bob private", "private").await;
    expect(
        app.post(
            &format!("/v1/communities/{bobs_public}/join"),
            Some(&alice.access_token),
            json!({}),
        )
        .await,
        200,
        "join",
    )
    .await;
    expected.push(bobs_public);
    expected.sort();

    let mut seen = Vec::new();
    let mut path = "/v1/communities?limit=2".to_owned();
    for _ in 0..10 {
        let page = expect(app.get(&path, Some(&alice.access_token)).await, 200, &path).await;
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 2, "{page}");
        seen.extend(items.iter().map(id_of));
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/v1/communities?limit=2&cursor={cursor}"),
            None => break,
        }
    }

    assert_eq!(
        seen, expected,
        "every community of mine once, in id order, and no one else's"
    );
    assert_invalid(
        app.get("/v1/communities?limit=0", Some(&alice.access_token))
            .await,
        &["limit"],
    )
    .await;
    assert_invalid(
        app.get("/v1/communities?cursor=bogus", Some(&alice.access_token))
            .await,
        &["cursor"],
    )
    .await;
}

#[tokio::test]
async fn only_a_manager_may_edit_a_community() {
    let app = spawn_app().await;
    let owner = app.register("owner").await;
    let member = app.register("member").await;
    let community = create_community(&app, &owner, "Guild", "private").await;
    admit(&app, &owner, community, &[&member]).await;
    let path = format!("/v1/communities/{community}");

    let refused = patch(
        &app,
        &member.access_token,
        &path,
        json!({"name": "Mine now"}),
    )
    .await;
    assert_problem(refused, 403, "forbidden").await;

    let updated = expect(
        patch(
            &app,
            &owner.access_token,
            &path,
            json!({"name": "Renamed", "description": "new"}),
        )
        .await,
        200,
        "patch",
    )
    .await;
    assert_eq!(updated["name"], "Renamed");
    assert_eq!(updated["description"], "new");
    assert_eq!(updated["visibility"], "private", "absent fields are kept");
    let fetched = expect(app.get(&path, Some(&member.access_token)).await, 200, "get").await;
    assert_eq!(fetched["name"], "Renamed");
    assert_invalid(
        patch(
            &app,
            &owner.access_token,
            &path,
            json!({"visibility": "hidden"}),
        )
        .await,
        &["visibility"],
    )
    .await;
    assert_invalid(
        patch(&app, &owner.access_token, &path, json!({"name": ""})).await,
        &["name"],
    )
    .await;
}

#[tokio::test]
async fn making_a_private_community_public_lets_non_members_see_it() {
    let app = spawn_app().await;
    let owner = app.register("owner").await;
    let visitor = app.register("visitor").await;
    let community = create_community(&app, &owner, "Guild", "private").await;
    let path = format!("/v1/communities/{community}");
    assert_problem(
        app.get(&path, Some(&visitor.access_token)).await,
        404,
        "not_found",
    )
    .await;
    assert_problem(
        app.get(&format!("{path}/tree"), Some(&visitor.access_token))
            .await,
        404,
        "not_found",
    )
    .await;

    let updated = expect(
        patch(
            &app,
            &owner.access_token,
            &path,
            json!({"visibility": "public"}),
        )
        .await,
        200,
        "publish",
    )
    .await;

    assert_eq!(updated["visibility"], "public");
    let seen = expect(
        app.get(&path, Some(&visitor.access_token)).await,
        200,
        "visitor get",
    )
    .await;
    assert_eq!(seen["name"], "Guild");
    assert_eq!(
        tree(&app, &visitor, community).await["community"]["id"],
        community.to_string()
    );

    // And back: hidden again from non-members.
    expect(
        patch(
            &app,
            &owner.access_token,
            &path,
            json!({"visibility": "private"}),
        )
        .await,
        200,
        "unpublish",
    )
    .await;
    assert_problem(
        app.get(&path, Some(&visitor.access_token)).await,
        404,
        "not_found",
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// The tree.

#[tokio::test]
async fn the_tree_nests_groups_and_rooms_and_shows_private_rooms_to_their_members_only() {
    let app = spawn_app().await;
    let owner = app.register("owner").await;
    let member = app.register("member").await;
    let other = app.register("other").await;
    let community = create_community(&app, &owner, "Guild", "private").await;
    admit(&app, &owner, community, &[&member, &other]).await;
    let token = owner.access_token.as_str();
    create_room(&app, token, community, "announcements", None, false).await;
    let alpha = create_group(&app, token, community, "alpha", None).await;
    create_room(&app, token, community, "a-chat", Some(alpha), false).await;
    let alpha_sub = create_group(&app, token, community, "alpha-sub", Some(alpha)).await;
    create_room(&app, token, community, "deep", Some(alpha_sub), false).await;
    let secret = create_room(&app, token, community, "secret", Some(alpha_sub), true).await;
    create_group(&app, token, community, "beta", None).await;
    let public_view = [
        "#announcements",
        "alpha/",
        "  #a-chat",
        "  alpha-sub/",
        "    #deep",
        "beta/",
    ];
    let with_secret = [
        "#announcements",
        "alpha/",
        "  #a-chat",
        "  alpha-sub/",
        "    #deep",
        "    #secret",
        "beta/",
    ];

    let members_tree = tree(&app, &member, community).await;

    assert_eq!(outline(&members_tree), public_view, "{members_tree}");
    assert_eq!(members_tree["community"]["id"], community.to_string());
    let sub = &members_tree["groups"][0]["groups"][0];
    assert_eq!(sub["id"], alpha_sub.to_string());
    assert_eq!(sub["parent_id"], alpha.to_string());
    assert_eq!(sub["rooms"][0]["group_id"], alpha_sub.to_string());
    assert_eq!(
        outline(&tree(&app, &owner, community).await),
        with_secret,
        "the creator is a member of the private room"
    );
    assert_problem(
        app.get(&format!("/v1/rooms/{secret}"), Some(&member.access_token))
            .await,
        404,
        "not_found",
    )
    .await;

    // Once added to the private room, the member sees it; the others still do not.
    expect(
        put(
            &app,
            token,
            &format!("/v1/rooms/{secret}/members/{}", member.user_id),
        )
        .await,
        204,
        "add room member",
    )
    .await;
    assert_eq!(outline(&tree(&app, &member, community).await), with_secret);
    expect(
        app.get(&format!("/v1/rooms/{secret}"), Some(&member.access_token))
            .await,
        200,
        "room member reads the room",
    )
    .await;
    assert_eq!(outline(&tree(&app, &other, community).await), public_view);
    assert_problem(
        app.get(&format!("/v1/rooms/{secret}"), Some(&other.access_token))
            .await,
        404,
        "not_found",
    )
    .await;
}

#[tokio::test]
async fn moving_a_group_moves_its_subtree_and_roles_follow_the_new_parent() {
    let app = spawn_app().await;
    let owner = app.register("owner").await;
    let member = app.register("member").await;
    let community = create_community(&app, &owner, "Guild", "private").await;
    admit(&app, &owner, community, &[&member]).await;
    let token = owner.access_token.as_str();
    let x = create_group(&app, token, community, "x", None).await;
    let y = create_group(&app, token, community, "y", None).await;
    let g = create_group(&app, token, community, "g", Some(x)).await;
    let sg = create_group(&app, token, community, "sg", Some(g)).await;
    let r = create_room(&app, token, community, "r", Some(sg), false).await;
    let planner = create_role(
        &app,
        token,
        community,
        "planner",
        &["view", "create_events"],
    )
    .await;
    let cleaner = create_role(
        &app,
        token,
        community,
        "cleaner",
        &["view", "manage_messages"],
    )
    .await;
    grant(&app, token, &format!("groups/{x}"), member.user_id, planner).await;
    grant(&app, token, &format!("groups/{y}"), member.user_id, cleaner).await;
    let room = format!("rooms/{r}");
    let before = perms_at(&app, &member, &room).await;
    assert!(
        before.contains(&"create_events".into()) && !before.contains(&"manage_messages".into()),
        "{before:?}"
    );

    let moved = expect(
        patch(
            &app,
            token,
            &format!("/v1/groups/{g}"),
            json!({"parent_id": y}),
        )
        .await,
        200,
        "move",
    )
    .await;

    assert_eq!(uuid_at(&moved, "parent_id"), Some(y));
    assert_eq!(
        outline(&tree(&app, &owner, community).await),
        ["x/", "y/", "  g/", "    sg/", "      #r"]
    );
    let sub = expect(
        app.get(&format!("/v1/groups/{sg}"), Some(token)).await,
        200,
        "subgroup",
    )
    .await;
    assert_eq!(
        uuid_at(&sub, "parent_id"),
        Some(g),
        "the subgroup moved along, under the same parent"
    );
    let room_view = expect(
        app.get(&format!("/v1/rooms/{r}"), Some(token)).await,
        200,
        "room",
    )
    .await;
    assert_eq!(uuid_at(&room_view, "group_id"), Some(sg));
    for scope in [room.clone(), format!("groups/{sg}"), format!("groups/{g}")] {
        let after = perms_at(&app, &member, &scope).await;
        assert!(
            after.contains(&"manage_messages".into()),
            "the role at the new parent applies at {scope}: {after:?}"
        );
        assert!(
            !after.contains(&"create_events".into()),
            "the role at the old parent no longer applies at {scope}: {after:?}"
        );
    }

    // To the top level: neither role applies any more.
    let top = expect(
        patch(
            &app,
            token,
            &format!("/v1/groups/{g}"),
            json!({"parent_id": null}),
        )
        .await,
        200,
        "to top",
    )
    .await;
    assert_eq!(top["parent_id"], Value::Null);
    assert_eq!(
        outline(&tree(&app, &owner, community).await),
        ["g/", "  sg/", "    #r", "x/", "y/"]
    );
    let at_top = perms_at(&app, &member, &room).await;
    assert!(
        !at_top.contains(&"manage_messages".into()) && !at_top.contains(&"create_events".into()),
        "{at_top:?}"
    );
}

#[tokio::test]
async fn a_group_cannot_move_under_itself_or_a_descendant() {
    let app = spawn_app().await;
    let owner = app.register("owner").await;
    let community = create_community(&app, &owner, "Guild", "private").await;
    let token = owner.access_token.as_str();
    let g = create_group(&app, token, community, "g", None).await;
    let sg = create_group(&app, token, community, "sg", Some(g)).await;
    let ssg = create_group(&app, token, community, "ssg", Some(sg)).await;
    let shape = ["g/", "  sg/", "    ssg/"];

    for parent in [g, sg, ssg] {
        let response = patch(
            &app,
            token,
            &format!("/v1/groups/{g}"),
            json!({"parent_id": parent}),
        )
        .await;
        assert_invalid(response, &["parent_id"]).await;
    }
    assert_invalid(
        patch(
            &app,
            token,
            &format!("/v1/groups/{sg}"),
            json!({"parent_id": ssg}),
        )
        .await,
        &["parent_id"],
    )
    .await;

    assert_eq!(
        outline(&tree(&app, &owner, community).await),
        shape,
        "nothing moved"
    );
}

#[tokio::test]
async fn groups_nest_no_deeper_than_the_configured_maximum() {
    let app = spawn_app_with(|s| {
        s.insert("max_group_depth".into(), "3".into());
    })
    .await;
    let owner = app.register("owner").await;
    let community = create_community(&app, &owner, "Guild", "private").await;
    let token = owner.access_token.as_str();
    let g1 = create_group(&app, token, community, "g1", None).await;
    let g2 = create_group(&app, token, community, "g2", Some(g1)).await;
    let g3 = create_group(&app, token, community, "g3", Some(g2)).await;
    create_room(&app, token, community, "deepest-room", Some(g3), false).await;

    let too_deep = app
        .post(
            &format!("/v1/communities/{community}/groups"),
            Some(token),
            json!({"name": "g4", "parent_id": g3}),
        )
        .await;
    assert_invalid(too_deep, &["parent_id"]).await;

    // Moving a two-level subtree under the second level would make it four deep.
    let h1 = create_group(&app, token, community, "h1", None).await;
    let h2 = create_group(&app, token, community, "h2", Some(h1)).await;
    assert_invalid(
        patch(
            &app,
            token,
            &format!("/v1/groups/{h1}"),
            json!({"parent_id": g2}),
        )
        .await,
        &["parent_id"],
    )
    .await;
    let moved = expect(
        patch(
            &app,
            token,
            &format!("/v1/groups/{h1}"),
            json!({"parent_id": g1}),
        )
        .await,
        200,
        "move to level 2",
    )
    .await;
    assert_eq!(uuid_at(&moved, "parent_id"), Some(g1));
    let sub = expect(
        app.get(&format!("/v1/groups/{h2}"), Some(token)).await,
        200,
        "h2",
    )
    .await;
    assert_eq!(uuid_at(&sub, "parent_id"), Some(h1));
}

#[tokio::test]
async fn a_group_of_another_community_is_not_a_parent() {
    let app = spawn_app().await;
    let owner = app.register("owner").await;
    let token = owner.access_token.as_str();
    let mine = create_community(&app, &owner, "First", "private").await;
    let other = create_community(&app, &owner, "Second", "private").await;
    let local = create_group(&app, token, mine, "local", None).await;
    let room = create_room(&app, token, mine, "room", None, false).await;
    let foreign = create_group(&app, token, other, "foreign", None).await;
    let groups = format!("/v1/communities/{mine}/groups");
    let rooms = format!("/v1/communities/{mine}/rooms");

    for parent in [foreign, Uuid::new_v4()] {
        assert_invalid(
            app.post(
                &groups,
                Some(token),
                json!({"name": "sub", "parent_id": parent}),
            )
            .await,
            &["parent_id"],
        )
        .await;
        assert_invalid(
            patch(
                &app,
                token,
                &format!("/v1/groups/{local}"),
                json!({"parent_id": parent}),
            )
            .await,
            &["parent_id"],
        )
        .await;
        let new_room = json!({"name": "r", "group_id": parent, "private": false});
        assert_invalid(app.post(&rooms, Some(token), new_room).await, &["group_id"]).await;
        assert_invalid(
            patch(
                &app,
                token,
                &format!("/v1/rooms/{room}"),
                json!({"group_id": parent}),
            )
            .await,
            &["group_id"],
        )
        .await;
    }

    assert_eq!(
        outline(&tree(&app, &owner, mine).await),
        ["#room", "local/"]
    );
    assert_eq!(outline(&tree(&app, &owner, other).await), ["foreign/"]);
}

#[tokio::test]
async fn only_an_empty_group_can_be_deleted() {
    let app = spawn_app().await;
    let owner = app.register("owner").await;
    let community = create_community(&app, &owner, "Guild", "private").await;
    let token = owner.access_token.as_str();
    let with_sub = create_group(&app, token, community, "a", None).await;
    let sub = create_group(&app, token, community, "a-sub", Some(with_sub)).await;
    let with_room = create_group(&app, token, community, "b", None).await;
    let room = create_room(&app, token, community, "b-room", Some(with_room), false).await;

    assert_problem(
        delete(&app, token, &format!("/v1/groups/{with_sub}")).await,
        409,
        "conflict",
    )
    .await;
    assert_problem(
        delete(&app, token, &format!("/v1/groups/{with_room}")).await,
        409,
        "conflict",
    )
    .await;
    assert_eq!(
        outline(&tree(&app, &owner, community).await),
        ["a/", "  a-sub/", "b/", "  #b-room"]
    );

    expect(
        delete(&app, token, &format!("/v1/groups/{sub}")).await,
        204,
        "delete empty subgroup",
    )
    .await;
    expect(
        delete(&app, token, &format!("/v1/groups/{with_sub}")).await,
        204,
        "delete emptied group",
    )
    .await;
    expect(
        delete(&app, token, &format!("/v1/rooms/{room}")).await,
        204,
        "delete room",
    )
    .await;
    expect(
        delete(&app, token, &format!("/v1/groups/{with_room}")).await,
        204,
        "delete emptied group",
    )
    .await;
    assert_problem(
        app.get(&format!("/v1/groups/{with_sub}"), Some(token))
            .await,
        404,
        "not_found",
    )
    .await;
    assert!(outline(&tree(&app, &owner, community).await).is_empty());
}

// ---------------------------------------------------------------------------------------------
// Joining, invites, kicks and bans.

#[tokio::test]
async fn joining_a_public_community_is_idempotent_and_a_private_one_is_invisible() {
    let app = spawn_app().await;
    let owner = app.register("owner").await;
    let joiner = app.register("joiner").await;
    let public = create_community(&app, &owner, "Open", "public").await;
    let private = create_community(&app, &owner, "Closed", "private").await;
    let join = |id: Uuid| format!("/v1/communities/{id}/join");

    let first = expect(
        app.post(&join(public), Some(&joiner.access_token), json!({}))
            .await,
        200,
        "join",
    )
    .await;
    let again = expect(
        app.post(&join(public), Some(&joiner.access_token), json!({}))
            .await,
        200,
        "join again",
    )
    .await;

    assert_eq!(first["member_count"], 2);
    assert_eq!(again["member_count"], 2, "joining twice is one membership");
    let mut members = member_ids(&app, &owner, public).await;
    members.sort();
    let mut expected = vec![owner.user_id, joiner.user_id];
    expected.sort();
    assert_eq!(members, expected);
    assert_eq!(my_community_ids(&app, &joiner).await, [public]);

    let refused = app
        .post(&join(private), Some(&joiner.access_token), json!({}))
        .await;
    assert_problem(refused, 404, "not_found").await;
    assert_eq!(member_ids(&app, &owner, private).await, [owner.user_id]);
}

#[tokio::test]
async fn an_invite_with_one_use_admits_exactly_one_user() {
    let app = spawn_app().await;
    let owner = app.register("owner").await;
    let first = app.register("first").await;
    let second = app.register("second").await;
    let community = create_community(&app, &owner, "Closed", "private").await;
    let invites = format!("/v1/communities/{community}/invites");
    let invite = expect(
        app.post(&invites, Some(&owner.access_token), json!({"max_uses": 1}))
            .await,
        201,
        "invite",
    )
    .await;
    assert_eq!(invite["max_uses"], 1);
    assert_eq!(invite["uses"], 0);
    let code = invite["code"].as_str().unwrap();

    let admitted = expect(accept(&app, &first, code).await, 200, "first accept").await;
    let used_up = accept(&app, &second, code).await;

    assert_eq!(admitted["member_count"], 2);
    let used_up = used_up.bytes().await.unwrap();
    let unknown = accept(&app, &second, "no-such-code").await;
    assert_eq!(unknown.status(), 404);
    assert_eq!(
        used_up,
        unknown.bytes().await.unwrap(),
        "a used-up code looks like an unknown one"
    );
    assert_problem(
        app.get(
            &format!("/v1/communities/{community}"),
            Some(&second.access_token),
        )
        .await,
        404,
        "not_found",
    )
    .await;
    assert_invalid(
        app.post(&invites, Some(&owner.access_token), json!({"max_uses": 0}))
            .await,
        &["max_uses"],
    )
    .await;
    assert_invalid(
        app.post(
            &invites,
            Some(&owner.access_token),
            json!({"expires_in_s": 0}),
        )
        .await,
        &["expires_in_s"],
    )
    .await;
}

#[tokio::test]
async fn an_expired_invite_is_not_found() {
    let app = spawn_app().await;
    let owner = app.register("owner").await;
    let late = app.register("late").await;
    let community = create_community(&app, &owner, "Closed", "private").await;
    let invites = format!("/v1/communities/{community}/invites");
    let invite = expect(
        app.post(
            &invites,
            Some(&owner.access_token),
            json!({"expires_in_s": 1}),
        )
        .await,
        201,
        "invite",
    )
    .await;
    assert!(invite["expires_at"].is_string(), "{invite}");
    let code = invite["code"].as_str().unwrap();
    let db = app.db().await;
    let expire = Statement::from_sql_and_values(
        db.get_database_backend(),
        "UPDATE invites SET expires_at = now() - interval '1 minute' WHERE code = $1",
        [code.into()],
    );
    assert_eq!(db.execute_raw(expire).await.unwrap().rows_affected(), 1);

    let response = accept(&app, &late, code).await;

    assert_eq!(response.status(), 404);
    let unknown = accept(&app, &late, "no-such-code").await;
    assert_eq!(
        response.bytes().await.unwrap(),
        unknown.bytes().await.unwrap(),
        "an expired code looks like an unknown one"
    );
    assert_eq!(member_ids(&app, &owner, community).await, [owner.user_id]);
}

#[tokio::test]
async fn accepting_an_invite_as_a_member_does_not_spend_a_use() {
    let app = spawn_app().await;
    let owner = app.register("owner").await;
    let member = app.register("member").await;
    let newcomer = app.register("newcomer").await;
    let latecomer = app.register("latecomer").await;
    let community = create_community(&app, &owner, "Closed", "private").await;
    admit(&app, &owner, community, &[&member]).await;
    let code = create_invite(&app, &owner.access_token, community, json!({"max_uses": 1})).await;

    let as_member = expect(accept(&app, &member, &code).await, 200, "member accepts").await;
    let as_owner = expect(accept(&app, &owner, &code).await, 200, "owner accepts").await;

    assert_eq!(as_member["member_count"], 2);
    assert_eq!(as_owner["member_count"], 2);
    let admitted = expect(
        accept(&app, &newcomer, &code).await,
        200,
        "the one use is still there",
    )
    .await;
    assert_eq!(admitted["member_count"], 3);
    assert_problem(accept(&app, &latecomer, &code).await, 404, "not_found").await;
}

#[tokio::test]
async fn a_kicked_member_loses_membership_and_role_grants() {
    let app = spawn_app().await;
    let owner = app.register("owner").await;
    let member = app.register("member").await;
    let bystander = app.register("bystander").await;
    let community = create_community(&app, &owner, "Closed", "private").await;
    let code = create_invite(&app, &owner.access_token, community, json!({})).await;
    for user in [&member, &bystander] {
        expect(accept(&app, user, &code).await, 200, "accept").await;
    }
    let token = owner.access_token.as_str();
    let planner = create_role(
        &app,
        token,
        community,
        "planner",
        &["view", "create_events"],
    )
    .await;
    let group = create_group(&app, token, community, "g", None).await;
    grant(
        &app,
        token,
        &format!("communities/{community}"),
        member.user_id,
        planner,
    )
    .await;
    grant(
        &app,
        token,
        &format!("groups/{group}"),
        member.user_id,
        planner,
    )
    .await;
    assert!(
        perms_at(&app, &member, &format!("groups/{group}"))
            .await
            .contains(&"create_events".into())
    );
    let kick = format!("/v1/communities/{community}/members/{}", member.user_id);
    assert_problem(
        delete(&app, &bystander.access_token, &kick).await,
        403,
        "forbidden",
    )
    .await;
    let kick_owner = format!("/v1/communities/{community}/members/{}", owner.user_id);
    assert_problem(delete(&app, token, &kick_owner).await, 409, "conflict").await;

    expect(delete(&app, token, &kick).await, 204, "kick").await;

    assert!(
        !member_ids(&app, &owner, community)
            .await
            .contains(&member.user_id)
    );
    assert_problem(
        app.get(
            &format!("/v1/communities/{community}"),
            Some(&member.access_token),
        )
        .await,
        404,
        "not_found",
    )
    .await;
    assert!(my_community_ids(&app, &member).await.is_empty());
    assert_problem(delete(&app, token, &kick).await, 404, "not_found").await;
    // Back through the invite: a plain member again, the old grants are gone.
    expect(accept(&app, &member, &code).await, 200, "rejoin").await;
    for scope in [
        format!("communities/{community}"),
        format!("groups/{group}"),
    ] {
        let perms = perms_at(&app, &member, &scope).await;
        assert_eq!(perms, perms_at(&app, &bystander, &scope).await, "{scope}");
        assert!(
            !perms.contains(&"create_events".into()),
            "{scope}: {perms:?}"
        );
    }
}

#[tokio::test]
async fn a_banned_user_cannot_rejoin_until_unbanned() {
    let app = spawn_app().await;
    let owner = app.register("owner").await;
    let troll = app.register("troll").await;
    let community = create_community(&app, &owner, "Open", "public").await;
    let join = format!("/v1/communities/{community}/join");
    expect(
        app.post(&join, Some(&troll.access_token), json!({})).await,
        200,
        "join",
    )
    .await;
    let code = create_invite(&app, &owner.access_token, community, json!({})).await;
    let ban = format!("/v1/communities/{community}/bans/{}", troll.user_id);

    let banned = app
        .request(
            Method::PUT,
            &ban,
            Some(&owner.access_token),
            Some(json!({"reason": "spam"})),
        )
        .await;

    expect(banned, 204, "ban").await;
    assert_eq!(member_ids(&app, &owner, community).await, [owner.user_id]);
    assert!(my_community_ids(&app, &troll).await.is_empty());
    // The user knows they were banned: both ways back in say so (403), not "no such community".
    assert_problem(
        app.post(&join, Some(&troll.access_token), json!({})).await,
        403,
        "forbidden",
    )
    .await;
    assert_problem(accept(&app, &troll, &code).await, 403, "forbidden").await;
    assert_eq!(
        member_ids(&app, &owner, community).await,
        [owner.user_id],
        "still out"
    );

    expect(delete(&app, &owner.access_token, &ban).await, 204, "unban").await;
    assert_problem(
        delete(&app, &owner.access_token, &ban).await,
        404,
        "not_found",
    )
    .await;
    let rejoined = expect(
        app.post(&join, Some(&troll.access_token), json!({})).await,
        200,
        "rejoin",
    )
    .await;
    assert_eq!(rejoined["member_count"], 2);
}

#[tokio::test]
async fn a_banned_user_cannot_use_an_invite_to_a_private_community() {
    let app = spawn_app().await;
    let owner = app.register("owner").await;
    let troll = app.register("troll").await;
    let community = create_community(&app, &owner, "Closed", "private").await;
    let code = create_invite(&app, &owner.access_token, community, json!({"max_uses": 5})).await;
    expect(accept(&app, &troll, &code).await, 200, "accept").await;
    let ban = format!("/v1/communities/{community}/bans/{}", troll.user_id);
    expect(
        put(&app, &owner.access_token, &ban).await,
        204,
        "ban without a reason",
    )
    .await;

    assert_problem(accept(&app, &troll, &code).await, 403, "forbidden").await;

    assert_problem(
        app.get(
            &format!("/v1/communities/{community}"),
            Some(&troll.access_token),
        )
        .await,
        404,
        "not_found",
    )
    .await;
    expect(delete(&app, &owner.access_token, &ban).await, 204, "unban").await;
    let back = expect(accept(&app, &troll, &code).await, 200, "accept after unban").await;
    assert_eq!(back["member_count"], 2);
}

// ---------------------------------------------------------------------------------------------
// Private rooms and DMs.

#[tokio::test]
async fn private_room_members_are_community_members_added_by_a_manager() {
    let app = spawn_app().await;
    let owner = app.register("owner").await;
    let member = app.register("member").await;
    let other = app.register("other").await;
    let outsider = app.register("outsider").await;
    let community = create_community(&app, &owner, "Guild", "private").await;
    admit(&app, &owner, community, &[&member, &other]).await;
    let token = owner.access_token.as_str();
    let secret = create_room(&app, token, community, "secret", None, true).await;
    let general = create_room(&app, token, community, "general", None, false).await;
    let in_secret = |user: &Session| format!("/v1/rooms/{secret}/members/{}", user.user_id);

    assert_invalid(put(&app, token, &in_secret(&outsider)).await, &["user_id"]).await;
    let public_room = format!("/v1/rooms/{general}/members/{}", member.user_id);
    assert_invalid(put(&app, token, &public_room).await, &["room_id"]).await;
    assert_invalid(delete(&app, token, &public_room).await, &["room_id"]).await;
    assert_problem(
        put(&app, &other.access_token, &in_secret(&other)).await,
        404,
        "not_found",
    )
    .await;

    expect(
        put(&app, token, &in_secret(&member)).await,
        204,
        "add member",
    )
    .await;
    expect(
        app.get(&format!("/v1/rooms/{secret}"), Some(&member.access_token))
            .await,
        200,
        "member sees the room",
    )
    .await;
    assert_problem(
        put(&app, &member.access_token, &in_secret(&other)).await,
        403,
        "forbidden",
    )
    .await;
    assert_problem(
        delete(&app, token, &in_secret(&other)).await,
        404,
        "not_found",
    )
    .await;

    expect(
        delete(&app, &member.access_token, &in_secret(&member)).await,
        204,
        "leave",
    )
    .await;
    assert_problem(
        app.get(&format!("/v1/rooms/{secret}"), Some(&member.access_token))
            .await,
        404,
        "not_found",
    )
    .await;
    expect(
        app.get(&format!("/v1/rooms/{secret}"), Some(token)).await,
        200,
        "the owner still sees it",
    )
    .await;
}

#[tokio::test]
async fn a_dm_is_one_room_per_set_of_users_and_visible_to_them_only() {
    let app = spawn_app().await;
    let ann = app.register("ann").await;
    let ben = app.register("ben").await;
    let cat = app.register("cat").await;
    let dan = app.register("dan").await;
    let loner = app.register("loner").await;
    let community = create_community(&app, &ann, "Friends", "private").await;
    admit(&app, &ann, community, &[&ben, &cat, &dan]).await;

    let created = expect(open_dm(&app, &ann, &[&ben, &cat]).await, 201, "new dm").await;
    let reopened = expect(
        open_dm(&app, &ben, &[&cat, &ann]).await,
        200,
        "same set, other order",
    )
    .await;
    let with_self = expect(
        open_dm(&app, &cat, &[&ann, &cat, &ben, &ben]).await,
        200,
        "caller and duplicates included",
    )
    .await;

    let dm = id_of(&created);
    assert_eq!(created["kind"], "dm");
    assert_eq!(id_of(&reopened), dm);
    assert_eq!(id_of(&with_self), dm);
    let pair = expect(open_dm(&app, &ann, &[&ben]).await, 201, "another set").await;
    assert_ne!(id_of(&pair), dm);
    let seen = expect(
        app.get(&format!("/v1/rooms/{dm}"), Some(&cat.access_token))
            .await,
        200,
        "member reads the dm",
    )
    .await;
    let mut members: Vec<Uuid> = seen["member_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap().parse().unwrap())
        .collect();
    members.sort();
    let mut expected = vec![ann.user_id, ben.user_id, cat.user_id];
    expected.sort();
    assert_eq!(members, expected);
    for stranger in [&dan, &loner] {
        assert_problem(
            app.get(&format!("/v1/rooms/{dm}"), Some(&stranger.access_token))
                .await,
            404,
            "not_found",
        )
        .await;
    }
    assert_invalid(open_dm(&app, &ann, &[&loner]).await, &["user_ids"]).await;
    assert_invalid(open_dm(&app, &ann, &[&ben, &loner]).await, &["user_ids"]).await;
    assert_invalid(open_dm(&app, &ann, &[&ann]).await, &["user_ids"]).await;
    assert_invalid(open_dm(&app, &ann, &[]).await, &["user_ids"]).await;
}

async fn open_dm(app: &TestApp, user: &Session, others: &[&Session]) -> Response {
    let ids: Vec<Uuid> = others.iter().map(|s| s.user_id).collect();
    app.post(
        "/v1/dms",
        Some(&user.access_token),
        json!({"user_ids": ids}),
    )
    .await
}

// ---------------------------------------------------------------------------------------------
// Deleting.

#[tokio::test]
async fn only_an_owner_can_delete_a_community() {
    let app = spawn_app().await;
    let owner = app.register("owner").await;
    let admin = app.register("admin").await;
    let member = app.register("member").await;
    let outsider = app.register("outsider").await;
    let community = create_community(&app, &owner, "Doomed", "private").await;
    admit(&app, &owner, community, &[&admin, &member]).await;
    let admin_role = builtin_role(&app, &owner.access_token, community, "admin").await;
    grant(
        &app,
        &owner.access_token,
        &format!("communities/{community}"),
        admin.user_id,
        admin_role,
    )
    .await;
    let group = create_group(&app, &owner.access_token, community, "g", None).await;
    let path = format!("/v1/communities/{community}");

    assert_problem(
        delete(&app, &admin.access_token, &path).await,
        403,
        "forbidden",
    )
    .await;
    assert_problem(
        delete(&app, &member.access_token, &path).await,
        403,
        "forbidden",
    )
    .await;
    assert_problem(
        delete(&app, &outsider.access_token, &path).await,
        404,
        "not_found",
    )
    .await;
    expect(
        app.get(&path, Some(&owner.access_token)).await,
        200,
        "still there",
    )
    .await;

    expect(
        delete(&app, &owner.access_token, &path).await,
        204,
        "owner deletes",
    )
    .await;

    for user in [&owner, &admin, &member] {
        assert_problem(
            app.get(&path, Some(&user.access_token)).await,
            404,
            "not_found",
        )
        .await;
        assert!(my_community_ids(&app, user).await.is_empty());
    }
    assert_problem(
        app.get(&format!("/v1/groups/{group}"), Some(&owner.access_token))
            .await,
        404,
        "not_found",
    )
    .await;
}
