//! Guides.

#[doc = include_str!("docs/handlers.md")]
pub mod handlers {}

#[doc = include_str!("docs/actors.md")]
pub mod actors {}

#[doc = include_str!("docs/deployment.md")]
pub mod deployment {}

#[doc = include_str!("docs/security.md")]
pub mod security {}
