//! DeleteTopics: by name (v1-5 `topic_names`, v6 `topics`). Topic ids are
//! not assigned yet, so a delete by id is UNKNOWN_TOPIC_ID.

use crate::api::context::RequestContext;
use crate::core::Core;
use crate::errors::topic_error;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, TopicName};
use std::rc::Rc;

pub async fn handle(
    ctx: &RequestContext,
    core: &Rc<Core>,
    request: DeleteTopicsRequest,
) -> DeleteTopicsResponse {
    let version = ctx.version;
    let names: Vec<Option<TopicName>> = if version >= 6 {
        request.topics.into_iter().map(|t| t.name).collect()
    } else {
        request.topic_names.into_iter().map(Some).collect()
    };
    let mut responses = Vec::new();
    for name in names {
        let result = DeletableTopicResult::default().with_name(name.clone());
        let Some(name) = name else {
            responses.push(result.with_error_code(ResponseError::UnknownTopicId.code()));
            continue;
        };
        let code = match core.delete_topic(&name.0).await {
            Ok(()) => 0,
            Err(error) => topic_error(&error).code(),
        };
        responses.push(result.with_error_code(code));
    }
    DeleteTopicsResponse::default().with_responses(responses)
}
