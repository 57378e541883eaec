//! The control socket (being written).
