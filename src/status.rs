//! status (work in progress)
