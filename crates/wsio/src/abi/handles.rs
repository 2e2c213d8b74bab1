//! What the module's handles stand for: instances, prepared triggers and
//! prepared actions live in registries by id, trigger variables in a tagged
//! box the host owns.
//!
//! Handles are not pointers into our memory: `iom_instance *`,
//! `iom_prepared_trigger *` and `iom_prepared_action *` are ids in a
//! registry, so a stale, freed or made-up handle is reported as an error
//! instead of being dereferenced. Trigger variables (`iom_variables *`) are
//! boxed, carry a tag that is checked on every use, and are the host's to
//! free exactly once.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, RwLock, Weak};

use iom::{IomInstance, IomVariables};

use crate::instance::{Instance, PreparedAction};
use crate::matching::PreparedTrigger;

/// Live objects by handle id. Ids start at 1 and are never reused, so a
/// stale handle can only ever miss.
pub(super) struct Registry<T> {
    next: AtomicUsize,
    /// Removals so far, counted under the write lock: a handle a thread
    /// remembers ([`Recent`]) is good while this has not moved.
    removals: AtomicUsize,
    live: RwLock<HashMap<usize, Arc<T>, BuildHasherDefault<IdHasher>>>,
}

/// How many handles a thread remembers per registry.
const RECENT: usize = 4;

/// The handles a thread looked up last in one registry, for the calls made
/// per message (`iom_trigger_test`, `iom_action_run`): a hit costs a
/// thread-local read and an atomic load instead of the read lock (two
/// atomic writes to a line every thread shares) and a hash lookup.
///
/// An entry keeps its object alive until the thread looks up other
/// handles or ends, but one whose handle was freed is never used: any
/// removal from the registry moves `removals`, and ids are never reused.
/// Triggers and prepared actions only: an instance's drop must not wait
/// for some thread's next call.
pub(super) struct Recent<T> {
    entries: [Option<(usize, usize, Arc<T>)>; RECENT],
    /// The entry the next miss replaces (round robin).
    next: usize,
}

impl<T> Recent<T> {
    const fn new() -> Self {
        Recent {
            entries: [const { None }; RECENT],
            next: 0,
        }
    }

    #[inline]
    fn find(&self, id: usize, removals: usize) -> Option<&T> {
        self.entries.iter().find_map(|entry| match entry {
            Some((i, r, value)) if *i == id && *r == removals => Some(&**value),
            _ => None,
        })
    }

    fn remember(&mut self, id: usize, removals: usize, value: Arc<T>) {
        self.entries[self.next] = Some((id, removals, value));
        self.next = (self.next + 1) % RECENT;
    }
}

type RecentKey<T> = &'static std::thread::LocalKey<RefCell<Recent<T>>>;

thread_local! {
    /// This thread's recent prepared triggers.
    pub(super) static RECENT_TRIGGERS: RefCell<Recent<PreparedTrigger>> =
        const { RefCell::new(Recent::new()) };
    /// This thread's recent prepared actions.
    pub(super) static RECENT_ACTIONS: RefCell<Recent<BoundAction>> =
        const { RefCell::new(Recent::new()) };
}

/// Handle ids are distinct multiples of 8 that we made ourselves, not
/// input an attacker chooses: hashing them with SipHash cost more than the
/// rest of an `iom_trigger_test` Contains test.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | u64::from(*b);
        }
    }

    fn write_usize(&mut self, id: usize) {
        // hashbrown takes the top bits for its tags and the low bits for
        // the bucket: spread the id over both.
        self.0 = (id as u64 >> 3).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

impl<T> Registry<T> {
    fn new() -> Self {
        Registry {
            next: AtomicUsize::new(1),
            removals: AtomicUsize::new(0),
            live: RwLock::new(HashMap::default()),
        }
    }

    pub(super) fn insert(&self, value: T) -> usize {
        // Ids step by 8 so handles look like aligned pointers to C tools.
        let id = self.next.fetch_add(1, Ordering::Relaxed) * 8;
        self.live
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, Arc::new(value));
        id
    }

    #[inline]
    pub(super) fn get(&self, id: usize) -> Option<Arc<T>> {
        self.live
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .cloned()
    }

    /// Runs `f` on a live object, found among the handles this thread
    /// used last ([`Recent`]) or else under the read lock (and then
    /// remembered): no reference count to raise and drop on a hit, for the
    /// per-message calls. `f` runs outside the lock and may call into the
    /// registry again.
    #[inline]
    pub(super) fn with_recent<R>(
        &self,
        recent: RecentKey<T>,
        id: usize,
        f: impl FnOnce(&T) -> R,
    ) -> Option<R> {
        let removals = self.removals.load(Ordering::Acquire);
        let mut f = Some(f);
        let hit = recent
            .try_with(|cell| {
                let entries = cell.try_borrow().ok()?;
                let value = entries.find(id, removals)?;
                f.take().map(|f| f(value))
            })
            .ok()
            .flatten();
        if hit.is_some() {
            return hit;
        }
        // Not remembered (f has not run).
        let f = f?;
        let (value, removals) = {
            let live = self.live.read().unwrap_or_else(|e| e.into_inner());
            // Read under the lock that removals take: the count and the
            // lookup belong together.
            (
                live.get(&id)?.clone(),
                self.removals.load(Ordering::Acquire),
            )
        };
        let _ = recent.try_with(|cell| {
            if let Ok(mut entries) = cell.try_borrow_mut() {
                entries.remember(id, removals, value.clone());
            }
        });
        Some(f(&value))
    }

    pub(super) fn remove(&self, id: usize) -> Option<Arc<T>> {
        let mut live = self.live.write().unwrap_or_else(|e| e.into_inner());
        let removed = live.remove(&id);
        // Before the lock is released: a lookup that no longer finds the
        // handle also sees the new count.
        self.removals.fetch_add(1, Ordering::Release);
        removed
    }
}

/// The live instances.
pub(super) fn instances() -> &'static Registry<Instance> {
    static R: OnceLock<Registry<Instance>> = OnceLock::new();
    R.get_or_init(Registry::new)
}

/// The live prepared triggers.
pub(super) fn triggers() -> &'static Registry<PreparedTrigger> {
    static R: OnceLock<Registry<PreparedTrigger>> = OnceLock::new();
    R.get_or_init(Registry::new)
}

/// The live prepared actions.
pub(super) fn actions() -> &'static Registry<BoundAction> {
    static R: OnceLock<Registry<BoundAction>> = OnceLock::new();
    R.get_or_init(Registry::new)
}

/// The live instance behind a handle (an id, never dereferenced).
pub(super) fn instance_of(handle: *mut IomInstance) -> Result<Arc<Instance>, String> {
    if handle.is_null() {
        return Err("instance is NULL".into());
    }
    instances().get(handle as usize).ok_or_else(|| {
        "instance is not a live instance of this module (destroyed, or never created)".into()
    })
}

/// A prepared action and the instance it runs on (not kept alive by it).
pub(super) struct BoundAction {
    pub(super) instance: Weak<Instance>,
    pub(super) action: PreparedAction,
}

/// What an `iom_variables *` points at: trigger variables owned by the host
/// until freed.
pub(super) struct Variables {
    tag: u64,
    values: Vec<Box<[u8]>>,
}

/// "wsiovars": recognisable in a debugger, checked on every use.
const VARIABLES_TAG: u64 = u64::from_be_bytes(*b"wsiovars");

impl Variables {
    /// Boxes `values` for the host, which frees them with [`Variables::free`].
    pub(super) fn into_raw(values: Vec<Box<[u8]>>) -> *mut IomVariables {
        let boxed = Box::new(Variables {
            tag: VARIABLES_TAG,
            values,
        });
        Box::into_raw(boxed).cast()
    }

    /// The variables behind a host's pointer; None for NULL or a pointer
    /// whose tag is wrong (some misuse, caught cheaply).
    ///
    /// # Safety
    /// `variables` is NULL or a pointer from [`Variables::into_raw`] that is
    /// not freed before `'a` ends (what iom.h asks of the host).
    pub(super) unsafe fn from_ptr<'a>(variables: *const IomVariables) -> Option<&'a [Box<[u8]>]> {
        // SAFETY: NULL, or a live Variables per the caller's contract.
        let v = unsafe { variables.cast::<Variables>().as_ref() }?;
        (v.tag == VARIABLES_TAG).then_some(&v.values)
    }

    /// Frees variables the host is done with; NULL and wrong tags are
    /// ignored.
    ///
    /// # Safety
    /// `variables` is NULL or a pointer from [`Variables::into_raw`], freed
    /// only this once and not used afterwards.
    pub(super) unsafe fn free(variables: *mut IomVariables) {
        // SAFETY: the caller's contract, as for from_ptr.
        if unsafe { Self::from_ptr(variables) }.is_some() {
            let variables = variables.cast::<Variables>();
            // SAFETY: a live pointer from Box::into_raw in into_raw (tag
            // checked); clearing the tag first makes a double free that
            // reads the same memory a no-op more often than not.
            unsafe {
                (*variables).tag = 0;
                drop(Box::from_raw(variables));
            }
        }
    }
}
