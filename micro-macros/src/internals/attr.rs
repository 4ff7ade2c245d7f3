//! The macros' own arguments: `#[micro::service(...)]`,
//! `#[micro::subscribe(...)]`, and `#[micro(...)]` on methods.

use proc_macro2::{Span, TokenStream};
use quote::ToTokens;
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::{Attribute, Expr, ExprLit, Ident, ImplItem, ItemImpl, Lit, LitStr, Meta, Path, Token};

use super::Ctxt;

const SERVICE_ARGS: &str = "`name`, `version`, `workers`, `mailbox`, `reads` or `on_panic`";
const SUBSCRIBE_ARGS: &str = "`topic` or `queue`";
const MICRO_WORDS: &str = "`skip` or `idempotent`";
const MICRO_EXAMPLES: &str = "`#[micro(skip)]` or `#[micro(idempotent)]`";

/// How the attribute is spelled in messages, and how a complete one looks.
pub(crate) const SUBSCRIBE_EXAMPLE: &str = "#[micro::subscribe(topic = \"consignment.created\")]";

/// What `#[micro::service(...)]` says, with defaults filled in.
pub(crate) struct Service {
    /// Registry name; `None` means the type name lowercased.
    pub(crate) name: Option<String>,
    pub(crate) version: Option<String>,
    pub(crate) workers: usize,
    /// Where `workers` was written, so that "must be `Clone`" lands there.
    pub(crate) workers_span: Option<Span>,
    /// 0 leaves the choice to the runtime.
    pub(crate) mailbox: usize,
    /// Read turns at once per actor; 0 leaves the choice to the runtime.
    pub(crate) reads: usize,
    /// `on_panic = "rebuild"`, where "must be `Default`" lands; `None` keeps the state.
    pub(crate) rebuild: Option<Span>,
}

impl Service {
    pub(crate) fn from_args(cx: &Ctxt, args: TokenStream) -> Self {
        let mut name = Arg::new("name");
        let mut version = Arg::new("version");
        let mut workers = Arg::new("workers");
        let mut mailbox = Arg::new("mailbox");
        let mut reads = Arg::new("reads");
        let mut on_panic = Arg::new("on_panic");

        for meta in &metas(cx, args) {
            let path = meta.path();
            if path.is_ident("name") {
                if let Some(lit) = lit_str(cx, meta, "name", "\"greeter\"") {
                    name.set(cx, path, lit.value());
                }
            } else if path.is_ident("version") {
                if let Some(lit) = lit_str(cx, meta, "version", "\"1.0.0\"") {
                    version.set(cx, path, lit.value());
                }
            } else if path.is_ident("workers") {
                if let Some(n) = lit_usize(cx, meta, "workers") {
                    if n == 0 {
                        cx.error_spanned_by(
                            meta,
                            "`workers = 0` would start no actor to serve the mailbox; \
                             use `workers = 1` or more, or leave it out for one actor",
                        );
                    } else {
                        workers.set(cx, path, (n, path.segments[0].ident.span()));
                    }
                }
            } else if path.is_ident("mailbox") {
                if let Some(n) = lit_usize(cx, meta, "mailbox") {
                    if n == 0 {
                        cx.error_spanned_by(
                            meta,
                            "`mailbox = 0` leaves no room for a single request; \
                             use `mailbox = 1` or more, or leave it out for the runtime default",
                        );
                    } else {
                        mailbox.set(cx, path, n);
                    }
                }
            } else if path.is_ident("reads") {
                if let Some(n) = lit_usize(cx, meta, "reads") {
                    if n == 0 {
                        cx.error_spanned_by(
                            meta,
                            "`reads = 0` would let no `&self` handler run; use `reads = 1` \
                             or more (1 runs one request at a time), or leave it out for the \
                             runtime default",
                        );
                    } else {
                        reads.set(cx, path, n);
                    }
                }
            } else if path.is_ident("on_panic") {
                if let Some(lit) = lit_str(cx, meta, "on_panic", "\"rebuild\"") {
                    match lit.value().as_str() {
                        "keep" => on_panic.set(cx, path, None),
                        "rebuild" => on_panic.set(cx, path, Some(lit.span())),
                        other => cx.error_spanned_by(
                            lit,
                            format_args!(
                                "unknown `on_panic` policy \"{other}\"; expected \"keep\" (the \
                                 state stays as the panicking handler left it) or \"rebuild\" \
                                 (a fresh state from `Default`)"
                            ),
                        ),
                    }
                }
            } else {
                cx.error_spanned_by(
                    path,
                    format_args!(
                        "unknown argument `{}` to `#[micro::service]`; expected {SERVICE_ARGS}",
                        path.to_token_stream().to_string().replace(' ', ""),
                    ),
                );
            }
        }

        let workers = workers.value;
        Service {
            name: name.value,
            version: version.value,
            workers: workers.map_or(1, |(n, _)| n),
            workers_span: workers.map(|(_, span)| span),
            mailbox: mailbox.value.unwrap_or(0),
            reads: reads.value.unwrap_or(0),
            rebuild: on_panic.value.flatten(),
        }
    }
}

/// What `#[micro::subscribe(...)]` says.
pub(crate) struct Subscribe {
    /// Empty only when its absence was reported.
    pub(crate) topic: String,
    /// The queue group; `None` receives every event.
    pub(crate) queue: Option<String>,
}

impl Subscribe {
    /// Reads the arguments of the attribute on a free function; a missing
    /// topic is reported at `attr_span`, the attribute itself.
    pub(crate) fn from_args(cx: &Ctxt, args: TokenStream, attr_span: Span) -> Self {
        let subscribe = Self::parse(cx, args);
        if !subscribe.topic_given {
            cx.error_at(attr_span, missing_topic());
        }
        subscribe.into()
    }

    /// Reads the attribute as written on a method of a `#[micro::service]`
    /// block.
    pub(crate) fn from_attr(cx: &Ctxt, attr: &Attribute) -> Self {
        let subscribe = match &attr.meta {
            Meta::List(list) => Self::parse(cx, list.tokens.clone()),
            Meta::Path(_) => Parsed::default(),
            Meta::NameValue(_) => {
                cx.error_spanned_by(attr, format_args!("expected `{SUBSCRIBE_EXAMPLE}`"));
                return Subscribe {
                    topic: String::new(),
                    queue: None,
                };
            }
        };
        if !subscribe.topic_given {
            cx.error_spanned_by(attr, missing_topic());
        }
        subscribe.into()
    }

    fn parse(cx: &Ctxt, args: TokenStream) -> Parsed {
        let mut topic = Arg::new("topic");
        let mut queue = Arg::new("queue");
        let mut topic_given = false;
        for meta in &metas(cx, args) {
            let path = meta.path();
            if path.is_ident("topic") {
                topic_given = true;
                if let Some(lit) = lit_str(cx, meta, "topic", "\"consignment.created\"") {
                    topic.set(cx, path, lit.value());
                }
            } else if path.is_ident("queue") {
                if let Some(lit) = lit_str(cx, meta, "queue", "\"counter\"") {
                    queue.set(cx, path, lit.value());
                }
            } else {
                cx.error_spanned_by(
                    path,
                    format_args!(
                        "unknown argument `{}` to `#[micro::subscribe]`; expected {SUBSCRIBE_ARGS}",
                        path.to_token_stream().to_string().replace(' ', ""),
                    ),
                );
            }
        }
        Parsed {
            topic: topic.value.unwrap_or_default(),
            queue: queue.value,
            topic_given,
        }
    }
}

/// Arguments read so far, and whether `topic` was written at all: an empty or
/// mistyped one has been reported already.
#[derive(Default)]
struct Parsed {
    topic: String,
    queue: Option<String>,
    topic_given: bool,
}

impl From<Parsed> for Subscribe {
    fn from(parsed: Parsed) -> Self {
        Subscribe {
            topic: parsed.topic,
            queue: parsed.queue,
        }
    }
}

fn missing_topic() -> String {
    format!("`#[micro::subscribe]` needs the topic to receive events from: `{SUBSCRIBE_EXAMPLE}`")
}

/// `#[micro(...)]` and `#[micro::subscribe(...)]` on one method.
pub(crate) struct Method<'a> {
    /// The `#[micro(...)]` attribute that says `skip`.
    pub(crate) skip: Option<&'a Attribute>,
    /// The word `idempotent` in `#[micro(...)]`, where errors about it point.
    pub(crate) idempotent: Option<Path>,
    pub(crate) subscribe: Option<Subscribe>,
}

impl<'a> Method<'a> {
    pub(crate) fn from_attrs(cx: &Ctxt, attrs: &'a [Attribute]) -> Self {
        let Flags { skip, idempotent } = flags(cx, attrs);
        Method {
            skip,
            idempotent,
            subscribe: subscription(cx, attrs),
        }
    }
}

/// The words of `#[micro(...)]`, each a flag without a value.
struct Flags<'a> {
    skip: Option<&'a Attribute>,
    idempotent: Option<Path>,
}

/// Reads every `#[micro(...)]` among `attrs`, after reporting anything in them
/// that is not a known flag.
fn flags<'a>(cx: &Ctxt, attrs: &'a [Attribute]) -> Flags<'a> {
    let mut skip = Arg::new("skip");
    let mut idempotent = Arg::new("idempotent");
    for attr in attrs.iter().filter(|attr| is_micro(attr)) {
        let Meta::List(list) = &attr.meta else {
            cx.error_spanned_by(attr, format_args!("expected {MICRO_EXAMPLES}"));
            continue;
        };
        let metas = list.parse_args_with(Punctuated::<Meta, Token![,]>::parse_terminated);
        for meta in metas.unwrap_or_else(|error| {
            cx.syn_error(error);
            Punctuated::new()
        }) {
            let path = meta.path();
            let word = path.to_token_stream().to_string().replace(' ', "");
            match &meta {
                Meta::Path(_) if path.is_ident("skip") => skip.set(cx, path, attr),
                Meta::Path(_) if path.is_ident("idempotent") => {
                    idempotent.set(cx, path, path.clone());
                }
                // A flag's presence is its value: `idempotent = false` is left out.
                _ if path.is_ident("skip") || path.is_ident("idempotent") => cx.error_spanned_by(
                    &meta,
                    format_args!(
                        "`{word}` takes no value: write `#[micro({word})]`, or leave it out"
                    ),
                ),
                _ => cx.error_spanned_by(
                    path,
                    format_args!("unknown `micro` attribute `{word}`; expected {MICRO_WORDS}"),
                ),
            }
        }
    }
    Flags {
        skip: skip.value,
        idempotent: idempotent.value,
    }
}

/// Reports `#[micro(idempotent)]` on a subscriber, at the word `idempotent`.
pub(crate) fn idempotent_subscriber(cx: &Ctxt, idempotent: &Path, name: &Ident) {
    cx.error_spanned_by(
        idempotent,
        format_args!(
            "subscriber `{name}` cannot be `#[micro(idempotent)]`: idempotence applies to calls, \
             which a client may send twice; the broker decides when an event is delivered \
             again; remove `#[micro(idempotent)]`",
        ),
    );
}

/// The one `#[micro::subscribe(...)]` among `attrs`, read; a second is an
/// error, as one method cannot have two wire names.
pub(crate) fn subscription(cx: &Ctxt, attrs: &[Attribute]) -> Option<Subscribe> {
    let mut found = attrs.iter().filter(|attr| is_subscribe(attr));
    let first = found.next()?;
    found.for_each(|extra| subscribe_twice(cx, extra));
    Some(Subscribe::from_attr(cx, first))
}

/// Reports what the macros' attributes cannot mean on a free subscriber: a
/// second `#[micro::subscribe]` (the first is the one being expanded),
/// `#[micro(skip)]` and `#[micro(idempotent)]`.
pub(crate) fn check_free_subscriber(cx: &Ctxt, name: &Ident, attrs: &[Attribute]) {
    let Flags { skip, idempotent } = flags(cx, attrs);
    if let Some(skip) = skip {
        cx.error_spanned_by(
            skip,
            format_args!(
                "`#[micro(skip)]` contradicts `#[micro::subscribe]`: `{name}` would receive events \
                 and be skipped; remove `#[micro(skip)]`, or `#[micro::subscribe]` to keep a \
                 plain function",
            ),
        );
    }
    if let Some(idempotent) = &idempotent {
        idempotent_subscriber(cx, idempotent, name);
    }
    for extra in attrs.iter().filter(|attr| is_subscribe(attr)) {
        subscribe_twice(cx, extra);
    }
}

/// Reports a second `#[micro::subscribe]` on one function.
fn subscribe_twice(cx: &Ctxt, extra: &Attribute) {
    cx.error_spanned_by(
        extra,
        "`#[micro::subscribe]` is given twice; a subscriber receives one topic: write a \
         subscriber per topic",
    );
}

/// Reports `#[micro(...)]` where it means nothing: on consts, types and macros
/// inside the impl block.
pub(crate) fn reject_on_non_method(cx: &Ctxt, attrs: &[Attribute]) {
    for attr in attrs {
        if is_micro(attr) {
            cx.error_spanned_by(attr, "`#[micro(...)]` only goes on methods");
        } else if is_subscribe(attr) {
            cx.error_spanned_by(attr, "`#[micro::subscribe]` only goes on methods");
        }
    }
}

/// Removes the macro's helper attributes, which rustc would not recognise.
pub(crate) fn strip(item: &mut ItemImpl) {
    for member in &mut item.items {
        let attrs = match member {
            ImplItem::Fn(f) => &mut f.attrs,
            ImplItem::Const(c) => &mut c.attrs,
            ImplItem::Type(t) => &mut t.attrs,
            ImplItem::Macro(m) => &mut m.attrs,
            _ => continue,
        };
        strip_attrs(attrs);
    }
}

/// Removes `#[micro(...)]` and `#[micro::subscribe(...)]` from one item.
pub(crate) fn strip_attrs(attrs: &mut Vec<Attribute>) {
    attrs.retain(|attr| !is_micro(attr) && !is_subscribe(attr));
}

pub(crate) fn is_micro(attr: &Attribute) -> bool {
    attr.path().is_ident("micro")
}

/// `#[micro::subscribe]`, or `#[subscribe]` after `use micro::subscribe`:
/// inside a service block the attribute is read, never expanded, so the macro
/// can only go by its name.
pub(crate) fn is_subscribe(attr: &Attribute) -> bool {
    let mut segments = attr.path().segments.iter().map(|segment| &segment.ident);
    match (segments.next(), segments.next(), segments.next()) {
        (Some(name), None, None) => name == "subscribe",
        (Some(krate), Some(name), None) => krate == "micro" && name == "subscribe",
        _ => false,
    }
}

/// `name = value, ...`; a syntax error is recorded and reads as no arguments.
fn metas(cx: &Ctxt, args: TokenStream) -> Punctuated<Meta, Token![,]> {
    Punctuated::<Meta, Token![,]>::parse_terminated
        .parse2(args)
        .unwrap_or_else(|error| {
            cx.syn_error(error);
            Punctuated::new()
        })
}

/// One argument that may be given at most once.
struct Arg<T> {
    name: &'static str,
    value: Option<T>,
}

impl<T> Arg<T> {
    fn new(name: &'static str) -> Self {
        Arg { name, value: None }
    }

    fn set(&mut self, cx: &Ctxt, at: impl ToTokens, value: T) {
        if self.value.is_some() {
            cx.error_spanned_by(
                at,
                format_args!("duplicate argument `{}`; give it once", self.name),
            );
        } else {
            self.value = Some(value);
        }
    }
}

/// What an argument expects, for the error messages.
struct Expected<'a> {
    name: &'a str,
    kind: &'a str,
    example: &'a str,
}

impl Expected<'_> {
    fn error(&self, cx: &Ctxt, at: impl ToTokens) {
        let Expected {
            name,
            kind,
            example,
        } = self;
        cx.error_spanned_by(
            at,
            format_args!("`{name}` expects {kind}: `{name} = {example}`"),
        );
    }
}

fn value<'a>(cx: &Ctxt, meta: &'a Meta, expected: &Expected<'_>) -> Option<&'a Lit> {
    let Meta::NameValue(nv) = meta else {
        expected.error(cx, meta);
        return None;
    };
    let mut expr = &nv.value;
    // A literal passed through a `macro_rules!` fragment arrives wrapped in an
    // invisible group.
    while let Expr::Group(group) = expr {
        expr = &group.expr;
    }
    let Expr::Lit(ExprLit { lit, .. }) = expr else {
        expected.error(cx, expr);
        return None;
    };
    Some(lit)
}

fn lit_str<'a>(cx: &Ctxt, meta: &'a Meta, name: &str, example: &str) -> Option<&'a LitStr> {
    let expected = Expected {
        name,
        kind: "a string literal",
        example,
    };
    match value(cx, meta, &expected)? {
        Lit::Str(lit) if lit.value().trim().is_empty() => {
            cx.error_spanned_by(
                lit,
                format_args!("`{name}` cannot be empty: `{name} = {example}`"),
            );
            None
        }
        Lit::Str(lit) => Some(lit),
        lit => {
            expected.error(cx, lit);
            None
        }
    }
}

fn lit_usize(cx: &Ctxt, meta: &Meta, name: &str) -> Option<usize> {
    let expected = Expected {
        name,
        kind: "an integer",
        example: "4",
    };
    match value(cx, meta, &expected)? {
        Lit::Int(lit) => match lit.base10_parse() {
            Ok(n) => Some(n),
            Err(error) => {
                cx.syn_error(error);
                None
            }
        },
        lit => {
            expected.error(cx, lit);
            None
        }
    }
}
