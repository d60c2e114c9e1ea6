//! ACLs through `decide` and the image: creating is idempotent, deleting
//! removes what any filter matched (answered per filter), the image keeps
//! the set and moves `acls_changed_at`, and snapshots keep them.

use crate::leadership::Cluster;
use controller::acl::{operation, pattern, permission, resource};
use controller::decide::{Request, Response};
use controller::{AclBinding, AclFilter, MetadataImage};

fn acl(name: &str, pattern_type: i8, principal: &str, op: i8) -> AclBinding {
    AclBinding {
        resource_type: resource::TOPIC,
        resource_name: name.into(),
        pattern_type,
        principal: principal.into(),
        host: "*".into(),
        operation: op,
        permission: permission::ALLOW,
    }
}

fn by_principal(principal: &str) -> AclFilter {
    AclFilter {
        resource_type: resource::ANY,
        resource_name: None,
        pattern_type: pattern::ANY,
        principal: Some(principal.into()),
        host: None,
        operation: operation::ANY,
        permission: permission::ANY,
    }
}

#[test]
fn acls_are_created_once_deleted_by_filter_and_kept_in_snapshots() {
    let mut cluster = Cluster::new(&[1]);
    let read = acl("orders", pattern::LITERAL, "User:alice", operation::READ);
    let write = acl("ord", pattern::PREFIXED, "User:alice", operation::WRITE);
    let bob = acl("orders", pattern::LITERAL, "User:bob", operation::READ);
    let create = Request::CreateAcls {
        bindings: vec![read.clone(), write.clone(), read.clone(), bob.clone()],
    };
    assert_eq!(
        cluster.records_of(create.clone()).len(),
        3,
        "duplicates once"
    );
    assert!(matches!(cluster.ask(create.clone()), Ok(Response::Items(items)) if items.len() == 4));
    assert_eq!(cluster.image.acls.len(), 3);
    let changed = cluster.image.acls_changed_at;
    assert!(changed > 0);
    assert!(
        cluster.records_of(create).is_empty(),
        "existing ACLs change nothing"
    );

    let answer = cluster.ask(Request::DeleteAcls {
        filters: vec![by_principal("User:alice"), by_principal("User:nobody")],
    });
    let Ok(Response::AclsDeleted(matched)) = answer else {
        panic!("{answer:?}");
    };
    assert_eq!(matched.len(), 2);
    let mut alice = matched[0].clone();
    alice.sort();
    let mut expected = vec![read, write];
    expected.sort();
    assert_eq!(alice, expected);
    assert!(matched[1].is_empty());
    assert_eq!(cluster.image.acls.iter().collect::<Vec<_>>(), [&bob]);
    assert!(cluster.image.acls_changed_at > changed);

    let restored = MetadataImage::decode(&cluster.image.encode()).expect("snapshot");
    assert_eq!(restored.acls, cluster.image.acls);
    assert_eq!(restored.acls_changed_at, cluster.image.acls_changed_at);
}
