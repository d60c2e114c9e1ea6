//! Placeholder: the sluice CLI is not built yet (issue 6).
