//! Channels and their members: the broadcast hub every connection task
//! shares, with a bounded queue per client.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_tungstenite::tungstenite::Message;
use async_tungstenite::tungstenite::protocol::CloseFrame;
use smol::channel::{Receiver, Sender, TrySendError};
use smol::future;

use super::{REASON_TOO_SLOW, close_frame};

/// Channels and their members. Shared by all connection tasks; the lock is
/// only held for in-memory work (never across an await).
pub(super) struct Hub {
    pub(super) state: Mutex<HubState>,
    pub(super) queue_capacity: usize,
}

pub(super) struct HubState {
    pub(super) channels: HashMap<String, Vec<Member>>,
    pub(super) next_id: u64,
    /// Cloned into each membership; `None` once shutting down, which also
    /// refuses new members.
    pub(super) alive: Option<Sender<()>>,
}

/// The hub's side of a client.
pub(super) struct Member {
    pub(super) id: u64,
    pub(super) notify_self: bool,
    pub(super) queue: Sender<Message>,
    pub(super) kick: Sender<CloseFrame>,
}

/// The connection's side of a client; leaving the hub on drop means no path
/// out of a connection task can leave a dead member behind.
pub(super) struct Membership {
    pub(super) hub: Arc<Hub>,
    pub(super) channel: String,
    pub(super) id: u64,
    pub(super) notify_self: bool,
    pub(super) queue: Receiver<Message>,
    pub(super) kick: Receiver<CloseFrame>,
    pub(super) _alive: Sender<()>,
}

impl Membership {
    /// Resolves when the hub wants this client gone, with the close frame.
    pub(super) async fn kicked(&self) -> CloseFrame {
        match self.kick.recv().await {
            Ok(frame) => frame,
            // No kick can come any more; the queue side decides.
            Err(_) => future::pending().await,
        }
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.hub.leave(&self.channel, self.id);
    }
}

impl Hub {
    pub(super) fn new(queue_capacity: usize, alive: Sender<()>) -> Hub {
        Hub {
            state: Mutex::new(HubState {
                channels: HashMap::new(),
                next_id: 1,
                alive: Some(alive),
            }),
            queue_capacity,
        }
    }

    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, HubState> {
        // The state stays consistent even if a holder panicked: every
        // critical section is a single insert, remove or loop of try_sends.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Adds a client to `channel`; `None` once the server is shutting down.
    pub(super) fn join(self: &Arc<Self>, channel: &str, notify_self: bool) -> Option<Membership> {
        let mut state = self.lock();
        let alive = state.alive.clone()?;
        let id = state.next_id;
        state.next_id += 1;
        let (queue_tx, queue) = smol::channel::bounded(self.queue_capacity);
        let (kick_tx, kick) = smol::channel::bounded(1);
        state
            .channels
            .entry(channel.to_string())
            .or_default()
            .push(Member {
                id,
                notify_self,
                queue: queue_tx,
                kick: kick_tx,
            });
        Some(Membership {
            hub: self.clone(),
            channel: channel.to_string(),
            id,
            notify_self,
            queue,
            kick,
            _alive: alive,
        })
    }

    pub(super) fn leave(&self, channel: &str, id: u64) {
        let mut state = self.lock();
        if let Some(members) = state.channels.get_mut(channel) {
            members.retain(|member| member.id != id);
            if members.is_empty() {
                state.channels.remove(channel);
            }
        }
    }

    /// Queues `message` for every member of `channel` but the sender (and
    /// for the sender too if it asked for `notify_self`); returns how many
    /// got it. A member whose queue is full is removed and kicked with 1008.
    pub(super) fn broadcast(&self, channel: &str, from: u64, message: &Message) -> usize {
        let mut state = self.lock();
        let Some(members) = state.channels.get_mut(channel) else {
            return 0;
        };
        let mut delivered = 0;
        members.retain(|member| {
            if member.id == from && !member.notify_self {
                return true;
            }
            match member.queue.try_send(message.clone()) {
                Ok(()) => {
                    delivered += 1;
                    true
                }
                Err(TrySendError::Full(_)) => {
                    log::warn!(
                        "demo-server: client {} on channel {channel:?} has {} messages waiting; \
                         disconnecting it (1008 {REASON_TOO_SLOW})",
                        member.id,
                        self.queue_capacity
                    );
                    let _ = member.kick.try_send(close_frame(1008, REASON_TOO_SLOW));
                    false
                }
                // The connection is ending; its Membership drop removes it.
                Err(TrySendError::Closed(_)) => true,
            }
        });
        delivered
    }

    /// Refuses new members and kicks every current one with `frame`.
    pub(super) fn shut_down(&self, frame: CloseFrame) {
        let mut state = self.lock();
        state.alive = None;
        for member in state.channels.drain().flat_map(|(_, members)| members) {
            let _ = member.kick.try_send(frame.clone());
        }
    }
}
