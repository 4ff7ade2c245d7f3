//! Rules about the service as a whole, once every handler has been read:
//! names that would collide in the generated code or on the wire, and types
//! the generated code could not name.

use std::collections::HashMap;

use proc_macro2::{TokenStream, TokenTree};
use quote::ToTokens;
use syn::Type;
use syn::ext::IdentExt;

use super::Ctxt;
use super::ast::{Endpoint, KEEP_OUT, Service};

/// Methods every generated client has; a handler of the same name would
/// collide with them.
const CLIENT_METHODS: [&str; 3] = ["new", "with_service", "client"];

/// Reports every broken rule and drops the offending endpoints, so that
/// generation never builds code on top of a known error.
pub(crate) fn check(cx: &Ctxt, service: &mut Service<'_>) {
    let client = format!("{}Client", service.ident.unraw());
    let mut wire_names = HashMap::new();
    service.endpoints.retain(|endpoint| {
        let checks = [
            client_name_is_free(cx, &client, endpoint),
            wire_name_is_free(cx, &mut wire_names, endpoint),
            types_are_nameable(cx, service.ident, endpoint),
        ];
        !checks.contains(&false)
    });
}

fn client_name_is_free(cx: &Ctxt, client: &str, endpoint: &Endpoint<'_>) -> bool {
    let name = endpoint.ident.unraw().to_string();
    if !CLIENT_METHODS.contains(&name.as_str()) {
        return true;
    }
    cx.error_spanned_by(
        endpoint.ident,
        format_args!(
            "endpoint `{name}` clashes with the generated `{client}::{name}`; rename the \
             method, or {KEEP_OUT}"
        ),
    );
    false
}

fn wire_name_is_free<'a>(
    cx: &Ctxt,
    seen: &mut HashMap<String, &'a syn::Ident>,
    endpoint: &Endpoint<'a>,
) -> bool {
    let Some(first) = seen.get(&endpoint.wire_name) else {
        seen.insert(endpoint.wire_name.clone(), endpoint.ident);
        return true;
    };
    cx.error_spanned_by(
        endpoint.ident,
        format_args!(
            "endpoints `{first}` and `{}` both map to the wire name `{}`; rename one of them",
            endpoint.ident, endpoint.wire_name,
        ),
    );
    false
}

/// The client and the type assertions live outside the impl block, where
/// `Self` means something else, and they need one concrete type where an
/// `impl Trait` stands for many.
fn types_are_nameable(cx: &Ctxt, type_name: &syn::Ident, endpoint: &Endpoint<'_>) -> bool {
    let name = endpoint.ident;
    let request = endpoint.request.as_ref().map(|request| request.ty);
    let mut ok = true;
    for (role, ty) in [
        ("request", request),
        ("reply", Some(endpoint.response)),
        ("error", endpoint.error),
    ] {
        let Some(ty) = ty else { continue };
        if let Some(token) = find_ident(ty, "Self") {
            cx.error_spanned_by(
                token,
                format_args!(
                    "endpoint `{name}` names `Self` in its {role} type, which the generated \
                     client cannot see; write `{type_name}` instead"
                ),
            );
            ok = false;
        }
        if let Some(token) = find_ident(ty, "impl") {
            cx.error_spanned_by(
                impl_trait(ty).map_or_else(|| token.to_token_stream(), ToTokens::to_token_stream),
                format_args!(
                    "endpoint `{name}` has an `impl Trait` {role} type; name one concrete \
                     type: it is what travels on the wire"
                ),
            );
            ok = false;
        }
    }
    ok
}

fn find_ident(ty: &Type, word: &str) -> Option<proc_macro2::Ident> {
    fn walk(tokens: TokenStream, word: &str) -> Option<proc_macro2::Ident> {
        tokens.into_iter().find_map(|token| match token {
            TokenTree::Ident(ident) if ident == word => Some(ident),
            TokenTree::Group(group) => walk(group.stream(), word),
            _ => None,
        })
    }
    walk(ty.to_token_stream(), word)
}

/// The whole `impl Trait` when it is the type itself, for a wider underline.
fn impl_trait(ty: &Type) -> Option<&syn::TypeImplTrait> {
    match ty {
        Type::ImplTrait(ty) => Some(ty),
        _ => None,
    }
}
