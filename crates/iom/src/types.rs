//! The header's structs, `#[repr(C)]`: the byte range `iom_str`, the host
//! callbacks `iom_host_callbacks`, and the opaque handles a module hands out.

use std::ffi::{c_char, c_void};
use std::marker::{PhantomData, PhantomPinned};

use crate::functions::{FireTriggerExFn, FireTriggerFlowFn, FireTriggerFn, LogFn, StatusChangedFn};

/// `iom_str`: a borrowed byte range, not NUL-terminated (trigger data and
/// variables may contain NUL bytes).
///
/// Who owns the bytes and for how long is said by each function of the
/// header; this type borrows nothing in Rust's eyes.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct IomStr {
    /// The first byte; may be NULL when `len` is 0.
    pub ptr: *const c_char,
    /// The number of bytes at `ptr`.
    pub len: usize,
}

impl IomStr {
    /// `{NULL, 0}`: what `iom_variables_get` returns for an index out of
    /// range.
    pub const NULL: IomStr = IomStr {
        ptr: std::ptr::null(),
        len: 0,
    };

    /// The range of `bytes`, to pass to a call while `bytes` lives.
    pub fn of(bytes: &[u8]) -> IomStr {
        IomStr {
            ptr: bytes.as_ptr().cast(),
            len: bytes.len(),
        }
    }
}

/// `iom_host_callbacks`: how a module calls its host back, copied by
/// `iom_instance_create`.
///
/// Set `struct_size` to `size_of::<IomHostCallbacks>()` and `abi_version`
/// to [`IOM_ABI_VERSION`](crate::IOM_ABI_VERSION). Any callback may be
/// `None`; the pointers given to a callback are valid only during the call.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct IomHostCallbacks {
    /// `sizeof(iom_host_callbacks)` as the host knows it: fields past it
    /// (later, optional additions) are treated as absent.
    pub struct_size: u32,
    /// The ABI version the host speaks.
    pub abi_version: u32,
    /// Passed back unchanged as every callback's first argument.
    pub user_data: *mut c_void,
    /// A trigger fired (with its data: the message, the reason, or empty).
    pub fire_trigger: Option<FireTriggerFn>,
    /// A status variable changed.
    pub status_changed: Option<StatusChangedFn>,
    /// A log line from an instance.
    pub log: Option<LogFn>,
    /// Optional, a later addition to ABI 1: `fire_trigger` with flags
    /// ([`IOM_DATA_BINARY`](crate::IOM_DATA_BINARY)). Used instead of
    /// `fire_trigger` when `struct_size` covers it and it is not `None`.
    pub fire_trigger_ex: Option<FireTriggerExFn>,
    /// Optional, a later addition to ABI 1 (flow control): `fire_trigger_ex`
    /// that may answer `IOM_ERR_REJECTED` (the host is full). The module
    /// then holds the event, stops reading that instance's connection, and
    /// offers it again after `iom_instance_resume`. Used instead of the
    /// other two when `struct_size` covers it and it is not `None`.
    pub fire_trigger_flow: Option<FireTriggerFlowFn>,
}

/// The size of [`IomHostCallbacks`] before its optional fields: what every
/// ABI 1 host passes at least, and what a module accepts at least.
pub const CALLBACKS_BASE_SIZE: usize = std::mem::offset_of!(IomHostCallbacks, fire_trigger_ex);

/// The size of [`IomHostCallbacks`] up to and with `fire_trigger_ex`: what a
/// host built before flow control passes.
pub const CALLBACKS_EX_SIZE: usize = std::mem::offset_of!(IomHostCallbacks, fire_trigger_flow);

/// Declares an opaque C type: never built or read in Rust, only pointed at
/// (not `Send`, `Sync` or `Unpin`, as the nomicon recommends for FFI types).
macro_rules! opaque {
    ($($(#[$doc:meta])* $name:ident;)*) => {$(
        $(#[$doc])*
        #[repr(C)]
        pub struct $name {
            _data: [u8; 0],
            _marker: PhantomData<(*mut u8, PhantomPinned)>,
        }
    )*};
}

opaque! {
    /// `iom_instance`: a module instance, from `iom_instance_create` until
    /// `iom_instance_destroy`. What the pointer holds is the module's
    /// business (wsio hands out registry ids, never dereferenced).
    IomInstance;
    /// `iom_prepared_trigger`: a compiled trigger test, from
    /// `iom_trigger_prepare` until `iom_trigger_free`.
    IomPreparedTrigger;
    /// `iom_prepared_action`: a compiled action, from `iom_action_prepare`
    /// until `iom_action_free`.
    IomPreparedAction;
    /// `iom_variables`: the variables of a matched trigger, from
    /// `iom_trigger_test` until `iom_variables_free`.
    IomVariables;
}
