//! Scopes and roles.

use std::fmt;

/// One permission a credential may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Read users.
    UsersRead,
    /// Change and delete users.
    UsersWrite,
    /// Read API keys.
    KeysRead,
    /// Create, rotate and revoke API keys.
    KeysWrite,
    /// Read OAuth clients.
    ClientsRead,
    /// Create, change and delete OAuth clients.
    ClientsWrite,
    /// Read security events.
    AuditRead,
    /// Act as an administrator.
    Admin,
    /// OpenID Connect sign-in.
    OpenId,
    /// The user's name.
    Profile,
    /// The user's email address.
    Email,
    /// Verify other API keys (`POST /v1/keys/verify`); admins only. Last, so that the bits of
    /// stored scope sets keep their meaning.
    KeysVerify,
    /// Read the resources Net API guards; admins only. After `KeysVerify` for the same reason.
    ResourcesRead,
    /// Create, change and delete resources and grant their scopes; admins only.
    ResourcesWrite,
}

impl Scope {
    /// Every scope, in the order they are documented.
    pub const ALL: [Self; 14] = [
        Self::UsersRead,
        Self::UsersWrite,
        Self::KeysRead,
        Self::KeysWrite,
        Self::ClientsRead,
        Self::ClientsWrite,
        Self::AuditRead,
        Self::Admin,
        Self::KeysVerify,
        Self::ResourcesRead,
        Self::ResourcesWrite,
        Self::OpenId,
        Self::Profile,
        Self::Email,
    ];

    /// Scopes only a user with the admin role may hold.
    pub const ADMIN_ONLY: [Self; 4] = [
        Self::Admin,
        Self::KeysVerify,
        Self::ResourcesRead,
        Self::ResourcesWrite,
    ];

    /// The scope's name on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::UsersRead => "users:read",
            Self::UsersWrite => "users:write",
            Self::KeysRead => "keys:read",
            Self::KeysWrite => "keys:write",
            Self::ClientsRead => "clients:read",
            Self::ClientsWrite => "clients:write",
            Self::AuditRead => "audit:read",
            Self::Admin => "admin",
            Self::OpenId => "openid",
            Self::Profile => "profile",
            Self::Email => "email",
            Self::KeysVerify => "keys:verify",
            Self::ResourcesRead => "resources:read",
            Self::ResourcesWrite => "resources:write",
        }
    }

    /// What the scope allows, in words a person approving it understands.
    pub const fn description(self) -> &'static str {
        match self {
            Self::UsersRead => "See your account details",
            Self::UsersWrite => "Change or delete your account",
            Self::KeysRead => "See your API keys (never the keys themselves)",
            Self::KeysWrite => "Create, rotate and revoke your API keys",
            Self::ClientsRead => "See your OAuth applications",
            Self::ClientsWrite => "Create, change and delete your OAuth applications",
            Self::AuditRead => "See your account's security events",
            Self::Admin => "Administer Net API",
            Self::OpenId => "Sign you in with your Net API account",
            Self::Profile => "See your name",
            Self::Email => "See your email address",
            Self::KeysVerify => "Check any API key presented to your services",
            Self::ResourcesRead => "See the APIs Net API guards",
            Self::ResourcesWrite => "Define the APIs Net API guards and who holds their scopes",
        }
    }

    /// Parses a scope name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }

    const fn bit(self) -> u16 {
        1 << self as u16
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of scopes, as a bit set so that checks on the hot path cost nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Scopes(u16);

impl Scopes {
    /// No scope at all.
    pub const EMPTY: Self = Self(0);

    /// Every scope there is.
    pub fn all() -> Self {
        Scope::ALL.into_iter().collect()
    }

    /// Parses a space-separated list (RFC 6749 §3.3); names the first unknown scope on error.
    pub fn parse_space_separated(text: &str) -> Result<Self, String> {
        text.split(' ')
            .filter(|s| !s.is_empty())
            .map(|name| Scope::parse(name).ok_or_else(|| name.to_owned()))
            .collect()
    }

    /// Parses a list of names; names the first unknown scope on error.
    pub fn parse_list<S: AsRef<str>>(names: &[S]) -> Result<Self, String> {
        names
            .iter()
            .map(|name| Scope::parse(name.as_ref()).ok_or_else(|| name.as_ref().to_owned()))
            .collect()
    }

    /// Whether the set holds `scope`.
    pub const fn contains(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    /// Whether every scope of `self` is in `other`.
    pub const fn is_subset_of(self, other: Self) -> bool {
        self.0 & !other.0 == 0
    }

    /// The scopes in both sets.
    #[must_use]
    pub const fn intersect(self, other: Self) -> Self {
        Self(self.0 & other.0)
    }

    /// The set with `scope` added.
    #[must_use]
    pub const fn with(self, scope: Scope) -> Self {
        Self(self.0 | scope.bit())
    }

    /// The set without `scope`.
    #[must_use]
    pub const fn without(self, scope: Scope) -> Self {
        Self(self.0 & !scope.bit())
    }

    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The scopes in documented order.
    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL.into_iter().filter(move |s| self.contains(*s))
    }

    /// The names, for JSON.
    pub fn names(self) -> Vec<&'static str> {
        self.iter().map(Scope::as_str).collect()
    }

    /// The bit pattern, for storage.
    pub const fn bits(self) -> i64 {
        self.0 as i64
    }

    /// Rebuilds a set from storage, ignoring bits no scope has.
    pub fn from_bits(bits: i64) -> Self {
        let known = Self::all().0;
        Self(u16::try_from(bits & i64::from(known)).unwrap_or(0))
    }
}

impl FromIterator<Scope> for Scopes {
    fn from_iter<I: IntoIterator<Item = Scope>>(iter: I) -> Self {
        Self(iter.into_iter().fold(0, |acc, s| acc | s.bit()))
    }
}

impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.names().join(" "))
    }
}

/// A user's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Sees and manages everything.
    Admin,
    /// Sees and manages its own things.
    Member,
}

impl Role {
    /// The role's name on the wire and in storage.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Member => "member",
        }
    }

    /// Parses a role name.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "admin" => Some(Self::Admin),
            "member" => Some(Self::Member),
            _ => None,
        }
    }

    /// The most a credential of a user with this role may carry.
    pub fn max_scopes(self) -> Scopes {
        match self {
            Self::Admin => Scopes::all(),
            Self::Member => Scope::ADMIN_ONLY
                .into_iter()
                .fold(Scopes::all(), Scopes::without),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_space_separated() {
        let scopes = Scopes::parse_space_separated("keys:read  users:read").unwrap_or_default();
        assert!(scopes.contains(Scope::KeysRead));
        assert!(scopes.contains(Scope::UsersRead));
        assert!(!scopes.contains(Scope::Admin));
        assert_eq!(scopes.to_string(), "users:read keys:read");
        assert_eq!(
            Scopes::parse_space_separated("users:read nope"),
            Err("nope".to_owned())
        );
    }

    #[test]
    fn bits_round_trip_and_members_never_hold_admin() {
        let all = Scopes::all();
        assert_eq!(Scopes::from_bits(all.bits()), all);
        assert!(!Role::Member.max_scopes().contains(Scope::Admin));
        assert!(!Role::Member.max_scopes().contains(Scope::KeysVerify));
        assert!(Role::Admin.max_scopes().contains(Scope::KeysVerify));
        assert!(!Role::Member.max_scopes().contains(Scope::ResourcesRead));
        assert!(!Role::Member.max_scopes().contains(Scope::ResourcesWrite));
        assert!(Role::Admin.max_scopes().contains(Scope::ResourcesWrite));
        // Bits stored before the resource scopes existed keep their meaning.
        assert_eq!(Scopes::EMPTY.with(Scope::KeysVerify).bits(), 1 << 11);
        assert_eq!(Scopes::EMPTY.with(Scope::ResourcesWrite).bits(), 1 << 13);
        assert!(
            Role::Member
                .max_scopes()
                .is_subset_of(Role::Admin.max_scopes())
        );
    }
}
