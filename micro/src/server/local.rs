//! Services hosted by this process, for the in-process fast path.

use std::sync::{Arc, LazyLock};

use dashmap::DashMap;

use super::Router;

static HOSTED: LazyLock<DashMap<Arc<str>, Vec<Arc<Router>>>> = LazyLock::new(DashMap::new);

pub(crate) fn add(router: &Arc<Router>) {
    HOSTED
        .entry(router.service.clone())
        .or_default()
        .push(router.clone());
}

pub(crate) fn remove(router: &Arc<Router>) {
    if let Some(mut routers) = HOSTED.get_mut(&router.service) {
        routers.retain(|r| !Arc::ptr_eq(r, router));
    }
    HOSTED.remove_if(&router.service, |_, v| v.is_empty());
}

/// A router of this process serving `service`, if any (spread over several at random).
pub(crate) fn find(service: &str) -> Option<Arc<Router>> {
    let routers = HOSTED.get(service)?;
    match routers.len() {
        0 => None,
        1 => Some(routers[0].clone()),
        n => Some(routers[fastrand::usize(..n)].clone()),
    }
}
