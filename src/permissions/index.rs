//! The check index: a community's Casbin lines compiled into hash maps so a decision costs a
//! few lookups per level instead of a scan of every line (casbin 2.20's `enforce`). It answers
//! exactly what the model does for lines in compiled order; a test holds it to Casbin itself.

use std::collections::{HashMap, HashSet};

use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::catalogue::{Perm, PermSet};
use super::lines::Line;

#[derive(Debug, Clone, Copy, Default)]
struct Masks {
    allow: PermSet,
    deny: PermSet,
}

#[derive(Debug, Clone, Copy)]
struct RoleRule {
    role: Uuid,
    /// Where the role must be held for the rule to apply.
    gscope: Uuid,
    masks: Masks,
}

#[derive(Debug, Default)]
pub struct CommunityIndex {
    owner_roles: HashSet<Uuid>,
    holds: HashSet<(Uuid, Uuid, Uuid)>,
    user_rules: HashMap<(Uuid, Uuid), Masks>,
    role_rules: HashMap<Uuid, Vec<RoleRule>>,
    public: HashMap<Uuid, PermSet>,
    pub line_count: usize,
}

/// One rule that matched, in evaluation order.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq, Eq)]
pub struct RuleHit {
    /// The scope the rule is set on.
    pub scope_id: Uuid,
    /// `owner`, `user` (a user override), `role` (a role grant or override), `public`.
    pub kind: &'static str,
    /// `role:<id>`, `user:<id>` or `everyone`.
    pub subject: String,
    /// For role rules: where the user holds the role.
    pub held_at: Option<Uuid>,
    /// `allow` or `deny`.
    pub effect: &'static str,
}

fn parse_id(value: &str, prefix: &str) -> Option<Uuid> {
    value.strip_prefix(prefix)?.parse().ok()
}

fn perm_set(value: &str) -> Option<PermSet> {
    if value == "*" {
        Some(PermSet::ALL)
    } else {
        Perm::parse(value).map(|p| PermSet::of(&[p]))
    }
}

impl CommunityIndex {
    /// Lines that do not parse are skipped and logged: they could not match in Casbin either.
    pub fn compile(lines: &[Line]) -> Self {
        let mut index = Self {
            line_count: lines.len(),
            ..Self::default()
        };
        for line in lines {
            if index.add(line).is_none() {
                tracing::warn!(?line, "unreadable policy line skipped");
            }
        }
        index
    }

    fn add(&mut self, line: &Line) -> Option<()> {
        let v = &line.values;
        if line.ptype == "g" {
            let key = (
                parse_id(v.first()?, "u:")?,
                parse_id(v.get(1)?, "r:")?,
                parse_id(v.get(2)?, "s:")?,
            );
            self.holds.insert(key);
            return Some(());
        }
        let scope = parse_id(v.get(1)?, "s:")?;
        let perms = perm_set(v.get(3)?)?;
        let deny = v.get(4)? == "deny";
        let set = |masks: &mut Masks| {
            if deny {
                masks.deny = masks.deny.union(perms);
            } else {
                masks.allow = masks.allow.union(perms);
            }
        };
        match v.get(5)?.as_str() {
            "owner" => {
                self.owner_roles.insert(parse_id(&v[0], "r:")?);
            }
            "user" => set(self
                .user_rules
                .entry((scope, parse_id(&v[0], "u:")?))
                .or_default()),
            "role" => {
                let (role, gscope) = (parse_id(&v[0], "r:")?, parse_id(v.get(2)?, "s:")?);
                let rules = self.role_rules.entry(scope).or_default();
                let position = rules
                    .iter()
                    .position(|r| r.role == role && r.gscope == gscope);
                let rule = match position {
                    Some(i) => &mut rules[i],
                    None => {
                        rules.push(RoleRule {
                            role,
                            gscope,
                            masks: Masks::default(),
                        });
                        rules.last_mut()?
                    }
                };
                set(&mut rule.masks);
            }
            "public" => {
                let entry = self.public.entry(scope).or_default();
                *entry = entry.union(perms);
            }
            _ => return None,
        }
        Some(())
    }

    pub fn is_owner(&self, user: Uuid, community: Uuid) -> bool {
        self.owner_roles
            .iter()
            .any(|role| self.holds.contains(&(user, *role, community)))
    }

    pub fn holds(&self, user: Uuid, role: Uuid, scope: Uuid) -> bool {
        self.holds.contains(&(user, role, scope))
    }

    /// The user's permissions at the scope whose path (community first) is `path`.
    pub fn effective(&self, user: Uuid, path: &[Uuid]) -> PermSet {
        let Some(community) = path.first() else {
            return PermSet::EMPTY;
        };
        if self.is_owner(user, *community) {
            return PermSet::ALL;
        }
        let mut granted = PermSet::EMPTY;
        let mut decided = PermSet::EMPTY;
        let mut apply = |mask: PermSet, allow: bool| {
            let fresh = mask.minus(decided);
            if allow {
                granted = granted.union(fresh);
            }
            decided = decided.union(fresh);
        };
        for scope in path.iter().rev() {
            if let Some(m) = self.user_rules.get(&(*scope, user)) {
                apply(m.deny, false);
                apply(m.allow, true);
            }
            let (deny, allow) = self.role_masks(user, *scope, path);
            apply(deny, false);
            apply(allow, true);
        }
        if let Some(public) = self.public.get(community) {
            apply(*public, true);
        }
        granted
    }

    fn role_masks(&self, user: Uuid, scope: Uuid, path: &[Uuid]) -> (PermSet, PermSet) {
        let mut deny = PermSet::EMPTY;
        let mut allow = PermSet::EMPTY;
        for rule in self.role_rules.get(&scope).into_iter().flatten() {
            if path.contains(&rule.gscope) && self.holds.contains(&(user, rule.role, rule.gscope)) {
                deny = deny.union(rule.masks.deny);
                allow = allow.union(rule.masks.allow);
            }
        }
        (deny, allow)
    }

    /// The rules that match `perm` for `user` at `path`, in evaluation order; the first decides.
    pub fn explain(&self, user: Uuid, path: &[Uuid], perm: Perm) -> Vec<RuleHit> {
        let Some(community) = path.first().copied() else {
            return Vec::new();
        };
        let mut hits = Vec::new();
        for role in &self.owner_roles {
            if self.holds.contains(&(user, *role, community)) {
                hits.push(hit(
                    community,
                    "owner",
                    format!("role:{role}"),
                    Some(community),
                    "allow",
                ));
            }
        }
        for scope in path.iter().rev() {
            if let Some(m) = self.user_rules.get(&(*scope, user)) {
                for (set, effect) in [(m.deny, "deny"), (m.allow, "allow")] {
                    if set.contains(perm) {
                        hits.push(hit(*scope, "user", format!("user:{user}"), None, effect));
                    }
                }
            }
            let rules: Vec<&RoleRule> = self
                .role_rules
                .get(scope)
                .into_iter()
                .flatten()
                .filter(|r| {
                    path.contains(&r.gscope) && self.holds.contains(&(user, r.role, r.gscope))
                })
                .collect();
            for effect in ["deny", "allow"] {
                for rule in &rules {
                    let set = if effect == "deny" {
                        rule.masks.deny
                    } else {
                        rule.masks.allow
                    };
                    if set.contains(perm) {
                        hits.push(hit(
                            *scope,
                            "role",
                            format!("role:{}", rule.role),
                            Some(rule.gscope),
                            effect,
                        ));
                    }
                }
            }
        }
        if self
            .public
            .get(&community)
            .is_some_and(|p| p.contains(perm))
        {
            hits.push(hit(community, "public", "everyone".into(), None, "allow"));
        }
        hits
    }
}

fn hit(
    scope_id: Uuid,
    kind: &'static str,
    subject: String,
    held_at: Option<Uuid>,
    effect: &'static str,
) -> RuleHit {
    RuleHit {
        scope_id,
        kind,
        subject,
        held_at,
        effect,
    }
}
