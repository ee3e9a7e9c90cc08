//! What each role in a team may do: one table, checked by every dashboard handler. An
//! API key acts as an admin of its team.

use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Viewer,
    Member,
    Admin,
    Owner,
}

/// The kinds of thing a handler does, from least to most trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// See the team's configuration, events and deliveries.
    Read,
    /// Create, change and delete sources, destinations and routes; replay; send tests.
    Configure,
    /// Invite and remove people, change roles, create and revoke API keys.
    Manage,
    /// Delete the team.
    DeleteTeam,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Owner, Role::Admin, Role::Member, Role::Viewer];

    /// The permission table.
    pub fn may(self, action: Action) -> bool {
        let least = match action {
            Action::Read => Role::Viewer,
            Action::Configure => Role::Member,
            Action::Manage => Role::Admin,
            Action::DeleteTeam => Role::Owner,
        };
        self >= least
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Member => "member",
            Role::Viewer => "viewer",
        }
    }

    /// Whether someone with this role may give `other` to a person: never more than
    /// their own, and only an owner makes owners.
    pub fn may_grant(self, other: Role) -> bool {
        self.may(Action::Manage) && other <= self
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("{s:?} is not a role: owner, admin, member or viewer"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_permission_table() {
        use Action::*;
        let table = [
            (Role::Viewer, [true, false, false, false]),
            (Role::Member, [true, true, false, false]),
            (Role::Admin, [true, true, true, false]),
            (Role::Owner, [true, true, true, true]),
        ];
        for (role, allowed) in table {
            for (action, expected) in [Read, Configure, Manage, DeleteTeam]
                .into_iter()
                .zip(allowed)
            {
                assert_eq!(role.may(action), expected, "{role} {action:?}");
            }
        }
    }

    #[test]
    fn roles_are_granted_only_up_to_ones_own() {
        assert!(Role::Owner.may_grant(Role::Owner));
        assert!(Role::Admin.may_grant(Role::Admin));
        assert!(Role::Admin.may_grant(Role::Viewer));
        assert!(!Role::Admin.may_grant(Role::Owner));
        assert!(!Role::Member.may_grant(Role::Viewer));
    }

    #[test]
    fn roles_round_trip_through_their_names() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
        }
        assert!("root".parse::<Role>().is_err());
    }
}
