//! driver (work in progress)
