//! Kafka's ACL model as the metadata log holds it: a binding is a resource
//! pattern (type, name, LITERAL or PREFIXED) with an access-control entry
//! (principal, host, operation, ALLOW or DENY), in Kafka's wire codes so
//! CreateAcls, DescribeAcls and DeleteAcls map one to one. A filter is
//! what DescribeAcls and DeleteAcls send: the same fields, each of which
//! may be "any", and a resource pattern type MATCH that selects every
//! binding which would apply to one named resource.

use serde::{Deserialize, Serialize};

/// Kafka's ResourceType codes.
pub mod resource {
    pub const ANY: i8 = 1;
    pub const TOPIC: i8 = 2;
    pub const GROUP: i8 = 3;
    pub const CLUSTER: i8 = 4;
    pub const TRANSACTIONAL_ID: i8 = 5;
    /// Stored and listed as Kafka does, though delegation tokens are not
    /// served: ACLs on them (and on users, who may create tokens for
    /// others) carry over from a Kafka cluster.
    pub const DELEGATION_TOKEN: i8 = 6;
    pub const USER: i8 = 7;
}

/// Kafka's PatternType codes.
pub mod pattern {
    pub const ANY: i8 = 1;
    pub const MATCH: i8 = 2;
    pub const LITERAL: i8 = 3;
    pub const PREFIXED: i8 = 4;
}

/// Kafka's AclOperation codes.
pub mod operation {
    pub const ANY: i8 = 1;
    pub const ALL: i8 = 2;
    pub const READ: i8 = 3;
    pub const WRITE: i8 = 4;
    pub const CREATE: i8 = 5;
    pub const DELETE: i8 = 6;
    pub const ALTER: i8 = 7;
    pub const DESCRIBE: i8 = 8;
    pub const CLUSTER_ACTION: i8 = 9;
    pub const DESCRIBE_CONFIGS: i8 = 10;
    pub const ALTER_CONFIGS: i8 = 11;
    pub const IDEMPOTENT_WRITE: i8 = 12;
}

/// Kafka's AclPermissionType codes.
pub mod permission {
    pub const ANY: i8 = 1;
    pub const DENY: i8 = 2;
    pub const ALLOW: i8 = 3;
}

/// The one name of the cluster resource.
pub const CLUSTER_NAME: &str = "kafka-cluster";
/// A literal resource name, principal name or host matching all.
pub const WILDCARD: &str = "*";

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AclBinding {
    pub resource_type: i8,
    pub resource_name: String,
    /// LITERAL or PREFIXED.
    pub pattern_type: i8,
    /// `User:alice`, or `User:*`.
    pub principal: String,
    /// An IP address, or `*`.
    pub host: String,
    pub operation: i8,
    /// ALLOW or DENY.
    pub permission: i8,
}

/// Why CreateAcls refuses a binding (Kafka answers INVALID_REQUEST, or
/// UNKNOWN_SERVER_ERROR for unknown codes, with these messages).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidAcl {
    #[error("Invalid resource type")]
    ResourceType,
    #[error("Invalid pattern type: only LITERAL and PREFIXED ACLs can be created")]
    PatternType,
    #[error("Invalid operation")]
    Operation,
    #[error("Invalid permission type")]
    Permission,
    #[error("Resource name must not be empty")]
    EmptyName,
    #[error("The only valid name for the CLUSTER resource is kafka-cluster")]
    ClusterName,
    #[error("Invalid principal: expected Type:name")]
    Principal,
    #[error("Invalid host")]
    Host,
}

impl AclBinding {
    /// Kafka's checks before an ACL is stored.
    pub fn validate(&self) -> Result<(), InvalidAcl> {
        use operation as op;
        if !matches!(
            self.resource_type,
            resource::TOPIC
                | resource::GROUP
                | resource::CLUSTER
                | resource::TRANSACTIONAL_ID
                | resource::DELEGATION_TOKEN
                | resource::USER
        ) {
            return Err(InvalidAcl::ResourceType);
        }
        if !matches!(self.pattern_type, pattern::LITERAL | pattern::PREFIXED) {
            return Err(InvalidAcl::PatternType);
        }
        if !(op::ALL..=op::IDEMPOTENT_WRITE).contains(&self.operation) {
            return Err(InvalidAcl::Operation);
        }
        if !matches!(self.permission, permission::ALLOW | permission::DENY) {
            return Err(InvalidAcl::Permission);
        }
        if self.resource_name.is_empty() {
            return Err(InvalidAcl::EmptyName);
        }
        if self.resource_type == resource::CLUSTER && self.resource_name != CLUSTER_NAME {
            return Err(InvalidAcl::ClusterName);
        }
        match self.principal.split_once(':') {
            Some((kind, name)) if !kind.is_empty() && !name.is_empty() => {}
            _ => return Err(InvalidAcl::Principal),
        }
        if self.host.is_empty() {
            return Err(InvalidAcl::Host);
        }
        Ok(())
    }
}

/// A DescribeAcls / DeleteAcls filter; `None` matches any value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclFilter {
    /// ANY, or one resource type.
    pub resource_type: i8,
    pub resource_name: Option<String>,
    /// ANY, MATCH, LITERAL or PREFIXED.
    pub pattern_type: i8,
    pub principal: Option<String>,
    pub host: Option<String>,
    /// ANY, or one operation.
    pub operation: i8,
    /// ANY, or ALLOW or DENY.
    pub permission: i8,
}

impl AclFilter {
    pub fn matches(&self, acl: &AclBinding) -> bool {
        let code = |want: i8, any: i8, have: i8| want == any || want == have;
        code(self.resource_type, resource::ANY, acl.resource_type)
            && self.pattern_matches(acl)
            && self.principal.as_ref().is_none_or(|p| *p == acl.principal)
            && self.host.as_ref().is_none_or(|h| *h == acl.host)
            && code(self.operation, operation::ANY, acl.operation)
            && code(self.permission, permission::ANY, acl.permission)
    }

    fn pattern_matches(&self, acl: &AclBinding) -> bool {
        match self.pattern_type {
            // MATCH: every binding that applies to the named resource.
            pattern::MATCH => match &self.resource_name {
                None => true,
                Some(name) => match acl.pattern_type {
                    pattern::LITERAL => acl.resource_name == *name || acl.resource_name == WILDCARD,
                    pattern::PREFIXED => name.starts_with(&acl.resource_name),
                    _ => false,
                },
            },
            kind => {
                (kind == pattern::ANY || kind == acl.pattern_type)
                    && self
                        .resource_name
                        .as_ref()
                        .is_none_or(|n| *n == acl.resource_name)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(kind: i8, name: &str, pattern_type: i8) -> AclBinding {
        AclBinding {
            resource_type: kind,
            resource_name: name.into(),
            pattern_type,
            principal: "User:alice".into(),
            host: "*".into(),
            operation: operation::READ,
            permission: permission::ALLOW,
        }
    }

    fn any() -> AclFilter {
        AclFilter {
            resource_type: resource::ANY,
            resource_name: None,
            pattern_type: pattern::ANY,
            principal: None,
            host: None,
            operation: operation::ANY,
            permission: permission::ANY,
        }
    }

    #[test]
    fn validation_is_kafkas() {
        assert_eq!(
            binding(resource::TOPIC, "t", pattern::LITERAL).validate(),
            Ok(())
        );
        assert_eq!(
            binding(resource::TOPIC, "t", pattern::MATCH).validate(),
            Err(InvalidAcl::PatternType)
        );
        assert_eq!(
            binding(resource::CLUSTER, "c", pattern::LITERAL).validate(),
            Err(InvalidAcl::ClusterName)
        );
        assert_eq!(
            binding(resource::USER, "alice", pattern::LITERAL).validate(),
            Ok(())
        );
        assert_eq!(
            binding(8, "t", pattern::LITERAL).validate(),
            Err(InvalidAcl::ResourceType)
        );
        assert_eq!(
            binding(resource::ANY, "t", pattern::LITERAL).validate(),
            Err(InvalidAcl::ResourceType)
        );
        let mut no_kind = binding(resource::TOPIC, "t", pattern::LITERAL);
        no_kind.principal = "alice".into();
        assert_eq!(no_kind.validate(), Err(InvalidAcl::Principal));
        let mut any_op = binding(resource::TOPIC, "t", pattern::LITERAL);
        any_op.operation = operation::ANY;
        assert_eq!(any_op.validate(), Err(InvalidAcl::Operation));
    }

    #[test]
    fn filters_select_by_field_and_match_selects_what_applies() {
        let literal = binding(resource::TOPIC, "orders", pattern::LITERAL);
        let wildcard = binding(resource::TOPIC, "*", pattern::LITERAL);
        let prefixed = binding(resource::TOPIC, "ord", pattern::PREFIXED);
        let other = binding(resource::TOPIC, "payments", pattern::LITERAL);
        let group = binding(resource::GROUP, "orders", pattern::LITERAL);
        let all = [&literal, &wildcard, &prefixed, &other, &group];
        assert!(all.iter().all(|acl| any().matches(acl)));

        let matching = AclFilter {
            resource_type: resource::TOPIC,
            resource_name: Some("orders".into()),
            pattern_type: pattern::MATCH,
            ..any()
        };
        let selected: Vec<_> = all.iter().filter(|a| matching.matches(a)).collect();
        assert_eq!(selected, [&&literal, &&wildcard, &&prefixed]);

        let exact = AclFilter {
            resource_name: Some("orders".into()),
            pattern_type: pattern::LITERAL,
            ..any()
        };
        let selected: Vec<_> = all.iter().filter(|a| exact.matches(a)).collect();
        assert_eq!(selected, [&&literal, &&group]);

        let deny_only = AclFilter {
            permission: permission::DENY,
            ..any()
        };
        assert!(!deny_only.matches(&literal));
        let bob = AclFilter {
            principal: Some("User:bob".into()),
            ..any()
        };
        assert!(!bob.matches(&literal));
    }
}
