//! Code generation for `#[micro::service]`, one method per generated item.

use proc_macro2::{Group, Literal, Span, TokenStream, TokenTree};
use quote::{ToTokens, format_ident, quote, quote_spanned};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{Ident, Item, Visibility};

use crate::Expansion;
use crate::internals::ast::{self, Endpoint, Role, Service};
use crate::internals::{Ctxt, attr, check};

/// Always hands the user's impl block back, so that an error in one handler
/// does not also make every use of the type fail to resolve; the generated
/// items cover every endpoint that passed its checks.
pub(crate) fn expand(args: TokenStream, input: TokenStream) -> Expansion {
    let mut item = match syn::parse2::<Item>(input.clone()) {
        Ok(item) => item,
        Err(error) => {
            return Expansion {
                tokens: input,
                result: Err(error),
            };
        }
    };
    let cx = Ctxt::new();
    let generated = ast::Service::from_ast(&cx, args, &item).map(|mut service| {
        check::check(&cx, &mut service);
        ServiceGenerator::new(&service).generate()
    });
    if let Item::Impl(item) = &mut item {
        attr::strip(item);
    }
    Expansion {
        tokens: quote!(#item #generated),
        result: cx.check(),
    }
}

struct ServiceGenerator<'a> {
    service: &'a Service<'a>,
    /// `Greeter` as the registry and the wire spell it.
    type_name: String,
    /// The registry name the client calls by default.
    service_name: String,
    client: Ident,
    client_vis: TokenStream,
}

impl<'a> ServiceGenerator<'a> {
    fn new(service: &'a Service<'a>) -> Self {
        let type_name = service.ident.unraw().to_string();
        ServiceGenerator {
            service,
            service_name: service
                .attrs
                .name
                .clone()
                .unwrap_or_else(|| type_name.to_lowercase()),
            type_name,
            client: format_ident!("{}Client", service.ident.unraw()),
            client_vis: client_visibility(service.calls()),
        }
    }

    fn generate(&self) -> TokenStream {
        let cfgs = &self.service.cfgs;
        let mut items = vec![self.handler_impl(), self.reads_impl(), self.asserts()];
        if self.has_client() {
            items.extend([self.client_struct(), self.client_methods()]);
        }
        items
            .into_iter()
            .map(|item| quote!(#(#cfgs)* #item))
            .collect()
    }

    /// A block of subscribers only has nothing to call: a client without
    /// methods would only be dead code in the user's crate.
    fn has_client(&self) -> bool {
        self.service.declares_calls || !self.service.declares_subscribers
    }

    fn handler_impl(&self) -> TokenStream {
        let self_ty = self.service.self_ty;
        let bounds = self.handler_bounds();
        let def = self.handler_def();
        let arms = self.arms(false);
        let replicate = if self.service.attrs.workers > 1 {
            quote!(::core::option::Option::Some(::core::clone::Clone::clone(
                self
            )))
        } else {
            quote!(::core::option::Option::None)
        };
        let reads = self.has_reads().then(|| {
            quote! {
                fn reads(&self) -> ::core::option::Option<&dyn ::micro::__private::Reads> {
                    ::core::option::Option::Some(self)
                }
            }
        });
        let rebuild = self.service.attrs.rebuild.map(|_| {
            quote! {
                fn rebuild() -> ::core::option::Option<Self> {
                    ::core::option::Option::Some(<Self as ::core::default::Default>::default())
                }
            }
        });
        quote! {
            impl ::micro::__private::Handler for #self_ty
            where
                #(for<'bound> #bounds,)*
            {
                const DEF: &'static ::micro::__private::HandlerDef = &#def;

                // Serving a deprecated endpoint is not a use of it: its
                // callers get the warning, through the client. A block of
                // reads only has no arm that uses the arguments.
                #[allow(deprecated, unused_variables)]
                fn dispatch<'micro>(
                    &'micro mut self,
                    ctx: &'micro ::micro::Context,
                    endpoint: ::core::primitive::usize,
                    req: ::micro::__private::Payload,
                ) -> ::micro::__private::BoxFuture<
                    'micro,
                    ::core::result::Result<::micro::__private::Payload, ::micro::Error>,
                > {
                    match endpoint {
                        #(#arms)*
                        _ => ::std::boxed::Box::pin(::core::future::ready(
                            ::core::result::Result::Err(::micro::__private::unknown_endpoint(
                                <Self as ::micro::__private::Handler>::DEF,
                                endpoint,
                            )),
                        )),
                    }
                }

                #reads

                fn replicate(&self) -> ::core::option::Option<Self> {
                    #replicate
                }

                #rebuild
            }
        }
    }

    /// The `&self` handlers, which the actor runs as read turns. Nothing
    /// when the block has none, so that a block of writes need not be `Sync`.
    fn reads_impl(&self) -> TokenStream {
        if !self.has_reads() {
            return TokenStream::new();
        }
        let self_ty = self.service.self_ty;
        let bounds = self.handler_bounds();
        let arms = self.arms(true);
        quote! {
            impl ::micro::__private::Reads for #self_ty
            where
                #(for<'bound> #bounds,)*
            {
                #[allow(deprecated)]
                fn dispatch_read<'micro>(
                    &'micro self,
                    ctx: &'micro ::micro::Context,
                    endpoint: ::core::primitive::usize,
                    req: ::micro::__private::Payload,
                ) -> ::micro::__private::BoxFuture<
                    'micro,
                    ::core::result::Result<::micro::__private::Payload, ::micro::Error>,
                > {
                    match endpoint {
                        #(#arms)*
                        _ => ::std::boxed::Box::pin(::core::future::ready(
                            ::core::result::Result::Err(::micro::__private::unknown_endpoint(
                                <Self as ::micro::__private::Handler>::DEF,
                                endpoint,
                            )),
                        )),
                    }
                }
            }
        }
    }

    /// The dispatch arms of the read endpoints, or of the write endpoints,
    /// numbered by their place in the routing table.
    fn arms(&self, reads: bool) -> Vec<TokenStream> {
        self.service
            .endpoints
            .iter()
            .enumerate()
            .filter(|(_, endpoint)| endpoint.is_read() == reads)
            .map(|(index, endpoint)| {
                let method = endpoint.ident;
                let path = quote_spanned!(method.span()=> Self::#method);
                let receiver = quote_spanned!(method.span()=> self);
                dispatch_arm(index, endpoint, path, Some(receiver))
            })
            .collect()
    }

    fn has_reads(&self) -> bool {
        self.service.endpoints.iter().any(Endpoint::is_read)
    }

    /// What the handler impl relies on, as where clauses that rustc assumes
    /// inside the impl instead of proving there. Each is proved once
    /// elsewhere, on the token to blame (`asserts` and the client's calls),
    /// so a bad type gets one report instead of one per use. The vacuous
    /// `for<'bound>` keeps rustc from rejecting a bound on a concrete type as
    /// "trivially false" in the impl header itself.
    fn handler_bounds(&self) -> Vec<TokenStream> {
        let mut bounds = vec![quote!(Self: ::core::marker::Send)];
        if self.has_reads() {
            bounds.push(quote!(Self: ::core::marker::Sync));
        }
        if self.service.attrs.workers > 1 {
            bounds.push(quote!(Self: ::core::clone::Clone));
        }
        if self.service.attrs.rebuild.is_some() {
            bounds.push(quote!(Self: ::core::default::Default));
        }
        bounds.extend(self.service.endpoints.iter().flat_map(endpoint_bounds));
        bounds
    }

    fn handler_def(&self) -> TokenStream {
        let attrs = &self.service.attrs;
        let type_name = &self.type_name;
        let service = &self.service_name;
        let version = attrs.version.as_deref().unwrap_or("latest");
        let workers = attrs.workers;
        let mailbox = attrs.mailbox;
        let reads = attrs.reads;
        let endpoints = self.service.endpoints.iter().map(endpoint_def);
        quote! {
            ::micro::__private::HandlerDef {
                type_name: #type_name,
                service: #service,
                version: #version,
                workers: #workers,
                mailbox: #mailbox,
                reads: #reads,
                endpoints: &[#(#endpoints),*],
            }
        }
    }

    /// Proves the service type, the error types, subscribers' events and
    /// `Clone` where the user will look for them. Requests and replies need
    /// nothing here: the client methods name them in `Client::call::<Req,
    /// Resp>`, whose bounds report them on their own tokens.
    fn asserts(&self) -> TokenStream {
        let self_ty = self.service.self_ty;
        let types = self.service.endpoints.iter().map(type_asserts);
        let attrs = &self.service.attrs;
        let clone = attrs
            .workers_span
            .filter(|_| attrs.workers > 1)
            .map(|span| {
                let self_ty = respan(self.service.self_ty, span);
                quote_spanned!(span=> ::micro::__private::assert_clone::<#self_ty>();)
            });
        let default = attrs.rebuild.map(|span| {
            let self_ty = respan(self.service.self_ty, span);
            quote_spanned!(span=> ::micro::__private::assert_rebuild::<#self_ty>();)
        });
        // On the first `&self`: read turns share the value between handlers in flight.
        let sync = self
            .service
            .endpoints
            .iter()
            .find(|endpoint| endpoint.is_read())
            .and_then(|endpoint| endpoint.receiver)
            .map(|receiver| {
                let span = receiver.self_token.span;
                let self_ty = respan(self.service.self_ty, span);
                quote_spanned!(span=> ::micro::__private::assert_read_turns::<#self_ty>();)
            });
        quote! {
            const _: fn() = || {
                // The actor moves the value to its task.
                fn service_must_be_send<T: ::core::marker::Send>() {}
                service_must_be_send::<#self_ty>();
                #(#types)*
                #clone
                #default
                #sync
            };
        }
    }

    fn client_struct(&self) -> TokenStream {
        let (client, vis) = (&self.client, &self.client_vis);
        let doc = format!(
            "Typed client for the `{}` service, generated by `#[micro::service]` on `{}`.",
            self.service_name, self.type_name,
        );
        quote! {
            #[doc = #doc]
            ///
            /// Each method starts a call to the endpoint of the same name: set options on the
            /// returned `micro::Call`, then `.await` it for the reply.
            #[derive(::core::clone::Clone, ::core::fmt::Debug)]
            #vis struct #client {
                client: ::micro::Client,
                service: ::std::sync::Arc<::core::primitive::str>,
            }
        }
    }

    fn client_methods(&self) -> TokenStream {
        let (client, vis, service) = (&self.client, &self.client_vis, &self.service_name);
        let new_doc = format!("A client for the `{service}` service, calling through `client`.");
        let methods = self.service.calls().map(client_method);
        quote! {
            impl #client {
                #[doc = #new_doc]
                #vis fn new(client: ::micro::Client) -> Self {
                    Self::with_service(client, #service)
                }

                /// A client for the same handlers registered under another service name.
                #vis fn with_service(
                    client: ::micro::Client,
                    service: impl ::core::convert::Into<::std::sync::Arc<::core::primitive::str>>,
                ) -> Self {
                    Self {
                        client,
                        service: ::core::convert::Into::into(service),
                    }
                }

                /// The untyped client underneath.
                #vis fn client(&self) -> &::micro::Client {
                    &self.client
                }

                #(#methods)*
            }
        }
    }
}

impl<'a> Service<'a> {
    /// The endpoints the client calls: every one but the subscribers.
    fn calls(&self) -> impl Iterator<Item = &Endpoint<'a>> {
        self.endpoints
            .iter()
            .filter(|endpoint| endpoint.role == Role::Call)
    }
}

/// One entry of the routing table.
pub(crate) fn endpoint_def(endpoint: &Endpoint<'_>) -> TokenStream {
    let name = &endpoint.wire_name;
    let method = endpoint.ident.unraw().to_string();
    // A stream is described by its items: that is what each message carries.
    let request = endpoint
        .request_item()
        .map_or_else(|| endpoint.request_string(), ast::type_string);
    let response = ast::type_string(endpoint.reply_item().unwrap_or(endpoint.response));
    let (topic, queue) = endpoint
        .subscription
        .as_ref()
        .map_or(("", ""), |subscribe| {
            (&*subscribe.topic, subscribe.queue.as_deref().unwrap_or(""))
        });
    let idempotent = endpoint.idempotent;
    let doc = doc_comment(endpoint.attrs);
    let request_ty = endpoint.request_item().map_or_else(
        || {
            endpoint
                .request
                .as_ref()
                .map_or_else(|| quote!(()), |request| request.ty.to_token_stream())
        },
        ToTokens::to_token_stream,
    );
    let response_ty = endpoint.reply_item().unwrap_or(endpoint.response);
    let stream = match (endpoint.request_item(), endpoint.reply_item()) {
        (None, None) => quote!(Unary),
        (None, Some(_)) => quote!(Server),
        (Some(_), None) => quote!(Client),
        (Some(_), Some(_)) => quote!(Bidi),
    };
    let turn = if endpoint.is_read() {
        quote!(::micro::__private::Turn::Read)
    } else {
        quote!(::micro::__private::Turn::Write)
    };
    quote! {
        ::micro::__private::EndpointDef {
            name: #name,
            method: #method,
            turn: #turn,
            request: #request,
            response: #response,
            topic: #topic,
            queue: #queue,
            idempotent: #idempotent,
            stream: ::micro::__private::StreamKind::#stream,
            doc: #doc,
            // A function, not a value: tracing the types costs nothing until registration.
            describe: || ::micro::__private::Description::of::<#request_ty, #response_ty>(
                #request,
                #response,
            ),
        }
    }
}

/// The `///` lines of a handler, as one trimmed string.
fn doc_comment(attrs: &[syn::Attribute]) -> String {
    let lines: Vec<String> = attrs
        .iter()
        .filter(|attr| attr.path().is_ident("doc"))
        .filter_map(|attr| match &attr.meta {
            syn::Meta::NameValue(syn::MetaNameValue {
                value:
                    syn::Expr::Lit(syn::ExprLit {
                        lit: syn::Lit::Str(text),
                        ..
                    }),
                ..
            }) => Some(text.value()),
            _ => None,
        })
        .map(|line| {
            line.strip_prefix(' ')
                .unwrap_or(&line)
                .trim_end()
                .to_owned()
        })
        .collect();
    lines.join("\n").trim().to_owned()
}

/// The assertions an endpoint's types need beyond the client's: its error
/// converts into `micro::Error`, and a subscriber's event, which no client
/// method names, is a `Message`. Each is spanned on its type.
pub(crate) fn type_asserts(endpoint: &Endpoint<'_>) -> TokenStream {
    let error = endpoint
        .error
        .map(|ty| quote_spanned!(ty.span()=> ::micro::__private::assert_error::<#ty>();));
    let event = endpoint
        .request
        .as_ref()
        .filter(|_| endpoint.role.is_subscriber())
        .map(|request| {
            let ty = request.ty;
            quote_spanned!(ty.span()=> ::micro::__private::assert_request::<#ty>();)
        });
    quote!(#error #event)
}

/// The dispatch arm for endpoint number `index`: decode the request, pass it
/// to the function at `path` (after `receiver`, if any, and the context, if
/// it takes one), and turn the result into a reply.
pub(crate) fn dispatch_arm(
    index: usize,
    endpoint: &Endpoint<'_>,
    path: TokenStream,
    receiver: Option<TokenStream>,
) -> TokenStream {
    let index = Literal::usize_unsuffixed(index);
    let method = endpoint.ident;
    let receiver = receiver.map(|receiver| quote!(#receiver,));
    let ctx = endpoint.takes_ctx.then(|| quote!(ctx,));
    let def = quote!(&<Self as ::micro::__private::Handler>::DEF.endpoints[#index]);
    let (decode, req) = match &endpoint.request {
        Some(request) if endpoint.request_item().is_some() => {
            let ty = request.ty;
            (
                quote!(let req: #ty = ::micro::__private::decode_stream(req, #def)?;),
                Some(quote!(req)),
            )
        }
        Some(request) => {
            let ty = request.ty;
            (
                quote!(let req: #ty = ::micro::__private::decode(req, #def)?;),
                Some(quote!(req)),
            )
        }
        None => (quote!(::micro::__private::decode::<()>(req, #def)?;), None),
    };
    // Spanned on the return type: with `micro::Result` spelled through an
    // alias, an error type without `Into<micro::Error>` is reported there.
    let reply = if endpoint.reply_item().is_some() {
        quote_spanned!(endpoint.output.span()=> ::micro::__private::reply_stream)
    } else {
        quote_spanned!(endpoint.output.span()=> ::micro::__private::reply)
    };
    // One future per endpoint, spanned on the method, so that a handler whose
    // future is not `Send` is the one named in the error.
    let future = quote_spanned! {method.span()=>
        ::std::boxed::Box::pin(async move {
            #decode
            #reply(#path(#receiver #ctx #req).await)
        })
    };
    quote!(#index => #future,)
}

/// What the handler impl relies on from one endpoint's types; see
/// `ServiceGenerator::handler_bounds`.
pub(crate) fn endpoint_bounds(endpoint: &Endpoint<'_>) -> Vec<TokenStream> {
    let mut bounds = Vec::new();
    if let Some(request) = &endpoint.request {
        let ty = endpoint.request_item().unwrap_or(request.ty);
        bounds.push(quote!(#ty: ::micro::Message));
    }
    let response = endpoint.reply_item().unwrap_or(endpoint.response);
    bounds.push(quote!(#response: ::micro::Message));
    if let Some(error) = endpoint.error {
        bounds.push(quote!(#error: ::core::convert::Into<::micro::Error>));
    }
    bounds
}

fn client_method(endpoint: &Endpoint<'_>) -> TokenStream {
    let (ident, vis, wire_name) = (endpoint.ident, endpoint.vis, &endpoint.wire_name);
    let docs = endpoint
        .attrs
        .iter()
        .filter(|attr| attr.path().is_ident("doc") || attr.path().is_ident("deprecated"));
    let has_docs = endpoint
        .attrs
        .iter()
        .any(|attr| attr.path().is_ident("doc"));
    let separator = has_docs.then(|| quote!(#[doc = ""]));
    let calls = if endpoint.idempotent {
        format!(
            "Calls `{wire_name}`, which is idempotent: when a connection fails after sending, \
             the call is sent again to another node."
        )
    } else {
        format!("Calls `{wire_name}`.")
    };
    let response = endpoint.response;
    let (param, request, arg) = match &endpoint.request {
        Some(request) if !request.is_unit() => {
            let name = request
                .name
                .cloned()
                .unwrap_or_else(|| Ident::new("req", Span::call_site()));
            let ty = request.ty;
            (quote!(#name: #ty), quote!(#ty), quote!(#name))
        }
        _ => (quote!(), quote!(()), quote!(())),
    };
    if let Some(stream) = stream_client_method(endpoint, &param, &arg) {
        return quote!(#(#docs)* #separator #stream);
    }
    let mut call = quote! {
        ::micro::Client::call::<#request, #response>(
            &self.client,
            ::core::clone::Clone::clone(&self.service),
            #wire_name,
            #arg,
        )
    };
    if endpoint.idempotent {
        call = quote!(::micro::Call::idempotent(#call));
    }
    quote! {
        #(#docs)*
        #separator
        #[doc = #calls]
        #vis fn #ident(&self, #param) -> ::micro::Call<#request, #response> {
            #call
        }
    }
}

/// The client method of a streaming endpoint: it opens the stream, whose items the caller
/// reads from (or feeds into) a `Streaming`.
fn stream_client_method(
    endpoint: &Endpoint<'_>,
    param: &TokenStream,
    arg: &TokenStream,
) -> Option<TokenStream> {
    let (ident, vis, wire_name) = (endpoint.ident, endpoint.vis, &endpoint.wire_name);
    let (open, request, response, output, doc) =
        match (endpoint.request_item(), endpoint.reply_item()) {
            (None, None) => return None,
            (None, Some(reply)) => {
                let request = endpoint
                    .request
                    .as_ref()
                    .filter(|request| !request.is_unit())
                    .map_or_else(|| quote!(()), |request| request.ty.to_token_stream());
                (
                    quote!(server_stream),
                    request,
                    reply,
                    quote!(::micro::Streaming<#reply>),
                    "a stream of its replies",
                )
            }
            (Some(item), None) => {
                let response = endpoint.response;
                (
                    quote!(client_stream),
                    item.to_token_stream(),
                    response,
                    quote!(#response),
                    "its reply, once it has read the stream of requests given here",
                )
            }
            (Some(item), Some(reply)) => (
                quote!(bidi_stream),
                item.to_token_stream(),
                reply,
                quote!(::micro::Streaming<#reply>),
                "a stream of its replies, while it reads the stream of requests given here",
            ),
        };
    let doc = format!("Opens a stream to `{wire_name}`; awaiting it gives {doc}.");
    Some(quote! {
        #[doc = #doc]
        #vis fn #ident(&self, #param) -> ::micro::StreamCall<#output> {
            ::micro::Client::#open::<#request, #response>(
                &self.client,
                ::core::clone::Clone::clone(&self.service),
                #wire_name,
                #arg,
            )
        }
    })
}

/// The widest visibility among the endpoints: `pub` handlers make a `pub`
/// client, `pub(crate)` ones keep it inside the crate. The macro sees only the
/// impl block, not the self type's own visibility.
fn client_visibility<'a>(endpoints: impl Iterator<Item = &'a Endpoint<'a>>) -> TokenStream {
    let mut visibilities = endpoints.map(|endpoint| endpoint.vis);
    let Some(first) = visibilities.next() else {
        return quote!(pub(crate));
    };
    let first_tokens = first.to_token_stream().to_string();
    let mut all_same = true;
    for vis in visibilities.chain([first]) {
        if matches!(vis, Visibility::Public(_)) {
            return quote!(pub);
        }
        all_same &= vis.to_token_stream().to_string() == first_tokens;
    }
    if all_same {
        first.to_token_stream()
    } else {
        quote!(pub(crate))
    }
}

/// `tokens` with every span replaced, so that an error about them points at
/// `span` instead.
fn respan(tokens: impl ToTokens, span: Span) -> TokenStream {
    tokens
        .into_token_stream()
        .into_iter()
        .map(|mut token| {
            if let TokenTree::Group(group) = &token {
                token =
                    TokenTree::Group(Group::new(group.delimiter(), respan(group.stream(), span)));
            }
            token.set_span(span);
            token
        })
        .collect()
}
