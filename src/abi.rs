//! abi (work in progress)
