//! AlterUserScramCredentials: what `kafka-configs --alter --add-config
//! 'SCRAM-SHA-256=[iterations=8192,password=...]' --entity-type users`
//! sends. The admin client salts and hashes the password itself; this
//! broker turns the salted password into StoredKey and ServerKey at once
//! and only those reach the controller (and its log). Checks are Kafka's:
//! a known mechanism, 4096..=16384 iterations, a non-empty name, salt and
//! password, no user altered twice for one mechanism; a deletion of a
//! credential that does not exist is RESOURCE_NOT_FOUND. Errors are per
//! user: one bad item fails every change of that user.

use crate::api::context::RequestContext;
use crate::core::{Core, METADATA_WRITE_TIMEOUT};
use crate::security::scram::{Mechanism, ITERATIONS_MAX, ITERATIONS_MIN};
use controller::{Request, Response, ScramCredential};
use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use std::collections::BTreeMap;
use std::rc::Rc;

type Failure = (ResponseError, String);

fn failure(error: ResponseError, message: &str) -> Failure {
    (error, message.to_string())
}

fn mechanism(code: i8) -> Result<Mechanism, Failure> {
    Mechanism::from_code(code).ok_or_else(|| {
        failure(
            ResponseError::UnsupportedSaslMechanism,
            "Unknown SCRAM mechanism",
        )
    })
}

pub async fn handle(
    ctx: &RequestContext,
    core: &Rc<Core>,
    request: AlterUserScramCredentialsRequest,
) -> AlterUserScramCredentialsResponse {
    let allowed = ctx.may_on_cluster(core, controller::acl::operation::ALTER);
    // Per user, in name order: the first failure, else the changes.
    let mut users: BTreeMap<String, Result<(), Failure>> = BTreeMap::new();
    let mut seen: BTreeMap<(String, i8), usize> = BTreeMap::new();
    for (name, code) in request
        .deletions
        .iter()
        .map(|d| (d.name.to_string(), d.mechanism))
        .chain(
            request
                .upsertions
                .iter()
                .map(|u| (u.name.to_string(), u.mechanism)),
        )
    {
        users.entry(name.clone()).or_insert(Ok(()));
        *seen.entry((name, code)).or_default() += 1;
    }
    if !allowed {
        for result in users.values_mut() {
            *result = Err(failure(
                ResponseError::ClusterAuthorizationFailed,
                "Cluster authorization failed.",
            ));
        }
    }
    let mut fail = |user: &str, error: Failure| {
        let entry = users.entry(user.to_string()).or_insert(Ok(()));
        if entry.is_ok() {
            *entry = Err(error);
        }
    };
    for ((user, _), times) in &seen {
        if *times > 1 {
            fail(
                user,
                failure(
                    ResponseError::DuplicateResource,
                    "A user credential cannot be altered twice in the same request",
                ),
            );
        }
    }
    let mut deletions = Vec::new();
    for deletion in &request.deletions {
        let user = deletion.name.to_string();
        if user.is_empty() {
            fail(
                &user,
                failure(
                    ResponseError::UnacceptableCredential,
                    "Username must not be empty",
                ),
            );
            continue;
        }
        match mechanism(deletion.mechanism) {
            Ok(m) => deletions.push((user, m.code())),
            Err(e) => fail(&user, e),
        }
    }
    let mut upsertions = Vec::new();
    for upsertion in &request.upsertions {
        let user = upsertion.name.to_string();
        let checked = (|| {
            if user.is_empty() {
                return Err(failure(
                    ResponseError::UnacceptableCredential,
                    "Username must not be empty",
                ));
            }
            let m = mechanism(upsertion.mechanism)?;
            if upsertion.iterations < ITERATIONS_MIN {
                return Err(failure(
                    ResponseError::UnacceptableCredential,
                    "Too few iterations",
                ));
            }
            if upsertion.iterations > ITERATIONS_MAX {
                return Err(failure(
                    ResponseError::UnacceptableCredential,
                    "Too many iterations",
                ));
            }
            if upsertion.salt.is_empty() || upsertion.salted_password.is_empty() {
                return Err(failure(
                    ResponseError::UnacceptableCredential,
                    "Credential must have a salt and a salted password",
                ));
            }
            Ok(m.credential(
                &user,
                &upsertion.salt,
                &upsertion.salted_password,
                upsertion.iterations,
            ))
        })();
        match checked {
            Ok(credential) => upsertions.push(credential),
            Err(e) => fail(&user, e),
        }
    }
    let valid = |name: &str| users.get(name).is_some_and(Result::is_ok);
    deletions.retain(|(name, _)| valid(name));
    upsertions.retain(|c: &ScramCredential| valid(&c.name));
    if !deletions.is_empty() || !upsertions.is_empty() {
        let request = Request::AlterUserScramCredentials {
            deletions,
            upsertions,
        };
        match core.metadata_write(request, METADATA_WRITE_TIMEOUT).await {
            Ok(Response::Items(items)) => {
                for (name, result) in items {
                    if let Err(error) = result {
                        let (code, message) = crate::errors::item_error(&error);
                        let entry = users.entry(name).or_insert(Ok(()));
                        if entry.is_ok() {
                            *entry = Err((code, message));
                        }
                    }
                }
            }
            Ok(_) => {}
            Err(error) => {
                let code = crate::errors::controller_error(&error);
                for result in users.values_mut().filter(|r| r.is_ok()) {
                    *result = Err((code, error.to_string()));
                }
            }
        }
    }
    let results = users
        .into_iter()
        .map(|(user, result)| {
            let answer =
                AlterUserScramCredentialsResult::default().with_user(StrBytes::from_string(user));
            match result {
                Ok(()) => answer,
                Err((code, message)) => answer
                    .with_error_code(code.code())
                    .with_error_message(Some(StrBytes::from_string(message))),
            }
        })
        .collect();
    AlterUserScramCredentialsResponse::default().with_results(results)
}
