//! Range-based set reconciliation (placeholder).
