//! Rules about the service as a whole, once every handler has been read:
//! names that would collide in the generated code or on the wire, and types
//! the generated code could not name.

use std::collections::HashMap;

use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::ext::IdentExt;
use syn::{GenericArgument, Lifetime, PathArguments, ReturnType, Type, TypeParamBound};

use super::Ctxt;
use super::ast::{Endpoint, KEEP_OUT, Role, Service};

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
            types_are_nameable(cx, Some(service.ident), endpoint),
            streams_only_on_calls(cx, endpoint),
        ];
        !checks.contains(&false)
    });
}

/// An event is one message: a subscriber can neither take nor return a stream.
fn streams_only_on_calls(cx: &Ctxt, endpoint: &Endpoint<'_>) -> bool {
    if !endpoint.role.is_subscriber() {
        return true;
    }
    let mut ok = true;
    if let Some(request) = endpoint
        .request
        .as_ref()
        .filter(|_| endpoint.request_item().is_some())
    {
        cx.error_spanned_by(
            request.ty,
            "a subscriber receives one event at a time, not a `Streaming`: take the event type",
        );
        ok = false;
    }
    if endpoint.reply_item().is_some() {
        cx.error_spanned_by(
            endpoint.response,
            "a subscriber cannot return a `Streaming`: nobody reads it; return `micro::Result<()>`",
        );
        ok = false;
    }
    ok
}

/// Subscribers get no client method, so any name will do for them.
fn client_name_is_free(cx: &Ctxt, client: &str, endpoint: &Endpoint<'_>) -> bool {
    let name = endpoint.ident.unraw().to_string();
    if endpoint.role != Role::Call || !CLIENT_METHODS.contains(&name.as_str()) {
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
/// `impl Trait` stands for many. A free subscriber has no impl block, so
/// `type_name` is `None` and `Self` means nothing at all.
pub(crate) fn types_are_nameable(
    cx: &Ctxt,
    type_name: Option<&syn::Ident>,
    endpoint: &Endpoint<'_>,
) -> bool {
    let (noun, name) = (endpoint.role.noun(), endpoint.ident);
    let request = endpoint.request.as_ref().map(|request| request.ty);
    let mut ok = true;
    for (role, ty) in [
        (endpoint.role.input(), request),
        ("reply", Some(endpoint.response)),
        ("error", endpoint.error),
    ] {
        let Some(ty) = ty else { continue };
        let mut flaws = Flaws::default();
        flaws.find(ty);
        if let Some(tokens) = flaws.self_type {
            let message = match (endpoint.role, type_name) {
                (_, None) => format!(
                    "subscriber `{name}` names `Self` in its {role} type, but a free function \
                     has no `Self`; name the type"
                ),
                (Role::Call, Some(type_name)) => format!(
                    "endpoint `{name}` names `Self` in its {role} type, which the generated \
                     client cannot see; write `{type_name}` instead"
                ),
                (_, Some(type_name)) => format!(
                    "{noun} `{name}` names `Self` in its {role} type, which the generated code \
                     outside the impl block cannot see; write `{type_name}` instead"
                ),
            };
            cx.error_spanned_by(tokens, message);
            ok = false;
        }
        if let Some(tokens) = flaws.borrow {
            cx.error_spanned_by(
                tokens,
                format_args!(
                    "{noun} `{name}` has a borrowed {role} type; {} travel by value: use an \
                     owned type such as `String` or `Vec<T>`",
                    if endpoint.role.is_subscriber() {
                        "events"
                    } else {
                        "requests and replies"
                    },
                ),
            );
            ok = false;
        }
        if let Some(tokens) = flaws.impl_trait {
            cx.error_spanned_by(
                tokens,
                format_args!(
                    "{noun} `{name}` has an `impl Trait` {role} type; name one concrete \
                     type: it is what travels on the wire"
                ),
            );
            ok = false;
        }
    }
    ok
}

/// The first of each kind of part that generated code cannot copy out of a
/// handler's signature.
#[derive(Default)]
struct Flaws {
    self_type: Option<TokenStream>,
    borrow: Option<TokenStream>,
    impl_trait: Option<TokenStream>,
}

impl Flaws {
    fn find(&mut self, ty: &Type) {
        match ty {
            Type::Reference(reference) => {
                self.borrow
                    .get_or_insert_with(|| reference.to_token_stream());
                self.find(&reference.elem);
            }
            Type::ImplTrait(impl_trait) => {
                self.impl_trait
                    .get_or_insert_with(|| impl_trait.to_token_stream());
            }
            Type::Path(path) => {
                if let Some(qself) = &path.qself {
                    self.find(&qself.ty);
                }
                self.find_in_path(&path.path);
            }
            Type::TraitObject(object) => {
                for bound in &object.bounds {
                    match bound {
                        TypeParamBound::Trait(bound) => self.find_in_path(&bound.path),
                        TypeParamBound::Lifetime(lifetime) => self.find_lifetime(lifetime),
                        _ => {}
                    }
                }
            }
            Type::Tuple(tuple) => tuple.elems.iter().for_each(|elem| self.find(elem)),
            Type::Array(array) => self.find(&array.elem),
            Type::Slice(slice) => self.find(&slice.elem),
            Type::Paren(paren) => self.find(&paren.elem),
            Type::Group(group) => self.find(&group.elem),
            _ => {}
        }
    }

    fn find_in_path(&mut self, path: &syn::Path) {
        if let Some(first) = path.segments.first().filter(|s| s.ident == "Self") {
            self.self_type
                .get_or_insert_with(|| first.ident.to_token_stream());
        }
        for segment in &path.segments {
            match &segment.arguments {
                PathArguments::AngleBracketed(args) => {
                    for arg in &args.args {
                        match arg {
                            GenericArgument::Type(ty) => self.find(ty),
                            GenericArgument::AssocType(assoc) => self.find(&assoc.ty),
                            GenericArgument::Lifetime(lifetime) => self.find_lifetime(lifetime),
                            _ => {}
                        }
                    }
                }
                PathArguments::Parenthesized(args) => {
                    args.inputs.iter().for_each(|input| self.find(input));
                    if let ReturnType::Type(_, output) = &args.output {
                        self.find(output);
                    }
                }
                PathArguments::None => {}
            }
        }
    }

    fn find_lifetime(&mut self, lifetime: &Lifetime) {
        if lifetime.ident != "static" {
            self.borrow
                .get_or_insert_with(|| lifetime.to_token_stream());
        }
    }
}
