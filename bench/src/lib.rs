//! Placeholder: the bench load generator is not built yet (issue 4).
