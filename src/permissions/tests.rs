//! Unit tests of the pure engine: compiled lines, index and Casbin agree.

use std::collections::HashMap;

use uuid::Uuid;

use super::catalogue::{Builtin, Perm, PermSet};
use super::engine;
use super::index::CommunityIndex;
use super::lines::{Grant, Line, Override, PolicySnapshot, Subject, compile};

pub fn snapshot(community: Uuid) -> PolicySnapshot {
    let (owner, member) = (Uuid::now_v7(), Uuid::now_v7());
    PolicySnapshot {
        community_id: community,
        public: false,
        owner_role: owner,
        member_role: member,
        roles: HashMap::from([(member, Builtin::Member.default_permissions())]),
        grants: Vec::new(),
        overrides: Vec::new(),
        depths: HashMap::from([(community, 0)]),
    }
}

fn with_members(mut lines: Vec<Line>, snapshot: &PolicySnapshot, members: &[Uuid]) -> Vec<Line> {
    lines.extend(
        members
            .iter()
            .map(|u| Line::g(*u, snapshot.member_role, snapshot.community_id)),
    );
    lines
}

#[tokio::test]
async fn member_role_at_community_reaches_a_room_in_casbin_and_index() {
    let community = Uuid::now_v7();
    let (group, room, user) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    let mut snap = snapshot(community);
    snap.depths.insert(group, 1);
    snap.depths.insert(room, 2);
    let lines = with_members(compile(&snap), &snap, &[user]);
    let enforcer = engine::from_lines(&lines).await.unwrap();
    let index = CommunityIndex::compile(&lines);
    let path = [community, group, room];
    for perm in Perm::ALL {
        let casbin = engine::decide(&enforcer, user, &path, *perm).unwrap();
        let ours = index.effective(user, &path).contains(*perm);
        assert_eq!(casbin, ours, "{perm:?}");
    }
    assert!(index.effective(user, &path).contains(Perm::SendMessages));
}

#[tokio::test]
async fn room_level_role_deny_beats_community_allow_and_user_allow_beats_both() {
    let community = Uuid::now_v7();
    let (room, alice, bob) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    let mut snap = snapshot(community);
    snap.depths.insert(room, 1);
    let send = PermSet::of(&[Perm::SendMessages]);
    snap.overrides.push(Override {
        scope: room,
        subject: Subject::Role(snap.member_role),
        allow: PermSet::EMPTY,
        deny: send,
    });
    snap.overrides.push(Override {
        scope: room,
        subject: Subject::User(bob),
        allow: send,
        deny: PermSet::EMPTY,
    });
    let lines = with_members(compile(&snap), &snap, &[alice, bob]);
    let enforcer = engine::from_lines(&lines).await.unwrap();
    let index = CommunityIndex::compile(&lines);
    let path = [community, room];
    assert!(!engine::decide(&enforcer, alice, &path, Perm::SendMessages).unwrap());
    assert!(engine::decide(&enforcer, bob, &path, Perm::SendMessages).unwrap());
    assert!(!index.effective(alice, &path).contains(Perm::SendMessages));
    assert!(index.effective(bob, &path).contains(Perm::SendMessages));
    let _ = Grant {
        user: alice,
        role: snap.member_role,
        scope: community,
    };
}
