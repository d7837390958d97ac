//! Domain types. Each is built only by a fallible constructor, so a value in hand is valid.

use crate::error::AuthError;
use ocp_metrics_core::GroupName;
use ocp_metrics_core::limits::EVENT_STRING_BYTES_MAX;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;

/// Longest group name, in bytes: the events' own bound, since grants name the groups events
/// are written to.
pub const MAX_GROUP_NAME_BYTES: usize = EVENT_STRING_BYTES_MAX;
/// Longest client or token name, in characters.
pub const MAX_NAME_CHARS: usize = 128;
/// Most groups one client or token may be granted; keeps tokens (which carry them) small.
pub const MAX_GROUPS: usize = 64;

/// A permission a client or token may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "&'static str")]
pub enum Scope {
    /// The query endpoints.
    MetricsRead,
    /// The ingest endpoint.
    EventsWrite,
}

impl Scope {
    /// Every scope, in a stable order.
    pub const ALL: [Scope; 2] = [Scope::MetricsRead, Scope::EventsWrite];

    pub fn parse(s: &str) -> Result<Scope, AuthError> {
        match s {
            "metrics:read" => Ok(Scope::MetricsRead),
            "events:write" => Ok(Scope::EventsWrite),
            other => Err(AuthError::invalid(format!(
                "unknown scope {other:?}: scopes are `metrics:read` and `events:write`"
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::MetricsRead => "metrics:read",
            Scope::EventsWrite => "events:write",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl TryFrom<String> for Scope {
    type Error = AuthError;
    fn try_from(s: String) -> Result<Scope, AuthError> {
        Scope::parse(&s)
    }
}

impl From<Scope> for &'static str {
    fn from(s: Scope) -> &'static str {
        s.as_str()
    }
}

/// A non-empty set of scopes. Serialized as a JSON array of scope names.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "Vec<Scope>", into = "Vec<Scope>")]
pub struct ScopeSet(BTreeSet<Scope>);

impl ScopeSet {
    /// From a list of scope names, as the admin API receives them. Duplicates are merged.
    pub fn parse<S: AsRef<str>>(names: &[S]) -> Result<ScopeSet, AuthError> {
        let scopes = names
            .iter()
            .map(|s| Scope::parse(s.as_ref()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| AuthError::invalid(format!("scopes: {e}")))?;
        ScopeSet::try_from(scopes)
    }

    /// From the space-separated form of RFC 6749 section 3.3, as in a token's `scope`.
    pub fn parse_space_separated(s: &str) -> Result<ScopeSet, AuthError> {
        ScopeSet::parse(&s.split_ascii_whitespace().collect::<Vec<_>>())
    }

    pub fn contains(&self, scope: Scope) -> bool {
        self.0.contains(&scope)
    }

    pub fn is_subset(&self, other: &ScopeSet) -> bool {
        self.0.is_subset(&other.0)
    }

    pub fn iter(&self) -> impl Iterator<Item = Scope> + '_ {
        self.0.iter().copied()
    }

    /// The space-separated form of RFC 6749 section 3.3.
    pub fn to_space_separated(&self) -> String {
        self.iter().map(Scope::as_str).collect::<Vec<_>>().join(" ")
    }
}

impl TryFrom<Vec<Scope>> for ScopeSet {
    type Error = AuthError;
    fn try_from(scopes: Vec<Scope>) -> Result<ScopeSet, AuthError> {
        if scopes.is_empty() {
            return Err(AuthError::invalid(
                "scopes: name at least one of `metrics:read`, `events:write`",
            ));
        }
        Ok(ScopeSet(scopes.into_iter().collect()))
    }
}

impl From<ScopeSet> for Vec<Scope> {
    fn from(s: ScopeSet) -> Vec<Scope> {
        s.0.into_iter().collect()
    }
}

/// The groups a client or token may act on. Serialized as `["*"]` or a list of names.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "Vec<String>", into = "Vec<String>")]
pub enum GroupGrant {
    /// Every group, present and future.
    All,
    /// These groups only; never empty.
    Only(BTreeSet<GroupName>),
}

impl GroupGrant {
    /// From the admin API's list: `["*"]` alone means all groups. `"*"` mixed with names is
    /// refused rather than guessed at, because the two readings grant very different access.
    pub fn parse<S: AsRef<str>>(names: &[S]) -> Result<GroupGrant, AuthError> {
        if names.is_empty() {
            return Err(AuthError::invalid(
                "groups: name at least one group, or [\"*\"] for all groups",
            ));
        }
        if names.len() > MAX_GROUPS {
            return Err(AuthError::invalid(format!(
                "groups: at most {MAX_GROUPS} groups, or [\"*\"] for all groups"
            )));
        }
        let wildcard = |n: &S| n.as_ref() == GroupName::WILDCARD;
        if names.iter().any(wildcard) {
            return if names.iter().all(wildcard) {
                Ok(GroupGrant::All)
            } else {
                Err(AuthError::invalid(
                    "groups: \"*\" means all groups and must be the only entry",
                ))
            };
        }
        let groups = names
            .iter()
            .map(|n| {
                GroupName::parse(n.as_ref()).map_err(|e| {
                    AuthError::invalid(format!(
                        "groups: {:?} {e}; or give [\"*\"] alone for all groups",
                        n.as_ref()
                    ))
                })
            })
            .collect::<Result<BTreeSet<_>, _>>()?;
        Ok(GroupGrant::Only(groups))
    }

    pub fn allows(&self, group: &str) -> bool {
        match self {
            GroupGrant::All => true,
            GroupGrant::Only(groups) => groups.iter().any(|g| g.as_str() == group),
        }
    }

    /// The wire form: `["*"]` or the names in ascending order.
    pub fn to_strings(&self) -> Vec<String> {
        match self {
            GroupGrant::All => vec!["*".to_owned()],
            GroupGrant::Only(groups) => groups.iter().map(|g| g.as_str().to_owned()).collect(),
        }
    }
}

impl TryFrom<Vec<String>> for GroupGrant {
    type Error = AuthError;
    fn try_from(v: Vec<String>) -> Result<GroupGrant, AuthError> {
        GroupGrant::parse(&v)
    }
}

impl From<GroupGrant> for Vec<String> {
    fn from(g: GroupGrant) -> Vec<String> {
        g.to_strings()
    }
}

/// The display name of a client or token: 1 to 128 characters, no control characters (they
/// would garble logs and listings).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ClientName(String);

impl ClientName {
    pub fn parse(s: &str) -> Result<ClientName, AuthError> {
        let chars = s.chars().count();
        if chars == 0 || chars > MAX_NAME_CHARS {
            return Err(AuthError::invalid(format!(
                "name: must be 1 to {MAX_NAME_CHARS} characters, got {chars}"
            )));
        }
        if s.chars().any(char::is_control) {
            return Err(AuthError::invalid(
                "name: must not contain control characters",
            ));
        }
        Ok(ClientName(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ClientName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for ClientName {
    type Error = AuthError;
    fn try_from(s: String) -> Result<ClientName, AuthError> {
        ClientName::parse(&s)
    }
}

impl From<ClientName> for String {
    fn from(n: ClientName) -> String {
        n.0
    }
}

/// What an authenticated request may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grants {
    /// The client id (`ocpm_client_...`) for an access token, the token id for a personal
    /// access token. Use it as the rate-limit key and in logs.
    pub subject: String,
    pub groups: GroupGrant,
    pub scopes: ScopeSet,
}

impl Grants {
    pub fn allows_group(&self, group: &str) -> bool {
        self.groups.allows(group)
    }

    pub fn has_scope(&self, scope: Scope) -> bool {
        self.scopes.contains(scope)
    }

    /// [`Grants::has_scope`] as an error fit for a 403 answer.
    pub fn require_scope(&self, scope: Scope) -> Result<(), AuthError> {
        if self.has_scope(scope) {
            Ok(())
        } else {
            Err(AuthError::Forbidden(format!(
                "this token lacks the scope `{scope}` that this endpoint needs: use a client or \
                 token granted `{scope}`"
            )))
        }
    }

    /// [`Grants::allows_group`] as an error fit for a 403 answer. The message only echoes the
    /// group the caller named, so it says nothing about which groups exist.
    pub fn require_group(&self, group: &str) -> Result<(), AuthError> {
        if self.allows_group(group) {
            Ok(())
        } else {
            Err(AuthError::Forbidden(format!(
                "this token is not granted the group {group:?}: use a client or token granted \
                 that group"
            )))
        }
    }
}

/// Timestamps as RFC 3339 strings, through jiff's own formatting, so the crate needs no jiff
/// serde feature.
pub(crate) mod ts {
    use jiff::Timestamp;
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(t)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
        String::deserialize(d)?.parse().map_err(D::Error::custom)
    }

    pub mod option {
        use jiff::Timestamp;
        use serde::{Deserialize, Deserializer, Serializer, de::Error};

        pub fn serialize<S: Serializer>(t: &Option<Timestamp>, s: S) -> Result<S::Ok, S::Error> {
            match t {
                Some(t) => s.collect_str(t),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Timestamp>, D::Error> {
            Option::<String>::deserialize(d)?
                .map(|s| s.parse().map_err(D::Error::custom))
                .transpose()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_parse_table() {
        let cases: &[(&str, Option<Scope>)] = &[
            ("metrics:read", Some(Scope::MetricsRead)),
            ("events:write", Some(Scope::EventsWrite)),
            ("metrics:write", None),
            ("METRICS:READ", None),
            ("", None),
            (" metrics:read", None),
        ];
        for (input, want) in cases {
            assert_eq!(Scope::parse(input).ok(), *want, "input {input:?}");
        }
    }

    #[test]
    fn scope_set_rules() {
        assert!(ScopeSet::parse::<&str>(&[]).is_err());
        let s = ScopeSet::parse(&["events:write", "metrics:read", "events:write"]).unwrap();
        assert_eq!(s.to_space_separated(), "metrics:read events:write");
        assert_eq!(
            ScopeSet::parse_space_separated("  events:write   metrics:read ").unwrap(),
            s
        );
        assert!(ScopeSet::parse_space_separated("metrics:read bogus").is_err());
        assert_eq!(
            serde_json::to_string(&s).unwrap(),
            r#"["metrics:read","events:write"]"#
        );
    }

    #[test]
    fn group_grant_table() {
        let long_ok = "a".repeat(MAX_GROUP_NAME_BYTES);
        let too_long = "a".repeat(MAX_GROUP_NAME_BYTES + 1);
        let cases: &[(&[&str], bool)] = &[
            (&["ocp-qa"], true),
            (&["*"], true),
            (&["*", "*"], true),
            (&["A.b_c-9"], true),
            (&[long_ok.as_str()], true),
            (&["ocp-qa", "ocp-prod"], true),
            (&[], false),
            (&["*", "ocp-qa"], false),
            (&[""], false),
            (&[too_long.as_str()], false),
            (&["has space"], true),
            (&["slash/ok"], true),
            (&["ünïcode"], true),
            (&["a*"], true),
            (&["tab\there"], false),
            (&["new\nline"], false),
        ];
        for (input, ok) in cases {
            assert_eq!(GroupGrant::parse(input).is_ok(), *ok, "input {input:?}");
        }
    }

    /// A name can be granted exactly when events and queries accept it as a group: the grant
    /// and the data side parse with the same type, and `*` is neither a group nor grantable
    /// as one.
    #[test]
    fn grants_accept_the_group_names_events_accept() {
        let too_long = "g".repeat(MAX_GROUP_NAME_BYTES + 1);
        let names = [
            "ocp-qa",
            "a*",
            "**",
            " ",
            "x\u{7f}",
            "x\u{85}",
            "",
            too_long.as_str(),
        ];
        for name in names {
            assert_eq!(
                GroupGrant::parse(&[name]).is_ok(),
                GroupName::parse(name).is_ok(),
                "{name:?}"
            );
        }
        assert!(GroupName::parse("*").is_err());
        assert_eq!(GroupGrant::parse(&["*"]).unwrap(), GroupGrant::All);
    }

    #[test]
    fn group_grant_allows() {
        let all = GroupGrant::parse(&["*"]).unwrap();
        let qa = GroupGrant::parse(&["ocp-qa", "ocp-dev"]).unwrap();
        let cases = [
            (&all, "ocp-qa", true),
            (&all, "anything", true),
            (&qa, "ocp-qa", true),
            (&qa, "ocp-dev", true),
            (&qa, "ocp-prod", false),
            (&qa, "OCP-QA", false),
            (&qa, "*", false),
        ];
        for (grant, group, want) in cases {
            assert_eq!(grant.allows(group), want, "{grant:?} {group}");
        }
        assert_eq!(all.to_strings(), vec!["*"]);
        assert_eq!(qa.to_strings(), vec!["ocp-dev", "ocp-qa"]);
    }

    #[test]
    fn client_name_table() {
        let max = "é".repeat(MAX_NAME_CHARS);
        let cases: &[(&str, bool)] = &[
            ("ingest bot", true),
            (max.as_str(), true),
            ("x", true),
            ("", false),
            ("tab\there", false),
            ("new\nline", false),
        ];
        for (input, ok) in cases {
            assert_eq!(ClientName::parse(input).is_ok(), *ok, "input {input:?}");
        }
        assert!(ClientName::parse(&"a".repeat(MAX_NAME_CHARS + 1)).is_err());
    }

    #[test]
    fn grants_require() {
        let g = Grants {
            subject: "s".into(),
            groups: GroupGrant::parse(&["ocp-qa"]).unwrap(),
            scopes: ScopeSet::parse(&["metrics:read"]).unwrap(),
        };
        assert!(g.require_scope(Scope::MetricsRead).is_ok());
        assert!(matches!(
            g.require_scope(Scope::EventsWrite),
            Err(AuthError::Forbidden(_))
        ));
        assert!(g.require_group("ocp-qa").is_ok());
        assert!(matches!(
            g.require_group("other"),
            Err(AuthError::Forbidden(_))
        ));
    }
}
