//! Asking every node of a service the same question (`Debug.Health`, `Debug.Stats`).

use std::sync::Arc;

use micro::registry::Registry;
use micro::{Client, Error, Message};
use serde::Serialize;

/// One node's answer, or why it gave none.
#[derive(Debug, Serialize)]
pub(crate) struct NodeReport<T> {
    /// The node id.
    pub(crate) node: String,
    pub(crate) address: String,
    pub(crate) version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) reply: Option<T>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<Error>,
}

/// Calls `endpoint` (which takes no request) on each node of `service` at once, addressing
/// each node directly; reports come back sorted by node id.
///
/// # Errors
/// When the service has no node in the registry (404), or the registry is unreachable.
pub(crate) async fn each_node<T: Message>(
    registry: &Arc<dyn Registry>,
    client: &Client,
    service: &str,
    endpoint: &'static str,
) -> Result<Vec<NodeReport<T>>, Error> {
    let versions = registry.get_service(service).await?;
    let name: Arc<str> = service.into();
    let calls = versions.into_iter().flat_map(|v| {
        let version = v.version;
        v.nodes.into_iter().map(move |n| (version.clone(), n))
    });
    let mut tasks = Vec::new();
    for (version, node) in calls {
        let call = client
            .call::<(), T>(name.clone(), endpoint, ())
            .node(&node.address);
        tasks.push(tokio::spawn(async move {
            let result = call.await;
            NodeReport {
                node: node.id,
                address: node.address,
                version,
                error: result.as_ref().err().cloned(),
                reply: result.ok(),
            }
        }));
    }
    let mut reports = Vec::with_capacity(tasks.len());
    for task in tasks {
        reports.push(task.await.map_err(|e| Error::internal("micro.cli", e))?);
    }
    reports.sort_by(|a, b| a.node.cmp(&b.node));
    Ok(reports)
}
