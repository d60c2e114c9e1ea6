//! DescribeCluster: this single broker, also the controller.

use crate::api::context::RequestContext;
use crate::api::metadata::CLUSTER_ID;
use crate::core::Core;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};
use kafka_protocol::protocol::StrBytes;
use std::rc::Rc;

pub async fn handle(
    _ctx: &RequestContext,
    core: &Rc<Core>,
    _request: DescribeClusterRequest,
) -> DescribeClusterResponse {
    let config = &core.config;
    let node = BrokerId(config.node_id);
    let broker = DescribeClusterBroker::default()
        .with_broker_id(node)
        .with_host(StrBytes::from_string(config.advertised_host.clone()))
        .with_port(i32::from(config.advertised_port));
    DescribeClusterResponse::default()
        .with_cluster_id(StrBytes::from_static_str(CLUSTER_ID))
        .with_controller_id(node)
        .with_brokers(vec![broker])
}
