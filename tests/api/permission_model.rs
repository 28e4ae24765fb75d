//! Property tests of the permission engine (pure, no database): random communities, a naive
//! reference evaluator written straight from the documented semantics, the check index and
//! Casbin itself must give the same answer to every (user, target, permission) question.
//!
//! The reference works on the generated model (roles, grants, overrides), never on Casbin
//! lines, so a mistake in `lines::compile` shows up as well as one in the index or the model.
//! Gates (bans, private rooms, DMs) live in the service and are not part of these tests.
//! Seeds are fixed: a failure prints the seed and the whole case, and reproduces.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt::Write as _;
use std::time::Instant;

use casbin::Enforcer;
use guildhall::permissions::catalogue::{Builtin, Perm, PermSet};
use guildhall::permissions::engine;
use guildhall::permissions::index::CommunityIndex;
use guildhall::permissions::lines::{self, Grant, Line, Override, PolicySnapshot, Subject};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use uuid::Uuid;

/// Groups nest at most this deep (a top-level group is depth 1); rooms sit one below.
const MAX_GROUP_DEPTH: u32 = 4;

/// Upper bounds for one random community.
#[derive(Debug, Clone, Copy)]
struct Size {
    groups: usize,
    rooms: usize,
    members: usize,
    non_members: usize,
    custom_roles: usize,
    grants: usize,
    overrides: usize,
}

const SMALL: Size = Size {
    groups: 6,
    rooms: 6,
    members: 6,
    non_members: 2,
    custom_roles: 3,
    grants: 8,
    overrides: 10,
};

const LARGE: Size = Size {
    groups: 25,
    rooms: 35,
    members: 50,
    non_members: 5,
    custom_roles: 4,
    grants: 8,
    overrides: 10,
};

#[derive(Debug)]
struct Scope {
    id: Uuid,
    /// Index of the parent in `Model::scopes`; `None` = directly under the community.
    parent: Option<usize>,
    room: bool,
    depth: u32,
}

#[derive(Debug)]
struct Role {
    id: Uuid,
    name: String,
    perms: PermSet,
}

/// One random community as the product would hold it.
#[derive(Debug)]
struct Model {
    seed: u64,
    community: Uuid,
    public: bool,
    scopes: Vec<Scope>,
    owner_role: Uuid,
    member_role: Uuid,
    /// Every role but owner (admin, moderator, member, custom roles).
    roles: Vec<Role>,
    members: Vec<Uuid>,
    non_members: Vec<Uuid>,
    /// Explicit grants (owner grants included); membership is implicit.
    grants: Vec<Grant>,
    overrides: Vec<Override>,
}

fn fresh_id(rng: &mut StdRng) -> Uuid {
    Uuid::from_u128(rng.random())
}

fn random_perms(rng: &mut StdRng, p: f64) -> PermSet {
    Perm::ALL
        .iter()
        .filter(|_| rng.random_bool(p))
        .fold(PermSet::EMPTY, |set, perm| set.union(PermSet::of(&[*perm])))
}

/// Disjoint allow and deny sets, each permission allowed, denied or left alone.
fn random_allow_deny(rng: &mut StdRng) -> (PermSet, PermSet) {
    let (mut allow, mut deny) = (PermSet::EMPTY, PermSet::EMPTY);
    for perm in Perm::ALL {
        match rng.random_range(0..10) {
            0 | 1 => allow = allow.union(PermSet::of(&[*perm])),
            2 | 3 => deny = deny.union(PermSet::of(&[*perm])),
            _ => {}
        }
    }
    (allow, deny)
}

impl Model {
    fn generate(seed: u64, size: Size) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let community = fresh_id(&mut rng);
        let public = rng.random_bool(0.5);

        let mut scopes: Vec<Scope> = Vec::new();
        for _ in 0..rng.random_range(0..=size.groups) {
            let parents: Vec<Option<usize>> = std::iter::once(None)
                .chain(
                    (0..scopes.len())
                        .filter(|i| scopes[*i].depth < MAX_GROUP_DEPTH)
                        .map(Some),
                )
                .collect();
            let parent = *parents.choose(&mut rng).unwrap();
            let depth = parent.map_or(0, |p| scopes[p].depth) + 1;
            scopes.push(Scope {
                id: fresh_id(&mut rng),
                parent,
                room: false,
                depth,
            });
        }
        let groups = scopes.len();
        for _ in 0..rng.random_range(1..=size.rooms) {
            let parent = rng.random_range(0..=groups).checked_sub(1);
            let depth = parent.map_or(0, |p| scopes[p].depth) + 1;
            scopes.push(Scope {
                id: fresh_id(&mut rng),
                parent,
                room: true,
                depth,
            });
        }

        let owner_role = fresh_id(&mut rng);
        let member_perms = if rng.random_bool(0.3) {
            random_perms(&mut rng, 0.4)
        } else {
            Builtin::Member.default_permissions()
        };
        let mut roles = vec![
            Role {
                id: fresh_id(&mut rng),
                name: "admin".into(),
                perms: Builtin::Admin.default_permissions(),
            },
            Role {
                id: fresh_id(&mut rng),
                name: "moderator".into(),
                perms: Builtin::Moderator.default_permissions(),
            },
            Role {
                id: fresh_id(&mut rng),
                name: "member".into(),
                perms: member_perms,
            },
        ];
        let member_role = roles[2].id;
        for i in 0..rng.random_range(0..=size.custom_roles) {
            let perms = random_perms(&mut rng, 0.3);
            roles.push(Role {
                id: fresh_id(&mut rng),
                name: format!("custom{i}"),
                perms,
            });
        }

        let members: Vec<Uuid> = (0..rng.random_range(2..=size.members))
            .map(|_| fresh_id(&mut rng))
            .collect();
        let non_members: Vec<Uuid> = (0..rng.random_range(1..=size.non_members))
            .map(|_| fresh_id(&mut rng))
            .collect();

        let mut grants = BTreeSet::new();
        grants.insert(Grant {
            user: members[0],
            role: owner_role,
            scope: community,
        });
        if rng.random_bool(0.3) {
            let user = *members.choose(&mut rng).unwrap();
            grants.insert(Grant {
                user,
                role: owner_role,
                scope: community,
            });
        }
        // Grantable elsewhere: admin, moderator and custom roles (member is implicit, owner only at
        // the community).
        let grantable: Vec<Uuid> = roles
            .iter()
            .filter(|r| r.id != member_role)
            .map(|r| r.id)
            .collect();
        let all_scopes: Vec<Uuid> = std::iter::once(community)
            .chain(scopes.iter().map(|s| s.id))
            .collect();
        for _ in 0..rng.random_range(0..=size.grants) {
            grants.insert(Grant {
                user: *members.choose(&mut rng).unwrap(),
                role: *grantable.choose(&mut rng).unwrap(),
                scope: *all_scopes.choose(&mut rng).unwrap(),
            });
        }

        let mut overrides = Vec::new();
        let mut taken = HashSet::new();
        let override_roles: Vec<Uuid> = std::iter::once(owner_role)
            .chain(roles.iter().map(|r| r.id))
            .collect();
        for _ in 0..rng.random_range(0..=size.overrides) {
            let scope = *all_scopes.choose(&mut rng).unwrap();
            let subject = match rng.random_range(0..10) {
                0..5 => Subject::Role(*override_roles.choose(&mut rng).unwrap()),
                5..9 => Subject::User(*members.choose(&mut rng).unwrap()),
                _ => Subject::User(*non_members.choose(&mut rng).unwrap()),
            };
            // One override per (scope, subject), as the product stores them.
            if !taken.insert((scope, subject)) {
                continue;
            }
            let (allow, deny) = random_allow_deny(&mut rng);
            overrides.push(Override {
                scope,
                subject,
                allow,
                deny,
            });
        }

        Self {
            seed,
            community,
            public,
            scopes,
            owner_role,
            member_role,
            roles,
            members,
            non_members,
            grants: grants.into_iter().collect(),
            overrides,
        }
    }

    fn snapshot(&self) -> PolicySnapshot {
        let depths =
            std::iter::once((self.community, 0)).chain(self.scopes.iter().map(|s| (s.id, s.depth)));
        PolicySnapshot {
            community_id: self.community,
            public: self.public,
            owner_role: self.owner_role,
            member_role: self.member_role,
            roles: self.roles.iter().map(|r| (r.id, r.perms)).collect(),
            grants: self.grants.clone(),
            overrides: self.overrides.clone(),
            depths: depths.collect(),
        }
    }

    /// Compiled lines plus the membership `g` lines the database trigger keeps.
    fn lines(&self) -> Vec<Line> {
        let snapshot = self.snapshot();
        let mut lines = lines::compile(&snapshot);
        lines.extend(
            self.members
                .iter()
                .map(|m| Line::g(*m, self.member_role, self.community)),
        );
        lines
    }

    /// Every scope a question can target: `None` = the community, `Some(i)` = `scopes[i]`.
    fn targets(&self) -> Vec<Option<usize>> {
        std::iter::once(None)
            .chain((0..self.scopes.len()).map(Some))
            .collect()
    }

    /// Scope ids from the community down to the target.
    fn path(&self, target: Option<usize>) -> Vec<Uuid> {
        let mut path = Vec::new();
        let mut at = target;
        while let Some(i) = at {
            path.push(self.scopes[i].id);
            at = self.scopes[i].parent;
        }
        path.push(self.community);
        path.reverse();
        path
    }

    fn users(&self) -> Vec<Uuid> {
        self.members
            .iter()
            .chain(&self.non_members)
            .copied()
            .collect()
    }

    /// Users whose answers differ from a plain member's: owners, grantees, user-override subjects.
    fn interesting_users(&self) -> Vec<Uuid> {
        let from_overrides = self.overrides.iter().filter_map(|o| match o.subject {
            Subject::User(u) => Some(u),
            Subject::Role(_) => None,
        });
        let set: BTreeSet<Uuid> = self
            .grants
            .iter()
            .map(|g| g.user)
            .chain(from_overrides)
            .collect();
        set.into_iter().collect()
    }

    fn role_perms(&self, role: Uuid) -> PermSet {
        self.roles
            .iter()
            .find(|r| r.id == role)
            .map_or(PermSet::EMPTY, |r| r.perms)
    }

    /// (role, scope) pairs the user holds: explicit grants plus `member` at the community.
    fn held(&self, user: Uuid) -> Vec<(Uuid, Uuid)> {
        let mut held: Vec<(Uuid, Uuid)> = self
            .grants
            .iter()
            .filter(|g| g.user == user)
            .map(|g| (g.role, g.scope))
            .collect();
        if self.members.contains(&user) {
            held.push((self.member_role, self.community));
        }
        held
    }

    /// The documented semantics, naively: owners have everything; otherwise walk from the
    /// target up to the community and at each level try user deny, user allow, role deny, role
    /// allow (role overrides for roles the user holds at a scope on the path, plus the roles the
    /// user was granted at that very level); first match decides; else the public-visitor
    /// fallback (view, read_history in a public community); else deny.
    fn reference(&self, user: Uuid, path: &[Uuid], perm: Perm) -> bool {
        let held = self.held(user);
        if held.contains(&(self.owner_role, self.community)) {
            return true;
        }
        let holds_on_path = |role: Uuid| held.iter().any(|(r, s)| *r == role && path.contains(s));
        for level in path.iter().rev() {
            let here = || self.overrides.iter().filter(move |o| o.scope == *level);
            if let Some(o) = here().find(|o| o.subject == Subject::User(user)) {
                if o.deny.contains(perm) {
                    return false;
                }
                if o.allow.contains(perm) {
                    return true;
                }
            }
            let role_overrides: Vec<&Override> = here()
                .filter(|o| matches!(o.subject, Subject::Role(r) if holds_on_path(r)))
                .collect();
            if role_overrides.iter().any(|o| o.deny.contains(perm)) {
                return false;
            }
            let override_allows = role_overrides.iter().any(|o| o.allow.contains(perm));
            let grant_allows = held
                .iter()
                .any(|(r, s)| s == level && self.role_perms(*r).contains(perm));
            if override_allows || grant_allows {
                return true;
            }
        }
        self.public && matches!(perm, Perm::View | Perm::ReadHistory)
    }

    fn scope_label(&self, id: Uuid) -> String {
        if id == self.community {
            return "C".into();
        }
        match self.scopes.iter().position(|s| s.id == id) {
            Some(i) if self.scopes[i].room => format!("room{i}"),
            Some(i) => format!("group{i}"),
            None => format!("?{id}"),
        }
    }

    fn user_label(&self, id: Uuid) -> String {
        if let Some(i) = self.members.iter().position(|u| *u == id) {
            format!("member{i}")
        } else if let Some(i) = self.non_members.iter().position(|u| *u == id) {
            format!("visitor{i}")
        } else {
            format!("?{id}")
        }
    }

    fn role_label(&self, id: Uuid) -> String {
        if id == self.owner_role {
            return "owner".into();
        }
        self.roles
            .iter()
            .find(|r| r.id == id)
            .map_or_else(|| format!("?{id}"), |r| r.name.clone())
    }

    /// The whole case in readable form (enough to rebuild it by hand).
    fn describe(&self) -> String {
        let mut out = String::new();
        let public = if self.public { "public" } else { "private" };
        let _ = writeln!(out, "  community C ({public}), seed {}", self.seed);
        for (i, s) in self.scopes.iter().enumerate() {
            let parent = s
                .parent
                .map_or("C".into(), |p| self.scope_label(self.scopes[p].id));
            let _ = writeln!(
                out,
                "  {} under {parent} (depth {})",
                self.scope_label(self.scopes[i].id),
                s.depth
            );
        }
        for r in &self.roles {
            let _ = writeln!(out, "  role {} = {:?}", r.name, r.perms.names());
        }
        let _ = writeln!(
            out,
            "  members 0..{}, visitors 0..{}",
            self.members.len(),
            self.non_members.len()
        );
        for g in &self.grants {
            let (u, r, s) = (
                self.user_label(g.user),
                self.role_label(g.role),
                self.scope_label(g.scope),
            );
            let _ = writeln!(out, "  grant {r} to {u} at {s}");
        }
        for o in &self.overrides {
            let subject = match o.subject {
                Subject::Role(r) => format!("role {}", self.role_label(r)),
                Subject::User(u) => format!("user {}", self.user_label(u)),
            };
            let (scope, allow, deny) = (self.scope_label(o.scope), o.allow.names(), o.deny.names());
            let _ = writeln!(
                out,
                "  override at {scope} for {subject}: allow {allow:?} deny {deny:?}"
            );
        }
        out
    }

    fn describe_query(&self, user: Uuid, path: &[Uuid], perm: Perm) -> String {
        let path: Vec<String> = path.iter().map(|s| self.scope_label(*s)).collect();
        format!(
            "may {} use {} at {}?",
            self.user_label(user),
            perm.name(),
            path.join(" > ")
        )
    }
}

/// Mismatches found so far, with the first few described in full.
#[derive(Default)]
struct Mismatches {
    count: usize,
    reports: Vec<String>,
}

impl Mismatches {
    fn record(
        &mut self,
        model: &Model,
        user: Uuid,
        path: &[Uuid],
        perm: Perm,
        answers: &str,
        extra: &str,
    ) {
        self.count += 1;
        if self.reports.len() < 3 {
            let mut report = format!(
                "seed {}: {} -> {answers}\n{}",
                model.seed,
                model.describe_query(user, path, perm),
                model.describe()
            );
            report.push_str(extra);
            self.reports.push(report);
        }
    }

    fn assert_none(&self, what: &str, checked: usize) {
        assert!(
            self.count == 0,
            "{} of {checked} {what} disagreed; first cases:\n{}",
            self.count,
            self.reports.join("\n")
        );
    }
}

fn explain(index: &CommunityIndex, model: &Model, user: Uuid, path: &[Uuid], perm: Perm) -> String {
    let hits: Vec<String> = index
        .explain(user, path, perm)
        .iter()
        .map(|h| {
            format!(
                "{} {} {} at {}",
                h.effect,
                h.kind,
                h.subject,
                model.scope_label(h.scope_id)
            )
        })
        .collect();
    format!("  index rules: {hits:?}\n")
}

async fn enforcer(lines: &[Line]) -> Enforcer {
    engine::from_lines(lines)
        .await
        .expect("Casbin accepts the compiled lines")
}

const COMMUNITIES: u64 = 150;
const CASBIN_QUERIES_PER_COMMUNITY: usize = 40;

#[tokio::test]
async fn reference_index_and_casbin_agree_on_random_communities() {
    let started = Instant::now();
    let mut exhaustive = 0;
    let mut sampled = 0;
    let mut mismatches = Mismatches::default();
    for seed in 0..COMMUNITIES {
        // Arrange
        let seed = 0x5EED_0000 + seed;
        let model = Model::generate(seed, SMALL);
        let lines = model.lines();
        let index = CommunityIndex::compile(&lines);
        let casbin = enforcer(&lines).await;
        let (users, targets) = (model.users(), model.targets());

        // Act + assert, cheap part: reference == index on every (user, target, permission).
        for user in &users {
            for target in &targets {
                let path = model.path(*target);
                let effective = index.effective(*user, &path);
                for perm in Perm::ALL {
                    exhaustive += 1;
                    let (reference, ours) = (
                        model.reference(*user, &path, *perm),
                        effective.contains(*perm),
                    );
                    if reference != ours {
                        let answers = format!("reference {reference}, index {ours}");
                        let extra = explain(&index, &model, *user, &path, *perm);
                        mismatches.record(&model, *user, &path, *perm, &answers, &extra);
                    }
                }
            }
        }

        // Casbin is slow: reference == index == Casbin on a random sample.
        let mut rng = StdRng::seed_from_u64(seed ^ 0xCA5B_1000);
        let interesting = model.interesting_users();
        for _ in 0..CASBIN_QUERIES_PER_COMMUNITY {
            let user = if rng.random_bool(0.7) {
                *interesting.choose(&mut rng).unwrap()
            } else {
                *users.choose(&mut rng).unwrap()
            };
            let path = model.path(*targets.choose(&mut rng).unwrap());
            let perm = *Perm::ALL.choose(&mut rng).unwrap();
            sampled += 1;
            let reference = model.reference(user, &path, perm);
            let ours = index.effective(user, &path).contains(perm);
            let theirs = engine::decide(&casbin, user, &path, perm).unwrap();
            if reference != ours || ours != theirs {
                let answers = format!("reference {reference}, index {ours}, casbin {theirs}");
                let extra = explain(&index, &model, user, &path, perm);
                mismatches.record(&model, user, &path, perm, &answers, &extra);
            }
        }
    }
    println!(
        "{COMMUNITIES} communities: {exhaustive} reference/index and {sampled} reference/index/Casbin checks in {:?}",
        started.elapsed()
    );
    assert!(sampled >= 5_000, "too few three-way checks: {sampled}");
    mismatches.assert_none("(user, target, permission) answers", exhaustive + sampled);
}

const LARGE_COMMUNITIES: u64 = 40;
const LARGE_QUERIES_PER_COMMUNITY: usize = 250;

#[tokio::test]
async fn index_never_drifts_from_casbin_on_larger_communities() {
    let started = Instant::now();
    let mut checked = 0;
    let mut line_total = 0;
    let mut policy_lines = 0;
    let mut allowed = 0;
    let mut mismatches = Mismatches::default();
    for seed in 0..LARGE_COMMUNITIES {
        // Arrange
        let seed = 0x1A26_E000 + seed;
        let model = Model::generate(seed, LARGE);
        let lines = model.lines();
        line_total += lines.len();
        policy_lines += lines.iter().filter(|l| l.ptype == "p").count();
        let index = CommunityIndex::compile(&lines);
        let casbin = enforcer(&lines).await;
        let (users, targets, interesting) =
            (model.users(), model.targets(), model.interesting_users());
        let mut rng = StdRng::seed_from_u64(seed ^ 0xCA5B_2000);

        // Act + assert
        for _ in 0..LARGE_QUERIES_PER_COMMUNITY {
            let user = if rng.random_bool(0.7) {
                *interesting.choose(&mut rng).unwrap()
            } else {
                *users.choose(&mut rng).unwrap()
            };
            let path = model.path(*targets.choose(&mut rng).unwrap());
            let perm = *Perm::ALL.choose(&mut rng).unwrap();
            checked += 1;
            let ours = index.effective(user, &path).contains(perm);
            let theirs = engine::decide(&casbin, user, &path, perm).unwrap();
            allowed += usize::from(theirs);
            if ours != theirs {
                let answers = format!("index {ours}, casbin {theirs}");
                let extra = explain(&index, &model, user, &path, perm);
                mismatches.record(&model, user, &path, perm, &answers, &extra);
            }
        }
    }
    println!(
        "{LARGE_COMMUNITIES} communities, {line_total} lines ({policy_lines} p lines): {checked} index/Casbin checks ({allowed} allowed) in {:?}",
        started.elapsed()
    );
    // Both answers must occur, or the comparison proves little.
    assert!(
        allowed > checked / 10 && allowed < checked * 9 / 10,
        "{allowed} of {checked} allowed"
    );
    mismatches.assert_none("index/Casbin answers", checked);
}

/// The generator itself: the shapes the properties rely on really occur.
#[test]
fn generated_communities_cover_deep_trees_overrides_and_visitors() {
    let models: Vec<Model> = (0..COMMUNITIES)
        .map(|s| Model::generate(0x5EED_0000 + s, SMALL))
        .collect();
    let max_depth = models
        .iter()
        .flat_map(|m| m.scopes.iter().map(|s| s.depth))
        .max();
    assert_eq!(
        max_depth,
        Some(MAX_GROUP_DEPTH + 1),
        "rooms under depth-4 groups"
    );
    assert!(models.iter().any(|m| m.public) && models.iter().any(|m| !m.public));
    let subjects: HashMap<bool, usize> =
        models
            .iter()
            .flat_map(|m| &m.overrides)
            .fold(HashMap::new(), |mut acc, o| {
                *acc.entry(matches!(o.subject, Subject::Role(_)))
                    .or_default() += 1;
                acc
            });
    assert!(
        subjects.get(&true).copied().unwrap_or(0) > 100
            && subjects.get(&false).copied().unwrap_or(0) > 100
    );
    let visitor_overrides = models
        .iter()
        .flat_map(|m| m.overrides.iter().map(move |o| (m, o)))
        .filter(|(m, o)| matches!(o.subject, Subject::User(u) if m.non_members.contains(&u)))
        .count();
    assert!(
        visitor_overrides > 10,
        "user overrides for non-members: {visitor_overrides}"
    );
    for m in &models {
        for o in &m.overrides {
            assert!(
                o.allow.minus(o.deny) == o.allow,
                "allow and deny are disjoint"
            );
        }
    }
}
