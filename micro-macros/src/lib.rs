//! Procedural macros for `micro`: `#[micro::service]`.
//!
//! Use them through the runtime crate, which re-exports them as
//! `micro::service`; this crate is an implementation detail.

mod internals;
mod service;

use proc_macro::TokenStream;

/// Serves the methods of an `impl` block as a micro service.
#[proc_macro_attribute]
pub fn service(args: TokenStream, input: TokenStream) -> TokenStream {
    let service::Expansion { mut tokens, result } = service::expand(args.into(), input.into());
    if let Err(error) = result {
        tokens.extend(error.into_compile_error());
    }
    tokens.into()
}
