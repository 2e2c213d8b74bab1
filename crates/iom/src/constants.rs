//! The header's `#define`s and the `iom_log_level` enum: the numbers both
//! sides of the ABI must agree on.

use std::ffi::c_int;

/// `IOM_ABI_VERSION`: the ABI version of `include/iom.h`. A host puts it in
/// [`IomHostCallbacks::abi_version`](crate::IomHostCallbacks) and checks
/// that `iom_abi_version()` returns it; a module refuses a host of another
/// version.
pub const IOM_ABI_VERSION: u32 = 1;

/// `IOM_DATA_BINARY`: the flag of fired trigger data (`fire_trigger_ex`,
/// `iom_trigger_test_ex`) saying the message was a binary frame, so its data
/// is its lowercase hex (or its text, with the module's Binary As Text).
pub const IOM_DATA_BINARY: u32 = 1;

/// `IOM_OK`: success, from every function that returns `int`.
pub const IOM_OK: c_int = 0;

/// `IOM_ERR_INVALID_ARGUMENT`: NULL, bad UTF-8, bad JSON, an unknown name or
/// a bad value; the caller's to fix (the error message names it).
pub const IOM_ERR_INVALID_ARGUMENT: c_int = 1;

/// `IOM_ERR_REJECTED`: valid input the instance cannot take now (e.g. its
/// send queue is full); retrying later may succeed.
pub const IOM_ERR_REJECTED: c_int = 2;

/// `IOM_ERR_IN_CALLBACK`: `iom_instance_destroy` called from inside a host
/// callback, where it would wait for the very thread that runs it.
pub const IOM_ERR_IN_CALLBACK: c_int = 3;

/// `IOM_ERR_PANIC`: an internal error caught at the module's boundary (a bug
/// in the module, never unwound into the host).
pub const IOM_ERR_PANIC: c_int = 4;

/// `iom_log_level`, the controller's log levels, most to least important.
///
/// A C enum whose values are all small and non-negative: passed as a 32-bit
/// integer on every target we build for (the header check asserts its size
/// and alignment). A plain integer rather than a Rust enum because a module
/// of a later version may send a level this side does not know, which must
/// not be undefined behaviour on arrival.
pub type IomLogLevel = c_int;

/// `IOM_LOG_CRITICAL`: the most important level, always shown.
pub const IOM_LOG_CRITICAL: IomLogLevel = 0;
/// `IOM_LOG_TERSE`: the next most important.
pub const IOM_LOG_TERSE: IomLogLevel = 1;
/// `IOM_LOG_NORMAL`: the middle level.
pub const IOM_LOG_NORMAL: IomLogLevel = 2;
/// `IOM_LOG_EXTENDED`: more detail than normal.
pub const IOM_LOG_EXTENDED: IomLogLevel = 3;
/// `IOM_LOG_VERBOSE`: more detail still.
pub const IOM_LOG_VERBOSE: IomLogLevel = 4;
/// `IOM_LOG_DEBUG`: the least important, for developers.
pub const IOM_LOG_DEBUG: IomLogLevel = 5;
