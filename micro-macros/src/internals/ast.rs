//! The service as the macro understands it: the impl block's self type and
//! the handler methods, each already in the shape the contract requires; and
//! a free subscriber function, read the same way.
//!
//! Anything that does not have that shape is reported here, on its own token,
//! and left out of the service so that generation only sees handlers it can
//! serve.

use proc_macro2::TokenStream;
use quote::{ToTokens, quote};
use syn::ext::IdentExt;
use syn::{
    Attribute, FnArg, GenericArgument, Ident, ImplItem, ImplItemFn, Item, ItemFn, ItemImpl,
    PatType, Path, PathArguments, Receiver, ReturnType, Signature, Type, Visibility,
};

use super::{Ctxt, attr};

/// How every signature error ends: the way out for a method that was never
/// meant to be an endpoint.
pub(crate) const KEEP_OUT: &str =
    "make it private or mark it `#[micro(skip)]` to keep it out of the service";

/// What a handler is for, which decides its shape and how errors about it
/// read.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// A `pub` method of a service block, called through the client.
    Call,
    /// A `#[micro::subscribe]` method of a service block.
    Subscriber,
    /// A free `async fn` with `#[micro::subscribe]`, its own handler.
    FreeSubscriber,
}

impl Role {
    /// What errors call the handler.
    pub(crate) fn noun(self) -> &'static str {
        match self {
            Role::Call => "endpoint",
            Role::Subscriber | Role::FreeSubscriber => "subscriber",
        }
    }

    /// What its one argument carries.
    pub(crate) fn input(self) -> &'static str {
        match self {
            Role::Call => "request",
            Role::Subscriber | Role::FreeSubscriber => "event",
        }
    }

    pub(crate) fn is_subscriber(self) -> bool {
        self != Role::Call
    }

    /// `, or <the way out>` after a fix: a `pub` method may not have been
    /// meant as an endpoint, while a subscriber was marked on purpose.
    pub(crate) fn or_keep_out(self) -> String {
        match self {
            Role::Call => format!(", or {KEEP_OUT}"),
            Role::Subscriber | Role::FreeSubscriber => String::new(),
        }
    }

    /// `; <the way out>` after a reason.
    pub(crate) fn then_keep_out(self) -> String {
        match self {
            Role::Call => format!("; {KEEP_OUT}"),
            Role::Subscriber | Role::FreeSubscriber => String::new(),
        }
    }

    /// The parameter list of a complete handler, for messages.
    fn example(self) -> &'static str {
        match self {
            Role::Call => "(&self, ctx: &micro::Context, req: Request)",
            Role::Subscriber => "(&self, ctx: &micro::Context, event: Event)",
            Role::FreeSubscriber => "(ctx: &micro::Context, event: Event)",
        }
    }
}

/// An impl block that can be served.
pub(crate) struct Service<'a> {
    /// `#[cfg]`s written on the impl block below the macro's attribute: the
    /// generated items must come and go with the block.
    pub(crate) cfgs: Vec<&'a Attribute>,
    pub(crate) self_ty: &'a Type,
    /// The self type's name: `Greeter` in `impl Greeter`.
    pub(crate) ident: &'a Ident,
    pub(crate) attrs: attr::Service,
    pub(crate) endpoints: Vec<Endpoint<'a>>,
    /// Whether the block declares any call endpoint, well-formed or not: a
    /// block of subscribers only has nothing to call, so it gets no client.
    pub(crate) declares_calls: bool,
    pub(crate) declares_subscribers: bool,
}

/// A handler method in the shape of an endpoint.
pub(crate) struct Endpoint<'a> {
    pub(crate) role: Role,
    pub(crate) vis: &'a Visibility,
    pub(crate) attrs: &'a [Attribute],
    pub(crate) ident: &'a Ident,
    /// `Greeter.SayHello`.
    pub(crate) wire_name: String,
    pub(crate) takes_ctx: bool,
    pub(crate) request: Option<Request<'a>>,
    /// `T` in `Result<T, E>`.
    pub(crate) response: &'a Type,
    /// `E` in `Result<T, E>`; absent for `micro::Result<T>`.
    pub(crate) error: Option<&'a Type>,
    /// The whole return type, where a bad error type is reported.
    pub(crate) output: &'a Type,
    /// Where a subscriber's events come from; `None` for a call.
    pub(crate) subscription: Option<attr::Subscribe>,
    /// `#[micro(idempotent)]`: safe to send twice. Only ever set on a call.
    pub(crate) idempotent: bool,
    /// `&self` or `&mut self`; `None` for a free subscriber, which has no state.
    pub(crate) receiver: Option<&'a Receiver>,
}

/// The request parameter of a handler.
pub(crate) struct Request<'a> {
    /// The handler's binding, reused for the client parameter when it is a
    /// plain name.
    pub(crate) name: Option<&'a Ident>,
    pub(crate) ty: &'a Type,
}

impl Request<'_> {
    /// `_: ()` says "no request" as plainly as leaving it out, and the client
    /// treats both alike: its method takes no argument.
    pub(crate) fn is_unit(&self) -> bool {
        matches!(self.ty, Type::Tuple(tuple) if tuple.elems.is_empty())
    }
}

impl Endpoint<'_> {
    /// `&self` handlers run as read turns, interleaved with each other; the rest run alone.
    pub(crate) fn is_read(&self) -> bool {
        self.receiver.is_some_and(|receiver| {
            if receiver.colon_token.is_some() {
                matches!(&*receiver.ty, Type::Reference(r) if r.mutability.is_none())
            } else {
                receiver.reference.is_some() && receiver.mutability.is_none()
            }
        })
    }

    /// The request's type as the routing table records it: `()` when none.
    pub(crate) fn request_string(&self) -> String {
        self.request
            .as_ref()
            .map_or_else(|| "()".to_owned(), |request| type_string(request.ty))
    }
}

impl<'a> Endpoint<'a> {
    /// `T` when the handler takes a `Streaming<T>` of requests.
    pub(crate) fn request_item(&self) -> Option<&'a Type> {
        self.request
            .as_ref()
            .and_then(|request| streaming_item(request.ty))
    }

    /// `T` when the handler returns a `Streaming<T>` of replies.
    pub(crate) fn reply_item(&self) -> Option<&'a Type> {
        streaming_item(self.response)
    }
}

impl<'a> Service<'a> {
    /// Reads the attribute arguments and the item. `None` when the item as a
    /// whole cannot become a service; its methods are still read so that their
    /// errors show up in the same build.
    pub(crate) fn from_ast(cx: &Ctxt, args: TokenStream, item: &'a Item) -> Option<Self> {
        let attrs = attr::Service::from_args(cx, args);
        let Item::Impl(item) = item else {
            let (head, name) = item_head(item);
            cx.error_spanned_by(
                head,
                format_args!(
                    "`#[micro::service]` goes on the `impl` block that holds the handlers: \
                     `#[micro::service] impl {} {{ … }}`",
                    name.map_or_else(|| "Greeter".to_owned(), |name| name.unraw().to_string()),
                ),
            );
            return None;
        };
        let ident = self_type_name(cx, item);
        let type_name = ident.map_or_else(String::new, |ident| ident.unraw().to_string());
        let mut endpoints = Vec::new();
        let (mut declares_calls, mut declares_subscribers) = (false, false);
        for member in &item.items {
            match member {
                ImplItem::Fn(method) => {
                    let (role, endpoint) = Endpoint::from_ast(cx, &type_name, method);
                    declares_calls |= role == Some(Role::Call);
                    declares_subscribers |= role == Some(Role::Subscriber);
                    endpoints.extend(endpoint);
                }
                ImplItem::Const(c) => attr::reject_on_non_method(cx, &c.attrs),
                ImplItem::Type(t) => attr::reject_on_non_method(cx, &t.attrs),
                ImplItem::Macro(m) => attr::reject_on_non_method(cx, &m.attrs),
                _ => {}
            }
        }
        Some(Service {
            cfgs: item
                .attrs
                .iter()
                .filter(|attr| attr.path().is_ident("cfg"))
                .collect(),
            self_ty: &item.self_ty,
            ident: ident?,
            attrs,
            endpoints,
            declares_calls,
            declares_subscribers,
        })
    }
}

/// The name of an inherent impl's concrete self type, or `None` after
/// reporting why there is none.
fn self_type_name<'a>(cx: &Ctxt, item: &'a ItemImpl) -> Option<&'a Ident> {
    let ident = match &*item.self_ty {
        Type::Path(path) if path.qself.is_none() => path.path.segments.last().map(|s| &s.ident),
        _ => None,
    };
    let Some(ident) = ident else {
        cx.error_spanned_by(
            &item.self_ty,
            "`#[micro::service]` needs a named type to serve: `impl Greeter { … }`",
        );
        return None;
    };
    let mut ok = true;
    if let Some((_, path, _)) = &item.trait_ {
        cx.error_spanned_by(
            path,
            format_args!(
                "`#[micro::service]` goes on an inherent impl block, not on a trait impl; \
                 move the handlers into `impl {ident} {{ … }}`"
            ),
        );
        ok = false;
    }
    let generics = &item.generics;
    let generic = if generics.params.is_empty() {
        generics
            .where_clause
            .as_ref()
            .map(ToTokens::to_token_stream)
    } else {
        Some(generics.to_token_stream())
    };
    if let Some(tokens) = generic {
        cx.error_spanned_by(
            tokens,
            format_args!(
                "`#[micro::service]` cannot serve a generic impl block: the routing table and \
                 the client need one concrete type; write the impl for a concrete type, \
                 e.g. `impl {ident}<u64>`"
            ),
        );
        ok = false;
    }
    ok.then_some(ident)
}

/// The tokens that name an item, so that an error does not underline a whole
/// body, and the name of a type that could have the impl block.
pub(crate) fn item_head(item: &Item) -> (TokenStream, Option<&Ident>) {
    fn head(keyword: impl ToTokens, name: &Ident) -> TokenStream {
        quote!(#keyword #name)
    }
    match item {
        Item::Struct(s) => (head(s.struct_token, &s.ident), Some(&s.ident)),
        Item::Enum(e) => (head(e.enum_token, &e.ident), Some(&e.ident)),
        Item::Union(u) => (head(u.union_token, &u.ident), Some(&u.ident)),
        Item::Trait(t) => (head(t.trait_token, &t.ident), None),
        Item::Mod(m) => (head(m.mod_token, &m.ident), None),
        Item::Fn(f) => (head(f.sig.fn_token, &f.sig.ident), None),
        Item::Impl(i) => {
            let (impl_token, self_ty) = (i.impl_token, &i.self_ty);
            (quote!(#impl_token #self_ty), None)
        }
        item => (item.to_token_stream(), None),
    }
}

impl<'a> Endpoint<'a> {
    /// The method's role, `None` for methods that are not endpoints (private
    /// or skipped), and the endpoint, `None` also when it does not have the
    /// handler shape, after reporting every reason.
    fn from_ast(
        cx: &Ctxt,
        type_name: &str,
        method: &'a ImplItemFn,
    ) -> (Option<Role>, Option<Self>) {
        let attrs = attr::Method::from_attrs(cx, &method.attrs);
        if let Some(idempotent) = &attrs.idempotent {
            check_idempotent(cx, &attrs, idempotent, method);
        }
        let (role, skip_ok) = match (&attrs.subscribe, attrs.skip) {
            (Some(_), Some(skip)) => {
                cx.error_spanned_by(
                    skip,
                    format_args!(
                        "subscriber `{}` is marked `#[micro(skip)]`; remove `#[micro(skip)]` to \
                         receive events, or remove `#[micro::subscribe]` to keep it out of the \
                         service",
                        method.sig.ident,
                    ),
                );
                (Role::Subscriber, false)
            }
            (Some(_), None) => (Role::Subscriber, true),
            (None, Some(_)) => return (None, None),
            (None, None) if matches!(method.vis, Visibility::Inherited) => return (None, None),
            (None, None) => (Role::Call, true),
        };
        let name = camel_case(&method.sig.ident);
        let endpoint = Shape::read(cx, role, &method.sig, &method.attrs).map(|shape| Endpoint {
            role,
            vis: &method.vis,
            attrs: &method.attrs,
            ident: &method.sig.ident,
            wire_name: format!("{type_name}.{name}"),
            takes_ctx: shape.takes_ctx,
            request: shape.request,
            response: shape.response,
            error: shape.error,
            output: shape.output,
            subscription: attrs.subscribe,
            idempotent: role == Role::Call && attrs.idempotent.is_some(),
            receiver: method.sig.receiver(),
        });
        (Some(role), endpoint.filter(|_| skip_ok))
    }
}

/// Reports `#[micro(idempotent)]` on a method that no client calls: a
/// subscriber, a skipped method or a private one.
fn check_idempotent(cx: &Ctxt, attrs: &attr::Method<'_>, idempotent: &Path, method: &ImplItemFn) {
    let name = &method.sig.ident;
    if attrs.subscribe.is_some() {
        attr::idempotent_subscriber(cx, idempotent, name);
        return;
    }
    let (why, fix) = if attrs.skip.is_some() {
        ("marked `#[micro(skip)]`", "remove one of them")
    } else if matches!(method.vis, Visibility::Inherited) {
        (
            "private",
            "make it `pub` to serve it, or remove `#[micro(idempotent)]`",
        )
    } else {
        return;
    };
    cx.error_spanned_by(
        idempotent,
        format_args!(
            "`#[micro(idempotent)]` marks an endpoint, but `{name}` is {why} and so no \
             endpoint: {fix}"
        ),
    );
}

/// A free function with `#[micro::subscribe]`, which becomes a handler of its
/// own: a unit struct of the same name.
pub(crate) struct Subscriber<'a> {
    pub(crate) item: &'a ItemFn,
    /// `CountCreated` for `count_created`: the handler's type name on the
    /// wire and in the registry.
    pub(crate) type_name: String,
    pub(crate) endpoint: Endpoint<'a>,
}

impl<'a> Subscriber<'a> {
    /// The wire name of the one endpoint is `{TypeName}.Handle`.
    pub(crate) const METHOD: &'static str = "Handle";

    /// `None` when the function does not have the subscriber shape, after
    /// reporting every reason.
    pub(crate) fn from_ast(
        cx: &Ctxt,
        item: &'a ItemFn,
        subscription: attr::Subscribe,
    ) -> Option<Self> {
        let type_name = camel_case(&item.sig.ident);
        let shape = Shape::read(cx, Role::FreeSubscriber, &item.sig, &item.attrs)?;
        Some(Subscriber {
            item,
            endpoint: Endpoint {
                role: Role::FreeSubscriber,
                vis: &item.vis,
                attrs: &item.attrs,
                ident: &item.sig.ident,
                wire_name: format!("{type_name}.{}", Self::METHOD),
                takes_ctx: shape.takes_ctx,
                request: shape.request,
                response: shape.response,
                error: shape.error,
                output: shape.output,
                subscription: Some(subscription),
                idempotent: false,
                receiver: None,
            },
            type_name,
        })
    }
}

/// The function under `#[micro::subscribe]`, or `None` after reporting why
/// the item cannot be a free subscriber.
pub(crate) fn free_function(cx: &Ctxt, item: Item) -> Option<ItemFn> {
    let Item::Fn(function) = item else {
        let (head, _) = item_head(&item);
        cx.error_spanned_by(
            head,
            format_args!(
                "`#[micro::subscribe]` goes on an `async fn` that receives one event, or on a \
                 method in a `#[micro::service]` impl block: `{} async fn on_created(event: \
                 Created) -> micro::Result<()> {{ … }}`",
                attr::SUBSCRIBE_EXAMPLE,
            ),
        );
        return None;
    };
    // Inside a service block the service macro strips the attribute before it
    // could expand, so a method here sits in some other impl block.
    if let Some(receiver) = function.sig.receiver() {
        cx.error_spanned_by(
            receiver,
            format_args!(
                "`#[micro::subscribe]` on a method needs `#[micro::service]` on its impl block, \
                 which routes events to the service value: `#[micro::service] impl … {{ … }}`; \
                 or drop `self` to make `{}` a free subscriber, outside the impl block",
                function.sig.ident,
            ),
        );
        return None;
    }
    Some(function)
}

/// A handler's signature, taken apart.
struct Shape<'a> {
    takes_ctx: bool,
    request: Option<Request<'a>>,
    response: &'a Type,
    error: Option<&'a Type>,
    output: &'a Type,
}

impl<'a> Shape<'a> {
    fn read(cx: &Ctxt, role: Role, sig: &'a Signature, attrs: &[Attribute]) -> Option<Self> {
        // Each check runs even after another failed, so that one build shows
        // everything wrong with the method.
        let checks = [
            // A free function's own `#[cfg]` is evaluated with it.
            role == Role::FreeSubscriber || not_cfg_gated(cx, role, sig, attrs),
            is_async(cx, role, sig),
            plain_fn(cx, role, sig),
            not_generic(cx, role, sig),
            // A free function with a receiver never gets this far.
            role == Role::FreeSubscriber || has_receiver(cx, role, sig),
        ];
        let arguments = arguments(cx, role, sig);
        let output = output(cx, role, sig);
        if checks.contains(&false) {
            return None;
        }
        let (takes_ctx, request) = arguments?;
        let (response, error, output) = output?;
        Some(Shape {
            takes_ctx,
            request,
            response,
            error,
            output,
        })
    }
}

/// rustc hands attribute macros their input before evaluating `#[cfg]`, so
/// the routing table cannot know whether a gated method will exist.
fn not_cfg_gated(cx: &Ctxt, role: Role, sig: &Signature, attrs: &[Attribute]) -> bool {
    let Some(cfg) = attrs.iter().find(|attr| attr.path().is_ident("cfg")) else {
        return true;
    };
    cx.error_spanned_by(
        cfg,
        format_args!(
            "{} `{}` cannot be `#[cfg]`-gated: `#[micro::service]` builds the routing \
             table before cfg is evaluated; gate the whole impl block instead{}",
            role.noun(),
            sig.ident,
            role.or_keep_out(),
        ),
    );
    false
}

fn is_async(cx: &Ctxt, role: Role, sig: &Signature) -> bool {
    if sig.asyncness.is_some() {
        return true;
    }
    let (fn_token, name) = (&sig.fn_token, &sig.ident);
    cx.error_spanned_by(
        quote!(#fn_token #name),
        format_args!(
            "{} `{name}` must be an `async fn`: add `async`{}",
            role.noun(),
            role.or_keep_out(),
        ),
    );
    false
}

/// No `unsafe`, `extern` or variadics: nothing a remote caller could honour.
fn plain_fn(cx: &Ctxt, role: Role, sig: &Signature) -> bool {
    let (noun, name) = (role.noun(), &sig.ident);
    let mut ok = true;
    if let Some(unsafety) = &sig.unsafety {
        cx.error_spanned_by(
            unsafety,
            format_args!(
                "{noun} `{name}` cannot be `unsafe`: a remote caller cannot uphold its \
                 safety contract{}",
                role.then_keep_out(),
            ),
        );
        ok = false;
    }
    if let Some(abi) = &sig.abi {
        cx.error_spanned_by(
            abi,
            format_args!(
                "{noun} `{name}` cannot have an `extern` ABI; remove it{}",
                role.or_keep_out(),
            ),
        );
        ok = false;
    }
    if let Some(variadic) = &sig.variadic {
        cx.error_spanned_by(
            variadic,
            format_args!("{noun} `{name}` cannot be variadic{}", role.then_keep_out()),
        );
        ok = false;
    }
    ok
}

fn not_generic(cx: &Ctxt, role: Role, sig: &Signature) -> bool {
    let generics = &sig.generics;
    let tokens = if !generics.params.is_empty() {
        generics.to_token_stream()
    } else if let Some(where_clause) = &generics.where_clause {
        where_clause.to_token_stream()
    } else {
        return true;
    };
    let why = match role {
        Role::Call => "an endpoint has one concrete request and reply type on the wire",
        Role::Subscriber | Role::FreeSubscriber => {
            "a subscriber decodes one concrete event type from the wire"
        }
    };
    cx.error_spanned_by(
        tokens,
        format_args!(
            "{} `{}` cannot be generic: {why}{}",
            role.noun(),
            sig.ident,
            role.then_keep_out(),
        ),
    );
    false
}

fn has_receiver(cx: &Ctxt, role: Role, sig: &Signature) -> bool {
    let (noun, name) = (role.noun(), &sig.ident);
    let Some(FnArg::Receiver(receiver)) = sig.inputs.first() else {
        let way_out = match role {
            Role::Call => format!("; {KEEP_OUT}"),
            Role::Subscriber | Role::FreeSubscriber => "; a subscriber without state can be \
                a free `async fn` with `#[micro::subscribe]`, outside the impl block"
                .to_owned(),
        };
        cx.error_at(
            sig.paren_token.span.join(),
            format_args!(
                "{noun} `{name}` needs `&self` or `&mut self` as its first parameter: \
                 handlers run on the service value inside its actor{way_out}"
            ),
        );
        return false;
    };
    let by_value = "use `&self` or `&mut self`: the service value lives in its actor";
    if receiver.colon_token.is_some() {
        if is_ref_self(&receiver.ty) {
            return true;
        }
        let ty = type_string(&receiver.ty);
        cx.error_spanned_by(
            receiver,
            format_args!("{noun} `{name}` takes `self: {ty}`; {by_value}"),
        );
        return false;
    }
    match &receiver.reference {
        None => {
            cx.error_spanned_by(
                receiver,
                format_args!("{noun} `{name}` takes `self` by value; {by_value}"),
            );
            false
        }
        Some((_, Some(lifetime))) if lifetime.ident != "_" => {
            cx.error_spanned_by(
                lifetime,
                format_args!(
                    "{noun} `{name}` names a lifetime on `self`; write plain `&self` or \
                     `&mut self`: the runtime decides how long a call borrows the service"
                ),
            );
            false
        }
        Some(_) => true,
    }
}

/// `self: &Self` and `self: &mut Self`, the long spellings of `&self`.
fn is_ref_self(ty: &Type) -> bool {
    match ty {
        Type::Reference(r) => {
            r.lifetime.is_none()
                && matches!(&*r.elem, Type::Path(p) if p.qself.is_none() && p.path.is_ident("Self"))
        }
        _ => false,
    }
}

/// The optional `ctx: &Context` and the request (optional for a call, the
/// event a subscriber requires), in that order.
fn arguments<'a>(cx: &Ctxt, role: Role, sig: &'a Signature) -> Option<(bool, Option<Request<'a>>)> {
    let (noun, input, name) = (role.noun(), role.input(), &sig.ident);
    let mut args = sig
        .inputs
        .iter()
        .filter_map(|arg| match arg {
            FnArg::Typed(arg) => Some(arg),
            FnArg::Receiver(_) => None,
        })
        .peekable();
    let mut ok = true;

    let ctx = args.next_if(|arg| is_context(&arg.ty));
    if let Some(Type::Reference(reference)) = ctx.map(|arg| &*arg.ty) {
        if let Some(mutability) = &reference.mutability {
            let whose = if role.is_subscriber() {
                "event's"
            } else {
                "call's"
            };
            cx.error_spanned_by(
                mutability,
                format_args!(
                    "{noun} `{name}` takes `&mut Context`; take `&Context`: the {whose} \
                     context is shared with the runtime"
                ),
            );
            ok = false;
        }
    }

    let request = args.next();
    match request {
        Some(arg) => ok &= request_shape(cx, role, name, arg),
        None if role.is_subscriber() => {
            cx.error_at(
                sig.paren_token.span.join(),
                format_args!(
                    "subscriber `{name}` has no argument for the event it receives; add one \
                     after the context, if any: `{}`",
                    role.example(),
                ),
            );
            ok = false;
        }
        None => {}
    }

    if let Some(extra) = args.next() {
        if ctx.is_none() && is_context(&extra.ty) {
            cx.error_spanned_by(
                extra,
                format_args!(
                    "{noun} `{name}` takes the context after its {input}; put it first: `{}`",
                    role.example(),
                ),
            );
        } else {
            let bundle = if role.is_subscriber() {
                "an event is one value: bundle them into one event type, e.g. a struct"
            } else {
                "bundle them into one request type, e.g. a struct or a tuple"
            };
            cx.error_spanned_by(
                extra,
                format_args!("{noun} `{name}` takes more than one {input} argument; {bundle}"),
            );
        }
        ok = false;
    }

    let request = request.map(|arg| Request {
        name: match &*arg.pat {
            // `_req` says "unused" in the handler; the client does use it.
            syn::Pat::Ident(pat)
                if pat.subpat.is_none() && !pat.ident.unraw().to_string().starts_with('_') =>
            {
                Some(&pat.ident)
            }
            _ => None,
        },
        ty: &arg.ty,
    });
    ok.then_some((ctx.is_some(), request))
}

fn request_shape(cx: &Ctxt, role: Role, name: &Ident, arg: &PatType) -> bool {
    let Type::Reference(reference) = &*arg.ty else {
        return true;
    };
    let owned = match &*reference.elem {
        Type::Path(path) if path.qself.is_none() && path.path.is_ident("str") => "String".into(),
        Type::Slice(slice) => format!("Vec<{}>", type_string(&slice.elem)),
        elem => type_string(elem),
    };
    let (noun, input) = (role.noun(), role.input());
    let binding = match &*arg.pat {
        syn::Pat::Ident(pat) => pat.ident.to_string(),
        _ => if role.is_subscriber() { "event" } else { "req" }.into(),
    };
    let why = if role.is_subscriber() {
        "each delivery decodes an event of its own"
    } else {
        "each call decodes a request of its own"
    };
    cx.error_spanned_by(
        &arg.ty,
        format_args!(
            "{noun} `{name}` borrows its {input}; take it by value, `{binding}: {owned}`: {why}"
        ),
    );
    false
}

/// `&Context` or `&path::to::Context`: the contract recognises the context by
/// name, as macros cannot resolve types.
fn is_context(ty: &Type) -> bool {
    match ty {
        Type::Reference(r) => matches!(
            &*r.elem,
            Type::Path(p) if p.qself.is_none()
                && p.path.segments.last().is_some_and(|s| s.ident == "Context")
        ),
        _ => false,
    }
}

type Output<'a> = (&'a Type, Option<&'a Type>, &'a Type);

/// `Result<T>` or `Result<T, E>`, whatever path leads to `Result`; `T` is
/// `()` for a subscriber, whose reply only acknowledges the event.
fn output<'a>(cx: &Ctxt, role: Role, sig: &'a Signature) -> Option<Output<'a>> {
    let name = &sig.ident;
    let ReturnType::Type(_, output) = &sig.output else {
        let message = if role.is_subscriber() {
            format!(
                "subscriber `{name}` must return `micro::Result<()>`: `Ok(())` acknowledges \
                 the event, an error leaves it unacknowledged"
            )
        } else {
            format!(
                "endpoint `{name}` must return `micro::Result<T>`; write \
                 `-> micro::Result<()>` if it has nothing to reply"
            )
        };
        cx.error_at(sig.paren_token.span.close(), message);
        return None;
    };
    let Some((response, error)) = result_args(output) else {
        let message = if role.is_subscriber() {
            format!(
                "subscriber `{name}` must return `micro::Result<()>` or `Result<(), E>` with \
                 `E: Into<micro::Error>`: `Ok(())` acknowledges the event, an error leaves it \
                 unacknowledged"
            )
        } else {
            format!(
                "endpoint `{name}` must return `micro::Result<T>` or `Result<T, E>` with \
                 `E: Into<micro::Error>`; wrap the reply: `-> micro::Result<{}>`",
                type_string(output),
            )
        };
        cx.error_spanned_by(output, message);
        return None;
    };
    if role.is_subscriber() && !is_unit(response) {
        cx.error_spanned_by(
            response,
            format_args!(
                "subscriber `{name}` must return `Result<(), _>`, not `Result<{}, _>`: nobody \
                 receives a subscriber's reply, the broker only learns whether it acknowledged \
                 the event; return `Ok(())`",
                type_string(response),
            ),
        );
        return None;
    }
    Some((response, error, output))
}

fn is_unit(ty: &Type) -> bool {
    match ty {
        Type::Tuple(tuple) => tuple.elems.is_empty(),
        Type::Paren(paren) => is_unit(&paren.elem),
        Type::Group(group) => is_unit(&group.elem),
        _ => false,
    }
}

fn result_args(ty: &Type) -> Option<(&Type, Option<&Type>)> {
    let path = match ty {
        Type::Path(path) if path.qself.is_none() => &path.path,
        Type::Group(group) => return result_args(&group.elem),
        Type::Paren(paren) => return result_args(&paren.elem),
        _ => return None,
    };
    let last = path.segments.last()?;
    let PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    if last.ident != "Result" {
        return None;
    }
    let mut types = args.args.iter().map(|arg| match arg {
        GenericArgument::Type(ty) => Some(ty),
        _ => None,
    });
    match (types.next(), types.next(), types.next()) {
        (Some(Some(response)), None, None) => Some((response, None)),
        (Some(Some(response)), Some(Some(error)), None) => Some((response, Some(error))),
        _ => None,
    }
}

/// `say_hello` → `SayHello`, the go-micro spelling of endpoint names.
/// `T` in `Streaming<T>` (by any path: `micro::Streaming<T>` too): the item of a stream.
pub(crate) fn streaming_item(ty: &Type) -> Option<&Type> {
    let Type::Path(path) = ty else {
        return None;
    };
    let last = path.path.segments.last()?;
    if path.qself.is_some() || last.ident != "Streaming" {
        return None;
    }
    let syn::PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    match args.args.iter().collect::<Vec<_>>()[..] {
        [syn::GenericArgument::Type(item)] => Some(item),
        _ => None,
    }
}

pub(crate) fn camel_case(ident: &Ident) -> String {
    let mut camel = String::new();
    for word in ident.unraw().to_string().split('_') {
        let mut chars = word.chars();
        if let Some(first) = chars.next() {
            camel.extend(first.to_uppercase());
            camel.push_str(chars.as_str());
        }
    }
    camel
}

/// A type as written, with spaces only where two words would otherwise merge:
/// `Vec<Consignment>`, `&'static str`, `(u32,String)`.
pub(crate) fn type_string(ty: &Type) -> String {
    let text = ty.to_token_stream().to_string();
    let is_word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != ' ' || (is_word(out.chars().last()) && is_word(chars.peek().copied())) {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn camel_case_joins_snake_case_words() {
        let camel = |name: &str| camel_case(&syn::parse_str(name).unwrap());
        assert_eq!(camel("say_hello"), "SayHello");
        assert_eq!(camel("get_v2_data"), "GetV2Data");
        assert_eq!(camel("ping"), "Ping");
        assert_eq!(camel("_leading__double_"), "LeadingDouble");
        assert_eq!(camel("r#type"), "Type");
        assert_eq!(camel("AlreadyCamel"), "AlreadyCamel");
    }

    #[test]
    fn type_string_keeps_only_spaces_between_words() {
        let ty = |text: &str| type_string(&syn::parse_str(text).unwrap());
        assert_eq!(ty("Vec < Consignment >"), "Vec<Consignment>");
        assert_eq!(ty("micro :: Result < ( ) >"), "micro::Result<()>");
        assert_eq!(ty("(u32, String)"), "(u32,String)");
        assert_eq!(ty("&'static str"), "&'static str");
        assert_eq!(ty("Box<dyn Send>"), "Box<dyn Send>");
        assert_eq!(ty("[u8; 4]"), "[u8;4]");
    }
}
