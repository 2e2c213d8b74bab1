//! matching (work in progress)
