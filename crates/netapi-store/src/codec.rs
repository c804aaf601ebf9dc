//! Turning model values into columns and back. Both backends store the same column types:
//! text ids, integer seconds, integer scope bit sets and binary hashes.

use netapi_core::StoreError;
use netapi_core::model::{
    ClientAuthMethod, DeliveryStatus, GrantType, ResourceScope, SigningAlgorithm,
};
use netapi_core::scope::Role;
use netapi_core::secret::SecretHash;
use netapi_core::store::Invalidation;

pub(crate) fn corrupt(what: &str) -> StoreError {
    StoreError::Other(format!("stored {what} is unreadable"))
}

pub(crate) fn amr(text: &str) -> Result<netapi_core::model::Amr, StoreError> {
    netapi_core::model::Amr::parse(text).ok_or_else(|| corrupt("amr"))
}

pub(crate) fn hash(bytes: &[u8]) -> Result<SecretHash, StoreError> {
    SecretHash::from_slice(bytes).ok_or_else(|| corrupt("hash"))
}

pub(crate) fn role(name: &str) -> Result<Role, StoreError> {
    Role::parse(name).ok_or_else(|| corrupt("role"))
}

pub(crate) fn auth_method(name: &str) -> Result<ClientAuthMethod, StoreError> {
    ClientAuthMethod::parse(name).ok_or_else(|| corrupt("auth method"))
}

pub(crate) fn delivery_status(name: &str) -> Result<DeliveryStatus, StoreError> {
    DeliveryStatus::parse(name).ok_or_else(|| corrupt("delivery status"))
}

pub(crate) fn alg(name: &str) -> Result<SigningAlgorithm, StoreError> {
    SigningAlgorithm::parse(name).ok_or_else(|| corrupt("algorithm"))
}

/// A stored count that must fit a `u32` (rate limits, lifetimes); anything else reads as none.
pub(crate) fn rate_limit(stored: Option<i64>) -> Option<u32> {
    stored.and_then(|n| u32::try_from(n).ok())
}

/// Redirect URIs are stored one per line (a validated URI has no line break).
pub(crate) fn join_uris(uris: &[String]) -> String {
    uris.join("\n")
}

pub(crate) fn split_uris(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

pub(crate) fn join_grants(grants: &[GrantType]) -> String {
    grants
        .iter()
        .map(|g| g.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

pub(crate) fn split_grants(text: &str) -> Result<Vec<GrantType>, StoreError> {
    text.split(' ')
        .filter(|s| !s.is_empty())
        .map(|s| GrantType::parse(s).ok_or_else(|| corrupt("grant type")))
        .collect()
}

/// Scope names and identifiers are stored space-separated (neither has white space).
pub(crate) fn join_names(names: &[String]) -> String {
    names.join(" ")
}

pub(crate) fn split_names(text: &str) -> Vec<String> {
    text.split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A resource's scopes, one per line: the name, a space, the description (validated
/// descriptions have no line breaks).
pub(crate) fn join_resource_scopes(scopes: &[ResourceScope]) -> String {
    scopes
        .iter()
        .map(|s| format!("{} {}", s.name, s.description))
        .collect::<Vec<_>>()
        .join("\n")
}

pub(crate) fn split_resource_scopes(text: &str) -> Vec<ResourceScope> {
    text.lines()
        .filter(|l| !l.is_empty())
        .map(|line| {
            let (name, description) = line.split_once(' ').unwrap_or((line, ""));
            ResourceScope {
                name: name.to_owned(),
                description: description.to_owned(),
            }
        })
        .collect()
}

/// Consented `(resource id, scope)` pairs as `res_.../name` words (ids have no `/`).
pub(crate) fn join_pairs(pairs: &[(String, String)]) -> String {
    pairs
        .iter()
        .map(|(resource, scope)| format!("{resource}/{scope}"))
        .collect::<Vec<_>>()
        .join(" ")
}

pub(crate) fn split_pairs(text: &str) -> Vec<(String, String)> {
    text.split(' ')
        .filter_map(|word| word.split_once('/'))
        .map(|(resource, scope)| (resource.to_owned(), scope.to_owned()))
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// `(kind, subject, expires_at)` columns of an invalidation.
pub(crate) fn encode_invalidation(inv: &Invalidation) -> (&'static str, String, Option<i64>) {
    match inv {
        Invalidation::ApiKey(h) => ("api_key", hex(&h.0), None),
        Invalidation::User(id) => ("user", id.clone(), None),
        Invalidation::Client(id) => ("client", id.clone(), None),
        Invalidation::AccessToken { jti, expires_at } => {
            ("access_token", jti.clone(), Some(*expires_at))
        }
        Invalidation::Family {
            family_id,
            expires_at,
        } => ("family", family_id.clone(), Some(*expires_at)),
        Invalidation::SigningKeys => ("signing_keys", String::new(), None),
        Invalidation::Resource(id) => ("resource", id.clone(), None),
        Invalidation::Grant {
            user_id,
            resource_id,
        } => ("grant", format!("{user_id} {resource_id}"), None),
    }
}

pub(crate) fn decode_invalidation(
    kind: &str,
    subject: String,
    expires_at: Option<i64>,
) -> Option<Invalidation> {
    Some(match kind {
        "api_key" => Invalidation::ApiKey(SecretHash::from_slice(&unhex(&subject)?)?),
        "user" => Invalidation::User(subject),
        "client" => Invalidation::Client(subject),
        "access_token" => Invalidation::AccessToken {
            jti: subject,
            expires_at: expires_at?,
        },
        "family" => Invalidation::Family {
            family_id: subject,
            expires_at: expires_at?,
        },
        "signing_keys" => Invalidation::SigningKeys,
        "resource" => Invalidation::Resource(subject),
        "grant" => {
            let (user_id, resource_id) = subject.split_once(' ')?;
            Invalidation::Grant {
                user_id: user_id.to_owned(),
                resource_id: resource_id.to_owned(),
            }
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_round_trip() {
        let scopes = vec![
            ResourceScope {
                name: "orders:read".to_owned(),
                description: "Read your orders, all of them".to_owned(),
            },
            ResourceScope {
                name: "x".to_owned(),
                description: String::new(),
            },
        ];
        assert_eq!(
            split_resource_scopes(&join_resource_scopes(&scopes)),
            scopes
        );
        let names = vec!["a".to_owned(), "b:c".to_owned()];
        assert_eq!(split_names(&join_names(&names)), names);
        assert!(split_names("").is_empty());
        let pairs = vec![("res_1".to_owned(), "a:b".to_owned())];
        assert_eq!(split_pairs(&join_pairs(&pairs)), pairs);
    }

    #[test]
    fn invalidations_round_trip() {
        let all = [
            Invalidation::ApiKey(SecretHash([7; 32])),
            Invalidation::User("usr_1".to_owned()),
            Invalidation::Client("cli_1".to_owned()),
            Invalidation::AccessToken {
                jti: "at_1".to_owned(),
                expires_at: 5,
            },
            Invalidation::Family {
                family_id: "fam_1".to_owned(),
                expires_at: 6,
            },
            Invalidation::SigningKeys,
            Invalidation::Resource("res_1".to_owned()),
            Invalidation::Grant {
                user_id: "usr_1".to_owned(),
                resource_id: "res_1".to_owned(),
            },
        ];
        for inv in all {
            let (kind, subject, exp) = encode_invalidation(&inv);
            assert_eq!(decode_invalidation(kind, subject, exp), Some(inv));
        }
    }
}
