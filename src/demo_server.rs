//! demo_server (work in progress)
