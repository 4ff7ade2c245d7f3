//! The macro's own arguments: `#[micro::service(...)]` and `#[micro(...)]` on
//! methods.

use proc_macro2::{Span, TokenStream};
use quote::ToTokens;
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::{Attribute, Expr, ExprLit, ImplItem, ItemImpl, Lit, LitStr, Meta, Token};

use super::Ctxt;

const SERVICE_ARGS: &str = "`name`, `version`, `workers` or `mailbox`";

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
}

impl Service {
    pub(crate) fn from_args(cx: &Ctxt, args: TokenStream) -> Self {
        let mut name = Arg::new("name");
        let mut version = Arg::new("version");
        let mut workers = Arg::new("workers");
        let mut mailbox = Arg::new("mailbox");

        let metas = Punctuated::<Meta, Token![,]>::parse_terminated
            .parse2(args)
            .unwrap_or_else(|error| {
                cx.syn_error(error);
                Punctuated::new()
            });
        for meta in &metas {
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
        }
    }
}

/// `#[micro(...)]` on one method.
pub(crate) struct Method {
    pub(crate) skip: bool,
}

impl Method {
    pub(crate) fn from_attrs(cx: &Ctxt, attrs: &[Attribute]) -> Self {
        let mut skip = Arg::new("skip");
        for attr in attrs.iter().filter(|attr| is_micro(attr)) {
            let Meta::List(list) = &attr.meta else {
                cx.error_spanned_by(attr, "expected `#[micro(skip)]`");
                continue;
            };
            let metas = list.parse_args_with(Punctuated::<Meta, Token![,]>::parse_terminated);
            for meta in metas.unwrap_or_else(|error| {
                cx.syn_error(error);
                Punctuated::new()
            }) {
                match meta {
                    Meta::Path(path) if path.is_ident("skip") => skip.set(cx, &path, ()),
                    meta => cx.error_spanned_by(
                        meta.path(),
                        format_args!(
                            "unknown `micro` attribute `{}`; expected `skip`",
                            meta.path().to_token_stream().to_string().replace(' ', ""),
                        ),
                    ),
                }
            }
        }
        Method {
            skip: skip.value.is_some(),
        }
    }
}

/// Reports `#[micro(...)]` where it means nothing: on consts, types and macros
/// inside the impl block.
pub(crate) fn reject_on_non_method(cx: &Ctxt, attrs: &[Attribute]) {
    for attr in attrs.iter().filter(|attr| is_micro(attr)) {
        cx.error_spanned_by(attr, "`#[micro(...)]` only goes on methods");
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
        attrs.retain(|attr| !is_micro(attr));
    }
}

fn is_micro(attr: &Attribute) -> bool {
    attr.path().is_ident("micro")
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
