//! What can go wrong between the host and a module, as types a caller can
//! match on: a library that cannot be loaded ([`LoadError`]) and a call the
//! module refused ([`CallError`]), with messages a person can act on.

use std::ffi::{CString, c_int};
use std::fmt;

use super::library::ModuleSource;
use iom::{
    IOM_ABI_VERSION, IOM_ERR_IN_CALLBACK, IOM_ERR_INVALID_ARGUMENT, IOM_ERR_PANIC, IOM_ERR_REJECTED,
};

/// Why a module could not be loaded.
#[derive(Debug)]
pub enum LoadError {
    Open {
        source: ModuleSource,
        reason: String,
    },
    MissingSymbol {
        source: ModuleSource,
        symbol: &'static str,
    },
    AbiVersion {
        source: ModuleSource,
        found: u32,
    },
    Manifest {
        source: ModuleSource,
        reason: String,
    },
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Open { source, reason } => {
                write!(f, "cannot load IO module {source}: {reason}")
            }
            LoadError::MissingSymbol { source, symbol } => write!(
                f,
                "{source} is not an IO module: it does not export {symbol} (see include/iom.h)"
            ),
            LoadError::AbiVersion { source, found } => write!(
                f,
                "IO module {source} implements ABI version {found}, but this host implements ABI \
                 version {IOM_ABI_VERSION}; use a module built for ABI version {IOM_ABI_VERSION}"
            ),
            LoadError::Manifest { source, reason } => {
                write!(f, "IO module {source} has an unreadable manifest: {reason}")
            }
        }
    }
}

impl std::error::Error for LoadError {}

/// What an `int`-returning ABI call reported, with the module's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallError {
    pub kind: CallErrorKind,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallErrorKind {
    /// Bad input (unknown name, bad value, bad JSON): the caller's to fix.
    InvalidArgument,
    /// Valid input the instance cannot take now (e.g. its queue is full).
    Rejected,
    /// A bug in the module, caught at its boundary.
    ModulePanic,
    /// The instance was destroyed (the host is shutting down).
    Destroyed,
    /// A code this host does not know.
    Other(c_int),
}

impl CallError {
    pub(super) fn new(code: c_int, message: String) -> CallError {
        let kind = match code {
            IOM_ERR_INVALID_ARGUMENT => CallErrorKind::InvalidArgument,
            IOM_ERR_REJECTED => CallErrorKind::Rejected,
            IOM_ERR_PANIC => CallErrorKind::ModulePanic,
            other => CallErrorKind::Other(other),
        };
        CallError { kind, message }
    }

    pub(super) fn invalid(message: String) -> CallError {
        CallError {
            kind: CallErrorKind::InvalidArgument,
            message,
        }
    }
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CallError {}

/// A string for the C side; names with a NUL byte cannot cross the ABI.
pub(super) fn c_string(what: &str, value: &str) -> Result<CString, CallError> {
    CString::new(value)
        .map_err(|_| CallError::invalid(format!("{what} {value:?} must not contain a NUL byte")))
}

/// The message of a refused `iom_instance_destroy` (it gives none).
pub(super) fn destroy_refusal(code: c_int) -> String {
    match code {
        IOM_ERR_IN_CALLBACK => "refused: called from inside a module callback".to_string(),
        other => format!("the module refused with code {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wrong_abi_version_names_both_versions() {
        let err = LoadError::AbiVersion {
            source: ModuleSource::File("libx.so".into()),
            found: 2,
        };
        let text = err.to_string();
        assert!(text.contains("ABI version 2"), "{text}");
        assert!(text.contains("ABI version 1"), "{text}");
    }
}
