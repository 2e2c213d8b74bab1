//! machine (work in progress)
