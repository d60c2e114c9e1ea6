//! Placeholder: the broker is not built yet (issue 3).
