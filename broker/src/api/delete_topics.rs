//! DeleteTopics: by name (v1-5 `topic_names`, v6 `topics` by name or id),
//! through the controller; each broker drops its partitions as it applies
//! the removal.

use crate::api::context::RequestContext;
use crate::core::Core;
use crate::errors::topic_error;
use controller::acl::operation::{DELETE, DESCRIBE};
use controller::acl::resource::TOPIC;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use std::rc::Rc;

pub async fn handle(
    ctx: &RequestContext,
    core: &Rc<Core>,
    request: DeleteTopicsRequest,
) -> DeleteTopicsResponse {
    let version = ctx.version;
    let names: Vec<(Option<TopicName>, uuid::Uuid)> = if version >= 6 {
        request
            .topics
            .into_iter()
            .map(|t| (t.name, t.topic_id))
            .collect()
    } else {
        request
            .topic_names
            .into_iter()
            .map(|n| (Some(n), uuid::Uuid::nil()))
            .collect()
    };
    let mut responses = Vec::new();
    for name in names {
        let (name, id) = name;
        let by_id = name.is_none().then(|| {
            core.image()
                .topic_by_id(id.as_u128())
                .map(|t| TopicName(StrBytes::from_string(t.name.clone())))
        });
        let by_id = by_id.flatten();
        // A topic named by id stays nameless to a caller that may not
        // describe it (Kafka's ControllerApis.deleteTopics).
        if by_id
            .as_ref()
            .is_some_and(|n| !ctx.may(core, DESCRIBE, TOPIC, &n.0))
        {
            responses.push(
                DeletableTopicResult::default()
                    .with_name(None)
                    .with_topic_id(id)
                    .with_error_code(ResponseError::TopicAuthorizationFailed.code()),
            );
            continue;
        }
        let name = name.or(by_id);
        let result = DeletableTopicResult::default()
            .with_name(name.clone())
            .with_topic_id(id);
        let Some(name) = name else {
            responses.push(result.with_error_code(ResponseError::UnknownTopicId.code()));
            continue;
        };
        if !ctx.may(core, DELETE, TOPIC, &name.0) {
            responses.push(result.with_error_code(ResponseError::TopicAuthorizationFailed.code()));
            continue;
        }
        let code = match core.delete_topic(&name.0).await {
            Ok(()) => 0,
            Err(error) => topic_error(&error).code(),
        };
        responses.push(result.with_error_code(code));
    }
    DeleteTopicsResponse::default().with_responses(responses)
}
