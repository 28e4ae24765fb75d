//! The permission catalogue, permission sets as bitsets, and the built-in roles' defaults.

use serde::Serialize;
use utoipa::ToSchema;

macro_rules! catalogue {
    ($($variant:ident = $bit:literal, $name:literal, $description:literal;)*) => {
        /// One permission of the catalogue; the wire name is its snake_case name.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Perm { $($variant = $bit),* }

        impl Perm {
            pub const ALL: &'static [Perm] = &[$(Perm::$variant),*];

            pub fn name(self) -> &'static str {
                match self { $(Perm::$variant => $name),* }
            }

            pub fn description(self) -> &'static str {
                match self { $(Perm::$variant => $description),* }
            }

            pub fn parse(name: &str) -> Option<Perm> {
                match name { $($name => Some(Perm::$variant),)* _ => None }
            }
        }
    };
}

catalogue! {
    View = 0, "view", "See the scope (community, group or room) and its place in the tree";
    ReadHistory = 1, "read_history", "Read a room's messages";
    SendMessages = 2, "send_messages", "Post messages, replies and reactions";
    ManageMessages = 3, "manage_messages", "Edit or delete other people's messages, close polls";
    ManageCommunity = 4, "manage_community", "Rename the community, change its description and visibility";
    CreateGroups = 5, "create_groups", "Create groups and subgroups";
    ManageGroups = 6, "manage_groups", "Rename, move and delete groups";
    CreateRooms = 7, "create_rooms", "Create rooms";
    ManageRooms = 8, "manage_rooms", "Rename, move, delete rooms and manage private-room members";
    Invite = 9, "invite", "Create invites";
    Kick = 10, "kick", "Remove members";
    Ban = 11, "ban", "Ban and unban users";
    ManageRoles = 12, "manage_roles", "Create, edit, delete roles and grant them";
    ManagePermissions = 13, "manage_permissions", "Set allow/deny overrides and inspect decisions";
    CreatePolls = 14, "create_polls", "Post polls and surveys";
    Vote = 15, "vote", "Vote in polls and answer surveys";
    CreateEvents = 16, "create_events", "Create events";
    ManageEvents = 17, "manage_events", "Edit and cancel other people's events";
    UploadMedia = 18, "upload_media", "Upload attachments";
    ViewAuditLog = 19, "view_audit_log", "Read the audit log";
}

/// A set of permissions (bit i = `Perm` with discriminant i).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct PermSet(pub u32);

impl PermSet {
    pub const EMPTY: PermSet = PermSet(0);
    pub const ALL: PermSet = PermSet((1 << 20) - 1);

    pub fn of(perms: &[Perm]) -> Self {
        Self(perms.iter().fold(0, |acc, p| acc | (1 << *p as u32)))
    }

    pub fn contains(self, perm: Perm) -> bool {
        self.0 & (1 << perm as u32) != 0
    }

    pub fn is_superset(self, other: PermSet) -> bool {
        self.0 & other.0 == other.0
    }

    pub fn union(self, other: PermSet) -> Self {
        Self(self.0 | other.0)
    }

    pub fn minus(self, other: PermSet) -> Self {
        Self(self.0 & !other.0)
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn iter(self) -> impl Iterator<Item = Perm> {
        Perm::ALL.iter().copied().filter(move |p| self.contains(*p))
    }

    pub fn names(self) -> Vec<&'static str> {
        self.iter().map(Perm::name).collect()
    }

    /// Parses wire names, reporting the first unknown one.
    pub fn parse_names<S: AsRef<str>>(names: &[S]) -> Result<Self, String> {
        names.iter().try_fold(Self::EMPTY, |set, name| {
            Perm::parse(name.as_ref())
                .map(|p| set.union(Self::of(&[p])))
                .ok_or_else(|| format!("unknown permission {:?}", name.as_ref()))
        })
    }
}

/// The four built-in roles every community has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Builtin {
    Owner,
    Admin,
    Moderator,
    Member,
}

impl Builtin {
    pub const ALL: [Builtin; 4] = [
        Builtin::Owner,
        Builtin::Admin,
        Builtin::Moderator,
        Builtin::Member,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Builtin::Owner => "owner",
            Builtin::Admin => "admin",
            Builtin::Moderator => "moderator",
            Builtin::Member => "member",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|b| b.name() == name)
    }

    /// Defaults at community creation; owners always have everything whatever their row says.
    #[allow(clippy::enum_glob_use)]
    pub fn default_permissions(self) -> PermSet {
        use Perm::*;
        match self {
            Builtin::Owner | Builtin::Admin => PermSet::ALL,
            Builtin::Moderator => PermSet::of(&[
                View,
                ReadHistory,
                SendMessages,
                ManageMessages,
                Invite,
                Kick,
                Ban,
                CreatePolls,
                Vote,
                CreateEvents,
                ManageEvents,
                UploadMedia,
                ViewAuditLog,
            ]),
            Builtin::Member => PermSet::of(&[
                View,
                ReadHistory,
                SendMessages,
                Invite,
                CreatePolls,
                Vote,
                UploadMedia,
            ]),
        }
    }
}

/// What the members of a DM may do there (DMs sit outside communities and their roles).
#[allow(clippy::enum_glob_use)]
pub fn dm_permissions() -> PermSet {
    use Perm::*;
    PermSet::of(&[
        View,
        ReadHistory,
        SendMessages,
        CreatePolls,
        Vote,
        UploadMedia,
    ])
}

/// What anyone signed in may do in a public community they have not joined (and are not banned from).
pub fn visitor_permissions() -> PermSet {
    PermSet::of(&[Perm::View, Perm::ReadHistory])
}

/// A permission's wire name in the OpenAPI document: the catalogue as a string enum, so
/// requests that name permissions (roles, overrides, explain) say which strings are valid.
#[derive(Debug)]
pub struct PermissionName;

impl utoipa::PartialSchema for PermissionName {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .enum_values(Some(Perm::ALL.iter().map(|p| p.name())))
            .description(Some(
                "A permission of the catalogue (`GET /v1/permissions`).",
            ))
            .into()
    }
}

impl ToSchema for PermissionName {}

#[derive(Debug, Serialize, ToSchema)]
pub struct PermissionInfo {
    pub name: &'static str,
    pub description: &'static str,
}

pub fn catalogue() -> Vec<PermissionInfo> {
    Perm::ALL
        .iter()
        .map(|p| PermissionInfo {
            name: p.name(),
            description: p.description(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_all_covers_the_catalogue() {
        for perm in Perm::ALL {
            assert_eq!(Perm::parse(perm.name()), Some(*perm));
            assert!(PermSet::ALL.contains(*perm));
        }
        assert_eq!(PermSet::ALL.iter().count(), Perm::ALL.len());
        assert!(PermSet::parse_names(&["view", "nope"]).is_err());
    }
}
