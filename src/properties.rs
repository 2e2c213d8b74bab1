//! properties (work in progress)
