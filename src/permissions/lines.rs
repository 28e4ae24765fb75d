//! Compiles a community's roles, grants and overrides into Casbin policy lines, in the order the
//! model's `priority(p.eft) || deny` effect needs (first matching line decides):
//! owner lines first; then per scope, deepest first: user deny, user allow, role deny, role
//! allow; the public-visitor lines last. Pure: no database.
//!
//! `p = sub, scope, gscope, perm, eft, kind` (see model.conf); `g = user, role, scope` (a grant).
//! Names carry a kind prefix (`u:`, `r:`, `s:`) because Casbin's `g` namespace is shared.

use std::collections::{BTreeSet, HashMap};

use uuid::Uuid;

use super::catalogue::{PermSet, visitor_permissions};

pub const NO_SCOPE: &str = "-";

/// One Casbin line: `ptype` and up to six values.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Line {
    pub ptype: String,
    pub values: Vec<String>,
}

impl Line {
    fn p(values: [String; 6]) -> Self {
        Self {
            ptype: "p".into(),
            values: values.into(),
        }
    }

    pub fn g(user: Uuid, role: Uuid, scope: Uuid) -> Self {
        Self {
            ptype: "g".into(),
            values: vec![user_name(user), role_name(role), scope_name(scope)],
        }
    }
}

pub fn user_name(id: Uuid) -> String {
    format!("u:{id}")
}
pub fn role_name(id: Uuid) -> String {
    format!("r:{id}")
}
pub fn scope_name(id: Uuid) -> String {
    format!("s:{id}")
}

/// A request path for the model: `|s:<community>|s:<group>|...|s:<target>|`.
pub fn path_string(path: &[Uuid]) -> String {
    let mut out = String::from("|");
    for id in path {
        out.push_str(&scope_name(*id));
        out.push('|');
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Grant {
    pub user: Uuid,
    pub role: Uuid,
    pub scope: Uuid,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Subject {
    Role(Uuid),
    User(Uuid),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Override {
    pub scope: Uuid,
    pub subject: Subject,
    pub allow: PermSet,
    pub deny: PermSet,
}

/// Everything that decides permissions in one community, except membership (whose `g` lines a
/// trigger keeps: member role at the community).
#[derive(Debug, Clone)]
pub struct PolicySnapshot {
    pub community_id: Uuid,
    pub public: bool,
    pub owner_role: Uuid,
    pub member_role: Uuid,
    /// Permission sets of every role but owner.
    pub roles: HashMap<Uuid, PermSet>,
    pub grants: Vec<Grant>,
    pub overrides: Vec<Override>,
    /// Depth of every scope: community 0, a top-level group 1, a room one below its parent.
    pub depths: HashMap<Uuid, u32>,
}

/// Evaluation rank inside one scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Rank {
    UserDeny,
    UserAllow,
    RoleDeny,
    RoleAllow,
}

pub fn compile(snapshot: &PolicySnapshot) -> Vec<Line> {
    let community = scope_name(snapshot.community_id);
    let mut lines = vec![Line::p([
        role_name(snapshot.owner_role),
        community.clone(),
        community.clone(),
        "*".into(),
        "allow".into(),
        "owner".into(),
    ])];
    let mut ranked: Vec<(u32, Rank, Line)> = Vec::new();
    let grant_scopes = grant_scopes(snapshot);
    for (role, scopes) in &grant_scopes {
        let perms = snapshot.roles.get(role).copied().unwrap_or_default();
        for scope in scopes {
            push_perms(
                &mut ranked,
                snapshot,
                *scope,
                role_line(*role, *scope, *scope),
                perms,
                Rank::RoleAllow,
            );
        }
    }
    for o in &snapshot.overrides {
        match o.subject {
            Subject::User(user) => {
                let line = |eft: &str| {
                    [
                        user_name(user),
                        scope_name(o.scope),
                        NO_SCOPE.into(),
                        String::new(),
                        eft.into(),
                        "user".into(),
                    ]
                };
                push_perms(
                    &mut ranked,
                    snapshot,
                    o.scope,
                    line("deny"),
                    o.deny,
                    Rank::UserDeny,
                );
                push_perms(
                    &mut ranked,
                    snapshot,
                    o.scope,
                    line("allow"),
                    o.allow,
                    Rank::UserAllow,
                );
            }
            Subject::Role(role) => {
                for gscope in grant_scopes.get(&role).into_iter().flatten() {
                    let mut line = role_line(role, o.scope, *gscope);
                    line[4] = "deny".into();
                    push_perms(
                        &mut ranked,
                        snapshot,
                        o.scope,
                        line.clone(),
                        o.deny,
                        Rank::RoleDeny,
                    );
                    line[4] = "allow".into();
                    push_perms(
                        &mut ranked,
                        snapshot,
                        o.scope,
                        line,
                        o.allow,
                        Rank::RoleAllow,
                    );
                }
            }
        }
    }
    // Deepest scope first, then rank; the sort is stable so equal keys keep insertion order.
    ranked.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    lines.extend(ranked.into_iter().map(|(_, _, line)| line));
    if snapshot.public {
        for perm in visitor_permissions().iter() {
            lines.push(Line::p([
                "*".into(),
                community.clone(),
                NO_SCOPE.into(),
                perm.name().into(),
                "allow".into(),
                "public".into(),
            ]));
        }
    }
    let mut grants: Vec<&Grant> = snapshot.grants.iter().collect();
    grants.sort();
    lines.extend(grants.into_iter().map(|g| Line::g(g.user, g.role, g.scope)));
    lines
}

/// Scopes at which each role is granted; the member role always at the community (membership).
fn grant_scopes(snapshot: &PolicySnapshot) -> HashMap<Uuid, BTreeSet<Uuid>> {
    let mut scopes: HashMap<Uuid, BTreeSet<Uuid>> = HashMap::new();
    scopes
        .entry(snapshot.member_role)
        .or_default()
        .insert(snapshot.community_id);
    for grant in &snapshot.grants {
        if grant.role != snapshot.owner_role {
            scopes.entry(grant.role).or_default().insert(grant.scope);
        }
    }
    scopes
}

fn role_line(role: Uuid, scope: Uuid, gscope: Uuid) -> [String; 6] {
    [
        role_name(role),
        scope_name(scope),
        scope_name(gscope),
        String::new(),
        "allow".into(),
        "role".into(),
    ]
}

fn push_perms(
    ranked: &mut Vec<(u32, Rank, Line)>,
    snapshot: &PolicySnapshot,
    scope: Uuid,
    template: [String; 6],
    perms: PermSet,
    rank: Rank,
) {
    let depth = snapshot.depths.get(&scope).copied().unwrap_or(0);
    for perm in perms.iter() {
        let mut values = template.clone();
        values[3] = perm.name().into();
        ranked.push((depth, rank, Line::p(values)));
    }
}
