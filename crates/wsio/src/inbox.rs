//! An instance's inbox: what reaches its runner (actions from controller
//! threads, events from its connection tasks), in one order.
//!
//! A `VecDeque` under a mutex, and a waker. A push is a lock, a move into
//! memory the queue keeps, and a wake only when the queue was empty (the
//! runner takes what is there before it sleeps, so a queue that is not empty
//! has a wake on its way). The runner takes up to a batch under one lock.
//! Against an unbounded channel this saves the channel's block allocations
//! (freed on the other thread), a notification per push and a second lock:
//! [`Inbox::push_with`] runs a check and the push under the same lock.
//!
//! Small Send Message texts travel as bytes copied into the inbox's byte
//! buffer (the item holds only their length) rather than as a shared
//! `Bytes`: a reference count that the controller's thread raises and the
//! runner's thread lowers, per message, moved its cache line between the
//! cores twice a message, which cost more than the copy. The runner takes
//! the buffer whole ([`Inbox::poll_take`]), so an item's bytes are always
//! taken no later than the item, and in order.
//!
//! Bounds are the producers' business (`Instance::send` counts the send
//! backlog); the inbox itself does not refuse until it is closed.

use bytes::Bytes;
use futures_util::task::AtomicWaker;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

pub(crate) struct Inbox<T>(Arc<Shared<T>>);

struct Shared<T> {
    state: Mutex<State<T>>,
    waker: AtomicWaker,
}

struct State<T> {
    queue: VecDeque<T>,
    /// Bytes the queued items refer to, in push order (see the module
    /// documentation).
    bytes: Vec<u8>,
    /// The runner is gone: pushes are refused.
    closed: bool,
}

/// A push to a closed inbox (the runner has ended).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Closed;

impl<T> Clone for Inbox<T> {
    fn clone(&self) -> Self {
        Inbox(self.0.clone())
    }
}

impl<T> Inbox<T> {
    pub fn new() -> Self {
        Inbox(Arc::new(Shared {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                bytes: Vec::new(),
                closed: false,
            }),
            waker: AtomicWaker::new(),
        }))
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // A panic while holding the lock leaves the queue consistent
        // (push_back and drain do not unwind half-way).
        self.0.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn push(&self, item: T) -> Result<(), Closed> {
        self.push_with(|_| Ok::<_, ()>(item)).map(|_| ())
    }

    /// Runs `make` under the inbox's lock and pushes what it returns: a
    /// check and its push happen with no other push between them. `make`
    /// may append the item's bytes to the byte buffer it is given (kept
    /// only if it returns an item); it must not push to this inbox.
    #[inline]
    pub fn push_with<E>(
        &self,
        make: impl FnOnce(&mut Vec<u8>) -> Result<T, E>,
    ) -> Result<Result<(), E>, Closed> {
        let was_empty = {
            let mut state = self.lock();
            if state.closed {
                return Err(Closed);
            }
            let mark = state.bytes.len();
            let item = match make(&mut state.bytes) {
                Ok(item) => item,
                Err(e) => {
                    state.bytes.truncate(mark);
                    return Ok(Err(e));
                }
            };
            let was_empty = state.queue.is_empty();
            state.queue.push_back(item);
            was_empty
        };
        if was_empty {
            self.0.waker.wake();
        }
        Ok(Ok(()))
    }

    /// Moves up to `max` items into `into`, and all the bytes pushed so
    /// far (if any) onto `bytes` as one chunk; Pending (with `cx` woken on
    /// the next push) when there is no item.
    pub fn poll_take(
        &self,
        cx: &mut Context<'_>,
        into: &mut VecDeque<T>,
        bytes: &mut VecDeque<Bytes>,
        max: usize,
    ) -> Poll<()> {
        if self.take(into, bytes, max) {
            return Poll::Ready(());
        }
        self.0.waker.register(cx.waker());
        // A push between the first look and the registration woke nobody.
        if self.take(into, bytes, max) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    fn take(&self, into: &mut VecDeque<T>, bytes: &mut VecDeque<Bytes>, max: usize) -> bool {
        let mut state = self.lock();
        if state.queue.is_empty() {
            return false;
        }
        if into.is_empty() && state.queue.len() <= max {
            // The whole queue: the two buffers trade places rather than
            // the items being copied from one into the other (the queue
            // gets the runner's empty buffer, which keeps its memory).
            std::mem::swap(into, &mut state.queue);
        } else {
            let n = state.queue.len().min(max);
            into.extend(state.queue.drain(..n));
        }
        if !state.bytes.is_empty() {
            // Taken whole, so the producers start a new buffer: no memory
            // stays behind in an idle inbox.
            bytes.push_back(Bytes::from(std::mem::take(&mut state.bytes)));
        }
        true
    }

    /// Frees the queue's memory if it is empty (see
    /// `Machine::release_spare_capacity`).
    pub fn release_spare_capacity(&self) {
        let mut state = self.lock();
        if state.queue.is_empty() {
            state.queue = VecDeque::new();
        }
    }

    /// Refuses further pushes and drops what is queued (the runner ends).
    pub fn close(&self) {
        let queued = {
            let mut state = self.lock();
            state.closed = true;
            state.bytes = Vec::new();
            std::mem::take(&mut state.queue)
        };
        // Dropped outside the lock: an item's drop may do anything.
        drop(queued);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Wake, Waker};

    #[derive(Default)]
    struct CountingWaker(AtomicUsize);

    impl Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn items_come_out_in_order_in_batches_and_a_sleeping_runner_is_woken_once() {
        let inbox = Inbox::new();
        let counter = Arc::new(CountingWaker::default());
        let waker = Waker::from(counter.clone());
        let mut cx = Context::from_waker(&waker);
        let mut taken = VecDeque::new();
        let mut bytes = VecDeque::new();
        assert!(
            inbox
                .poll_take(&mut cx, &mut taken, &mut bytes, 2)
                .is_pending()
        );
        for n in 0..5 {
            inbox.push(n).unwrap();
        }
        // Only the push into an empty queue wakes the runner.
        assert_eq!(counter.0.load(Ordering::SeqCst), 1);
        assert!(
            inbox
                .poll_take(&mut cx, &mut taken, &mut bytes, 2)
                .is_ready()
        );
        assert_eq!(taken, [0, 1]);
        taken.clear();
        assert!(
            inbox
                .poll_take(&mut cx, &mut taken, &mut bytes, 10)
                .is_ready()
        );
        assert_eq!(taken, [2, 3, 4]);
        // Taken after what the runner still holds (the whole queue, but
        // not by trading buffers).
        inbox.push(5).unwrap();
        assert!(
            inbox
                .poll_take(&mut cx, &mut taken, &mut bytes, 10)
                .is_ready()
        );
        assert_eq!(taken, [2, 3, 4, 5]);
        assert!(
            inbox
                .poll_take(&mut cx, &mut taken, &mut bytes, 10)
                .is_pending()
        );
        assert!(bytes.is_empty(), "no item pushed bytes");
    }

    #[test]
    fn bytes_are_taken_whole_no_later_than_their_items_and_a_refused_push_leaves_none() {
        let inbox = Inbox::new();
        let waker = Waker::from(Arc::new(CountingWaker::default()));
        let mut cx = Context::from_waker(&waker);
        let push = |text: &'static str| {
            inbox
                .push_with(|bytes| {
                    bytes.extend_from_slice(text.as_bytes());
                    Ok::<_, ()>(text.len())
                })
                .unwrap()
                .unwrap()
        };
        push("ab");
        push("cde");
        // Refused after appending: its bytes go too.
        let refused = inbox.push_with(|bytes| {
            bytes.extend_from_slice(b"zz");
            Err::<usize, _>("full")
        });
        assert_eq!(refused, Ok(Err("full")));
        let (mut taken, mut bytes) = (VecDeque::new(), VecDeque::new());
        // One item taken, and the bytes of both.
        assert!(
            inbox
                .poll_take(&mut cx, &mut taken, &mut bytes, 1)
                .is_ready()
        );
        assert_eq!(taken, [2]);
        assert_eq!(bytes, [Bytes::from_static(b"abcde")]);
        push("f");
        taken.clear();
        assert!(
            inbox
                .poll_take(&mut cx, &mut taken, &mut bytes, 10)
                .is_ready()
        );
        assert_eq!(taken, [3, 1]);
        assert_eq!(
            bytes,
            [Bytes::from_static(b"abcde"), Bytes::from_static(b"f")]
        );
    }

    #[test]
    fn a_check_runs_under_the_lock_and_a_closed_inbox_refuses() {
        let inbox = Inbox::new();
        assert_eq!(inbox.push_with(|_| Err::<u8, _>("no")), Ok(Err("no")));
        assert_eq!(inbox.push_with(|_| Ok::<_, ()>(1)), Ok(Ok(())));
        inbox.close();
        assert_eq!(inbox.push(2), Err(Closed));
        let waker = Waker::from(Arc::new(CountingWaker::default()));
        let (mut taken, mut bytes) = (VecDeque::new(), VecDeque::new());
        assert!(
            inbox
                .poll_take(&mut Context::from_waker(&waker), &mut taken, &mut bytes, 10)
                .is_pending(),
            "what was queued is dropped at close"
        );
    }
}
