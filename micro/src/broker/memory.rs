use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::{Broker, BrokerError, EventHandler, Message, SubscribeOptions, Subscription};
use crate::BoxFuture;

/// Publish/subscribe within one process.
///
/// `publish` runs every target's handler and returns when all have answered; it fails,
/// naming them, when any did not acknowledge. Nothing is stored: a topic with no subscriber
/// drops the message.
///
/// See the [module docs](super) for an example.
#[derive(Debug, Default)]
pub struct MemoryBroker {
    state: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    topics: HashMap<String, Vec<Sub>>,
    turns: HashMap<(String, String), Arc<AtomicUsize>>,
}

struct Sub {
    id: u64,
    queue: Option<String>,
    handler: Arc<dyn EventHandler>,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let counts: HashMap<_, _> = self.topics.iter().map(|(t, s)| (t, s.len())).collect();
        f.debug_struct("State")
            .field("subscribers", &counts)
            .finish()
    }
}

static IDS: AtomicU64 = AtomicU64::new(1);

impl MemoryBroker {
    /// A broker with no subscriptions.
    ///
    /// See the [module docs](super) for an example.
    pub fn new() -> Self {
        Self::default()
    }
}

/// Picks the targets of one message: every broadcast subscriber, one member per queue group.
fn targets(state: &mut State, topic: &str) -> Vec<(String, Arc<dyn EventHandler>)> {
    let Some(subs) = state.topics.get(topic) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut groups: HashMap<&str, Vec<&Sub>> = HashMap::new();
    for sub in subs {
        match &sub.queue {
            None => out.push((format!("subscriber {}", sub.id), sub.handler.clone())),
            Some(q) => groups.entry(q).or_default().push(sub),
        }
    }
    let mut picks = Vec::new();
    for (queue, members) in groups {
        let turn = state
            .turns
            .entry((topic.to_owned(), queue.to_owned()))
            .or_default()
            .fetch_add(1, Ordering::Relaxed);
        let sub = members[turn % members.len()];
        picks.push((
            format!("queue {queue} (subscriber {})", sub.id),
            sub.handler.clone(),
        ));
    }
    out.extend(picks);
    out
}

impl Broker for MemoryBroker {
    fn name(&self) -> &'static str {
        "memory"
    }

    fn publish<'a>(
        &'a self,
        topic: &'a str,
        msg: Message,
    ) -> BoxFuture<'a, Result<(), BrokerError>> {
        Box::pin(async move {
            if topic.is_empty() {
                return Err(BrokerError::Invalid("empty topic".into()));
            }
            let targets = {
                let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
                targets(&mut state, topic)
            };
            let runs = targets.into_iter().map(|(name, handler)| {
                let fut = handler.handle(topic, msg.clone());
                async move { (name, fut.await) }
            });
            super::gather(topic, runs).await
        })
    }

    fn subscribe<'a>(
        &'a self,
        topic: &'a str,
        opts: SubscribeOptions,
        handler: Arc<dyn EventHandler>,
    ) -> BoxFuture<'a, Result<Subscription, BrokerError>> {
        Box::pin(async move {
            if topic.is_empty() {
                return Err(BrokerError::Invalid("empty topic".into()));
            }
            let id = IDS.fetch_add(1, Ordering::Relaxed);
            {
                let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
                state.topics.entry(topic.to_owned()).or_default().push(Sub {
                    id,
                    queue: opts.queue.clone(),
                    handler,
                });
            }
            let state = Arc::downgrade(&self.state);
            let key = topic.to_owned();
            Ok(Subscription::new(topic, opts.queue, move || {
                Box::pin(async move {
                    if let Some(state) = state.upgrade() {
                        let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
                        if let Some(subs) = state.topics.get_mut(&key) {
                            subs.retain(|s| s.id != id);
                        }
                    }
                })
            }))
        })
    }
}
