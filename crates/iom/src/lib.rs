//! The IO module C ABI of `include/iom.h`, in Rust, once.
//!
//! The first link of the data flow between a controller (the host) and an IO
//! module shipped as a shared library: the module's exports
//! (`wsio`'s `abi` module), the host's loader (`wsio_host::abi`), the tests
//! and the bench all speak the header through these types, so there is one
//! Rust copy of the contract to keep in step with the C one. The test
//! `tests/header.rs` compiles the header against facts taken from this crate
//! (sizes, offsets, constants and the type of every function) and fails when
//! the two drift.
//!
//! What is here:
//! - the constants ([`IOM_ABI_VERSION`], the return codes [`IOM_OK`] …
//!   [`IOM_ERR_PANIC`], [`IOM_DATA_BINARY`], the log levels
//!   [`IOM_LOG_CRITICAL`] … [`IOM_LOG_DEBUG`]);
//! - the `#[repr(C)]` types ([`IomStr`], [`IomHostCallbacks`]) and the
//!   opaque handle types ([`IomInstance`], [`IomPreparedTrigger`],
//!   [`IomPreparedAction`], [`IomVariables`]);
//! - the type of every callback ([`FireTriggerFn`] …) and of every exported
//!   function ([`AbiVersionFn`] … [`StringFreeFn`]), with [`FUNCTIONS`] and
//!   [`CALLBACKS`] naming them for `dlopen` tables and for the header check.
//!
//! Nothing here calls anything: the crate has no `unsafe` code. Calling a
//! function pointer of these types is the caller's `unsafe`, under the rules
//! the header states (strings, ownership, threads).

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod constants;
mod functions;
mod types;

pub use constants::{
    IOM_ABI_VERSION, IOM_DATA_BINARY, IOM_ERR_IN_CALLBACK, IOM_ERR_INVALID_ARGUMENT, IOM_ERR_PANIC,
    IOM_ERR_REJECTED, IOM_LOG_CRITICAL, IOM_LOG_DEBUG, IOM_LOG_EXTENDED, IOM_LOG_NORMAL,
    IOM_LOG_TERSE, IOM_LOG_VERBOSE, IOM_OK, IomLogLevel,
};
pub use functions::{
    AbiVersionFn, ActionFreeFn, ActionPrepareFn, ActionPreviewFn, ActionRunFn, CALLBACKS,
    FUNCTIONS, FireTriggerExFn, FireTriggerFlowFn, FireTriggerFn, Function, InstanceActionFn,
    InstanceCreateFn, InstanceDestroyFn, InstanceNetworkFn, InstanceResumeFn, InstanceStatusFn,
    LogFn, ModuleManifestFn, StatusChangedFn, StringFreeFn, TriggerFreeFn, TriggerPrepareFn,
    TriggerTestExFn, TriggerTestFn, TriggerVariableCountFn, TriggerVariableNamesFn,
    VariablesCountFn, VariablesFreeFn, VariablesGetFn,
};
pub use types::{
    CALLBACKS_BASE_SIZE, CALLBACKS_EX_SIZE, IomHostCallbacks, IomInstance, IomPreparedAction,
    IomPreparedTrigger, IomStr, IomVariables,
};
