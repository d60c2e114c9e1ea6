//! DescribeUserScramCredentials: each user's SCRAM mechanisms and
//! iteration counts from the metadata image (never the keys), all users
//! when none are named, as `kafka-configs --describe --entity-type users`
//! lists them.

use crate::api::context::RequestContext;
use crate::core::Core;
use crate::security::scram::Mechanism;
use controller::acl::operation;
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use std::collections::BTreeMap;
use std::rc::Rc;

pub async fn handle(
    ctx: &RequestContext,
    core: &Rc<Core>,
    request: DescribeUserScramCredentialsRequest,
) -> DescribeUserScramCredentialsResponse {
    if !ctx.may_on_cluster(core, operation::DESCRIBE) {
        return DescribeUserScramCredentialsResponse::default()
            .with_error_code(ResponseError::ClusterAuthorizationFailed.code());
    }
    let image = core.image();
    let describe = |user: &str, credentials: &BTreeMap<i8, controller::ScramCredential>| {
        DescribeUserScramCredentialsResult::default()
            .with_user(StrBytes::from_string(user.to_string()))
            .with_credential_infos(
                credentials
                    .values()
                    .filter(|c| Mechanism::from_code(c.mechanism).is_some())
                    .map(|c| {
                        CredentialInfo::default()
                            .with_mechanism(c.mechanism)
                            .with_iterations(c.iterations)
                    })
                    .collect(),
            )
    };
    let results = match request.users {
        None => image
            .scram_credentials
            .iter()
            .map(|(user, credentials)| describe(user, credentials))
            .collect(),
        Some(users) => {
            let mut asked: BTreeMap<String, usize> = BTreeMap::new();
            for user in &users {
                *asked.entry(user.name.to_string()).or_default() += 1;
            }
            let failed = |user: &str, error: ResponseError, message: &str| {
                DescribeUserScramCredentialsResult::default()
                    .with_user(StrBytes::from_string(user.to_string()))
                    .with_error_code(error.code())
                    .with_error_message(Some(StrBytes::from_string(message.to_string())))
            };
            asked
                .iter()
                .map(|(user, &times)| match image.scram_credentials.get(user) {
                    _ if times > 1 => failed(
                        user,
                        ResponseError::DuplicateResource,
                        "Cannot describe SCRAM credentials for the same user twice in a single request",
                    ),
                    Some(credentials) => describe(user, credentials),
                    None => failed(
                        user,
                        ResponseError::ResourceNotFound,
                        "Attempt to describe a user credential that does not exist",
                    ),
                })
                .collect()
        }
    };
    DescribeUserScramCredentialsResponse::default().with_results(results)
}
