//! Platform-neutral tower layers (work in progress).
