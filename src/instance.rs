//! instance (work in progress)
