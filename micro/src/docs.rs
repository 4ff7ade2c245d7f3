//! Guides.

#[doc = include_str!("docs/handlers.md")]
pub mod handlers {}

#[doc = include_str!("docs/actors.md")]
pub mod actors {}
