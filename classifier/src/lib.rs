//! placeholder
pub mod inference;
pub mod preprocess;
