//! Kafka's StandardAuthorizer decisions over the ACLs of the metadata
//! image, without I/O. Each core builds one `Authorizer` from the image
//! it has applied and rebuilds it only when the ACLs change, so produce
//! and fetch check their topics against a snapshot of their own core with
//! no lock.
//!
//! The rules (Kafka's): super users may do anything; of the ACLs whose
//! resource pattern covers the resource (its literal name, the literal
//! `*`, every PREFIXED pattern the name starts with), one that matches the
//! principal (or `User:*`) and host (or `*`) and DENYs the operation (or
//! ALL) denies; otherwise one that ALLOWs it, or an operation that
//! implies it, allows (READ, WRITE, DELETE and ALTER imply DESCRIBE;
//! ALTER_CONFIGS implies DESCRIBE_CONFIGS); with no ACL on the resource at
//! all, `allow.everyone.if.no.acl.found` decides; else denied.
//!
//! Lookups are bounded whatever the number of ACLs: literal names are a
//! hash lookup, prefixes one lookup per distinct prefix length present.

use controller::acl::{operation, permission, resource, WILDCARD};
use controller::AclBinding;
use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;

/// `authorizer.class.name`, `super.users`, `allow.everyone.if.no.acl.found`.
#[derive(Debug, Clone, Default)]
pub struct AuthorizerConfig {
    /// An authorizer is configured: without one every request is allowed
    /// and the ACL APIs answer SECURITY_DISABLED, as in Kafka.
    pub enabled: bool,
    /// `Type:name` entries; `User:*` makes everyone a super user.
    pub super_users: Vec<(String, String)>,
    pub allow_everyone_if_no_acl_found: bool,
}

/// The class names Kafka users set; any of them turns ACLs on.
pub const AUTHORIZER_CLASSES: &[&str] = &[
    "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
    "kafka.security.authorizer.AclAuthorizer",
];

impl AuthorizerConfig {
    /// `authorizer.class.name`: empty is none.
    pub fn set_class(&mut self, value: &str) -> Result<(), String> {
        let value = value.trim();
        if value.is_empty() {
            self.enabled = false;
        } else if AUTHORIZER_CLASSES.contains(&value) {
            self.enabled = true;
        } else {
            return Err(format!(
                "unknown authorizer {value}: expected {}",
                AUTHORIZER_CLASSES.join(" or ")
            ));
        }
        Ok(())
    }

    /// `super.users`: `User:alice;User:bob`.
    pub fn set_super_users(&mut self, value: &str) -> Result<(), String> {
        self.super_users = value
            .split(';')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(|entry| match entry.split_once(':') {
                Some((kind, name)) if !kind.is_empty() && !name.is_empty() => {
                    Ok((kind.to_string(), name.to_string()))
                }
                _ => Err(format!("{entry:?} is not a principal (Type:name)")),
            })
            .collect::<Result<_, _>>()?;
        Ok(())
    }
}

/// Who asks: the connection's principal and address.
#[derive(Debug, Clone, Copy)]
pub struct Caller<'a> {
    pub kind: &'a str,
    pub name: &'a str,
    pub host: IpAddr,
}

#[derive(Debug)]
enum Host {
    Any,
    Ip(IpAddr),
    /// Not an address: matches nobody (Kafka compares host addresses).
    Never,
}

#[derive(Debug)]
struct Entry {
    kind: String,
    /// None: `*`, any name of this kind.
    name: Option<String>,
    host: Host,
    operation: i8,
    allow: bool,
}

impl Entry {
    fn new(acl: &AclBinding) -> Entry {
        let (kind, name) = acl.principal.split_once(':').unwrap_or(("", ""));
        Entry {
            kind: kind.to_string(),
            name: (name != WILDCARD).then(|| name.to_string()),
            host: match acl.host.as_str() {
                WILDCARD => Host::Any,
                host => host.parse().map_or(Host::Never, Host::Ip),
            },
            operation: acl.operation,
            allow: acl.permission == permission::ALLOW,
        }
    }

    fn applies_to(&self, caller: &Caller) -> bool {
        self.kind == caller.kind
            && self.name.as_deref().is_none_or(|n| n == caller.name)
            && match self.host {
                Host::Any => true,
                Host::Ip(ip) => ip == caller.host,
                Host::Never => false,
            }
    }
}

/// Whether an ALLOW of `granted` allows `wanted`.
fn implies(granted: i8, wanted: i8) -> bool {
    use operation::*;
    granted == ALL
        || granted == wanted
        || (wanted == DESCRIBE && matches!(granted, READ | WRITE | DELETE | ALTER))
        || (wanted == DESCRIBE_CONFIGS && granted == ALTER_CONFIGS)
}

#[derive(Debug, Default)]
struct ResourceAcls {
    literal: HashMap<String, Vec<Entry>>,
    prefixed: HashMap<String, Vec<Entry>>,
    /// Byte lengths of the prefixes in `prefixed`.
    prefix_lengths: BTreeSet<usize>,
}

#[derive(Debug, Default)]
pub struct Authorizer {
    config: AuthorizerConfig,
    /// Topic, Group, Cluster, TransactionalId.
    resources: [ResourceAcls; 4],
}

fn slot(resource_type: i8) -> Option<usize> {
    match resource_type {
        resource::TOPIC => Some(0),
        resource::GROUP => Some(1),
        resource::CLUSTER => Some(2),
        resource::TRANSACTIONAL_ID => Some(3),
        _ => None,
    }
}

/// How a check came out, for the few callers that need more than yes/no.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    Denied,
}

impl Authorizer {
    pub fn new<'a>(
        config: &AuthorizerConfig,
        acls: impl IntoIterator<Item = &'a AclBinding>,
    ) -> Authorizer {
        let mut authorizer = Authorizer {
            config: config.clone(),
            resources: Default::default(),
        };
        for acl in acls {
            let Some(slot) = slot(acl.resource_type) else {
                continue;
            };
            let acls = &mut authorizer.resources[slot];
            let entries = if acl.pattern_type == controller::acl::pattern::PREFIXED {
                acls.prefix_lengths.insert(acl.resource_name.len());
                acls.prefixed.entry(acl.resource_name.clone()).or_default()
            } else {
                acls.literal.entry(acl.resource_name.clone()).or_default()
            };
            entries.push(Entry::new(acl));
        }
        authorizer
    }

    pub fn enabled(&self) -> bool {
        self.config.enabled
    }

    /// May `caller` do `op` on the resource?
    pub fn allows(&self, caller: &Caller, op: i8, resource_type: i8, name: &str) -> bool {
        self.decide(caller, op, resource_type, name) == Decision::Allowed
    }

    pub fn decide(&self, caller: &Caller, op: i8, resource_type: i8, name: &str) -> Decision {
        if !self.config.enabled || self.is_super_user(caller) {
            return Decision::Allowed;
        }
        let Some(slot) = slot(resource_type) else {
            return Decision::Denied;
        };
        let acls = &self.resources[slot];
        let mut found = false;
        let mut allowed = false;
        let mut check = |entries: Option<&Vec<Entry>>| -> bool {
            let Some(entries) = entries else {
                return false;
            };
            found |= !entries.is_empty();
            for entry in entries.iter().filter(|e| e.applies_to(caller)) {
                if entry.allow {
                    allowed |= implies(entry.operation, op);
                } else if entry.operation == op || entry.operation == operation::ALL {
                    return true;
                }
            }
            false
        };
        let mut denied = check(acls.literal.get(name)) || check(acls.literal.get(WILDCARD));
        for &len in acls.prefix_lengths.range(..=name.len()) {
            if denied {
                break;
            }
            if let Some(prefix) = name.get(..len) {
                denied = check(acls.prefixed.get(prefix));
            }
        }
        if denied {
            Decision::Denied
        } else if allowed || (!found && self.config.allow_everyone_if_no_acl_found) {
            Decision::Allowed
        } else {
            Decision::Denied
        }
    }

    /// May `caller` do `op` on some resource of the type (Kafka's
    /// `authorizeByResourceType`, what KIP-679 asks of an idempotent
    /// producer): an ALLOW for it on any pattern, unless a DENY covers every
    /// name (literal `*` or the empty prefix).
    pub fn allows_some(&self, caller: &Caller, op: i8, resource_type: i8) -> bool {
        if !self.config.enabled || self.is_super_user(caller) {
            return true;
        }
        // Kafka starts from a name no ACL names: allowed there (by the
        // wildcards, or by allow.everyone.if.no.acl.found when none
        // applies) is allowed somewhere.
        if self.allows(caller, op, resource_type, "hardcode") {
            return true;
        }
        let Some(slot) = slot(resource_type) else {
            return false;
        };
        let acls = &self.resources[slot];
        let denied_everywhere = acls
            .literal
            .get(WILDCARD)
            .into_iter()
            .chain(acls.prefixed.get(""))
            .flatten()
            .filter(|e| e.applies_to(caller))
            .any(|e| !e.allow && (e.operation == op || e.operation == operation::ALL));
        if denied_everywhere {
            return false;
        }
        let mut any_acl = false;
        for entries in acls.literal.values().chain(acls.prefixed.values()) {
            any_acl |= !entries.is_empty();
            if entries
                .iter()
                .any(|e| e.allow && e.applies_to(caller) && implies(e.operation, op))
            {
                return true;
            }
        }
        !any_acl && self.config.allow_everyone_if_no_acl_found
    }

    fn is_super_user(&self, caller: &Caller) -> bool {
        self.config
            .super_users
            .iter()
            .any(|(kind, name)| kind == caller.kind && (name == caller.name || name == WILDCARD))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use controller::acl::pattern::{LITERAL, PREFIXED};
    use operation::*;
    use resource::{CLUSTER, GROUP, TOPIC};

    fn acl(kind: i8, name: &str, pattern: i8, who: &str, op: i8, allow: bool) -> AclBinding {
        AclBinding {
            resource_type: kind,
            resource_name: name.into(),
            pattern_type: pattern,
            principal: who.into(),
            host: "*".into(),
            operation: op,
            permission: if allow {
                permission::ALLOW
            } else {
                permission::DENY
            },
        }
    }

    fn on() -> AuthorizerConfig {
        AuthorizerConfig {
            enabled: true,
            ..AuthorizerConfig::default()
        }
    }

    fn user(name: &str) -> Caller<'_> {
        Caller {
            kind: "User",
            name,
            host: "127.0.0.1".parse().expect("ip"),
        }
    }

    #[test]
    fn without_an_authorizer_everything_is_allowed() {
        let acls = [acl(TOPIC, "t", LITERAL, "User:*", ALL, false)];
        let authorizer = Authorizer::new(&AuthorizerConfig::default(), &acls);
        assert!(authorizer.allows(&user("alice"), WRITE, TOPIC, "t"));
    }

    #[test]
    fn allow_deny_implication_and_the_default() {
        let acls = [
            acl(TOPIC, "orders", LITERAL, "User:alice", WRITE, true),
            acl(TOPIC, "orders", LITERAL, "User:alice", ALTER_CONFIGS, true),
            acl(TOPIC, "logs-", PREFIXED, "User:*", READ, true),
            acl(TOPIC, "logs-secret", PREFIXED, "User:bob", ALL, false),
            acl(GROUP, "*", LITERAL, "User:alice", READ, true),
        ];
        let authorizer = Authorizer::new(&on(), &acls);
        let (alice, bob) = (user("alice"), user("bob"));
        assert!(authorizer.allows(&alice, WRITE, TOPIC, "orders"));
        assert!(
            authorizer.allows(&alice, DESCRIBE, TOPIC, "orders"),
            "WRITE implies DESCRIBE"
        );
        assert!(authorizer.allows(&alice, DESCRIBE_CONFIGS, TOPIC, "orders"));
        assert!(!authorizer.allows(&alice, READ, TOPIC, "orders"));
        assert!(!authorizer.allows(&bob, DESCRIBE, TOPIC, "orders"));
        assert!(authorizer.allows(&bob, READ, TOPIC, "logs-app"));
        assert!(
            !authorizer.allows(&bob, READ, TOPIC, "logs-secret-1"),
            "deny beats allow"
        );
        assert!(authorizer.allows(&alice, READ, TOPIC, "logs-secret-1"));
        assert!(
            authorizer.allows(&alice, READ, GROUP, "any-group"),
            "literal *"
        );
        assert!(!authorizer.allows(&bob, READ, GROUP, "any-group"));
        // No ACL on the resource: denied unless allow.everyone.if.no.acl.found.
        assert!(!authorizer.allows(&alice, DESCRIBE, TOPIC, "unguarded"));
        assert!(!authorizer.allows(&alice, DESCRIBE, CLUSTER, "kafka-cluster"));
        let open = AuthorizerConfig {
            allow_everyone_if_no_acl_found: true,
            ..on()
        };
        let authorizer = Authorizer::new(&open, &acls);
        assert!(authorizer.allows(&bob, DESCRIBE, TOPIC, "unguarded"));
        assert!(
            !authorizer.allows(&bob, DESCRIBE, TOPIC, "orders"),
            "an ACL exists"
        );
    }

    #[test]
    fn super_users_hosts_and_principal_kinds() {
        let mut config = on();
        config
            .set_super_users("User:admin; User:ops")
            .expect("super users");
        assert!(config.set_super_users("admin").is_err());
        let mut from_host = acl(TOPIC, "t", LITERAL, "User:alice", READ, true);
        from_host.host = "10.0.0.1".into();
        let authorizer = Authorizer::new(&config, [&from_host]);
        assert!(authorizer.allows(&user("admin"), ALTER, CLUSTER, "kafka-cluster"));
        assert!(
            !authorizer.allows(&user("alice"), READ, TOPIC, "t"),
            "other host"
        );
        let remote = Caller {
            host: "10.0.0.1".parse().expect("ip"),
            ..user("alice")
        };
        assert!(authorizer.allows(&remote, READ, TOPIC, "t"));
        let group_kind = Caller {
            kind: "Group",
            ..remote
        };
        assert!(!authorizer.allows(&group_kind, READ, TOPIC, "t"));
    }

    #[test]
    fn some_topic_writable_is_what_kip_679_asks() {
        let acls = [acl(TOPIC, "orders", LITERAL, "User:alice", WRITE, true)];
        let authorizer = Authorizer::new(&on(), &acls);
        assert!(authorizer.allows_some(&user("alice"), WRITE, TOPIC));
        assert!(!authorizer.allows_some(&user("bob"), WRITE, TOPIC));
        let denied = [
            acl(TOPIC, "orders", LITERAL, "User:alice", WRITE, true),
            acl(TOPIC, "*", LITERAL, "User:alice", ALL, false),
        ];
        let authorizer = Authorizer::new(&on(), &denied);
        assert!(!authorizer.allows_some(&user("alice"), WRITE, TOPIC));
        // With allow.everyone.if.no.acl.found, ACLs on other topics do not
        // take idempotent writes away from everyone else (Kafka's rule).
        let open = AuthorizerConfig {
            allow_everyone_if_no_acl_found: true,
            ..on()
        };
        let authorizer = Authorizer::new(&open, &acls);
        assert!(authorizer.allows_some(&user("bob"), WRITE, TOPIC));
    }

    #[test]
    fn many_prefixes_are_looked_up_by_length_not_scanned() {
        let acls: Vec<AclBinding> = (0..10_000)
            .map(|i| {
                acl(
                    TOPIC,
                    &format!("team-{i}-"),
                    PREFIXED,
                    "User:alice",
                    READ,
                    true,
                )
            })
            .collect();
        let authorizer = Authorizer::new(&on(), &acls);
        assert!(authorizer.resources[0].prefix_lengths.len() <= 5);
        assert!(authorizer.allows(&user("alice"), READ, TOPIC, "team-9999-events"));
        assert!(!authorizer.allows(&user("alice"), READ, TOPIC, "team-x-events"));
    }
}
