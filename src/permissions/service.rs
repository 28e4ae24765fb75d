//! Permission checks: resolve a scope, evaluate it on the community's compiled index, hand back
//! an `Authorized<P>` proof that services require (invariant 5). Indexes are cached per
//! community, dropped when a newer policy version is announced (local write, Postgres NOTIFY or
//! Redis pub/sub) and after a TTL as a safety net (invariant 7).

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use sea_orm::DatabaseConnection;
use uuid::Uuid;

use super::adapter::load_lines;
use super::catalogue::{Perm, PermSet, dm_permissions};
use super::feed::Feed;
use super::index::CommunityIndex;
use super::repo::{self, ScopeRow};
use crate::error::AppError;

const INDEX_TTL: Duration = Duration::from_secs(60);
const DECISION_CACHE_MAX: usize = 100_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScopeKind {
    Community,
    Group,
    Room,
    Dm,
}

impl ScopeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Community => "community",
            Self::Group => "group",
            Self::Room => "room",
            Self::Dm => "dm",
        }
    }
}

/// A scope as the caller sees it: where it sits and the facts the gates need.
#[derive(Debug, Clone)]
pub struct Scope {
    pub id: Uuid,
    pub kind: ScopeKind,
    /// `None` for DMs.
    pub community_id: Option<Uuid>,
    /// Scope ids from the community down to this one (for a DM: just the DM).
    pub path: Vec<Uuid>,
    /// A private room or a DM: needs room membership (or manage_rooms) to be seen.
    pub private: bool,
    pub(super) banned: bool,
    pub(super) room_member: bool,
}

impl From<ScopeRow> for Scope {
    fn from(row: ScopeRow) -> Self {
        let kind = match row.kind.as_str() {
            "community" => ScopeKind::Community,
            "group" => ScopeKind::Group,
            "dm" => ScopeKind::Dm,
            _ => ScopeKind::Room,
        };
        Self {
            id: row.id,
            kind,
            community_id: row.community_id,
            path: row.path,
            private: row.private,
            banned: row.banned,
            room_member: row.room_member,
        }
    }
}

impl Scope {
    /// The user is banned from the scope's community (they know; telling them reveals nothing).
    pub fn is_banned(&self) -> bool {
        self.banned
    }
}

/// Type-level permission names, so a service can demand "checked for send_messages".
pub trait Permission {
    const PERM: Perm;
}

macro_rules! markers {
    ($($name:ident),*) => {
        /// Marker types, one per catalogue entry.
        pub mod perm {
            $(
                #[derive(Debug, Clone, Copy)]
                pub struct $name;
                impl super::Permission for $name {
                    const PERM: super::Perm = super::Perm::$name;
                }
            )*
        }
    };
}

markers!(
    View,
    ReadHistory,
    SendMessages,
    ManageMessages,
    ManageCommunity,
    CreateGroups,
    ManageGroups,
    CreateRooms,
    ManageRooms,
    Invite,
    Kick,
    Ban,
    ManageRoles,
    ManagePermissions,
    CreatePolls,
    Vote,
    CreateEvents,
    ManageEvents,
    UploadMedia,
    ViewAuditLog
);

/// Proof that `user` holds `P` at `scope`; only this module can make one.
#[derive(Debug, Clone)]
pub struct Authorized<P> {
    user: Uuid,
    scope: Scope,
    perms: PermSet,
    owner: bool,
    _perm: PhantomData<P>,
}

impl<P> Authorized<P> {
    pub fn user(&self) -> Uuid {
        self.user
    }
    pub fn scope(&self) -> &Scope {
        &self.scope
    }
    /// Everything the user holds at the scope (for "may also do X" decisions).
    pub fn perms(&self) -> PermSet {
        self.perms
    }
    pub fn is_owner(&self) -> bool {
        self.owner
    }
    pub fn community_id(&self) -> Option<Uuid> {
        self.scope.community_id
    }
}

struct Compiled {
    version: i64,
    loaded_at: Instant,
    index: CommunityIndex,
    decisions: Mutex<HashMap<(Uuid, Uuid), PermSet>>,
}

pub struct Permissions {
    db: DatabaseConnection,
    feed: Feed,
    indexes: RwLock<HashMap<Uuid, Arc<Compiled>>>,
    /// Highest policy version announced per community; older indexes are stale.
    announced: Mutex<HashMap<Uuid, i64>>,
    /// Moves on every announcement, so long-lived sessions know when to re-check access; a
    /// watch, so idle sessions sleep until it moves instead of polling it.
    epoch: tokio::sync::watch::Sender<u64>,
}

impl crate::realtime::PolicyEpoch for Permissions {
    fn policy_epoch(&self) -> u64 {
        *self.epoch.borrow()
    }

    fn watch_epoch(&self) -> tokio::sync::watch::Receiver<u64> {
        self.epoch.subscribe()
    }
}

impl Permissions {
    pub fn new(db: DatabaseConnection, feed: Feed) -> Self {
        Self {
            db,
            feed,
            indexes: RwLock::default(),
            announced: Mutex::default(),
            epoch: tokio::sync::watch::Sender::new(0),
        }
    }

    /// Marks indexes of `community` older than `version` stale.
    pub fn announce(&self, community: Uuid, version: i64) {
        let mut announced = self.announced.lock().expect("announced lock");
        let entry = announced.entry(community).or_insert(version);
        *entry = (*entry).max(version);
        self.epoch.send_modify(|epoch| *epoch += 1);
    }

    /// Drops every cached index (e.g. after the change feed reconnected and may have missed news).
    pub fn forget_all(&self) {
        self.indexes.write().expect("indexes lock").clear();
        self.epoch.send_modify(|epoch| *epoch += 1);
    }

    pub async fn index(&self, community: Uuid) -> Result<Arc<CommunityIndexRef>, AppError> {
        let wanted = self
            .announced
            .lock()
            .expect("announced lock")
            .get(&community)
            .copied()
            .unwrap_or(0);
        if let Some(compiled) = self
            .indexes
            .read()
            .expect("indexes lock")
            .get(&community)
            .cloned()
            && compiled.version >= wanted
            && compiled.loaded_at.elapsed() < INDEX_TTL
        {
            return Ok(Arc::new(CommunityIndexRef(compiled)));
        }
        // Version first, lines second: a change landing in between makes the entry look older
        // than it is, so the announcement of that change reloads it again (never the reverse).
        let version = repo::version(&self.db, community).await?;
        let lines = load_lines(&self.db, community).await?;
        let compiled = Arc::new(Compiled {
            version,
            loaded_at: Instant::now(),
            index: CommunityIndex::compile(&lines),
            decisions: Mutex::default(),
        });
        self.indexes
            .write()
            .expect("indexes lock")
            .insert(community, compiled.clone());
        Ok(Arc::new(CommunityIndexRef(compiled)))
    }

    pub async fn scope(&self, user: Uuid, scope_id: Uuid) -> Result<Option<Scope>, AppError> {
        Ok(repo::scope_for(&self.db, user, scope_id)
            .await?
            .map(Scope::from))
    }

    /// The user's effective permissions at `scope`, gates included.
    pub async fn effective(&self, user: Uuid, scope: &Scope) -> Result<(PermSet, bool), AppError> {
        let Some(community) = scope.community_id else {
            let perms = if scope.room_member {
                dm_permissions()
            } else {
                PermSet::EMPTY
            };
            return Ok((perms, false));
        };
        if scope.banned {
            return Ok((PermSet::EMPTY, false));
        }
        let index = self.index(community).await?;
        let owner = index.0.index.is_owner(user, community);
        let perms = index.decide(user, scope);
        let gated =
            scope.private && !scope.room_member && !owner && !perms.contains(Perm::ManageRooms);
        Ok((if gated { PermSet::EMPTY } else { perms }, owner))
    }

    /// Checks `P` at the scope: invisible is 404, visible but not allowed is 403.
    pub async fn require<P: Permission>(
        &self,
        user: Uuid,
        scope_id: Uuid,
    ) -> Result<Authorized<P>, AppError> {
        let scope = self
            .scope(user, scope_id)
            .await?
            .ok_or(AppError::NotFound)?;
        self.require_at(user, scope).await
    }

    /// Proof the user may read the room's messages, for things that live in a room (polls,
    /// attachments): one in a room they cannot read is a 404, like the room itself.
    pub async fn room_reader(
        &self,
        user: Uuid,
        room: Uuid,
    ) -> Result<Authorized<perm::ReadHistory>, AppError> {
        self.require_kind::<perm::ReadHistory>(user, room, ScopeKind::Room)
            .await
            .map_err(|err| match err {
                AppError::Forbidden(_) => AppError::NotFound,
                other => other,
            })
    }

    /// `require`, also checking the id names a scope of the kind the URL says (else 404).
    /// A DM counts as a room.
    pub async fn require_kind<P: Permission>(
        &self,
        user: Uuid,
        scope_id: Uuid,
        kind: ScopeKind,
    ) -> Result<Authorized<P>, AppError> {
        let scope = self
            .scope(user, scope_id)
            .await?
            .ok_or(AppError::NotFound)?;
        let same_kind =
            scope.kind == kind || (kind == ScopeKind::Room && scope.kind == ScopeKind::Dm);
        if !same_kind {
            return Err(AppError::NotFound);
        }
        self.require_at(user, scope).await
    }

    pub async fn require_at<P: Permission>(
        &self,
        user: Uuid,
        scope: Scope,
    ) -> Result<Authorized<P>, AppError> {
        let (perms, owner) = self.effective(user, &scope).await?;
        if !perms.contains(Perm::View) {
            return Err(AppError::NotFound);
        }
        if !perms.contains(P::PERM) {
            return Err(AppError::Forbidden(format!(
                "requires the {} permission here",
                P::PERM.name()
            )));
        }
        Ok(Authorized {
            user,
            scope,
            perms,
            owner,
            _perm: PhantomData,
        })
    }

    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    pub fn feed(&self) -> &Feed {
        &self.feed
    }

    /// After a commit: this node sees the change at once, other nodes through the feed.
    pub async fn committed(&self, community: Uuid, version: i64) {
        self.announce(community, version);
        self.feed.publish(community, version).await;
    }
}

/// A scope to filter by visibility in bulk (tree listings).
#[derive(Debug, Clone)]
pub struct Candidate {
    pub id: Uuid,
    pub path: Vec<Uuid>,
    pub private: bool,
    pub room_member: bool,
}

impl Permissions {
    /// Which candidates (all of one community) `user` may view, with one index lookup each.
    pub async fn visible(
        &self,
        user: Uuid,
        community: &Authorized<perm::View>,
        candidates: &[Candidate],
    ) -> Result<Vec<Uuid>, AppError> {
        let Some(community_id) = community.community_id() else {
            return Ok(Vec::new());
        };
        let index = self.index(community_id).await?;
        let owner = index.index().is_owner(user, community_id);
        Ok(candidates
            .iter()
            .filter(|c| {
                let perms = index.index().effective(user, &c.path);
                let gated =
                    c.private && !c.room_member && !owner && !perms.contains(Perm::ManageRooms);
                perms.contains(Perm::View) && !gated
            })
            .map(|c| c.id)
            .collect())
    }

    /// Rooms (and DMs) the user is a member of, may see, and may `perm` in.
    pub async fn member_rooms_with(&self, user: Uuid, perm: Perm) -> Result<Vec<Uuid>, AppError> {
        let rooms = repo::member_rooms(&self.db, user).await?;
        let mut allowed = Vec::with_capacity(rooms.len());
        for room in rooms {
            let scope = Scope {
                id: room.id,
                kind: if room.community_id.is_some() {
                    ScopeKind::Room
                } else {
                    ScopeKind::Dm
                },
                community_id: room.community_id,
                path: room.path,
                private: room.private,
                banned: false,
                room_member: room.room_member,
            };
            let perms = self.effective(user, &scope).await?.0;
            if perms.contains(Perm::View) && perms.contains(perm) {
                allowed.push(room.id);
            }
        }
        Ok(allowed)
    }

    /// The community's current policy version as seen by `db` (e.g. inside a transaction).
    pub async fn version_in(
        db: &impl sea_orm::ConnectionTrait,
        community: Uuid,
    ) -> Result<i64, AppError> {
        Ok(repo::version(db, community).await?)
    }
}

/// A shared handle on one compiled community index.
pub struct CommunityIndexRef(Arc<Compiled>);

impl CommunityIndexRef {
    pub fn index(&self) -> &CommunityIndex {
        &self.0.index
    }

    /// Index decision (without the gates), memoized per (user, scope) for this index version.
    fn decide(&self, user: Uuid, scope: &Scope) -> PermSet {
        let key = (user, scope.id);
        if let Some(perms) = self.0.decisions.lock().expect("decision cache").get(&key) {
            return *perms;
        }
        let perms = self.0.index.effective(user, &scope.path);
        let mut cache = self.0.decisions.lock().expect("decision cache");
        if cache.len() >= DECISION_CACHE_MAX {
            cache.clear();
        }
        cache.insert(key, perms);
        perms
    }
}
